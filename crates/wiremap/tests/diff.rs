//! `wiremap diff` and `/api/map/diff` on shared captures: the marks must be the ones set
//! arithmetic on the two plain maps gives (node ids and edge keys in one, the other or both)
//! with the documented thresholds applied to the plain maps' numbers — computed here, not by
//! the diff code. Skipped when the shared captures are absent.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use common::{stderr, stdout, tmp, wiremap};
use serde_json::Value;

/// A shared capture, or `None` (the test then skips).
fn shared(name: &str) -> Option<String> {
    let dir = match std::env::var_os("WIREMAP_PCAPS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps"),
    };
    let p = dir.join(name);
    if p.exists() {
        Some(p.to_string_lossy().into_owned())
    } else {
        eprintln!("skipped: shared capture {} not found", p.display());
        None
    }
}

type Marks = BTreeMap<String, String>;

fn edge_key(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    format!("{}>{}/{}", s("source"), s("target"), s("protocol"))
}

fn list<'a>(v: &'a Value, what: &str) -> impl Iterator<Item = &'a Value> {
    v[what].as_array().into_iter().flatten()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// The documented defaults, as integer fractions: requests ×2 (and ≥ 10 apart), error rate
/// 5 points, p99 ×3/2 (and ≥ 1,000 µs apart, both windows with responses).
fn past(a: u64, b: u64, num: u64, den: u64, min: u64) -> bool {
    let (lo, hi) = (a.min(b), a.max(b));
    hi - lo >= min && u128::from(hi) * u128::from(den) >= u128::from(lo) * u128::from(num)
}

fn edge_changed(b: &Value, c: &Value) -> bool {
    let (rb, rc) = (u128::from(n(b, "requests")), u128::from(n(c, "requests")));
    let (eb, ec) = (u128::from(n(b, "errors")), u128::from(n(c, "errors")));
    assert!(rb > 0 && rc > 0, "a map's edge carries requests");
    let p99 = |e: &Value| e["latency_us"]["p99"].as_u64().unwrap_or(0);
    past(n(b, "requests"), n(c, "requests"), 2, 1, 10)
        || 100 * (ec * rb).abs_diff(eb * rc) >= 5 * rb * rc
        || (n(b, "responses") > 0 && n(c, "responses") > 0 && past(p99(b), p99(c), 3, 2, 1000))
}

/// What the marks must be, from two plain maps.
fn expected(base: &Value, cur: &Value) -> (Marks, Marks) {
    let be: BTreeMap<String, &Value> = list(base, "edges").map(|e| (edge_key(e), e)).collect();
    let ce: BTreeMap<String, &Value> = list(cur, "edges").map(|e| (edge_key(e), e)).collect();
    let mut edges = Marks::new();
    let mut touched = std::collections::BTreeSet::new();
    for (k, e) in &be {
        let mark = match ce.get(k) {
            None => "removed",
            Some(c) if edge_changed(e, c) => "changed",
            Some(_) => "unchanged",
        };
        edges.insert(k.clone(), mark.into());
    }
    for k in ce.keys().filter(|k| !be.contains_key(*k)) {
        edges.insert(k.clone(), "added".into());
    }
    for (k, e) in be.iter().chain(&ce) {
        if edges[k] != "unchanged" {
            touched.insert(e["source"].as_str().unwrap_or_default().to_string());
            touched.insert(e["target"].as_str().unwrap_or_default().to_string());
        }
    }
    let id = |x: &Value| x["id"].as_str().unwrap_or_default().to_string();
    let bn: BTreeMap<String, &Value> = list(base, "nodes").map(|x| (id(x), x)).collect();
    let cn: BTreeMap<String, &Value> = list(cur, "nodes").map(|x| (id(x), x)).collect();
    let mut nodes = Marks::new();
    for (k, b) in &bn {
        let mark = match cn.get(k) {
            None => "removed",
            Some(c)
                if touched.contains(k)
                    || past(n(b, "requests_in"), n(c, "requests_in"), 2, 1, 10)
                    || past(n(b, "requests_out"), n(c, "requests_out"), 2, 1, 10) =>
            {
                "changed"
            }
            Some(_) => "unchanged",
        };
        nodes.insert(k.clone(), mark.into());
    }
    for k in cn.keys().filter(|k| !bn.contains_key(*k)) {
        nodes.insert(k.clone(), "added".into());
    }
    (nodes, edges)
}

fn marks(d: &Value) -> (Marks, Marks) {
    let mark = |x: &Value| x["change"].as_str().unwrap_or("?").to_string();
    let id = |x: &Value| x["id"].as_str().unwrap_or_default().to_string();
    (
        list(d, "nodes").map(|x| (id(x), mark(x))).collect(),
        list(d, "edges").map(|e| (edge_key(e), mark(e))).collect(),
    )
}

