//! What counts as an error, per protocol, on real captures: the entries' `error` flag and the
//! map's `errors` and `client_errors` against each protocol's own error indication as tshark
//! reads it from the same capture (run here, not hard-coded).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// tshark's values of `field` in the frames matching `filter` (each value once, also when a
/// frame holds several), with the capture's decode-as from its ground-truth file.
fn tshark_values(capture: &str, filter: &str, field: &str) -> Vec<String> {
    let truth = std::fs::read_to_string(pcaps().join(format!("{capture}.truth.txt")))
        .expect("ground truth beside the capture");
    let decode = truth
        .lines()
        .find_map(|l| l.strip_prefix("decode-as used: "))
        .filter(|d| *d != "(none)");
    let mut args = vec![
        "-o".to_string(),
        "tcp.analyze_sequence_numbers:FALSE".into(),
        "-r".into(),
        pcap(capture),
    ];
    if let Some(d) = decode {
        args.extend(["-d".into(), d.to_string()]);
    }
    // Values of one frame joined by a character no header or code holds.
    args.extend(
        [
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "aggregator=|",
            "-e",
            field,
        ]
        .map(String::from),
    );
    let o = Command::new("tshark")
        .args(&args)
        .output()
        .expect("tshark is installed (scripts/setup)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .flat_map(|l| l.split('|').map(str::to_string).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

/// gRPC statuses: the value of every `grpc-status` header (names and values come as two
/// lists of one frame's headers, in order).
fn grpc_statuses(capture: &str) -> Vec<i64> {
    let names = tshark_values(
        capture,
        "http2.header.name == \"grpc-status\"",
        "frame.number",
    );
    let mut out = Vec::new();
    for frame in names {
        let f = format!("frame.number == {frame}");
        let n = tshark_values(capture, &f, "http2.header.name");
        let v = tshark_values(capture, &f, "http2.header.value");
        for (name, value) in n.iter().zip(&v) {
            if name == "grpc-status" {
                out.push(value.parse().expect("grpc-status is a number"));
            }
        }
    }
    out
}

/// How tshark shows a protocol's failed exchanges.
#[derive(Debug, Clone, Copy)]
enum Oracle {
    /// HTTP/1 and HTTP/2 statuses in `lo..=hi`.
    Http(i64, i64),
    /// Non-zero DNS rcodes in responses.
    DnsRcode,
    /// Non-zero `grpc-status` trailers.
    Grpc,
    /// Each value of `field` in frames matching the filter is one failure.
    Field(&'static str, &'static str),
}

fn failures(capture: &str, o: Oracle) -> usize {
    let ints = |filter: &str, field: &str| -> Vec<i64> {
        tshark_values(capture, filter, field)
            .iter()
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    match o {
        Oracle::Http(lo, hi) => {
            // HTTP/1: answers to a request tshark saw (an answer to bytes that were no request
            // is no exchange) whose request line has a target: wiremap takes a request line
            // as a known method and a space, so a bare `OPTIONS` line is no request to it.
            let bare = tshark_values(
                capture,
                "http.request && http.request.uri == \"\"",
                "frame.number",
            );
            let mut f = format!(
                "http.response.code >= {lo} && http.response.code <= {hi} && http.request_in"
            );
            if !bare.is_empty() {
                f += &format!(" && !(http.request_in in {{{}}})", bare.join(" "));
            }
            let h2 = ints("http2.headers.status", "http2.headers.status")
                .into_iter()
                .filter(|s| (lo..=hi).contains(s))
                .count();
            tshark_values(capture, &f, "http.response.code").len() + h2
        }
        Oracle::DnsRcode => ints("dns.flags.response == 1", "dns.flags.rcode")
            .into_iter()
            .filter(|r| *r != 0)
            .count(),
        Oracle::Grpc => grpc_statuses(capture)
            .into_iter()
            .filter(|s| *s != 0)
            .count(),
        Oracle::Field(filter, field) => tshark_values(capture, filter, field).len(),
    }
}

/// (capture, wiremap protocol, what tshark counts as its failures).
const SERVER_ERRORS: &[(&str, &str, Oracle)] = &[
    ("mixed_ndpi_1kxun.pcap", "http", Oracle::Http(500, 599)),
    (
        "http1_zeek_methods-chunked.pcap",
        "http",
        Oracle::Http(500, 599),
    ),
    (
        "h2c_suricata_upgrade-range.pcap",
        "http",
        Oracle::Http(500, 599),
    ),
    (
        "h2c_arkime_nghttp2-prior-knowledge.pcap",
        "http",
        Oracle::Http(500, 599),
    ),
    ("grpc_deepflow_service-name.pcap", "grpc", Oracle::Grpc),
    ("h2c_grpcbook_unary.pcapng", "grpc", Oracle::Grpc),
    ("h2c_grpcbook_bidi-streaming.pcapng", "grpc", Oracle::Grpc),
    (
        "dns-k8s_deepflow_search-domain-nxdomain.pcap",
        "dns",
        Oracle::DnsRcode,
    ),
    (
        "dns_suricata_tcp-multirequest.pcap",
        "dns",
        Oracle::DnsRcode,
    ),
    ("dns_sanders_lab-cname.pcapng", "dns", Oracle::DnsRcode),
    ("dns_suricata_bug-1158-many-a.pcap", "dns", Oracle::DnsRcode),
    (
        "redis_beats_session.pcap",
        "redis",
        Oracle::Field("resp.error", "resp.error"),
    ),
    (
        "redis_zeek_django-cloud.pcapng",
        "redis",
        Oracle::Field("resp.error", "resp.error"),
    ),
    (
        "pgsql_suricata_simple-query-rollback.pcap",
        "postgresql",
        Oracle::Field("pgsql.type == \"Error\"", "pgsql.code"),
    ),
    (
        "pgsql_zeek_greenhouse-app-compose.pcap",
        "postgresql",
        Oracle::Field("pgsql.type == \"Error\"", "pgsql.code"),
    ),
    (
        "mysql_deepflow_171-mysql-20130.pcap",
        "mysql",
        Oracle::Field("mysql.error_code", "mysql.error_code"),
    ),
    // Not mysql_zeek_auth.pcap: its ERR packets refuse logins, and a login is not an entry
    // (requests count COM_* commands, as tshark's do).
    (
        "amqp_deepflow_error.pcap",
        "amqp",
        // Connection.Close and Channel.Close; a Basic.Return (60) answers a publish, which
        // expects no answer and is an entry of its own already.
        Oracle::Field(
            "amqp.method.arguments.reply_code >= 300 && amqp.method.class != 60",
            "amqp.method.arguments.reply_code",
        ),
    ),
];

/// (capture, HTTP 4xx answers as tshark counts them).
const CLIENT_ERRORS: &[&str] = &[
    "http1_zeek_methods-chunked.pcap",
    "http1_beats_minitwit-sll-chunked.pcap",
    "mixed_ndpi_1kxun.pcap",
    "mixed_suricata_browsing-tls-dns-http.pcap",
    "mixed_ppa_dns-http-browsing.cap",
    "h2c_suricata_upgrade-range.pcap",
];

fn entries(capture: &str) -> Vec<serde_json::Value> {
    let o = wiremap(&["entries", &pcap(capture)]);
    assert!(o.status.success(), "{capture}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// Per protocol: (errors, client errors) summed over the map's edges.
fn map_sums(capture: &str) -> BTreeMap<String, (u64, u64)> {
    let m = map_json(&[&pcap(capture), "--level", "ip"]);
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in m["edges"].as_array().expect("edges") {
        let s = out
            .entry(e["protocol"].as_str().expect("protocol").to_string())
            .or_default();
        s.0 += e["errors"].as_u64().expect("errors");
        s.1 += e["client_errors"].as_u64().expect("client_errors");
    }
    out
}

fn is(e: &serde_json::Value, protocol: &str) -> bool {
    e["protocol"] == protocol || (protocol == "http" && e["protocol"] == "gql")
}

#[test]
fn the_error_flag_is_each_protocols_own_failure() {
    let mut seen_failures = BTreeMap::new();
    for &(capture, protocol, oracle) in SERVER_ERRORS {
        let want = failures(capture, oracle);
        let es = entries(capture);
        assert!(
            es.iter().any(|e| is(e, protocol)),
            "{capture}: no {protocol} entries"
        );
        let got = es
            .iter()
            .filter(|e| is(e, protocol) && e["error"] == true)
            .count();
        assert_eq!(
            got, want,
            "{capture}: {protocol} errors (tshark: {oracle:?})"
        );
        // No other entry of the protocol is an error, and the map sums the same.
        let sums = map_sums(capture);
        let mapped = sums.get(protocol).map_or(0, |s| s.0)
            + if protocol == "http" {
                sums.get("gql").map_or(0, |s| s.0)
            } else {
                0
            };
        assert_eq!(mapped as usize, want, "{capture}: map errors of {protocol}");
        *seen_failures.entry(protocol).or_insert(0) += want;
    }
    // The captures do hold failures of each protocol that has them (gRPC's are all OK; the
    // shared MySQL captures' only ERR packets refuse logins, which are not entries).
    for p in ["http", "dns", "redis", "postgresql", "amqp"] {
        assert!(seen_failures[p] > 0, "no {p} failure in the table");
    }
}

#[test]
fn http_4xx_count_apart_from_errors() {
    let mut total = 0;
    for &capture in CLIENT_ERRORS {
        let want = failures(capture, Oracle::Http(400, 499));
        let es = entries(capture);
        let got: Vec<&serde_json::Value> = es
            .iter()
            .filter(|e| is(e, "http"))
            .filter(|e| (400..500).contains(&e["status_code"].as_i64().expect("status")))
            .collect();
        assert_eq!(got.len(), want, "{capture}: 4xx entries");
        assert!(
            got.iter().all(|e| e["error"] == false),
            "{capture}: a 4xx is no error"
        );
        let sums = map_sums(capture);
        let mapped: u64 = ["http", "gql"]
            .iter()
            .map(|p| sums.get(*p).map_or(0, |s| s.1))
            .sum();
        assert_eq!(mapped as usize, want, "{capture}: map client_errors");
        let others: u64 = sums
            .iter()
            .filter(|(p, _)| !matches!(p.as_str(), "http" | "gql"))
            .map(|(_, s)| s.1)
            .sum();
        assert_eq!(others, 0, "{capture}: client_errors outside HTTP");
        total += want;
    }
    assert!(total > 0);
}

/// An unanswered request is "no response": in the entry JSON, the table and the map, never
/// an answer that took 0 µs.
#[test]
fn unanswered_requests_say_no_response() {
    // The last of a thousand keep-alive requests lost its response (MANIFEST).
    let capture = "http1_zeek_1000-requests-keepalive.pcap";
    let es = entries(capture);
    let unanswered: Vec<&serde_json::Value> =
        es.iter().filter(|e| e["no_response"] == true).collect();
    let answered = failures(capture, Oracle::Http(100, 999));
    assert_eq!(es.len() - unanswered.len(), answered);
    assert!(!unanswered.is_empty());
    let o = wiremap(&["entries", &pcap(capture), "--format", "table"]);
    let table = stdout(&o);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(" no response "))
            .count(),
        unanswered.len(),
        "{table}"
    );
    let m = map_json(&[&pcap(capture), "--level", "ip"]);
    let e = &m["edges"][0];
    assert_eq!(
        e["requests"].as_u64().expect("requests") - e["responses"].as_u64().expect("responses"),
        unanswered.len() as u64
    );
    let o = wiremap(&["map", &pcap(capture), "--format", "dot"]);
    assert!(stdout(&o).contains(&format!("{} no response", unanswered.len())));
}
