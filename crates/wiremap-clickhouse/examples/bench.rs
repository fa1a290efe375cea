//! Insert throughput and map latency against a server:
//! `cargo run --release -p wiremap-clickhouse --example bench -- http://127.0.0.1:8123 [ENTRIES]`
//!
//! Synthetic HTTP entries between 200 pods over an hour go in with and without gzip; then
//! maps of the whole hour are asked from the rollups and from the entries.

use std::time::Instant;

use wiremap_clickhouse::{ClickHouse, Config};
use wiremap_map::Level;
use wiremap_model::Timestamp;

mod common;

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8123".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let never = &|| false;
    for compress in [false, true] {
        let db = format!("wiremap_bench_{}", u8::from(compress));
        let ch = ClickHouse::open(Config {
            url: url.clone(),
            database: db,
            compress,
            ..Config::default()
        })
        .expect("open");
        let es = common::entries(n, ch.max_id().expect("max id") + 1, n, 3_600_000_000_000);
        let t = Instant::now();
        ch.insert(&es).expect("insert");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "insert gzip={compress}: {n} entries in {secs:.2} s = {:.0} entries/s",
            n as f64 / secs
        );
        let (from, to) = (
            Timestamp(1_773_525_600_000_000_000),
            Timestamp(1_773_525_600_000_000_000 + 3_600_000_000_000),
        );
        for (what, to) in [("rollups", to), ("entries", Timestamp(to.nanos() - 1))] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let m = ch.map(Level::Workload, None, from, to, never).expect("map");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(!m.edges.is_empty());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "map from {what}: p50 {:.0} ms, max {:.0} ms",
                times[2], times[4]
            );
        }
        println!("{:?}", ch.stats().expect("stats"));
    }
}
