//! Synthetic entries for the ClickHouse examples.

use std::collections::BTreeMap;
use std::sync::Arc;

use wiremap_model::{
    Detail, Endpoint, Entry, HttpInfo, Identity, IdentityKind, Protocol, Timestamp, Transport,
};

/// Where the synthetic series starts.
pub const BASE: i64 = 1_773_525_600_000_000_000;

/// Pod `i` of 200, in 5 namespaces and 20 workloads.
pub fn pod(i: u32) -> Arc<Identity> {
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

/// `n` synthetic HTTP entries between 200 pods, numbered from `first_id`, spread evenly
/// over `span_ns` of `n_total` (so chunks of one series line up).
pub fn entries(n: u64, first_id: u64, n_total: u64, span_ns: i64) -> Vec<Entry> {
    let pods: Vec<Arc<Identity>> = (0..200).map(pod).collect();
    let base = BASE;
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
                timestamp: Timestamp(
                    base + ((i as i128 * span_ns as i128) / n_total.max(1) as i128) as i64,
                ),
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
