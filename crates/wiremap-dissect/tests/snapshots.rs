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
