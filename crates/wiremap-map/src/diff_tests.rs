//! The marking logic at every threshold edge, the union, the summary and the exports.

use std::collections::BTreeMap;

use wiremap_model::{Protocol, Timestamp};

use super::*;
use crate::{Bytes, Latency};

fn metrics(requests: u64, errors: u64, responses: u64, p99_us: u64) -> EdgeMetrics {
    EdgeMetrics {
        requests,
        errors,
        error_rate: rate(errors, requests),
        client_errors: 0,
        responses,
        p99_us,
    }
}

fn why(base: EdgeMetrics, cur: EdgeMetrics) -> Vec<&'static str> {
    edge_why(&base, &cur, &Thresholds::default())
}

#[test]
fn requests_fire_at_twice_or_half_with_the_minimum_change() {
    let m = |r| metrics(r, 0, r, 100);
    // Exactly ×2 with exactly the minimum difference: fires.
    assert_eq!(why(m(10), m(20)), ["requests"]);
    assert_eq!(why(m(20), m(10)), ["requests"]);
    // Just under ×2.
    assert!(why(m(10), m(19)).is_empty());
    assert!(why(m(20), m(11)).is_empty());
    // ×2 but one under the minimum difference.
    assert!(why(m(9), m(18)).is_empty());
    assert!(why(m(18), m(9)).is_empty());
    // From nothing: the ratio is unbounded, the minimum difference decides.
    assert_eq!(why(m(0), m(10)), ["requests"]);
    assert!(why(m(0), m(9)).is_empty());
    // Far past both.
    assert_eq!(why(m(1000), m(3)), ["requests"]);
}

#[test]
fn error_rate_fires_at_five_points_up_or_down() {
    let m = |r, e| metrics(r, e, r, 100);
    assert_eq!(why(m(100, 0), m(100, 5)), ["error_rate"]);
    assert!(why(m(100, 0), m(100, 4)).is_empty());
    assert_eq!(why(m(100, 10), m(100, 5)), ["error_rate"]);
    assert!(why(m(100, 10), m(100, 6)).is_empty());
    // Different request counts: 1/20 is exactly 5 %, 1/21 is under.
    assert_eq!(why(m(12, 0), m(20, 1)), ["error_rate"]);
    assert!(why(m(12, 0), m(21, 1)).is_empty());
    // Rates that are equal though the counts are not: 3/12 vs 5/20.
    assert!(why(m(12, 3), m(20, 5)).is_empty());
    // 15 % → 10 %: exactly five points, which a floating subtraction would miss.
    assert_eq!(why(m(20, 3), m(20, 2)), ["error_rate"]);
}

#[test]
fn p99_fires_at_one_and_a_half_times_with_a_millisecond() {
    let m = |p| metrics(50, 0, 50, p);
    assert_eq!(why(m(2000), m(3000)), ["p99"]);
    assert_eq!(why(m(3000), m(2000)), ["p99"]);
    assert!(why(m(2000), m(2999)).is_empty());
    assert!(why(m(3000), m(2001)).is_empty());
    // ×1.5 but only half a millisecond apart.
    assert!(why(m(1000), m(1500)).is_empty());
    assert_eq!(why(m(2000), m(30_000)), ["p99"]);
    // Without responses on one side there is no latency to compare.
    assert!(why(metrics(50, 0, 0, 0), m(30_000)).is_empty());
    assert!(why(m(30_000), metrics(50, 0, 0, 0)).is_empty());
}

#[test]
fn several_criteria_are_listed_in_a_fixed_order() {
    assert_eq!(
        why(metrics(10, 0, 10, 1000), metrics(40, 8, 40, 9000)),
        ["requests", "error_rate", "p99"]
    );
}

#[test]
fn thresholds_are_the_callers() {
    let t = Thresholds {
        requests_ratio: 1.1,
        requests_min_delta: 1,
        error_rate_points: 50.0,
        p99_ratio: 10.0,
        p99_min_delta_us: 0,
    };
    let (b, c) = (metrics(10, 0, 10, 1000), metrics(11, 4, 11, 9999));
    assert_eq!(edge_why(&b, &c, &t), ["requests"]);
}

