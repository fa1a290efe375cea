//! The difference between two maps of the same level: what appeared, what disappeared, and
//! what got busier, quieter, slower or started failing between a base window and the current one.
//!
//! Every node and edge of either map is marked [`Change::Added`] (only in the current map),
//! [`Change::Removed`] (only in the base), [`Change::Changed`] (in both, with a change past a
//! [`Thresholds`] criterion) or [`Change::Unchanged`]. Edges are matched by (source, target,
//! protocol) and nodes by id, which are stable across windows by design.
//!
//! A criterion fires when the change reaches its threshold (`>=`), so a default requests
//! criterion fires at exactly twice (or half) the base with at least 10 more (or fewer).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{export, Edge, Node, ServiceMap, Stats, Window};

/// How many of the biggest changes [`DiffSummary::top`] lists.
pub const TOP_CHANGES: usize = 20;

/// When a metric of something present in both windows counts as changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Requests changed when one window has at least this many times the other's …
    pub requests_ratio: f64,
    /// … and the counts differ by at least this many (so 1 → 2 requests is not a change).
    /// Also applied to a node's requests in and out.
    pub requests_min_delta: u64,
    /// Error rate (errors ÷ requests) changed when it moved up or down by at least this many
    /// percentage points.
    pub error_rate_points: f64,
    /// p99 latency changed when one window's is at least this many times the other's …
    pub p99_ratio: f64,
    /// … and they differ by at least this many microseconds. p99 is compared only when both
    /// windows saw responses on the edge (without one there is no latency to compare).
    pub p99_min_delta_us: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            requests_ratio: 2.0,
            requests_min_delta: 10,
            error_rate_points: 5.0,
            p99_ratio: 1.5,
            p99_min_delta_us: 1000,
        }
    }
}

/// How something differs between the base and the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the current window.
    Added,
    /// Only in the base window.
    Removed,
    /// In both, past a threshold.
    Changed,
    /// In both, within every threshold.
    Unchanged,
}

impl Change {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// What a diff compares of an edge in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EdgeMetrics {
    /// Requests.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Errors ÷ requests (0 without requests).
    pub error_rate: f64,
    /// HTTP 4xx answers (shown, not a criterion: a client's mistakes are not the edge's).
    pub client_errors: u64,
    /// Responses (p99 means something only when there were some).
    pub responses: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
}

impl EdgeMetrics {
    fn of(e: &Edge) -> EdgeMetrics {
        EdgeMetrics {
            requests: e.requests,
            errors: e.errors,
            error_rate: rate(e.errors, e.requests),
            client_errors: e.client_errors,
            responses: e.responses,
            p99_us: e.latency_us.p99,
        }
    }
}

fn rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

/// Current minus base, signed and saturating.
fn sub(cur: u64, base: u64) -> i64 {
    let d = i128::from(cur) - i128::from(base);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// Current minus base of an edge in both windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EdgeDelta {
    /// Requests.
    pub requests: i64,
    /// Errors.
    pub errors: i64,
    /// Error rate (a fraction: 0.05 is five percentage points).
    pub error_rate: f64,
    /// HTTP 4xx answers.
    pub client_errors: i64,
    /// p99 latency, microseconds.
    pub p99_us: i64,
}

/// An edge of the union of both maps.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeDiff {
    /// The edge as the current map has it (the base's, when removed).
    #[serde(flatten)]
    pub edge: Edge,
    /// Its mark.
    pub change: Change,
    /// Criteria that fired, for a changed edge: `requests`, `error_rate`, `p99`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<&'static str>,
    /// The base window's metrics (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<EdgeMetrics>,
    /// The current window's metrics (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<EdgeMetrics>,
    /// Current minus base (only when in both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<EdgeDelta>,
}

/// A node's totals in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodeTotals {
    /// Requests it received.
    pub requests_in: u64,
    /// Requests it sent.
    pub requests_out: u64,
}

/// Current minus base of a node's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodeDelta {
    /// Requests received.
    pub requests_in: i64,
    /// Requests sent.
    pub requests_out: i64,
}

/// A node of the union of both maps.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeDiff {
    /// The node as the current map has it (the base's, when removed).
    #[serde(flatten)]
    pub node: Node,
    /// Its mark. A node in both windows is changed when one of its edges is added, removed
    /// or changed (`edges`), or its requests in or out cross the requests threshold
    /// (`requests_in`, `requests_out`).
    pub change: Change,
    /// Criteria that fired, for a changed node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<&'static str>,
    /// The base window's totals (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<NodeTotals>,
    /// Current minus base (only when in both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<NodeDelta>,
}