/// The diff agrees with the plain maps: marks, base and current numbers, thresholds.
fn check(d: &Value, base: &Value, cur: &Value) -> (Marks, Marks) {
    assert_eq!(
        d["diff"]["thresholds"],
        serde_json::json!({"requests_ratio": 2.0, "requests_min_delta": 10,
            "error_rate_points": 5.0, "p99_ratio": 1.5, "p99_min_delta_us": 1000})
    );
    let want = expected(base, cur);
    assert_eq!(marks(d), want);
    let be: BTreeMap<String, &Value> = list(base, "edges").map(|e| (edge_key(e), e)).collect();
    for e in list(d, "edges") {
        if let Some(b) = be.get(&edge_key(e)) {
            assert_eq!(e["base"]["requests"], b["requests"], "{e}");
            assert_eq!(e["base"]["p99_us"], b["latency_us"]["p99"], "{e}");
        }
        if e["change"] == "changed" {
            assert!(!e["why"].as_array().is_none_or(Vec::is_empty), "{e}");
        }
    }
    let count = |m: &Marks, mark: &str| m.values().filter(|v| *v == mark).count();
    for mark in ["added", "removed", "changed", "unchanged"] {
        assert_eq!(
            d["diff"]["edges"][mark].as_u64(),
            Some(count(&want.1, mark) as u64)
        );
        assert_eq!(
            d["diff"]["nodes"][mark].as_u64(),
            Some(count(&want.0, mark) as u64)
        );
    }
    want
}

