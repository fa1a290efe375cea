//! Snapshots of the entries dissectors produce from real captures (review changes with
//! `cargo insta review`).

mod common;

use common::*;

fn entries(capture: &str) -> Vec<serde_json::Value> {
    flows(capture)
        .iter()
        .flat_map(|f| replay(&f.info, &whole(f)))
        .map(|e| serde_json::to_value(&e).expect("serialises"))
        .collect()
}

#[test]
fn http_pipelined() {
    insta::assert_json_snapshot!(entries("http1_zeek_pipelined-requests.pcap"));
}

#[test]
fn http_upgrade_to_docker_hijack() {
    insta::assert_json_snapshot!(entries("http1_zeek_docker-api-upgrade.pcap"));
}

#[test]
fn dns_cname_chains() {
    insta::assert_json_snapshot!(entries("dns_sanders_lab-cname.pcapng"));
}

#[test]
fn dns_over_tcp() {
    insta::assert_json_snapshot!(entries("dns-k8s_deepflow_istio-demo-tcp.pcap"));
}

#[test]
fn tls13_handshake() {
    insta::assert_json_snapshot!(entries("tls_beats_tls13.pcap"));
}

#[test]
fn quic_initial() {
    let quic: Vec<serde_json::Value> = entries("tls_ndpi_sites-59-sni.pcapng")
        .into_iter()
        .filter(|e| {
            e["protocol"] == "tls"
                && e["tls_alpn"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p == "h3"))
        })
        .collect();
    insta::assert_json_snapshot!(quic);
}

#[test]
fn redis_session() {
    insta::assert_json_snapshot!(entries("redis_beats_session.pcap"));
}

#[test]
fn kafka_requests() {
    insta::assert_json_snapshot!(entries("kafka_gosniffer_kafka.pcap"));
}

#[test]
fn mongodb_session() {
    insta::assert_json_snapshot!(entries("mongo_beats_3.0-session.pcap"));
}

#[test]
fn postgresql_extended_query() {
    insta::assert_json_snapshot!(entries("pgsql_beats_extended-query.pcap"));
}

#[test]
fn mysql_auth_and_query() {
    insta::assert_json_snapshot!(entries("mysql_zeek_auth.pcap"));
}

#[test]
fn amqp_emit_receive() {
    insta::assert_json_snapshot!(entries("amqp_beats_emit-receive.pcap"));
}

#[test]
fn grpc_server_streaming() {
    insta::assert_json_snapshot!(entries("h2c_grpcbook_server-streaming.pcapng"));
}

#[test]
fn websocket_frames() {
    insta::assert_json_snapshot!(entries("ws_zeek_websocket.pcap"));
}
