//! The API under hostile requests: every bad input is a JSON 400, times out of range are
//! refused, a flood's map is folded to the server's limits, and queries stop when their time
//! is up or their client leaves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wiremap_model::Timestamp;
use wiremap_server::{Access, Limits, Shared};
use wiremap_store::{Store, StoreConfig};

mod common;

use common::{http_entry, json};

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::get(addr, path, None)
}

/// `n` HTTP entries, each from its own client address to one server: a spoofed flood.
fn flood(dir: &std::path::Path, n: u32) -> Arc<Shared> {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = Store::open(StoreConfig::new(dir)).expect("store");
    for i in 0..n {
        let src = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let ts = Timestamp::from_parts(1_700_000_000, i * 1000);
        let mut e = http_entry(u64::from(i), ts, src.into(), "10.255.0.1");
        store.append_entry(&mut e).expect("append");
    }
    store.flush().expect("flush");
    Shared::new(store)
}

fn serve(shared: Arc<Shared>, limits: Limits) -> (tokio::runtime::Runtime, SocketAddr) {
    common::serve(shared, Access::default(), limits)
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wiremap-hostile-{name}-{}", std::process::id()))
}

#[test]
fn bad_requests_are_json_400s_and_a_flood_map_is_folded() {
    let dir = tmp("bad");
    let shared = flood(&dir, 3000);
    let limits = Limits {
        map_nodes: 100,
        map_edges: 200,
        ..Limits::default()
    };
    let (_rt, addr) = serve(shared, limits);

    for (path, says) in [
        ("/api/entries?cursor=abc", "cursor"),
        ("/api/entries?limit=0", "limit"),
        ("/api/entries?limit=10001", "limit"),
        ("/api/entries?limit=-1", "limit"),
        ("/api/entries/+1", "entry id"),
        ("/api/entries/%201", "entry id"),
        ("/api/map?from=9999-12-31T23:59:59Z", "2262"),
        ("/api/map?to=1000-01-01T00:00:00Z", "1677"),
        ("/api/map?from=-99999999999d", "from"),
        ("/api/map?from=--5m", "from"),
        ("/api/map?format=xml", "format"),
        ("/api/export.pcapng?level=galaxy", "level"),
        ("/api/stream?cursor=x", "cursor"),
    ] {
        let (st, body) = get(addr, path);
        let v = json(&body);
        let msg = v["error"].as_str().unwrap_or_default();
        assert_eq!(st, 400, "{path}: {body}");
        assert!(msg.contains(says), "{path}: {body}");
    }
    let (st, body) = get(addr, "/api/nothing");
    assert!(st == 404 && json(&body)["error"].is_string(), "{body}");

    // 3,000 clients of one server, 100 nodes kept: the rest fold into one "other" node and
    // every entry is still on an edge.
    let (st, body) = get(addr, "/api/map?level=ip");
    assert_eq!(st, 200);
    let m = json(&body);
    let nodes = m["nodes"].as_array().map_or(0, Vec::len);
    assert!(nodes <= 101, "{nodes} nodes");
    let requests: u64 = m["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["requests"].as_u64())
        .sum();
    assert_eq!(requests, 3000);
    assert!(m["stats"]["dropped"]["map_entries_folded"].as_u64() > Some(2800));
    assert!(m["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["id"] == "other:internal" && n["folded"].as_u64() > Some(2800)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_query_past_its_time_is_stopped_with_503() {
    let dir = tmp("timeout");
    let shared = flood(&dir, 2000);
    let limits = Limits {
        query_timeout: Duration::ZERO,
        ..Limits::default()
    };
    let (_rt, addr) = serve(shared, limits);
    let (st, body) = get(addr, "/api/map");
    assert_eq!(st, 503, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .is_some_and(|m| m.contains("--query-timeout")));
    let (st, body) = get(
        addr,
        "/api/entries?q=http%20%26%26%20status_code%20%3E%20999",
    );
    assert_eq!(st, 503, "{body}");
    // An export stops too: its body is cut (no closing chunk), never a complete-looking file.
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "GET /api/export.pcapng HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        !raw.ends_with(b"0\r\n\r\n"),
        "a stopped export looks complete"
    );
    let (_, body) = get(addr, "/api/stats");
    assert_eq!(json(&body)["queries"]["timeout"], 3, "{body}");
    let (_, body) = get(addr, "/metrics");
    assert!(body.contains("wiremap_queries_stopped_total{reason=\"timeout\"} 3"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_query_whose_client_left_stops() {
    let dir = tmp("gone");
    // A filter that costs two regex matches per entry, on 200,000 entries: seconds of work
    // in a debug build, far longer than the 100 ms the client waits before leaving.
    let shared = flood(&dir, 200_000);
    let (_rt, addr) = serve(shared, Limits::default());
    let q = "url.matches(%22%5E(a%7Cb%7Cc)*x%24%22)%20%7C%7C%20path.matches(%22.*z.*z.*z%22)";
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "GET /api/entries?q={q} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let start = Instant::now();
    loop {
        let (_, body) = get(addr, "/api/stats");
        let v = json(&body);
        if v["queries"]["client_gone"].as_u64() == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the query went on after its client left: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