fn node(id: &str, requests_in: u64, requests_out: u64) -> Node {
    Node {
        id: id.into(),
        name: id.into(),
        kind: "ip",
        namespace: String::new(),
        labels: BTreeMap::new(),
        addresses: Vec::new(),
        external: false,
        requests_out,
        requests_in,
        folded: 0,
    }
}

fn edge(s: &str, t: &str, p: Protocol, requests: u64, errors: u64, p99: u64) -> Edge {
    Edge {
        source: s.into(),
        target: t.into(),
        protocol: p,
        requests,
        responses: requests,
        errors,
        client_errors: 0,
        bytes: Bytes::default(),
        latency_us: Latency {
            p50: p99,
            p90: p99,
            p99,
        },
        first_seen: Timestamp(0),
        last_seen: Timestamp(0),
        nodes: Vec::new(),
    }
}

/// A map whose node totals are its edges' sums.
fn map(window: i64, edges: Vec<Edge>, extra_nodes: &[&str]) -> ServiceMap {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in &edges {
        totals.entry(e.source.clone()).or_default().1 += e.requests;
        totals.entry(e.target.clone()).or_default().0 += e.requests;
    }
    for n in extra_nodes {
        totals.entry((*n).to_string()).or_default();
    }
    ServiceMap {
        version: 1,
        level: "workload",
        window: Window {
            from: Some(Timestamp(window * 1_000_000_000)),
            to: Some(Timestamp((window + 1) * 1_000_000_000)),
        },
        nodes: totals.iter().map(|(id, (i, o))| node(id, *i, *o)).collect(),
        edges,
        stats: Stats::default(),
    }
}

fn marks(d: &MapDiff) -> (BTreeMap<String, Change>, BTreeMap<String, Change>) {
    let n = d
        .nodes
        .iter()
        .map(|n| (n.node.id.clone(), n.change))
        .collect();
    let e = d
        .edges
        .iter()
        .map(|e| {
            let k = format!("{}>{}/{}", e.edge.source, e.edge.target, e.edge.protocol);
            (k, e.change)
        })
        .collect();
    (n, e)
}

