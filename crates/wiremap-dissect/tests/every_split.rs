//! Dissectors give the same entries however the bytes of real flows are cut, and survive
//! every prefix of them.

mod common;

use common::*;
use wiremap_model::{Detail, Protocol};

fn protocols(capture: &str) -> Vec<(Protocol, usize)> {
    let mut out = Vec::new();
    for f in flows(capture) {
        let es = every_split_and_prefix(&f);
        for e in &es {
            match out.iter_mut().find(|(p, _)| *p == e.protocol) {
                Some((_, n)) => *n += 1,
                None => out.push((e.protocol, 1)),
            }
        }
    }
    out
}

#[test]
fn http_chunked_keepalive() {
    let got = protocols("http1_beats_minitwit-sll-chunked.pcap");
    assert!(got.contains(&(Protocol::Http, 6)), "{got:?}");
}

#[test]
fn http_pipelined() {
    assert_eq!(
        protocols("http1_zeek_pipelined-requests.pcap"),
        vec![(Protocol::Http, 5)]
    );
}

#[test]
fn http_upgrade_handoff() {
    let got = protocols("ws_suricata_basic.pcap");
    assert!(
        got.iter().any(|(p, n)| *p == Protocol::Http && *n >= 1),
        "{got:?}"
    );
}

#[test]
fn dns_over_tcp_several_per_segment() {
    let fl = flows("dns_suricata_tcp-multirequest.pcap");
    let mut n = 0;
    for f in &fl {
        for e in every_split_and_prefix(f) {
            assert_eq!(e.protocol, Protocol::Dns);
            assert!(matches!(e.detail, Detail::Dns(_)));
            n += 1;
        }
    }
    assert!(n >= 10, "{n} DNS entries");
}

#[test]
fn dns_over_udp() {
    let got = protocols("dns_sanders_lab-cname.pcapng");
    assert_eq!(got, vec![(Protocol::Dns, 11)]);
}

#[test]
fn tls_client_and_server_hello() {
    for f in flows("tls_beats_tls13.pcap") {
        for e in every_split_and_prefix(&f) {
            assert_eq!(e.protocol, Protocol::Tls);
            let Detail::Tls(t) = &e.detail else {
                panic!("tls detail")
            };
            assert!(!t.sni.is_empty());
            assert_eq!(t.client_version, "TLS 1.3");
            assert!(e.has_response);
        }
    }
}

fn protocol_entries(capture: &str, want: Protocol) -> usize {
    let mut n = 0;
    for f in flows(capture) {
        for e in every_split_and_prefix(&f) {
            if e.protocol == want {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn redis_pipelined_and_resp3() {
    assert_eq!(
        protocol_entries("redis_beats_session.pcap", Protocol::Redis),
        11
    );
    assert!(protocol_entries("redis_zeek_pubsub-resp3.pcap", Protocol::Redis) >= 3);
}

#[test]
fn kafka_correlation_ids() {
    assert!(protocol_entries("kafka_gosniffer_kafka.pcap", Protocol::Kafka) >= 2);
}

#[test]
fn mongodb_op_msg_and_legacy() {
    assert!(protocol_entries("mongo_beats_3.0-session.pcap", Protocol::Mongodb) >= 5);
}

#[test]
fn postgresql_simple_and_extended() {
    assert!(protocol_entries("pgsql_beats_extended-query.pcap", Protocol::Postgresql) >= 1);
    assert!(
        protocol_entries(
            "pgsql_suricata_simple-query-rollback.pcap",
            Protocol::Postgresql
        ) >= 5
    );
}

#[test]
fn mysql_commands() {
    assert!(protocol_entries("mysql_zeek_auth.pcap", Protocol::Mysql) >= 1);
}

#[test]
fn amqp_methods() {
    assert!(protocol_entries("amqp_beats_emit-receive.pcap", Protocol::Amqp) >= 5);
}

#[test]
fn http2_and_grpc_streams() {
    assert!(protocol_entries("h2c_grpcbook_server-streaming.pcapng", Protocol::Grpc) >= 1);
    assert!(protocol_entries("h2c_ndpi_prior-knowledge.pcapng", Protocol::Http) >= 1);
}

#[test]
fn websocket_after_upgrade() {
    assert!(protocol_entries("ws_zeek_websocket.pcap", Protocol::Ws) >= 1);
}

#[test]
fn connect_tunnel_hands_over_to_tls() {
    // A proxy conversation: CONNECT, 200, then the real ClientHello/ServerHello of a capture.
    let tls = flows("tls_beats_tls13.pcap")
        .into_iter()
        .next()
        .expect("a TLS flow");
    let client_dir = tls.runs[0].0;
    let mut runs: Vec<(wiremap_model::Direction, wiremap_model::Timestamp, Vec<u8>)> = vec![
        (
            client_dir,
            tls.runs[0].1,
            b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n".to_vec(),
        ),
        (
            client_dir.flip(),
            tls.runs[0].1,
            b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
        ),
    ];
    runs.extend(tls.runs.iter().take(4).cloned());
    let f = common::Flow {
        info: tls.info.clone(),
        runs,
    };
    let es = every_split_and_prefix(&f);
    let http: Vec<_> = es.iter().filter(|e| e.protocol == Protocol::Http).collect();
    assert_eq!(http.len(), 1);
    let Detail::Http(h) = &http[0].detail else {
        panic!("http detail")
    };
    assert_eq!(
        (h.method.as_str(), h.upgrade.as_str(), http[0].status_code),
        ("CONNECT", "tunnel", 200)
    );
    let tls_entries: Vec<_> = es.iter().filter(|e| e.protocol == Protocol::Tls).collect();
    assert_eq!(tls_entries.len(), 1, "{es:?}");
    let Detail::Tls(t) = &tls_entries[0].detail else {
        panic!("tls detail")
    };
    assert!(!t.sni.is_empty());
}
