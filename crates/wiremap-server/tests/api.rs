//! The API over a store filled from a real capture: token, paging, lookups, errors.

use std::path::{Path, PathBuf};

use wiremap_capture::{FileSource, PacketSource};
use wiremap_engine::{Engine, EngineConfig};
use wiremap_server::{router, Access, Ingest, Shared};
use wiremap_store::{Store, StoreConfig};

fn pcap(name: &str) -> Option<PathBuf> {
    let base = std::env::var("WIREMAP_PCAPS")
        .unwrap_or_else(|_| format!("{}/../../../shared/pcaps", env!("CARGO_MANIFEST_DIR")));
    let p = Path::new(&base).join(name);
    p.exists().then_some(p)
}

mod common;

use common::{get, json};

#[test]
fn api_over_an_imported_capture() {
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wiremap-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shared = Shared::new(Store::open(StoreConfig::new(&dir)).expect("store"));
    let mut ingest = Ingest::new(Engine::new(EngineConfig::default()), shared.clone(), true);
    let mut src = FileSource::open(&file.display().to_string()).expect("opens");
    while src.advance().expect("reads") {
        ingest.packet(&src.packet());
    }
    ingest.finish();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let access = Access {
        token: Some("sesame".into()),
        ..Access::default()
    };
    rt.spawn(wiremap_server::serve(
        listener,
        router(shared, access),
        std::future::pending(),
    ));

    // Without the token nothing is served; with it, in the header or the query.
    assert_eq!(get(addr, "/api/stats", None).0, 401);
    assert_eq!(get(addr, "/api/stats", Some("wrong")).0, 401);
    assert_eq!(get(addr, "/api/stats?token=sesame", None).0, 200);
    let (st, body) = get(addr, "/api/stats", Some("sesame"));
    assert_eq!(st, 200);
    let total = json(&body)["store"]["entries"].as_u64().unwrap_or(0);
    assert!(total > 10, "{body}");

    // Paging walks every entry exactly once, in order.
    let mut cursor = 0;
    let mut ids = Vec::new();
    loop {
        let (st, body) = get(
            addr,
            &format!("/api/entries?limit=7&cursor={cursor}"),
            Some("sesame"),
        );
        assert_eq!(st, 200);
        let v = json(&body);
        ids.extend(
            v["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["id"].as_u64()),
        );
        match v["next_cursor"].as_u64() {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(ids, (1..=total).collect::<Vec<_>>());

    // A filter narrows; the map agrees with it.
    let (_, body) = get(addr, "/api/entries?q=dns&limit=1000", Some("sesame"));
    let dns = json(&body)["entries"].as_array().map_or(0, Vec::len);
    let (_, body) = get(addr, "/api/map?q=dns&level=ip", Some("sesame"));
    let m = json(&body);
    let requests: u64 = m["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["requests"].as_u64())
        .sum();
    assert!(dns > 0 && requests == dns as u64, "{dns} vs {requests}");

    // One entry in full; unknown ids and bad input are errors with a message.
    let (st, body) = get(addr, "/api/entries/3", Some("sesame"));
    assert_eq!((st, json(&body)["id"].as_u64()), (200, Some(3)));
    assert_eq!(get(addr, "/api/entries/999999", Some("sesame")).0, 404);
    assert_eq!(get(addr, "/api/entries/abc", Some("sesame")).0, 400);
    let (st, body) = get(addr, "/api/map?level=galaxy", Some("sesame"));
    assert!(st == 400 && body.contains("unknown level"), "{body}");
    let (st, body) = get(addr, "/api/map?from=yesterday", Some("sesame"));
    assert!(st == 400 && body.contains("from"), "{body}");
    let (st, body) = get(addr, "/api/kfl/check?q=http%20%26%26", Some("sesame"));
    assert!(st == 200 && json(&body)["ok"] == false, "{body}");
    let (_, body) = get(
        addr,
        "/api/kfl/check?q=status_code%20%3E%3D%20500",
        Some("sesame"),
    );
    assert_eq!(json(&body)["ok"], true);

    // A window relative to the newest data.
    let (_, body) = get(addr, "/api/entries?from=-8s&limit=1000", Some("sesame"));
    let late = json(&body)["entries"].as_array().map_or(0, Vec::len) as u64;
    assert!(late > 0 && late < total, "{late} of {total}");

    // Metrics in the Prometheus text format.
    let (st, body) = get(addr, "/metrics", Some("sesame"));
    assert!(st == 200 && body.contains("# TYPE wiremap_edge_requests_total counter"));
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