#[test]
fn every_node_and_edge_of_either_map_is_marked() {
    use Change::*;
    use Protocol::{Dns, Http};
    let base = map(
        0,
        vec![
            edge("a", "b", Http, 100, 0, 2000),
            edge("a", "dns", Dns, 50, 0, 500),
            edge("c", "dns", Dns, 50, 0, 500),
            edge("old", "b", Http, 5, 0, 100),
        ],
        &["idle"],
    );
    let cur = map(
        10,
        vec![
            // Started failing.
            edge("a", "b", Http, 100, 20, 2000),
            edge("a", "dns", Dns, 55, 0, 510),
            edge("c", "dns", Dns, 50, 0, 500),
            edge("new", "b", Http, 7, 0, 100),
            // The same pair over another protocol is another edge.
            edge("a", "b", Dns, 3, 0, 100),
        ],
        &["idle"],
    );
    let d = MapDiff::new(&base, &cur, &Thresholds::default()).expect("same level");
    let (n, e) = marks(&d);
    let want_e: BTreeMap<String, Change> = [
        ("a>b/dns", Added),
        ("a>b/http", Changed),
        ("a>dns/dns", Unchanged),
        ("c>dns/dns", Unchanged),
        ("new>b/http", Added),
        ("old>b/http", Removed),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(e, want_e);
    let want_n: BTreeMap<String, Change> = [
        ("a", Changed),
        ("b", Changed),
        ("c", Unchanged),
        ("dns", Unchanged),
        ("idle", Unchanged),
        ("new", Added),
        ("old", Removed),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(n, want_n);
    let ab = d
        .edges
        .iter()
        .find(|e| e.edge.source == "a" && e.edge.protocol == Http)
        .expect("a>b");
    assert_eq!(ab.why, ["error_rate"]);
    let delta = ab.delta.expect("in both");
    assert_eq!((delta.requests, delta.errors), (0, 20));
    assert!((delta.error_rate - 0.2).abs() < 1e-12);
    // A removed edge keeps the base's values; an added one has no base.
    let old = d
        .edges
        .iter()
        .find(|e| e.edge.source == "old")
        .expect("old");
    assert_eq!(
        (old.edge.requests, old.base.map(|m| m.requests)),
        (5, Some(5))
    );
    assert!(old.current.is_none() && old.delta.is_none());
    let new = d
        .edges
        .iter()
        .find(|e| e.edge.source == "new")
        .expect("new");
    assert!(new.base.is_none() && new.current.is_some());
    assert_eq!(
        d.nodes
            .iter()
            .find(|n| n.node.id == "a")
            .map(|n| n.why.clone()),
        Some(vec!["edges"])
    );
    assert_eq!(
        (d.diff.nodes, d.diff.edges),
        (
            Counts {
                added: 1,
                removed: 1,
                changed: 2,
                unchanged: 3
            },
            Counts {
                added: 2,
                removed: 1,
                changed: 1,
                unchanged: 2
            }
        )
    );
    // Busiest first: a>b (100), new>b (7), old>b (5), a>b/dns (3).
    let top: Vec<_> = d
        .diff
        .top
        .iter()
        .map(|t| (t.source.as_str(), t.requests))
        .collect();
    assert_eq!(top, [("a", 100), ("new", 7), ("old", 5), ("a", 3)]);
    assert_eq!(d.window, cur.window);
    assert_eq!(d.base_window, base.window);
}

#[test]
fn a_node_changes_with_its_totals_even_when_no_edge_does() {
    // Ten clients each a little busier: no edge crosses, the server's total does.
    let (mut b, mut c) = (Vec::new(), Vec::new());
    for i in 0..10 {
        b.push(edge(&format!("c{i}"), "s", Protocol::Http, 8, 0, 100));
        c.push(edge(&format!("c{i}"), "s", Protocol::Http, 16, 0, 100));
    }
    let d = MapDiff::new(&map(0, b, &[]), &map(1, c, &[]), &Thresholds::default()).expect("diff");
    assert!(d.edges.iter().all(|e| e.change == Change::Unchanged));
    let s = d.nodes.iter().find(|n| n.node.id == "s").expect("s");
    assert_eq!(
        (s.change, s.why.clone()),
        (Change::Changed, vec!["requests_in"])
    );
    assert_eq!(s.delta.map(|x| x.requests_in), Some(80));
    assert_eq!(d.diff.nodes.changed, 1);
    assert_eq!(d.diff.nodes.unchanged, 10);
}

#[test]
fn a_map_against_itself_is_unchanged_and_levels_must_agree() {
    let m = map(0, vec![edge("a", "b", Protocol::Http, 10, 1, 100)], &[]);
    let d = MapDiff::new(&m, &m, &Thresholds::default()).expect("diff");
    assert!(d.nodes.iter().all(|n| n.change == Change::Unchanged));
    assert!(d.edges.iter().all(|e| e.change == Change::Unchanged));
    assert!(d.diff.top.is_empty());
    let mut other = m.clone();
    other.level = "ip";
    assert_eq!(
        MapDiff::new(&m, &other, &Thresholds::default()),
        Err(DiffError::Levels {
            base: "workload",
            current: "ip"
        })
    );
}

#[test]
fn the_top_list_is_bounded() {
    let cur: Vec<Edge> = (0..TOP_CHANGES as u64 + 5)
        .map(|i| edge(&format!("c{i:02}"), "s", Protocol::Http, i + 1, 0, 100))
        .collect();
    let d = MapDiff::new(
        &map(0, vec![], &[]),
        &map(1, cur, &[]),
        &Thresholds::default(),
    )
    .expect("diff");
    assert_eq!(d.diff.edges.added, TOP_CHANGES + 5);
    assert_eq!(d.diff.top.len(), TOP_CHANGES);
    assert_eq!(d.diff.top[0].requests, TOP_CHANGES as u64 + 5);
    assert!(d
        .diff
        .top
        .windows(2)
        .all(|w| w[0].requests >= w[1].requests));
}

#[test]
fn json_carries_marks_base_delta_and_summary() {
    let base = map(
        0,
        vec![edge("a", "b", Protocol::Http, 10, 0, 2000)],
        &["gone"],
    );
    let cur = map(
        5,
        vec![edge("a", "b", Protocol::Http, 10, 0, 9000)],
        &["fresh"],
    );
    let d = MapDiff::new(&base, &cur, &Thresholds::default()).expect("diff");
    let v: serde_json::Value = serde_json::from_str(&d.to_json()).expect("json");
    assert_eq!(v["level"], "workload");
    assert!(v["window"]["from"].is_string() && v["base_window"]["from"].is_string());
    assert_ne!(v["window"], v["base_window"]);
    let e = &v["edges"][0];
    assert_eq!(e["source"], "a");
    assert_eq!(e["change"], "changed");
    assert_eq!(e["why"], serde_json::json!(["p99"]));
    assert_eq!(e["latency_us"]["p99"], 9000);
    assert_eq!(e["base"]["p99_us"], 2000);
    assert_eq!(e["current"]["p99_us"], 9000);
    assert_eq!(e["delta"]["p99_us"], 7000);
    assert_eq!(e["delta"]["requests"], 0);
    let by_id = |id: &str| {
        v["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["id"] == id).cloned())
            .unwrap_or_default()
    };
    assert_eq!(by_id("gone")["change"], "removed");
    assert_eq!(by_id("fresh")["change"], "added");
    assert!(by_id("fresh").get("base").is_none());
    assert_eq!(by_id("a")["why"], serde_json::json!(["edges"]));
    assert_eq!(v["diff"]["edges"]["changed"], 1);
    assert_eq!(v["diff"]["nodes"]["added"], 1);
    assert_eq!(v["diff"]["thresholds"]["requests_ratio"], 2.0);
    assert_eq!(v["diff"]["thresholds"]["error_rate_points"], 5.0);
    assert_eq!(v["diff"]["top"][0]["why"], serde_json::json!(["p99"]));
}

#[test]
fn dot_and_mermaid_carry_the_marks() {
    use Protocol::Http;
    let base = map(
        0,
        vec![
            edge("a", "b", Http, 10, 0, 2000),
            edge("a", "c", Http, 10, 0, 2000),
            edge("a", "old", Http, 10, 0, 2000),
        ],
        &[],
    );
    let cur = map(
        1,
        vec![
            edge("a", "b", Http, 10, 0, 9000),
            edge("a", "c", Http, 10, 0, 2000),
            edge("a", "new", Http, 4, 0, 2000),
        ],
        &[],
    );
    let d = MapDiff::new(&base, &cur, &Thresholds::default()).expect("diff");
    let dot = d.to_dot();
    let line = |needle: &str| {
        dot.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    let slower = line("\"a\" -> \"b\"");
    assert!(
        slower.contains("#d62728") && slower.contains("p99 +7.0ms"),
        "{slower}"
    );
    let same = line("\"a\" -> \"c\"");
    assert!(
        same.contains("#d0d0d0") && !same.contains("style=dashed"),
        "{same}"
    );
    let gone = line("\"a\" -> \"old\"");
    assert!(
        gone.contains("#9e9e9e") && gone.contains("style=dashed"),
        "{gone}"
    );
    let new = line("\"a\" -> \"new\"");
    assert!(new.contains("#2ca02c") && new.contains("(new)"), "{new}");
    assert!(line("\"old\" [").contains("dashed"));
    // The plain map's DOT is the same writer without marks.
    let plain = cur.to_dot();
    assert!(plain.starts_with("digraph wiremap {") && !plain.contains("#2ca02c\""));
    let mm = d.to_mermaid();
    assert!(mm.contains("stroke:#9e9e9e,stroke-dasharray:5 5"), "{mm}");
    assert!(mm.contains("(new)"));
}
