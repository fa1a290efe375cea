//! Sample entries for the filter tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use wiremap_model::{
    ConnInfo, Detail, DnsInfo, Endpoint, Entry, HttpInfo, Identity, IdentityKind, Protocol,
    Timestamp, TlsInfo, Transport,
};

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("timestamp")
}

fn ep(ip: &str, port: u16, id: Option<Identity>) -> Endpoint {
    let mut e = Endpoint::new(ip.parse().expect("ip"), port);
    e.identity = id.map(Arc::new);
    e
}

pub fn pod(ns: &str, name: &str, app: &str) -> Identity {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), app.to_string());
    Identity {
        kind: IdentityKind::Pod,
        name: name.into(),
        namespace: ns.into(),
        pod: name.into(),
        workload_kind: "deployment".into(),
        workload_name: app.into(),
        labels,
        ..Identity::default()
    }
}

pub fn dns_name(n: &str) -> Identity {
    Identity {
        kind: IdentityKind::Dns,
        name: n.into(),
        dns: n.into(),
        ..Identity::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    id: u64,
    at: &str,
    p: Protocol,
    src: Endpoint,
    dst: Endpoint,
    status: i64,
    elapsed: i64,
    detail: Detail,
) -> Entry {
    Entry {
        id,
        stream: id * 10,
        index: 0,
        timestamp: ts(at),
        elapsed_time: elapsed,
        protocol: p,
        transport: if matches!(p, Protocol::Dns | Protocol::Udp) {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        src,
        dst,
        request_size: 100 + id,
        response_size: 1000 + id,
        has_response: status != 0,
        status_code: status,
        error: status >= 500,
        node_name: if id.is_multiple_of(2) {
            "worker-1".into()
        } else {
            "worker-2".into()
        },
        seen_by: Vec::new(),
        client_isn: None,
        detail,
    }
}

fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> Detail {
    Detail::Http(Box::new(HttpInfo {
        method: method.into(),
        url: url.into(),
        path: url.split('?').next().unwrap_or("").into(),
        http_version: "HTTP/1.1".into(),
        host: "shop.example".into(),
        request_headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..HttpInfo::default()
    }))
}

pub fn sample() -> Vec<Entry> {
    vec![
        entry(
            1,
            "2026-03-14T22:10:00Z",
            Protocol::Http,
            ep(
                "10.1.0.5",
                40000,
                Some(pod("shop", "front-end-7d9", "front-end")),
            ),
            ep("10.1.0.9", 80, Some(pod("shop", "carts-5f4", "carts"))),
            200,
            1200,
            http(
                "GET",
                "/api/v1/carts?id=7&x=1",
                &[("user-agent", "curl/8"), ("x-request-id", "abc")],
            ),
        ),
        entry(
            2,
            "2026-03-14T22:20:00Z",
            Protocol::Http,
            ep(
                "10.1.0.5",
                40001,
                Some(pod("shop", "front-end-7d9", "front-end")),
            ),
            ep(
                "10.1.0.10",
                80,
                Some(pod("production", "catalogue-1", "catalogue")),
            ),
            503,
            7_000_000,
            http("POST", "/orders", &[]),
        ),
        entry(
            3,
            "2026-03-14T21:00:00Z",
            Protocol::Dns,
            ep(
                "10.1.0.5",
                5353,
                Some(pod("kube-system", "coredns-x", "coredns")),
            ),
            ep("8.8.8.8", 53, None),
            0,
            0,
            Detail::Dns(Box::new(DnsInfo {
                questions: vec!["google.com".into()],
                question_types: vec!["A".into()],
                answers: vec!["142.250.1.1".into()],
                request_length: 28,
                response_length: 44,
            })),
        ),
        entry(
            4,
            "2026-03-14T22:59:59Z",
            Protocol::Tls,
            ep("192.168.1.2", 50000, None),
            ep("93.184.216.34", 443, Some(dns_name("api.stripe.com"))),
            0,
            0,
            Detail::Tls(Box::new(TlsInfo {
                sni: "api.stripe.com".into(),
                alpn: vec!["h2".into(), "http/1.1".into()],
                client_version: "TLS 1.3".into(),
                ..TlsInfo::default()
            })),
        ),
        entry(
            5,
            "2026-03-15T01:00:00Z",
            Protocol::Tcp,
            ep("10.9.9.9", 1234, None),
            ep("10.9.9.8", 6379, Some(dns_name("db.corp.internal"))),
            0,
            0,
            Detail::Conn(Box::new(ConnInfo {
                client_packets: 3,
                server_packets: 1,
                state: "closed",
                error_type: "reset",
            })),
        ),
        entry(
            6,
            "2026-03-14T22:30:00Z",
            Protocol::Http,
            ep(
                "10.1.0.7",
                40002,
                Some(pod("shop", "checkout-1", "checkout")),
            ),
            ep("10.1.0.9", 80, Some(pod("shop", "carts-5f4", "carts"))),
            404,
            300,
            http("GET", "/api/v2/items/1", &[]),
        ),
    ]
}
