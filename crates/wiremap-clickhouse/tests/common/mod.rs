//! Entries of every protocol and identity kind, the server under test, and captures.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use wiremap_clickhouse::{ClickHouse, Config};
use wiremap_model::{
    AppInfo, ConnInfo, Detail, DnsInfo, Endpoint, Entry, HttpInfo, Identity, IdentityKind,
    Protocol, Timestamp, TlsInfo, Transport,
};

/// The server named by `WIREMAP_CLICKHOUSE_URL`, or `None` (the test then skips).
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("WIREMAP_CLICKHOUSE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "{test}: skipped (WIREMAP_CLICKHOUSE_URL is not set; tests/clickhouse.sh sets it)"
            );
            None
        }
    }
}

/// A store in a database of its own, so tests run side by side and again.
pub fn open(url: &str, test: &str) -> ClickHouse {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let cfg = Config {
        url: url.to_string(),
        database: format!("wm_{test}_{}_{t}", std::process::id()),
        batch_rows: 7, // several batches even for the small samples
        ..Config::default()
    };
    ClickHouse::open(cfg).expect("open")
}

/// Runs one statement on the server directly (for what the store API does not do).
pub fn raw(url: &str, sql: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut r = agent.post(url).send(sql).expect("request");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().expect("reply text"))
}

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("timestamp")
}

fn ep(ip: &str, port: u16, id: Option<Identity>) -> Endpoint {
    Endpoint {
        ip: ip.parse::<IpAddr>().expect("ip"),
        port,
        identity: id.map(Arc::new),
    }
}

pub fn pod(ns: &str, name: &str, app: &str) -> Identity {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), app.to_string());
    labels.insert("tier".to_string(), "it's \"quoted\"\n\\".to_string());
    Identity {
        kind: IdentityKind::Pod,
        name: name.into(),
        namespace: ns.into(),
        pod: name.into(),
        workload_kind: "deployment".into(),
        workload_name: app.into(),
        node: "worker-1".into(),
        labels,
        ..Identity::default()
    }
}

fn service(ns: &str, name: &str) -> Identity {
    Identity {
        kind: IdentityKind::Service,
        name: name.into(),
        namespace: ns.into(),
        service: name.into(),
        ..Identity::default()
    }
}

fn named(kind: IdentityKind, n: &str) -> Identity {
    Identity {
        kind,
        name: n.into(),
        dns: if kind == IdentityKind::Dns {
            n.into()
        } else {
            String::new()
        },
        zone: if kind == IdentityKind::Zone {
            n.into()
        } else {
            String::new()
        },
        node: if kind == IdentityKind::Node {
            n.into()
        } else {
            String::new()
        },
        ..Identity::default()
    }
}

fn http(method: &str, url: &str, version: &str) -> HttpInfo {
    HttpInfo {
        method: method.into(),
        url: url.into(),
        path: url.split('?').next().unwrap_or("").into(),
        http_version: version.into(),
        host: "shop.example".into(),
        status_text: "OK".into(),
        request_headers: vec![
            ("user-agent".into(), "curl/8".into()),
            ("x-dup".into(), "first".into()),
            ("x-dup".into(), "second".into()),
        ],
        response_headers: vec![("content-type".into(), "application/json".into())],
        request_headers_size: 120,
        request_body_size: 3,
        response_headers_size: 90,
        response_body_size: 4096,
        ..HttpInfo::default()
    }
}

