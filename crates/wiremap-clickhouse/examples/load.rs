//! Fills a ClickHouse database with synthetic entries for map benchmarks:
//! `cargo run --release -p wiremap-clickhouse --example load -- URL DATABASE ENTRIES [HOURS]`
//!
//! HTTP entries between 200 pods (5 namespaces, 20 workloads, 3 nodes) spread evenly over
//! HOURS (default 24), inserted in chunks of 200,000 so memory stays small; prints the rate.

use std::time::Instant;

use wiremap_clickhouse::{ClickHouse, Config};

mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, db, n, rest @ ..] = args.as_slice() else {
        eprintln!("usage: load URL DATABASE ENTRIES [HOURS]");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("ENTRIES is a number");
    let hours: i64 = rest
        .first()
        .map_or(24, |h| h.parse().expect("HOURS is a number"));
    let ch = ClickHouse::open(Config {
        url: url.clone(),
        database: db.clone(),
        compress: false,
        ..Config::default()
    })
    .expect("open");
    let first = ch.max_id().expect("max id") + 1;
    let t = Instant::now();
    let chunk = 200_000;
    let mut done = 0;
    while done < n {
        let k = chunk.min(n - done);
        let es = common::entries(k, first + done, n + first, hours * 3_600_000_000_000);
        ch.insert(&es).expect("insert");
        done += k;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "loaded {n} entries into {db} in {secs:.1} s ({:.0} entries/s)",
        n as f64 / secs
    );
}