fn run_json(args: &[&str]) -> Value {
    let o = wiremap(args);
    assert!(o.status.success(), "wiremap {args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

#[test]
fn two_captures_are_marked_as_their_maps_differ() {
    // The same two loopback hosts talk AMQP in both captures: one edge busier, slower and no
    // longer failing, one gone, one new.
    let (Some(a), Some(b)) = (
        shared("amqp_deepflow_error.pcap"),
        shared("amqp_deepflow_amqp1.pcap"),
    ) else {
        return;
    };
    for level in ["workload", "ip"] {
        let (ma, mb) = (
            run_json(&["map", &a, "--level", level]),
            run_json(&["map", &b, "--level", level]),
        );
        for (base, cur, mbase, mcur) in [(&a, &b, &ma, &mb), (&b, &a, &mb, &ma)] {
            let d = run_json(&["diff", base, cur, "--level", level]);
            let (_, edges) = check(&d, mbase, mcur);
            for mark in ["added", "removed", "changed"] {
                assert!(edges.values().any(|m| m == mark), "{mark}: {edges:?}");
            }
            assert_eq!(d["level"], level);
            assert_eq!(d["window"], mcur["window"]);
            assert_eq!(d["base_window"], mbase["window"]);
        }
    }
    // The same with a filter on both sides.
    let f = ["--filter", "amqp"];
    let (ma, mb) = (
        run_json(&["map", &a, f[0], f[1]]),
        run_json(&["map", &b, f[0], f[1]]),
    );
    check(&run_json(&["diff", &a, &b, f[0], f[1]]), &ma, &mb);

    // DOT, Mermaid and HTML carry the marks.
    let o = wiremap(&["diff", &a, &b, "--format", "dot"]);
    let dot = stdout(&o);
    assert!(o.status.success() && dot.contains("style=dashed") && dot.contains("(new)"));
    let mm = stdout(&wiremap(&["diff", &a, &b, "--format", "mermaid"]));
    assert!(
        mm.starts_with("flowchart LR") && mm.contains("(gone)"),
        "{mm}"
    );
    let html = tmp("diff.html");
    let path = html.to_string_lossy();
    let o = wiremap(&["diff", &a, &b, "--format", "html", "-o", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&html).expect("html");
    assert!(text.contains("window.WIREMAP_OFFLINE = {") && text.contains("\"change\":\"removed\""));
}

#[test]
fn a_capture_against_itself_is_unchanged() {
    let Some(a) = shared("mixed_suricata_browsing-tls-dns-http.pcap") else {
        return;
    };
    let m = run_json(&["map", &a]);
    let d = run_json(&["diff", &a, &a]);
    let (nodes, edges) = check(&d, &m, &m);
    assert_eq!(edges.len(), list(&m, "edges").count());
    assert!(edges.len() > 10);
    assert!(nodes
        .values()
        .chain(edges.values())
        .all(|v| v == "unchanged"));
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Imports a capture into a new store and serves it on a loopback port.
fn store(file: &str, dir: &Path) -> (tokio::runtime::Runtime, SocketAddr) {
    use wiremap_capture::PacketSource;
    let _ = std::fs::remove_dir_all(dir);
    let store = wiremap_store::Store::open(wiremap_store::StoreConfig::new(dir)).expect("store");
    let shared = wiremap_server::Shared::new(store);
    let engine = wiremap_engine::Engine::new(wiremap_engine::EngineConfig::default());
    let mut ingest = wiremap_server::Ingest::new(engine, shared.clone(), true);
    let mut src = wiremap_capture::FileSource::open(file).expect("opens");
    while src.advance().expect("reads") {
        ingest.packet(&src.packet());
    }
    ingest.finish();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let router = wiremap_server::router(shared, wiremap_server::Access::default());
    rt.spawn(wiremap_server::serve(
        listener,
        router,
        std::future::pending(),
    ));
    (rt, addr)
}

#[test]
fn two_windows_of_a_store_through_the_api_and_the_cli() {
    let Some(file) = shared("mixed_suricata_browsing-tls-dns-http.pcap") else {
        return;
    };
    let dir = tmp("diff-store");
    let (_rt, addr) = store(&file, &dir);
    // The browsing session's first 40 s against the rest.
    let base = ("2022-03-17T08:38:40Z", "2022-03-17T08:39:20Z");
    let cur = ("2022-03-17T08:39:20Z", "2022-03-17T08:40:00Z");
    let dir_s = dir.to_string_lossy();
    for (level, q) in [("workload", ""), ("ip", ""), ("workload", "!dns")] {
        let enc = q.replace('!', "%21");
        let map = |(f, t): (&str, &str)| {
            let (st, body) = http_get(
                addr,
                &format!("/api/map?level={level}&q={enc}&from={f}&to={t}"),
            );
            assert_eq!(st, 200, "{body}");
            serde_json::from_str::<Value>(&body).expect("map")
        };
        let (mb, mc) = (map(base), map(cur));
        let (st, body) = http_get(
            addr,
            &format!(
                "/api/map/diff?level={level}&q={enc}&base_from={}&base_to={}&from={}&to={}",
                base.0, base.1, cur.0, cur.1
            ),
        );
        assert_eq!(st, 200, "{body}");
        let api: Value = serde_json::from_str(&body).expect("diff");
        let (_, edges) = check(&api, &mb, &mc);
        if q.is_empty() {
            for mark in ["added", "removed", "changed", "unchanged"] {
                assert!(
                    edges.values().any(|m| m == mark),
                    "{level}: no {mark} in {edges:?}"
                );
            }
        }
        let mut args = vec![
            "diff",
            "--data",
            &dir_s,
            "--base-from",
            base.0,
            "--base-to",
            base.1,
            "--from",
            cur.0,
            "--to",
            cur.1,
            "--level",
            level,
        ];
        if !q.is_empty() {
            args.extend(["--filter", q]);
        }
        let cli = run_json(&args);
        check(&cli, &mb, &mc);
        assert_eq!(cli["nodes"], api["nodes"]);
        assert_eq!(cli["edges"], api["edges"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_diff_usage_and_input_exit_2() {
    let Some(a) = shared("amqp_deepflow_error.pcap") else {
        return;
    };
    let empty = tmp("diff-empty-store");
    std::fs::create_dir_all(&empty).expect("dir");
    let e = empty.to_string_lossy();
    let w = ["--base-from", "-2h", "--base-to", "-1h"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["diff"], "two captures"),
        (vec!["diff", &a], "two captures"),
        (
            vec!["diff", &a, "/nonexistent/b.pcap"],
            "/nonexistent/b.pcap",
        ),
        (vec!["diff", "-", "-"], "standard input"),
        (vec!["diff", &a, &a, "--from", "-1h"], "--data"),
        (
            vec!["diff", &a, &a, "--filter", "http &&"],
            "invalid filter",
        ),
        (vec!["diff", &a, &a, "--level", "galaxy"], "galaxy"),
        (vec!["diff", &a, &a, "--format", "xml"], "xml"),
        (
            vec![
                "diff", "--data", &e, w[0], w[1], w[2], w[3], "--from", "-1h",
            ],
            "--to is missing",
        ),
        (
            vec!["diff", "--data", &e, "--from", "-1h", "--to", "now"],
            "--base-from is missing",
        ),
        (
            vec![
                "diff", "--data", &e, w[0], w[1], w[2], w[3], "--from", "now", "--to", "-1h",
            ],
            "inverted",
        ),
        (
            vec![
                "diff",
                "--data",
                &e,
                "--base-from",
                "soon",
                w[2],
                w[3],
                "--from",
                "-1h",
                "--to",
                "now",
            ],
            "base_from",
        ),
        (
            vec![
                "diff", "--data", &e, w[0], w[1], w[2], w[3], "--from", "-1h", "--to", "now",
                "--filter", "http &&",
            ],
            "invalid filter",
        ),
        (
            vec![
                "diff",
                "--data",
                "/nonexistent-wm",
                w[0],
                w[1],
                w[2],
                w[3],
                "--from",
                "-1h",
                "--to",
                "now",
            ],
            "/nonexistent-wm",
        ),
        (
            vec![
                "diff", "--data", &e, &a, w[0], w[1], w[2], w[3], "--from", "-1h", "--to", "now",
            ],
            "not both",
        ),
        (
            vec![
                "diff", "--data", &e, "--k8s", "x.json", w[0], w[1], w[2], w[3], "--from", "-1h",
                "--to", "now",
            ],
            "--k8s",
        ),
    ];
    for (args, says) in cases {
        let o = wiremap(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.to_lowercase().contains(&says.to_lowercase()),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // An empty directory is an empty store: both maps empty, nothing to mark.
    let d = run_json(&[
        "diff", "--data", &e, w[0], w[1], w[2], w[3], "--from", "-1h", "--to", "now",
    ]);
    assert_eq!(d["diff"]["edges"]["unchanged"], 0);
    let _ = std::fs::remove_dir_all(&empty);
}
