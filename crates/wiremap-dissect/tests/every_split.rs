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
