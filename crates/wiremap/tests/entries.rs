//! `wiremap entries`: one JSON object per exchange, named as the KFL variables.

mod common;

use common::*;

fn entries(capture: &str) -> Vec<serde_json::Value> {
    let o = wiremap(&["entries", &pcap(capture)]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn http_entries_carry_kfl_fields() {
    let es = entries("http1_zeek_pipelined-requests.pcap");
    assert_eq!(es.len(), 5);
    for (i, e) in es.iter().enumerate() {
        assert_eq!(e["protocol"], "http");
        assert_eq!(e["http"], true);
        assert_eq!(e["method"], "GET");
        assert_eq!(e["status_code"], 200);
        assert_eq!(e["host"], "www.mozilla.org");
        assert_eq!(e["src"]["ip"], "192.168.1.104");
        assert_eq!(e["dst"]["ip"], "63.245.209.11");
        assert_eq!(e["dst"]["port"], 80);
        assert_eq!(e["index"], i as u64);
        assert!(e["elapsed_time"].as_i64().expect("latency") > 0);
        assert_eq!(e["request"]["headers"]["host"], "www.mozilla.org");
        assert!(e["response"]["headers"]["content-type"].is_string());
    }
    // Pipelined: the five requests go out before the first response comes back.
    let ts: Vec<&str> = es
        .iter()
        .map(|e| e["timestamp"].as_str().expect("ts"))
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn secrets_are_redacted() {
    let es = entries("http1_sanders_espn-browsing.pcapng");
    let with_cookie: Vec<&serde_json::Value> = es
        .iter()
        .filter(|e| e["request"]["headers"]["cookie"].is_string())
        .collect();
    assert!(!with_cookie.is_empty(), "the capture sends cookies");
    for e in with_cookie {
        assert_eq!(e["request"]["headers"]["cookie"], "[REDACTED]");
    }
    assert!(es
        .iter()
        .any(|e| e["response"]["headers"]["set-cookie"] == "[REDACTED]"));
    let raw = stdout(&wiremap(&[
        "entries",
        &pcap("http1_sanders_espn-browsing.pcapng"),
    ]));
    assert!(
        !raw.contains("61984CBC-E716"),
        "cookie values never leave the dissector"
    );
}

#[test]
fn dns_entries_pair_queries_with_answers() {
    let es = entries("dns_sanders_lab-cname.pcapng");
    let dns: Vec<&serde_json::Value> = es.iter().filter(|e| e["protocol"] == "dns").collect();
    assert_eq!(dns.len(), 11, "22 messages = 11 exchanges");
    for e in &dns {
        assert_eq!(e["dns"], true);
        assert_eq!(e["dns_request"], true);
        assert_eq!(e["dns_response"], true);
        assert!(e["dns_questions"].as_array().expect("q").len() == 1);
        assert!(e["dns_total_size"].as_u64().expect("size") > 0);
    }
    assert!(
        dns.iter()
            .any(|e| e["dns_answers"].as_array().expect("a").len() > 1),
        "CNAME chains listed"
    );
}

#[test]
fn tls_entries_carry_sni_and_alpn() {
    let es = entries("tls_ndpi_sites-59-sni.pcapng");
    let tls: Vec<&serde_json::Value> = es.iter().filter(|e| e["protocol"] == "tls").collect();
    let snis: std::collections::BTreeSet<&str> = tls
        .iter()
        .filter_map(|e| e["tls_sni"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(snis.len() >= 55, "{} SNIs", snis.len());
    assert!(
        snis.contains("edge-mqtt.facebook.com") && snis.contains("www.linkedin.com"),
        "{snis:?}"
    );
    // QUIC Initials are decrypted: their hellos are TLS entries over UDP with ALPN h3.
    assert!(tls.iter().any(|e| e["tls_alpn"]
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p == "h3"))));
}

#[test]
fn table_format_is_readable() {
    let o = wiremap(&[
        "entries",
        &pcap("http1_zeek_pipelined-requests.pcap"),
        "--format",
        "table",
    ]);
    let t = stdout(&o);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("TIME"));
    assert!(lines[1].contains("http") && lines[1].contains("GET") && lines[1].contains(" 200"));
}
