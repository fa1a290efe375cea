//! Helpers shared by the server's tests: a plain HTTP client and entries to store.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use wiremap_model::{Detail, Endpoint, Entry, Protocol, Timestamp, Transport};

/// A GET with an optional bearer token: (status, body).
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("sends");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// An answered HTTP exchange from `src` to `dst`:80 at `ts`.
pub fn http_entry(stream: u64, ts: Timestamp, src: std::net::IpAddr, dst: &str) -> Entry {
    Entry {
        id: 0,
        stream,
        index: 0,
        timestamp: ts,
        elapsed_time: 100,
        protocol: Protocol::Http,
        transport: Transport::Tcp,
        src: Endpoint::new(src, 40000),
        dst: Endpoint::new(dst.parse().expect("ip"), 80),
        request_size: 10,
        response_size: 10,
        has_response: true,
        status_code: 200,
        error: false,
        node_name: String::new(),
        seen_by: Vec::new(),
        client_isn: None,
        detail: Detail::None,
    }
}

/// Serves the API over `shared` on a free loopback port, on a runtime of its own (dropping
/// the runtime stops the server).
pub fn serve(
    shared: std::sync::Arc<wiremap_server::Shared>,
    access: wiremap_server::Access,
    limits: wiremap_server::Limits,
) -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(wiremap_server::serve(
        listener,
        wiremap_server::router_with(shared, access, limits),
        std::future::pending(),
    ));
    (rt, addr)
}