/// How many nodes or edges got each mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Added.
    pub added: usize,
    /// Removed.
    pub removed: usize,
    /// Changed.
    pub changed: usize,
    /// Unchanged.
    pub unchanged: usize,
}

impl Counts {
    fn count(&mut self, c: Change) {
        match c {
            Change::Added => self.added += 1,
            Change::Removed => self.removed += 1,
            Change::Changed => self.changed += 1,
            Change::Unchanged => self.unchanged += 1,
        }
    }
}

/// One of the biggest changes: an edge that is not unchanged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopChange {
    /// Client node id.
    pub source: String,
    /// Server node id.
    pub target: String,
    /// Protocol.
    pub protocol: wiremap_model::Protocol,
    /// Its mark.
    pub change: Change,
    /// Criteria that fired (changed edges).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<&'static str>,
    /// The traffic the change touches: the larger of the two windows' requests.
    pub requests: u64,
}

/// The `diff` object of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffSummary {
    /// Nodes per mark.
    pub nodes: Counts,
    /// Edges per mark.
    pub edges: Counts,
    /// The thresholds the marks were decided with.
    pub thresholds: Thresholds,
    /// The edges that changed, busiest first (by [`TopChange::requests`], then by key), at
    /// most [`TOP_CHANGES`].
    pub top: Vec<TopChange>,
}

/// The union of two maps with every node and edge marked (the map JSON of DESIGN §5 plus
/// `change`, `why`, `base`, `current`, `delta`, `base_window` and `diff`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapDiff {
    /// Format version.
    pub version: u32,
    /// Level of both maps.
    pub level: &'static str,
    /// The current window.
    pub window: Window,
    /// The base window.
    pub base_window: Window,
    /// Nodes of either map, by id.
    pub nodes: Vec<NodeDiff>,
    /// Edges of either map, by (source, target, protocol).
    pub edges: Vec<EdgeDiff>,
    /// The current map's counters.
    pub stats: Stats,
    /// Counts, thresholds and the biggest changes.
    pub diff: DiffSummary,
}

/// Why two maps cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// Node ids of different levels do not line up.
    #[error("the maps are of different levels (base `{base}`, current `{current}`)")]
    Levels {
        /// The base map's level.
        base: &'static str,
        /// The current map's level.
        current: &'static str,
    },
}

/// Whether `a` and `b` differ by a factor of at least `ratio` and by at least `min` (either way).
fn past(a: u64, b: u64, ratio: f64, min: u64) -> bool {
    let (lo, hi) = (a.min(b), a.max(b));
    hi - lo >= min && hi as f64 >= ratio * lo as f64
}

/// The criteria an edge in both windows crosses.
pub fn edge_why(base: &EdgeMetrics, cur: &EdgeMetrics, t: &Thresholds) -> Vec<&'static str> {
    let mut why = Vec::new();
    if past(
        base.requests,
        cur.requests,
        t.requests_ratio,
        t.requests_min_delta,
    ) {
        why.push("requests");
    }
    // |eb/rb − ec/rc| ≥ points/100, cross-multiplied so that exact rates compare exactly.
    if base.requests > 0 && cur.requests > 0 {
        let (eb, rb) = (u128::from(base.errors), u128::from(base.requests));
        let (ec, rc) = (u128::from(cur.errors), u128::from(cur.requests));
        let diff = (ec * rb).abs_diff(eb * rc);
        if 100.0 * diff as f64 >= t.error_rate_points * (rb * rc) as f64 {
            why.push("error_rate");
        }
    } else if (base.requests == 0) != (cur.requests == 0) {
        // An edge with no requests has no rate: compare the other side's against zero.
        if 100.0 * base.error_rate.max(cur.error_rate) >= t.error_rate_points {
            why.push("error_rate");
        }
    }
    if base.responses > 0
        && cur.responses > 0
        && past(base.p99_us, cur.p99_us, t.p99_ratio, t.p99_min_delta_us)
    {
        why.push("p99");
    }
    why
}