/// About 150 entries: every protocol, every detail, every identity kind, both address
/// families, three capture nodes, across three hours; ids and timestamps increase together.
pub fn sample() -> Vec<Entry> {
    let base = ts("2026-03-14T21:40:00Z").nanos();
    let front = || Some(pod("shop", "front-end-7d9", "front-end"));
    let mut out = Vec::new();
    for i in 0..150u64 {
        let k = i % 15;
        let mut stale = named(IdentityKind::Dns, "api.stripe.com");
        stale.resolution_status = "stale";
        let (p, src, dst, status, detail) = match k {
            0 => (
                Protocol::Http,
                ep("10.1.0.5", 40000, front()),
                ep("10.1.0.9", 80, Some(pod("shop", "carts-5f4", "carts"))),
                // Every third of this edge's entries (i = 0, 15, 30, …) in turn.
                [200, 404, 503][(i / 15 % 3) as usize],
                Detail::Http(Box::new(http(
                    "GET",
                    "/api/v1/carts?id=7&x=1&flag",
                    "HTTP/1.1",
                ))),
            ),
            1 => (
                Protocol::Grpc,
                ep("10.1.0.5", 40001, front()),
                ep(
                    "10.1.0.10",
                    50051,
                    Some(pod("production", "catalogue-1", "catalogue")),
                ),
                if i % 2 == 0 { 0 } else { 14 },
                Detail::Http(Box::new(http("POST", "/shop.Catalogue/List", "HTTP/2"))),
            ),
            2 => (
                Protocol::Gql,
                ep(
                    "10.1.0.7",
                    40002,
                    Some(pod("shop", "checkout-1", "checkout")),
                ),
                ep("10.96.0.20", 80, Some(service("shop", "graph"))),
                200,
                Detail::Http(Box::new(HttpInfo {
                    gql_operation: "query GetUser".into(),
                    ..http("POST", "/graphql", "HTTP/1.1")
                })),
            ),
            3 => (
                Protocol::Dns,
                ep(
                    "10.1.0.11",
                    5353,
                    Some(pod("kube-system", "coredns-x", "coredns")),
                ),
                ep("8.8.8.8", 53, None),
                if i % 2 == 0 { 0 } else { 3 },
                Detail::Dns(Box::new(DnsInfo {
                    questions: vec!["google.com".into(), "x.example".into()],
                    question_types: vec!["A".into(), "AAAA".into()],
                    answers: vec!["142.250.1.1".into()],
                    request_length: 28,
                    response_length: 44,
                })),
            ),
            4 => (
                Protocol::Tls,
                ep("2001:db8::5", 50000, None),
                ep("2001:db8::34", 443, Some(stale)),
                0,
                Detail::Tls(Box::new(TlsInfo {
                    sni: "api.stripe.com".into(),
                    alpn: vec!["h2".into(), "http/1.1".into()],
                    client_version: "TLS 1.3".into(),
                    server_version: "TLS 1.3".into(),
                    server_alpn: "h2".into(),
                })),
            ),
            5 => (
                Protocol::Redis,
                ep(
                    "10.1.0.7",
                    40003,
                    Some(pod("shop", "checkout-1", "checkout")),
                ),
                ep("10.1.0.12", 6379, Some(pod("shop", "redis-0", "redis"))),
                0,
                Detail::App(Box::new(
                    AppInfo::default()
                        .str("redis_type", if i % 2 == 0 { "GET" } else { "SET" })
                        .str("redis_command", "GET session:abc")
                        .str(
                            "redis_key",
                            if i % 4 == 1 { "cache:1" } else { "session:abc" },
                        ),
                )),
            ),
            6 => (
                Protocol::Kafka,
                ep(
                    "10.1.0.13",
                    40004,
                    Some(named(IdentityKind::Node, "worker-2")),
                ),
                ep("10.1.0.14", 9092, Some(pod("data", "kafka-0", "kafka"))),
                0,
                Detail::App(Box::new(
                    AppInfo::default()
                        .int("kafka_api_key", 3)
                        .str("kafka_api_key_name", "Metadata")
                        .bool("kafka_request", true)
                        .int("kafka_api_version", 12),
                )),
            ),
            7 => (
                Protocol::Postgresql,
                ep(
                    "10.1.0.7",
                    40005,
                    Some(pod("shop", "checkout-1", "checkout")),
                ),
                ep(
                    "10.1.0.15",
                    5432,
                    Some(named(IdentityKind::Zone, "corp-db")),
                ),
                0,
                Detail::App(Box::new(
                    AppInfo::default()
                        .str("postgresql_query", "SELECT 'x' FROM t")
                        .bool("postgresql_success", i % 2 == 0),
                )),
            ),
            8 => (
                Protocol::Mysql,
                ep("10.1.0.7", 40006, None),
                ep(
                    "10.1.0.16",
                    3306,
                    Some(named(IdentityKind::Hint, "db.shop")),
                ),
                0,
                Detail::App(Box::new(AppInfo::default().str("mysql_query", "SELECT 1"))),
            ),
            9 => (
                Protocol::Mongodb,
                ep("10.1.0.7", 40007, None),
                ep("10.1.0.17", 27017, None),
                0,
                Detail::App(Box::new(AppInfo::default().str("mongodb_command", "find"))),
            ),
            10 => (
                Protocol::Amqp,
                ep("10.1.0.7", 40008, None),
                ep("10.1.0.18", 5672, None),
                0,
                Detail::App(Box::new(
                    AppInfo::default().str("amqp_method", "basic.publish"),
                )),
            ),
            11 => (
                Protocol::Ws,
                ep("10.1.0.5", 40009, front()),
                ep("10.1.0.19", 8080, None),
                0,
                Detail::App(Box::new(AppInfo::default().str("ws_opcode", "text"))),
            ),
            12 => (
                Protocol::Tcp,
                ep("10.9.9.9", 1234, None),
                ep(
                    "10.9.9.8",
                    6380,
                    Some(named(IdentityKind::Dns, "db.corp.internal")),
                ),
                0,
                Detail::Conn(Box::new(ConnInfo {
                    client_packets: 3,
                    server_packets: 1,
                    state: "closed",
                    error_type: if i % 2 == 0 { "reset" } else { "" },
                })),
            ),
            13 => (
                Protocol::Udp,
                ep("10.9.9.9", 1235, None),
                ep("10.9.9.7", 9999, None),
                0,
                Detail::Conn(Box::new(ConnInfo {
                    client_packets: 2,
                    server_packets: 2,
                    state: "open",
                    error_type: "",
                })),
            ),
            _ => (
                Protocol::Http,
                ep(
                    "10.1.0.20",
                    40010,
                    Some(pod("production", "api-1", "checkout")),
                ),
                ep("10.1.0.9", 80, Some(pod("shop", "carts-5f4", "carts"))),
                500,
                Detail::None,
            ),
        };
        let error = status >= 500 || (p == Protocol::Dns && status != 0) || k == 12 && i % 2 == 0;
        out.push(Entry {
            id: i + 1,
            stream: 100 + i / 3,
            index: (i % 3) as u32,
            // 1 min 13.7 s apart: three hours, minutes not aligned.
            timestamp: Timestamp(base + i as i64 * 73_700_000_000),
            elapsed_time: [0, 850, 1_200, 6_000_000, 42][(i % 5) as usize],
            protocol: p,
            transport: if matches!(p, Protocol::Dns | Protocol::Udp) {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            src,
            dst,
            request_size: 100 + i,
            response_size: if i % 7 == 0 { 0 } else { 1000 + i },
            has_response: i % 7 != 0,
            status_code: status,
            error,
            node_name: ["worker-1", "worker-2", ""][(i % 3) as usize].into(),
            seen_by: if i % 4 == 0 {
                vec!["worker-3".into()]
            } else {
                Vec::new()
            },
            client_isn: (i % 2 == 0).then_some(i as u32 * 7919),
            detail,
        });
    }
    out
}

/// Entries of the shared captures that exist (`WIREMAP_PCAPS` or `../shared/pcaps`).
pub fn capture_entries(names: &[&str]) -> Vec<(String, Vec<Entry>)> {
    let dir = std::env::var("WIREMAP_PCAPS")
        .unwrap_or_else(|_| format!("{}/../../../shared/pcaps", env!("CARGO_MANIFEST_DIR")));
    let mut out = Vec::new();
    for n in names {
        let path = format!("{dir}/{n}");
        if !std::path::Path::new(&path).exists() {
            eprintln!("capture {path} is absent: skipped");
            continue;
        }
        let mut engine = wiremap_engine::Engine::new(wiremap_engine::EngineConfig::default());
        let mut source =
            wiremap_engine::open_files(std::slice::from_ref(&path)).expect("open capture");
        let mut entries = Vec::new();
        let _ = wiremap_engine::run_source(&mut engine, source.as_mut(), &mut |_| {}, &mut |e| {
            entries.push(e)
        });
        out.push((n.to_string(), entries));
    }
    out
}
