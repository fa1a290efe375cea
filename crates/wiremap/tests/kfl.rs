//! The reference examples of KFL select the right entries of real captures; expected counts
//! come from tshark's view of the same capture (run here, not hard-coded).

mod common;

use std::process::Command;

use common::*;

fn tshark_count(capture: &str, filter: &str) -> usize {
    tshark_fields(capture, filter, "frame.number").len()
}

/// tshark with its TCP sequence analysis off: with it on, tshark takes a real response that
/// follows a reused port's odd handshake for a retransmission and does not dissect it.
fn tshark_fields(capture: &str, filter: &str, field: &str) -> Vec<String> {
    let o = Command::new("tshark")
        .args([
            "-o",
            "tcp.analyze_sequence_numbers:FALSE",
            "-r",
            &pcap(capture),
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            field,
        ])
        .output()
        .expect("tshark is installed (scripts/setup)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn selected(capture: &str, filter: &str) -> Vec<serde_json::Value> {
    let o = wiremap(&["entries", &pcap(capture), "--filter", filter]);
    assert!(o.status.success(), "{filter}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn count(capture: &str, filter: &str) -> usize {
    selected(capture, filter).len()
}

const BROWSING: &str = "mixed_suricata_browsing-tls-dns-http.pcap";

#[test]
fn not_dns_is_everything_but_dns() {
    let all = count(BROWSING, "true");
    let dns = count(BROWSING, "dns");
    assert_eq!(
        dns,
        tshark_count(BROWSING, "dns.flags.response == 0"),
        "one DNS entry per query"
    );
    assert_eq!(count(BROWSING, "!dns"), all - dns);
    assert_eq!(count(BROWSING, "dns == false"), all - dns);
    assert!(selected(BROWSING, "!dns")
        .iter()
        .all(|e| e["protocol"] != "dns"));
}

#[test]
fn dns_question_membership() {
    let f = "dns_zeek_pcapng-multi-interface-docker.pcapng";
    let want = tshark_count(
        f,
        r#"dns.flags.response == 0 && dns.qry.name == "google.com""#,
    );
    assert!(want > 0);
    assert_eq!(count(f, r#"dns && "google.com" in dns_questions"#), want);
}

#[test]
fn http_client_errors_on_get() {
    let want = tshark_count(BROWSING, "http.response.code >= 400");
    assert!(want > 0);
    assert_eq!(
        count(BROWSING, r#"http && method == "GET" && status_code >= 400"#),
        want
    );
}

#[test]
fn slow_requests() {
    let f = "http1_zeek_docker-api-upgrade.pcap";
    let want = tshark_count(f, "http.time > 5");
    assert!(want > 0);
    assert_eq!(count(f, "http && elapsed_time > 5000000"), want);
}

#[test]
fn url_regex() {
    let f = "overlay_deepflow_erspan-dc-mirror.pcap";
    let want = tshark_count(f, r#"http.request.uri matches ".*/api/v[0-9]+/.*""#);
    assert!(want > 0);
    assert_eq!(
        count(f, r#"http && url.matches(".*/api/v[0-9]+/.*")"#),
        want
    );
}

#[test]
fn server_errors_or_broken_connections() {
    let f = "mixed_ndpi_1kxun.pcap";
    let fivexx = tshark_count(f, "http.response.code >= 500");
    assert!(fivexx > 0);
    assert_eq!(count(f, "http && status_code >= 500"), fivexx);
    let broken = count(f, r#"tcp && tcp_error_type != """#);
    assert_eq!(
        count(
            f,
            r#"http && status_code >= 500 || (tcp && tcp_error_type != "")"#
        ),
        fivexx + broken
    );
}

#[test]
fn failed_posts_in_kfl_v1_words() {
    let f = "mixed_ndpi_1kxun.pcap";
    // Requests answered with >= 400, keeping those whose request was a POST.
    let requests: Vec<String> = tshark_fields(f, "http.response.code >= 400", "http.request_in");
    let posts = requests
        .iter()
        .filter(|n| {
            tshark_count(
                f,
                &format!("frame.number == {n} && http.request.method == \"POST\""),
            ) == 1
        })
        .count();
    assert_eq!(
        count(
            f,
            r#"http and method == "POST" and not (status_code < 400)"#
        ),
        posts
    );
    assert_eq!(
        count(f, r#"http && method == "POST" && !(status_code < 400)"#),
        posts,
        "words and symbols mean the same"
    );
}

#[test]
fn time_windows() {
    let f = "http1_zeek_bro.org-browsing.pcap";
    let times = tshark_fields(f, "http.request", "frame.time_epoch");
    let t: Vec<f64> = times.iter().map(|s| s.parse().expect("epoch")).collect();
    let (lo, hi) = (t[0] + 1.0, t[0] + 8.0);
    let want = t.iter().filter(|x| **x >= lo && **x <= hi).count();
    assert!(want > 0 && want < t.len());
    let iso = |x: f64| {
        wiremap_model::Timestamp::from_parts(x.floor() as i64, ((x.fract()) * 1e9).round() as u32)
            .to_string()
    };
    let filter = format!(
        r#"http && timestamp >= timestamp("{}") && timestamp <= timestamp("{}")"#,
        iso(lo),
        iso(hi)
    );
    assert_eq!(count(f, &filter), want);
    // Captures from years ago have nothing in the last five minutes.
    assert_eq!(count(f, r#"timestamp > now() - duration("5m")"#), 0);
}

#[test]
fn names_and_dns_identity() {
    let want = tshark_count(
        BROWSING,
        r#"tls.handshake.type == 1 && (tls.handshake.extensions_server_name == "www.bing.com" || tls.handshake.extensions_server_name == "mamzon.ru")"#,
    );
    assert!(want > 0);
    assert_eq!(
        count(
            BROWSING,
            r#"tls && (dst.name == "www.bing.com" || dst.name == "mamzon.ru")"#
        ),
        want
    );
    // Every entry to an address that a DNS answer named, and only those.
    let answered: std::collections::BTreeSet<String> =
        tshark_fields(BROWSING, "dns.flags.response == 1", "dns.a")
            .iter()
            .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
    let named = selected(
        BROWSING,
        r#"dst.dns != "" && !dst.dns.endsWith(".internal")"#,
    );
    assert!(!named.is_empty());
    assert!(named
        .iter()
        .all(|e| answered.contains(e["dst"]["ip"].as_str().unwrap_or(""))));
    let all = selected(BROWSING, "true");
    let to_answered = all
        .iter()
        .filter(|e| answered.contains(e["dst"]["ip"].as_str().unwrap_or("")))
        .count();
    assert_eq!(named.len(), to_answered);
}

#[test]
fn cluster_examples_select_nothing_outside_a_cluster_and_everything_when_negated() {
    // No Kubernetes identity is known for these captures: tshark sees no pods either.
    let all = count(BROWSING, "true");
    for f in [
        r#"dst.name == "carts" || dst.name == "catalogue" || src.name == "front-end""#,
        r#"node_name == "worker-1""#,
        r#"dst.pod.namespace == "production""#,
        "grpc && grpc_status != 0",
        r#"map_get(local_labels, "app", "") == "checkout""#,
        r#""production" in namespaces"#,
        "src.service.namespace != dst.service.namespace",
        r#"redis && redis_type == "GET" && redis_key.startsWith("session:")"#,
    ] {
        assert_eq!(count(BROWSING, f), 0, "{f}");
    }
    assert_eq!(
        count(BROWSING, r#"!(src.pod.namespace == "kube-system")"#),
        all
    );
}

#[test]
fn filter_scopes_the_map() {
    let m = map_json(&[&pcap(BROWSING), "--level", "ip", "--filter", "dns"]);
    let edges = m["edges"].as_array().expect("edges");
    assert!(!edges.is_empty());
    assert!(edges.iter().all(|e| e["protocol"] == "dns"));
    let requests: u64 = edges
        .iter()
        .map(|e| e["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        requests as usize,
        tshark_count(BROWSING, "dns.flags.response == 0")
    );
}

#[test]
fn invalid_filters_exit_2_with_a_caret() {
    for (f, hint) in [
        ("status_code = 200", "`=` is not an operator"),
        ("method == ", "expected an expression after `==`"),
        ("stauts_code == 200", "did you mean `status_code`"),
        ("path > 3", "cannot compare string with int"),
    ] {
        let o = wiremap(&["kfl", "check", f]);
        assert_eq!(o.status.code(), Some(2), "{f}");
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "message, source, caret: {err}");
        assert!(
            lines[0].starts_with("wiremap: error: invalid filter at 1:") && lines[0].contains(hint),
            "{err}"
        );
        assert_eq!(lines[1], f);
        assert!(
            lines[2].trim_start().starts_with('^') && lines[2].trim().chars().all(|c| c == '^'),
            "{err}"
        );
        let o = wiremap(&["map", &pcap(BROWSING), "--filter", f]);
        assert_eq!(o.status.code(), Some(2));
        assert!(o.stdout.is_empty());
    }
    let o = wiremap(&[
        "kfl",
        "check",
        "http and method == \"POST\" and not (status_code < 400)",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        r#"http && method == "POST" && !(status_code < 400)"#
    );
}