fn node_why(base: &Node, cur: &Node, edges: bool, t: &Thresholds) -> Vec<&'static str> {
    let mut why = Vec::new();
    if edges {
        why.push("edges");
    }
    if past(
        base.requests_in,
        cur.requests_in,
        t.requests_ratio,
        t.requests_min_delta,
    ) {
        why.push("requests_in");
    }
    if past(
        base.requests_out,
        cur.requests_out,
        t.requests_ratio,
        t.requests_min_delta,
    ) {
        why.push("requests_out");
    }
    why
}

type EdgeKey<'a> = (&'a str, &'a str, &'static str);

fn key(e: &Edge) -> EdgeKey<'_> {
    (&e.source, &e.target, e.protocol.as_str())
}

fn totals(n: &Node) -> NodeTotals {
    NodeTotals {
        requests_in: n.requests_in,
        requests_out: n.requests_out,
    }
}

impl MapDiff {
    /// Compares `current` with `base` (both at the same level).
    pub fn new(base: &ServiceMap, current: &ServiceMap, t: &Thresholds) -> Result<Self, DiffError> {
        if base.level != current.level {
            return Err(DiffError::Levels {
                base: base.level,
                current: current.level,
            });
        }
        let old: BTreeMap<EdgeKey, &Edge> = base.edges.iter().map(|e| (key(e), e)).collect();
        let new: BTreeMap<EdgeKey, &Edge> = current.edges.iter().map(|e| (key(e), e)).collect();
        let keys: BTreeSet<EdgeKey> = old.keys().chain(new.keys()).copied().collect();
        let mut edges = Vec::with_capacity(keys.len());
        // Nodes with an edge that is not unchanged.
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        for k in keys {
            let d = match (old.get(&k), new.get(&k)) {
                (Some(b), Some(c)) => {
                    let (bm, cm) = (EdgeMetrics::of(b), EdgeMetrics::of(c));
                    let why = edge_why(&bm, &cm, t);
                    EdgeDiff {
                        edge: (*c).clone(),
                        change: if why.is_empty() {
                            Change::Unchanged
                        } else {
                            Change::Changed
                        },
                        why,
                        base: Some(bm),
                        current: Some(cm),
                        delta: Some(EdgeDelta {
                            requests: sub(cm.requests, bm.requests),
                            errors: sub(cm.errors, bm.errors),
                            error_rate: cm.error_rate - bm.error_rate,
                            client_errors: sub(cm.client_errors, bm.client_errors),
                            p99_us: sub(cm.p99_us, bm.p99_us),
                        }),
                    }
                }
                (Some(b), None) => EdgeDiff {
                    edge: (*b).clone(),
                    change: Change::Removed,
                    why: Vec::new(),
                    base: Some(EdgeMetrics::of(b)),
                    current: None,
                    delta: None,
                },
                (None, Some(c)) => EdgeDiff {
                    edge: (*c).clone(),
                    change: Change::Added,
                    why: Vec::new(),
                    base: None,
                    current: Some(EdgeMetrics::of(c)),
                    delta: None,
                },
                (None, None) => continue,
            };
            if d.change != Change::Unchanged {
                touched.insert(k.0);
                touched.insert(k.1);
            }
            edges.push(d);
        }

        let old_n: BTreeMap<&str, &Node> = base.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let new_n: BTreeMap<&str, &Node> =
            current.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let ids: BTreeSet<&str> = old_n.keys().chain(new_n.keys()).copied().collect();
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let d = match (old_n.get(id), new_n.get(id)) {
                (Some(b), Some(c)) => {
                    let why = node_why(b, c, touched.contains(id), t);
                    NodeDiff {
                        node: (*c).clone(),
                        change: if why.is_empty() {
                            Change::Unchanged
                        } else {
                            Change::Changed
                        },
                        why,
                        base: Some(totals(b)),
                        delta: Some(NodeDelta {
                            requests_in: sub(c.requests_in, b.requests_in),
                            requests_out: sub(c.requests_out, b.requests_out),
                        }),
                    }
                }
                (Some(b), None) => NodeDiff {
                    node: (*b).clone(),
                    change: Change::Removed,
                    why: Vec::new(),
                    base: Some(totals(b)),
                    delta: None,
                },
                (None, Some(c)) => NodeDiff {
                    node: (*c).clone(),
                    change: Change::Added,
                    why: Vec::new(),
                    base: None,
                    delta: None,
                },
                (None, None) => continue,
            };
            nodes.push(d);
        }

