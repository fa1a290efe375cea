//! Insert throughput and map latency against a server:
//! `cargo run --release -p wiremap-clickhouse --example bench -- http://127.0.0.1:8123 [ENTRIES]`
//!
//! Synthetic HTTP entries between 200 pods over an hour go in with and without gzip; then
//! maps of the whole hour are asked from the rollups and from the entries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wiremap_clickhouse::{ClickHouse, Config};
use wiremap_map::Level;
use wiremap_model::{
    Detail, Endpoint, Entry, HttpInfo, Identity, IdentityKind, Protocol, Timestamp, Transport,
};

fn pod(i: u32) -> Arc<Identity> {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), format!("app{}", i % 20));
    Arc::new(Identity {
        kind: IdentityKind::Pod,
        name: format!("pod-{i}"),
        namespace: format!("ns{}", i % 5),
        pod: format!("pod-{i}"),
        workload_kind: "deployment".into(),
        workload_name: format!("app{}", i % 20),
        labels,
        ..Identity::default()
    })
}

fn entries(n: u64, first_id: u64) -> Vec<Entry> {
    let pods: Vec<Arc<Identity>> = (0..200).map(pod).collect();
    let base = 1_773_525_600_000_000_000i64;
    (0..n)
        .map(|k| {
            let i = k + first_id;
            let (a, b) = ((i * 7 % 200) as u32, (i * 13 % 200) as u32);
            let ep = |p: u32, port: u16| Endpoint {
                ip: format!("10.1.{}.{}", p / 250, p % 250 + 1)
                    .parse()
                    .expect("ip"),
                port,
                identity: Some(pods[p as usize].clone()),
            };
            Entry {
                id: i,
                stream: i / 4,
                index: (i % 4) as u32,
                timestamp: Timestamp(base + (i as i64 * 3_600_000_000_000) / n as i64),
                elapsed_time: (i % 5000) as i64 * 37,
                protocol: Protocol::Http,
                transport: Transport::Tcp,
                src: ep(a, 40000 + (i % 2000) as u16),
                dst: ep(b, 8080),
                request_size: 200 + i % 300,
                response_size: 1000 + i % 5000,
                has_response: true,
                status_code: if i.is_multiple_of(50) { 503 } else { 200 },
                error: i.is_multiple_of(50),
                node_name: format!("worker-{}", i % 3),
                seen_by: Vec::new(),
                client_isn: None,
                detail: Detail::Http(Box::new(HttpInfo {
                    method: "GET".into(),
                    url: format!("/api/v1/items/{}?page={}", i % 1000, i % 7),
                    path: format!("/api/v1/items/{}", i % 1000),
                    http_version: "HTTP/1.1".into(),
                    host: "items".into(),
                    status_text: "OK".into(),
                    request_headers: vec![
                        ("user-agent".into(), "bench/1".into()),
                        ("x-request-id".into(), format!("{i:016x}")),
                    ],
                    response_headers: vec![("content-type".into(), "application/json".into())],
                    ..HttpInfo::default()
                })),
            }
        })
        .collect()
}

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
        let es = entries(n, ch.max_id().expect("max id") + 1);
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
