//! The language on sample entries: every example of the reference, errors, canonical text,
//! SQL and pruning.

mod common;

use common::*;
use wiremap_kfl::{ErrorKind, Filter};
use wiremap_model::Protocol;

fn ids(src: &str) -> Vec<u64> {
    let f = Filter::compile(src, ts("2026-03-15T01:02:00Z"))
        .unwrap_or_else(|e| panic!("{src}: {e}\n{}", e.caret()));
    sample()
        .iter()
        .filter(|e| f.matches(e))
        .map(|e| e.id)
        .collect()
}

#[test]
fn reference_examples_select_the_right_entries() {
    let cases: &[(&str, &[u64])] = &[
        ("!dns", &[1, 2, 4, 5, 6]),
        ("dns == false", &[1, 2, 4, 5, 6]),
        (
            r#"dst.name == "carts-5f4" || dst.name == "catalogue-1" || src.name == "front-end-7d9""#,
            &[1, 2, 6],
        ),
        (r#"node_name == "worker-1""#, &[2, 4, 6]),
        (r#"http && method == "GET" && status_code >= 400"#, &[6]),
        (r#"dst.pod.namespace == "production""#, &[2]),
        (r#"dns && "google.com" in dns_questions"#, &[3]),
        ("grpc && grpc_status != 0", &[]),
        ("http && elapsed_time > 5000000", &[2]),
        (r#"timestamp > now() - duration("5m")"#, &[5]),
        (
            r#"timestamp >= timestamp("2026-03-14T22:00:00Z") && timestamp <= timestamp("2026-03-14T23:00:00Z")"#,
            &[1, 2, 4, 6],
        ),
        (r#"!(src.pod.namespace == "kube-system")"#, &[1, 2, 4, 5, 6]),
        (r#"map_get(local_labels, "app", "") == "checkout""#, &[6]),
        (r#""production" in namespaces"#, &[2]),
        ("src.service.namespace != dst.service.namespace", &[]),
        (r#"dst.dns != "" && !dst.dns.endsWith(".internal")"#, &[4]),
        (r#"http && url.matches(".*/api/v[0-9]+/.*")"#, &[1, 6]),
        (
            r#"http && status_code >= 500 || (tcp && tcp_error_type != "")"#,
            &[2, 5],
        ),
        (
            r#"redis && redis_type == "GET" && redis_key.startsWith("session:")"#,
            &[],
        ),
        (
            r#"http and method == "POST" and not (status_code < 400)"#,
            &[2],
        ),
    ];
    for (src, want) in cases {
        assert_eq!(ids(src), want.to_vec(), "{src}");
    }
}

#[test]
fn more_of_cel() {
    let cases: &[(&str, &[u64])] = &[
        ("size(dns_questions) == 1", &[3]),
        (
            "dns_questions.size() > 0 ? dns_questions[0] == 'google.com' : false",
            &[3],
        ),
        ("tls_alpn.exists(p, p == 'h2')", &[4]),
        ("tls_alpn.all(p, p.startsWith('h'))", &[1, 2, 3, 4, 5, 6]),
        ("tls_alpn.exists_one(p, p.contains('http'))", &[4]),
        ("tls_alpn.filter(p, p.size() == 2) == ['h2']", &[4]),
        ("tls_alpn.map(p, p + '!') == ['h2!', 'http/1.1!']", &[4]),
        ("request.headers['x-request-id'] == 'abc'", &[1]),
        (
            "has(request.headers.x) || 'user-agent' in request.headers",
            &[1],
        ),
        ("query_string['id'] == '7'", &[1]),
        ("src.port % 2 == 1 && src.port > 39999", &[2]),
        (
            "src.ip == '10.1.0.5' && dst.ip.startsWith('10.1.')",
            &[1, 2],
        ),
        ("dst.ip in ['8.8.8.8', '10.9.9.8']", &[3, 5]),
        ("protocol in ['tls', 'tcp']", &[4, 5]),
        ("int(status_code / 100) == 5", &[2]),
        ("string(status_code) == '404'", &[6]),
        ("double(elapsed_time) / 1000.0 > 1.0", &[1, 2]),
        (
            "timestamp - duration('1h') > timestamp('2026-03-14T23:00:00Z')",
            &[5],
        ),
        (
            "duration('1h30m') > duration('90m') || duration('1.5h') == duration('90m')",
            &[1, 2, 3, 4, 5, 6],
        ),
        (
            "{'a': 1}['a'] == 1 && [1, 2, 3][2] == 3 && -status_code < 0",
            &[1, 2, 6],
        ),
        (
            "b'ab' + b'c' == b'abc' && 3u > 2u && 0x10 == 16 && 1e3 == 1000.0",
            &[1, 2, 3, 4, 5, 6],
        ),
        (
            "src.workload.name == 'front-end' && src.workload.kind == 'deployment'",
            &[1, 2],
        ),
        ("src.labels.app == 'coredns'", &[3]),
        ("node['name'] == 'worker-2' && node.name != ''", &[1, 3, 5]),
        (
            "conn_local_pkts == 3 && conn_remote_pkts == 1 && conn_state == 'closed'",
            &[5],
        ),
        (
            "tls_sni.lowerAscii() == 'api.stripe.com' && tls_summary == 'TLS 1.3 api.stripe.com'",
            &[4],
        ),
        ("has(dst.pod.name)", &[1, 2, 6]),
        (
            "r'\\d' == '\\\\d' && '\\x41\\u0042' == 'AB' && '''tri\"ple''' == 'tri\"ple'",
            &[1, 2, 3, 4, 5, 6],
        ),
        ("status_code == 200u || status_code == 404.0", &[1, 6]),
        ("http ? status_code >= 500 : tls", &[2, 4]),
        // An error on one side does not hide a definite result on the other.
        ("request.headers['nope'] == 'x' || dns", &[3]),
        ("dns && request.headers['nope'] == 'x'", &[]),
    ];
    for (src, want) in cases {
        assert_eq!(ids(src), want.to_vec(), "{src}");
    }
}

fn err(src: &str) -> wiremap_kfl::KflError {
    match Filter::compile(src, ts("2026-01-01T00:00:00Z")) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e,
    }
}

#[test]
fn invalid_filters_say_where_and_why() {
    let e = err("status_code = 200");
    assert_eq!((e.kind, e.line, e.column), (ErrorKind::Syntax, 1, 13));
    assert_eq!(e.caret(), "status_code = 200\n            ^");
    let e = err("method == ");
    assert!(
        e.message.contains("expected an expression after `==`"),
        "{e}"
    );
    let e = err("stauts_code == 200");
    assert_eq!(e.kind, ErrorKind::Unknown);
    assert!(e.message.contains("did you mean `status_code`"), "{e}");
    assert_eq!(e.caret(), "stauts_code == 200\n^^^^^^^^^^^");
    let e = err("path > 3");
    assert_eq!(e.kind, ErrorKind::Type);
    assert!(e.message.contains("cannot compare string with int"), "{e}");
    let e = err("http &&\n  src.pod.nmae == 'x'");
    assert_eq!((e.line, e.column), (2, 3));
    assert!(e.message.contains("did you mean `src.pod.name`"), "{e}");
    for (src, what) in [
        ("status_code == '200'", "cannot compare int with string"),
        ("dns_questions.contains('x')", "works on strings"),
        ("url.matches('(')", "bad regular expression"),
        ("timestamp > timestamp('yesterday')", "cannot convert"),
        ("duration('5 minutes') > duration('1m')", "cannot convert"),
        ("foo(1)", "unknown function `foo`"),
        ("url.startWith('/')", "did you mean `startsWith`"),
        ("status_code", "must be a condition"),
        ("(http", "expected `)`"),
        ("http &", "use `&&`"),
        ("'unterminated", "unterminated string"),
        ("src", "is not a value"),
        ("1 + 'a' == 2", "cannot combine int with string"),
        ("dns_questions.exists(1, true)", "must be a variable name"),
    ] {
        let e = err(src);
        assert!(e.message.contains(what), "{src}: {e}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&src).message.contains("nested too deeply"));
    let src = format!("{}true", "!".repeat(5000));
    assert!(err(&src).message.contains("nested too deeply"));
}

#[test]
fn canonical_text_round_trips() {
    for (src, canon) in [
        (
            "http and method == \"POST\" and not (status_code < 400)",
            "http && method == \"POST\" && !(status_code < 400)",
        ),
        ("(1 + 2) * 3 == 9 || !(dns)", "(1 + 2) * 3 == 9 || !dns"),
        ("'x\\ny' == url", "\"x\\ny\" == url"),
        (
            "http ? (1 == 1) : (2 == 3 ? true : false)",
            "http ? 1 == 1 : 2 == 3 ? true : false",
        ),
    ] {
        let f = Filter::compile(src, ts("2026-01-01T00:00:00Z")).expect("compiles");
        assert_eq!(f.canonical(), canon);
        let again = Filter::compile(&f.canonical(), ts("2026-01-01T00:00:00Z"))
            .expect("canonical compiles");
        assert_eq!(again.canonical(), canon);
    }
}

#[test]
fn sql_escapes_every_literal() {
    let f = Filter::compile(r#"http && dst.pod.namespace == "it's \\ here" && url.contains("'; DROP TABLE entries; --")"#, ts("2026-01-01T00:00:00Z")).expect("compiles");
    assert_eq!(
        f.to_sql().expect("sql"),
        r#"(((`protocol` IN ('http', 'grpc', 'gql')) AND (if(`dst_pod` = '' AND `dst_service` = '', '', `dst_namespace`) = 'it\'s \\ here')) AND (position(`url`, '\'; DROP TABLE entries; --') > 0))"#
    );
    let f = Filter::compile(r#"timestamp >= timestamp("2026-03-14T22:00:00Z") && protocol in ["http", "dns"] && map_get(local_labels, "app", "") == "x""#, ts("2026-01-01T00:00:00Z")).expect("compiles");
    assert_eq!(
        f.to_sql().expect("sql"),
        "(((`timestamp` >= toInt64(1773525600000000000)) AND (`protocol` IN ('dns', 'http'))) \
         AND (if(has(`src_labels_keys`, 'app'), `src_labels_values`[indexOf(`src_labels_keys`, 'app')], '') = 'x'))"
    );
}

#[test]
fn node_scoping_renders_to_the_node_column() {
    let now = ts("2026-01-01T00:00:00Z");
    for src in [
        r#"node.name == "worker-1""#,
        r#"node["name"] == "worker-1""#,
        r#"node_name == "worker-1""#,
    ] {
        let f = Filter::compile(src, now).expect("compiles");
        assert_eq!(
            f.to_sql().expect("sql"),
            "(`node_name` = 'worker-1')",
            "{src}"
        );
    }
    let f = Filter::compile(r#"node.ip == """#, now).expect("compiles");
    assert_eq!(f.to_sql().expect("sql"), "('' = '')");
    // Any other key could be missing: an error in CEL that SQL cannot carry.
    let f = Filter::compile(r#"node["zone"] == "a""#, now).expect("compiles");
    assert!(f.to_sql().is_err());
}

#[test]
fn pruning_facts() {
    let p = |src: &str| {
        Filter::compile(src, ts("2026-03-14T23:00:00Z"))
            .expect("compiles")
            .prune()
            .clone()
    };
    let a = p(
        r#"timestamp >= timestamp("2026-03-14T22:00:00Z") && timestamp <= timestamp("2026-03-14T23:00:00Z") && http"#,
    );
    assert_eq!(a.from, Some(ts("2026-03-14T22:00:00Z")));
    assert_eq!(a.to, Some(ts("2026-03-14T23:00:00Z")));
    assert_eq!(
        a.protocols,
        Some([Protocol::Http, Protocol::Grpc, Protocol::Gql].into())
    );
    let b = p(r#"timestamp > now() - duration("5m")"#);
    assert_eq!(b.from, Some(ts("2026-03-14T22:55:00Z")));
    let c = p(r#"dns || protocol == "tls""#);
    assert_eq!(c.protocols, Some([Protocol::Dns, Protocol::Tls].into()));
    let d = p(r#"dns || status_code > 1"#);
    assert_eq!(d.protocols, None);
    let e = p(r#""production" in namespaces || src.namespace == "shop""#);
    assert_eq!(
        e.namespaces,
        Some(["production".to_string(), "shop".to_string()].into())
    );
    assert_eq!(p("!dns").protocols, None);
}

#[test]
fn endpoint_only_filters_are_the_ones_rollups_answer() {
    let now = wiremap_model::Timestamp::from_parts(1_700_000_000, 0);
    let only = |src: &str| Filter::compile(src, now).expect("compiles").endpoint_only();
    for yes in [
        "redis",
        "dst.name == \"cart\" && src.namespace.startsWith(\"shop\")",
        "node_name == \"n1\" || node[\"name\"] == \"n2\"",
        "protocol in [\"dns\", \"http\"] && !(src.ip == \"10.0.0.1\")",
        "[1, 2].exists(x, x > 1) && http",
        "src.labels[\"app\"] == \"x\"",
    ] {
        assert!(only(yes), "{yes}");
    }
    for no in [
        "mysql && src.port > 1000",
        "status_code >= 500",
        "timestamp > timestamp(\"2026-01-01T00:00:00Z\")",
        "redis && redis_command == \"GET\"",
        "[1].exists(x, x == dst.port)",
        "elapsed_time > 1000",
    ] {
        assert!(!only(no), "{no}");
    }
}

#[test]
fn filters_say_whether_they_read_details() {
    let now = wiremap_model::Timestamp::from_parts(1_700_000_000, 0);
    let reads = |src: &str| Filter::compile(src, now).expect("compiles").reads_details();
    for no in [
        "mysql && src.port > 1000",
        "status_code >= 500 || elapsed_time > 5",
        "redis",
    ] {
        assert!(!reads(no), "{no}");
    }
    for yes in [
        "redis_command == \"GET\"",
        "http && path.startsWith(\"/api\")",
        "dns_questions.exists(q, q == \"a\")",
    ] {
        assert!(reads(yes), "{yes}");
    }
}