        let (mut nc, mut ec) = (Counts::default(), Counts::default());
        nodes.iter().for_each(|n| nc.count(n.change));
        edges.iter().for_each(|e| ec.count(e.change));
        let mut top: Vec<&EdgeDiff> = edges
            .iter()
            .filter(|e| e.change != Change::Unchanged)
            .collect();
        let weight = |e: &EdgeDiff| {
            let r = |m: Option<EdgeMetrics>| m.map_or(0, |m| m.requests);
            r(e.base).max(r(e.current))
        };
        // Edges are already in key order and the sort is stable: ties stay in key order.
        top.sort_by_key(|e| std::cmp::Reverse(weight(e)));
        let top = top
            .into_iter()
            .take(TOP_CHANGES)
            .map(|e| TopChange {
                source: e.edge.source.clone(),
                target: e.edge.target.clone(),
                protocol: e.edge.protocol,
                change: e.change,
                why: e.why.clone(),
                requests: weight(e),
            })
            .collect();
        Ok(MapDiff {
            version: current.version,
            level: current.level,
            window: current.window,
            base_window: base.window,
            nodes,
            edges,
            stats: current.stats.clone(),
            diff: DiffSummary {
                nodes: nc,
                edges: ec,
                thresholds: *t,
                top,
            },
        })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Graphviz DOT: added green, removed grey and dashed, changed orange (red when errors
    /// or latency went up) with the deltas in the label, unchanged muted.
    pub fn to_dot(&self) -> String {
        export::dot_with(
            self.nodes.iter().map(|n| (&n.node, node_look(n))),
            self.edges.iter().map(|e| (&e.edge, edge_look(e))),
        )
    }

    /// Mermaid flowchart with the same colours as the DOT.
    pub fn to_mermaid(&self) -> String {
        export::mermaid_with(
            self.nodes.iter().map(|n| (&n.node, node_look(n))),
            self.edges.iter().map(|e| (&e.edge, edge_look(e))),
        )
    }
}

const GREEN: &str = "#2ca02c";
const GREY: &str = "#9e9e9e";
const ORANGE: &str = "#ff7f0e";
const RED: &str = "#d62728";
const MUTED: &str = "#d0d0d0";

fn node_look(n: &NodeDiff) -> export::Look {
    let (color, fill, dashed) = match n.change {
        Change::Added => (GREEN, "#e6f5e6", false),
        Change::Removed => (GREY, "#f2f2f2", true),
        Change::Changed => (ORANGE, "#fff1e0", false),
        Change::Unchanged => (MUTED, "#fafafa", false),
    };
    export::Look {
        color: Some(color),
        fill: Some(fill),
        dashed,
        note: String::new(),
        font: matches!(n.change, Change::Removed | Change::Unchanged).then_some(GREY),
    }
}

/// Worse means more errors or slower: those changes are red, the rest orange.
fn worse(e: &EdgeDiff) -> bool {
    e.delta.is_some_and(|d| {
        (e.why.contains(&"error_rate") && d.error_rate > 0.0)
            || (e.why.contains(&"p99") && d.p99_us > 0)
    })
}

fn signed(v: i64) -> String {
    if v >= 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

/// The deltas of a changed edge, for a label: `(+12) err +7.5pp p99 +3.2ms`.
fn note(e: &EdgeDiff) -> String {
    let Some(d) = e.delta else {
        return String::new();
    };
    let mut s = format!(" ({})", signed(d.requests));
    if e.why.contains(&"error_rate") {
        let pp = d.error_rate * 100.0;
        s.push_str(&format!(
            " err {}{pp:.1}pp",
            if pp >= 0.0 { "+" } else { "" }
        ));
    }
    if e.why.contains(&"p99") {
        let ms = d.p99_us as f64 / 1000.0;
        s.push_str(&format!(
            " p99 {}{ms:.1}ms",
            if ms >= 0.0 { "+" } else { "" }
        ));
    }
    s
}

fn edge_look(e: &EdgeDiff) -> export::Look {
    let (color, dashed, note, font) = match e.change {
        Change::Added => (GREEN, false, " (new)".to_string(), None),
        Change::Removed => (GREY, true, " (gone)".to_string(), Some(GREY)),
        Change::Changed if worse(e) => (RED, false, note(e), None),
        Change::Changed => (ORANGE, false, note(e), None),
        Change::Unchanged => (MUTED, false, String::new(), Some(GREY)),
    };
    export::Look {
        color: Some(color),
        fill: None,
        dashed,
        note,
        font,
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
