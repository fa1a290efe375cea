//! The live stream over a real socket: clients asking the same question share one map, each
//! gets a snapshot then deltas with its own consecutive sequence numbers, and a feed ends
//! with its last client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wiremap_model::Timestamp;
use wiremap_server::{Access, Limits, Shared};
use wiremap_store::{Store, StoreConfig};

mod common;

use common::http_entry;

fn store(dir: &std::path::Path) -> Arc<Shared> {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = Store::open(StoreConfig::new(dir)).expect("store");
    for i in 0..50u32 {
        let src = format!("10.0.0.{}", i % 5).parse().expect("ip");
        let ts = Timestamp::from_parts(1_700_000_000, i);
        let mut e = http_entry(u64::from(i), ts, src, "10.0.1.1");
        store.append_entry(&mut e).expect("append");
    }
    store.flush().expect("flush");
    Shared::new(store)
}

/// A WebSocket client just big enough for the test (RFC 6455: masked text frames out,
/// unmasked frames in).
struct Ws(TcpStream);

impl Ws {
    fn connect(addr: SocketAddr, path: &str) -> Ws {
        let mut s = TcpStream::connect(addr).expect("connects");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("sends");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("reads the answer");
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Ws(s)
    }

    fn recv(&mut self) -> serde_json::Value {
        let mut h = [0u8; 2];
        self.0.read_exact(&mut h).expect("frame header");
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            self.0.read_exact(&mut l).expect("len16");
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            self.0.read_exact(&mut l).expect("len64");
            len = u64::from_be_bytes(l);
        }
        let mut body = vec![0u8; len as usize];
        self.0.read_exact(&mut body).expect("frame body");
        serde_json::from_slice(&body).expect("JSON message")
    }

    fn send(&mut self, text: &str) {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x81, 0x80 | text.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&f).expect("sends a frame");
    }
}

fn stats(addr: SocketAddr) -> serde_json::Value {
    common::json(&common::get(addr, "/api/stats", None).1)
}

#[test]
fn clients_with_the_same_question_share_one_map() {
    let dir = std::env::temp_dir().join(format!("wiremap-stream-{}", std::process::id()));
    let shared = store(&dir);
    let (rt, addr) = common::serve(shared, Access::default(), Limits::default());

    let mut a = Ws::connect(addr, "/api/stream?level=ip&from=-1h");
    let mut b = Ws::connect(addr, "/api/stream?level=ip&from=-1h");
    let mut c = Ws::connect(addr, "/api/stream?level=workload&from=-1h");
    let mut first = Vec::new();
    for ws in [&mut a, &mut b, &mut c] {
        let m = ws.recv();
        assert_eq!(m["type"], "snapshot", "{m}");
        assert_eq!(m["map"]["edges"].as_array().map_or(0, Vec::len), 5, "{m}");
        first.push(m["seq"].as_u64().expect("seq"));
    }
    let st = stats(addr);
    assert_eq!(
        (st["stream_clients"].as_u64(), st["stream_feeds"].as_u64()),
        (Some(3), Some(2)),
        "{st}"
    );
    // Deltas follow the snapshot with consecutive sequence numbers (the feed's ticks, the
    // same for every client of a feed).
    let mut seq = first[0];
    for _ in 0..3 {
        let m = a.recv();
        seq += 1;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("delta"), Some(seq))
        );
    }
    let mut m = b.recv();
    while m["seq"].as_u64() < Some(seq) {
        m = b.recv();
    }
    assert_eq!(
        m["seq"].as_u64(),
        Some(seq),
        "clients of one feed share its ticks"
    );
    // Pause is acknowledged; resume sends the whole map as one delta.
    a.send(r#"{"type":"pause"}"#);
    let mut m = a.recv();
    while m["type"] == "delta" {
        seq += 1;
        assert_eq!(m["seq"].as_u64(), Some(seq));
        m = a.recv();
    }
    assert_eq!(m["type"], "paused");
    std::thread::sleep(Duration::from_millis(1200));
    a.send(r#"{"type":"resume"}"#);
    let m = a.recv();
    assert_eq!(m["type"], "delta");
    assert!(m["seq"].as_u64() > Some(seq), "{m}");
    assert_eq!(
        m["upsert"]["edges"].as_array().map_or(0, Vec::len),
        5,
        "{m}"
    );
    a.send(r#"{"type":"snapshot"}"#);
    let mut m = a.recv();
    while m["type"] != "snapshot" {
        m = a.recv();
    }
    assert_eq!(m["map"]["nodes"].as_array().map_or(0, Vec::len), 6);

    // The feeds end with their last clients.
    drop((a, b, c));
    let start = Instant::now();
    while stats(addr)["stream_feeds"].as_u64() != Some(0) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "feeds outlived their clients"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn streams_past_the_cap_are_refused_until_one_closes() {
    let dir = std::env::temp_dir().join(format!("wiremap-stream-cap-{}", std::process::id()));
    let shared = store(&dir);
    let limits = Limits {
        stream_clients: 2,
        ..Limits::default()
    };
    let (rt, addr) = common::serve(shared, Access::default(), limits);
    let mut a = Ws::connect(addr, "/api/stream?level=ip");
    let _b = Ws::connect(addr, "/api/stream?level=ip");
    a.recv();
    let (status, body) = common::get(addr, "/api/stream?level=ip", None);
    // Refused before any upgrade is attempted, and counted.
    assert_eq!(status, 503, "{body}");
    assert_eq!(stats(addr)["queries"]["stream_refused"], 1);
    drop(a);
    let start = Instant::now();
    while stats(addr)["stream_clients"].as_u64() != Some(1) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the place was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Ws::connect(addr, "/api/stream?level=ip");
    assert_eq!(c.recv()["type"], "snapshot");
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
