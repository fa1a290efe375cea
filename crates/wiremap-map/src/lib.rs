//! Entries in, service map out.
//!
//! [`MapBuilder`] folds entries into nodes and edges at a chosen [`Level`]: an edge is keyed
//! by (source node, target node, protocol), directed client → server, and carries request,
//! response and error counts, bytes each way, a mergeable latency [`Sketch`] and first/last
//! seen. Node ids are stable strings (`dns:api.stripe.com`, `ip:203.0.113.7`,
//! `workload:shop/deployment/cart`) so that a UI keeps positions across updates. The result,
//! [`ServiceMap`], serialises to the normative JSON of DESIGN §5 and exports to Graphviz DOT
//! and Mermaid. [`MapDiff`] compares two maps of the same level (two windows, two captures).
#![deny(clippy::unwrap_used)]

mod builder;
mod diff;
mod export;
mod sketch;

pub use builder::{MapBuilder, Rollup, DEFAULT_MAX_EDGES, DEFAULT_MAX_NODES, MAX_EDGE_NODES};
pub use diff::{
    edge_why, Change, Counts, DiffError, DiffSummary, EdgeDelta, EdgeDiff, EdgeMetrics, MapDiff,
    NodeDelta, NodeDiff, NodeTotals, Thresholds, TopChange, TOP_CHANGES,
};

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
pub use sketch::Sketch;
/// Whole-run counters shown with a map (kept here for callers that name it by this crate).
pub use wiremap_model::Stats;
use wiremap_model::{Endpoint, IdentityKind, Protocol, Timestamp};

/// How far nodes are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// One node per pod.
    Pod,
    /// Pods grouped by owning workload (the default).
    #[default]
    Workload,
    /// Pods grouped by the services that select them.
    Service,
    /// One node per namespace.
    Namespace,
    /// One node per address; nothing merged.
    Ip,
}

impl Level {
    /// Parses `pod`, `workload`, `service`, `namespace`, `ip`.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "pod" => Level::Pod,
            "workload" => Level::Workload,
            "service" => Level::Service,
            "namespace" => Level::Namespace,
            "ip" => Level::Ip,
            _ => return None,
        })
    }

    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Pod => "pod",
            Level::Workload => "workload",
            Level::Service => "service",
            Level::Namespace => "namespace",
            Level::Ip => "ip",
        }
    }
}

/// A node of the map.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `pod workload service namespace node dns zone ip`.
    pub kind: &'static str,
    /// Namespace, when in a cluster.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Addresses seen for this node (at most [`MAX_ADDRESSES`]).
    pub addresses: Vec<String>,
    /// Outside the cluster and the user's zones.
    pub external: bool,
    /// Requests this node sent.
    pub requests_out: u64,
    /// Requests this node received.
    pub requests_in: u64,
    /// For an "other" node: how many endpoints folded into it, each counted when first met
    /// (an endpoint no longer remembered, or met under another identity pointer, counts
    /// again); absent otherwise.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Bytes of an edge, each way.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Bytes {
    /// Client → server.
    pub request: u64,
    /// Server → client.
    pub response: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// An edge of the map: client → server over one protocol.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Edge {
    /// Client node id.
    pub source: String,
    /// Server node id.
    pub target: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Requests (entries).
    pub requests: u64,
    /// Responses seen.
    pub responses: u64,
    /// Failed exchanges (server or connection errors: see `Entry::error`).
    pub errors: u64,
    /// HTTP 4xx answers (`Entry::client_error`), not counted in `errors`.
    pub client_errors: u64,
    /// Bytes each way.
    pub bytes: Bytes,
    /// Latency percentiles over the answered requests only; all 0 when `responses` is 0
    /// (`requests - responses` went unanswered: exports say "no response", never "0 µs").
    pub latency_us: Latency,
    /// First request.
    pub first_seen: Timestamp,
    /// Last request.
    pub last_seen: Timestamp,
    /// Capture nodes that saw it (`node_name` of its entries; absent when none is known).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// The time window a map covers.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub from: Option<Timestamp>,
    /// End.
    pub to: Option<Timestamp>,
}

/// A finished map (DESIGN §5 JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceMap {
    /// Format version.
    pub version: u32,
    /// Level.
    pub level: &'static str,
    /// Window.
    pub window: Window,
    /// Nodes, by id.
    pub nodes: Vec<Node>,
    /// Edges, by (source, target, protocol).
    pub edges: Vec<Edge>,
    /// Counters.
    pub stats: Stats,
}

/// Addresses listed per node.
pub const MAX_ADDRESSES: usize = 64;

pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_unspecified()
                || a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80
        }
    }
}

/// The node an endpoint belongs to at `level`: (id, name, kind, namespace).
/// The id of the node an endpoint belongs to at `level` (what a map's edges refer to).
pub fn node_id(level: Level, ep: &Endpoint) -> String {
    node_of(level, ep).0
}

pub(crate) fn node_of(level: Level, ep: &Endpoint) -> (String, String, &'static str, String) {
    let ip = ep.ip.to_string();
    if level == Level::Ip {
        return (format!("ip:{ip}"), ip, "ip", String::new());
    }
    let id = ep.identity();
    let ns = id.namespace.clone();
    match id.kind {
        IdentityKind::Pod => match level {
            Level::Pod => (format!("pod:{ns}/{}", id.pod), id.pod.clone(), "pod", ns),
            Level::Namespace => (format!("namespace:{ns}"), ns.clone(), "namespace", ns),
            Level::Service if !id.service.is_empty() => (
                format!("service:{ns}/{}", id.service),
                id.service.clone(),
                "service",
                ns,
            ),
            _ if !id.workload_name.is_empty() => (
                format!("workload:{ns}/{}/{}", id.workload_kind, id.workload_name),
                id.workload_name.clone(),
                "workload",
                ns,
            ),
            _ => (format!("pod:{ns}/{}", id.pod), id.pod.clone(), "pod", ns),
        },
        IdentityKind::Service => match level {
            Level::Namespace => (format!("namespace:{ns}"), ns.clone(), "namespace", ns),
            _ => (
                format!("service:{ns}/{}", id.service),
                id.service.clone(),
                "service",
                ns,
            ),
        },
        IdentityKind::Node => (
            format!("node:{}", id.node),
            id.node.clone(),
            "node",
            String::new(),
        ),
        IdentityKind::Dns | IdentityKind::Hint => (
            format!("dns:{}", id.name),
            id.name.clone(),
            "dns",
            String::new(),
        ),
        IdentityKind::Zone => (
            format!("zone:{}", id.zone),
            id.zone.clone(),
            "zone",
            String::new(),
        ),
        IdentityKind::Ip => (format!("ip:{ip}"), ip, "ip", String::new()),
    }
}

impl ServiceMap {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        export::dot(self)
    }

    /// Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        export::mermaid(self)
    }

    /// GraphML (yEd, Gephi, networkx).
    pub fn to_graphml(&self) -> String {
        export::graphml(self)
    }

    /// A static SVG picture (the UI draws the interactive one).
    pub fn to_svg(&self) -> String {
        export::svg(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wiremap_model::{Detail, Entry, Identity, Transport};

    use super::*;

    fn entry(src: &str, dst: &str, dst_name: Option<&str>, status: i64, lat: i64) -> Entry {
        let mut d = Endpoint::new(dst.parse().expect("ip"), 443);
        d.identity = dst_name.map(|n| {
            Arc::new(Identity {
                kind: IdentityKind::Dns,
                name: n.into(),
                dns: n.into(),
                ..Identity::default()
            })
        });
        Entry {
            id: 0,
            stream: 1,
            index: 0,
            timestamp: Timestamp(lat * 1000),
            elapsed_time: lat,
            protocol: Protocol::Http,
            transport: Transport::Tcp,
            src: Endpoint::new(src.parse().expect("ip"), 5555),
            dst: d,
            request_size: 10,
            response_size: 100,
            has_response: true,
            status_code: status,
            error: status >= 500,
            node_name: String::new(),
            seen_by: Vec::new(),
            client_isn: None,
            detail: Detail::None,
        }
    }

    #[test]
    fn dns_named_servers_merge_and_ip_level_does_not() {
        let es = [
            entry("10.0.0.1", "93.184.216.34", Some("example.com"), 200, 100),
            entry("10.0.0.1", "93.184.216.35", Some("example.com"), 503, 300),
        ];
        let mut m = MapBuilder::new(Level::Workload);
        let mut ip = MapBuilder::new(Level::Ip);
        for e in &es {
            m.add(e);
            ip.add(e);
        }
        let m = m.build(Stats::default());
        assert_eq!(m.edges.len(), 1);
        let e = &m.edges[0];
        assert_eq!(
            (e.source.as_str(), e.target.as_str()),
            ("ip:10.0.0.1", "dns:example.com")
        );
        assert_eq!((e.requests, e.responses, e.errors), (2, 2, 1));
        assert_eq!(
            e.bytes,
            Bytes {
                request: 20,
                response: 200
            }
        );
        let dst = m
            .nodes
            .iter()
            .find(|n| n.id == "dns:example.com")
            .expect("node");
        assert_eq!(dst.addresses, vec!["93.184.216.34", "93.184.216.35"]);
        assert!(dst.external);
        assert_eq!(ip.build(Stats::default()).edges.len(), 2);
    }

    #[test]
    fn a_flood_folds_into_other_nodes_and_is_counted() {
        // 1,000 spoofed clients of one server, a map that keeps 10 nodes and 5 edges.
        let mut m = MapBuilder::with_limits(Level::Workload, 10, 5);
        for i in 0..1000u32 {
            let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            m.add(&entry(&src, "93.184.216.34", Some("example.com"), 200, 10));
        }
        let map = m.build(Stats::default());
        let others: Vec<_> = map.nodes.iter().filter(|n| n.kind == "other").collect();
        assert_eq!(others.len(), 1, "{:?}", map.nodes);
        assert_eq!(others[0].id, "other:internal");
        assert!(map
            .edges
            .iter()
            .any(|e| e.source == "other:internal" && e.target == "dns:example.com"));
        assert!(map.nodes.len() <= 11);
        assert!(map.edges.len() <= 6, "{}", map.edges.len());
        let total: u64 = map.edges.iter().map(|e| e.requests).sum();
        let folded = map.stats.dropped["map_entries_folded"];
        assert_eq!(total, 1000, "every entry is on some edge");
        // 9 clients kept their node (the server is the 10th); of those, 5 edges fit.
        assert_eq!(folded, 1000 - 5);
        assert_eq!(others[0].folded, 1000 - 9);
        assert!(!map.stats.dropped.contains_key("map_entries_dropped"));
    }

    #[test]
    fn other_edges_have_bounded_room_too() {
        // Each entry between two new namespaces' pods: past the budget, their "other" edges
        // fill the extra room and the rest are dropped and counted.
        let mut m = MapBuilder::with_limits(Level::Pod, 4, 2);
        for i in 0..200u32 {
            let mut e = entry("10.0.0.1", "10.0.0.2", None, 200, 10);
            for (ep, side) in [(&mut e.src, "a"), (&mut e.dst, "b")] {
                ep.identity = Some(Arc::new(Identity {
                    kind: IdentityKind::Pod,
                    namespace: format!("ns{side}{i}"),
                    pod: format!("p{i}"),
                    ..Identity::default()
                }));
            }
            m.add(&e);
        }
        let map = m.build(Stats::default());
        assert!(map.edges.len() <= 2 + 16, "{}", map.edges.len());
        let mapped: u64 = map.edges.iter().map(|e| e.requests).sum();
        let dropped = map.stats.dropped["map_entries_dropped"];
        assert_eq!(mapped + dropped, 200);
        assert!(dropped > 0);
    }

    #[test]
    fn rollups_fold_like_their_entries() {
        let mut es = Vec::new();
        for (i, (src, dst, name, status, lat, node)) in [
            (
                "10.0.0.1",
                "93.184.216.34",
                Some("example.com"),
                200,
                100,
                "w1",
            ),
            (
                "10.0.0.1",
                "93.184.216.35",
                Some("example.com"),
                503,
                0,
                "w1",
            ),
            ("10.0.0.1", "93.184.216.35", Some("example.com"), 0, 7, "w2"),
            (
                "10.0.0.1",
                "93.184.216.35",
                Some("example.com"),
                404,
                9,
                "w2",
            ),
            ("10.0.0.2", "10.0.0.3", None, 200, 123_456, ""),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = entry(src, dst, name, status, lat);
            e.timestamp = Timestamp(i as i64 * 1_000);
            e.has_response = status != 0;
            e.node_name = node.into();
            es.push(e);
        }
        for level in [Level::Ip, Level::Workload] {
            let mut by_entry = MapBuilder::new(level);
            let mut by_rollup = MapBuilder::new(level);
            // One rollup per (endpoints, protocol, node), as a store keeps them.
            let mut rollups: Vec<Rollup> = Vec::new();
            for e in &es {
                by_entry.add(e);
                let pos = rollups
                    .iter()
                    .position(|r| r.src == e.src && r.dst == e.dst && r.node_name == e.node_name);
                let r = match pos {
                    Some(p) => &mut rollups[p],
                    None => {
                        rollups.push(Rollup {
                            src: e.src.clone(),
                            dst: e.dst.clone(),
                            protocol: e.protocol,
                            node_name: e.node_name.clone(),
                            seen_by: e.seen_by.clone(),
                            requests: 0,
                            responses: 0,
                            errors: 0,
                            client_errors: 0,
                            bytes: Bytes::default(),
                            latency: Sketch::default(),
                            first: e.timestamp,
                            last: e.timestamp,
                        });
                        rollups.last_mut().expect("pushed")
                    }
                };
                r.requests += 1;
                r.responses += u64::from(e.has_response);
                r.errors += u64::from(e.error);
                r.client_errors += u64::from(e.client_error());
                r.bytes.request += e.request_size;
                r.bytes.response += e.response_size;
                if e.has_response {
                    r.latency.add(e.elapsed_time as u64);
                }
                r.last = e.timestamp;
            }
            for r in &rollups {
                by_rollup.add_rollup(r);
            }
            let a = by_entry.build(Stats::default());
            let b = by_rollup.build(Stats::default());
            assert!(!a.edges.is_empty());
            assert_eq!(a.to_json(), b.to_json());
        }
    }

    #[test]
    fn client_errors_count_apart_and_unanswered_requests_have_no_latency() {
        // (status, answered, latency, protocol): what each entry is, and what it must add.
        let cases = [
            (200, true, 1_000, Protocol::Http),
            (404, true, 2_000, Protocol::Http),
            (499, true, 2_000, Protocol::Gql),
            (400, true, 2_000, Protocol::Http),
            (500, true, 3_000, Protocol::Http),
            (503, true, 3_000, Protocol::Http),
            // A gRPC status is no HTTP status, a DNS rcode neither.
            (5, true, 1_000, Protocol::Grpc),
            (3, true, 1_000, Protocol::Dns),
            // Unanswered: status 0, and their latency (0) must not reach the percentiles
            // (they outnumber the answers, so counted in they would make the median 0).
            (0, false, 0, Protocol::Http),
            (0, false, 0, Protocol::Http),
            (0, false, 0, Protocol::Http),
            (0, false, 0, Protocol::Http),
            (0, false, 0, Protocol::Http),
            (0, false, 0, Protocol::Http),
        ];
        let mut m = MapBuilder::new(Level::Ip);
        let (mut want_client, mut want_errors) = (BTreeMap::new(), BTreeMap::new());
        for (status, answered, lat, p) in cases {
            let mut e = entry("10.0.0.1", "10.0.0.2", None, status, lat);
            e.protocol = p;
            e.has_response = answered;
            e.error = match p {
                Protocol::Http | Protocol::Gql => status >= 500,
                _ => status != 0,
            };
            *want_client.entry(p).or_insert(0u64) +=
                u64::from(matches!(p, Protocol::Http | Protocol::Gql) && status / 100 == 4);
            *want_errors.entry(p).or_insert(0u64) += u64::from(e.error);
            m.add(&e);
        }
        let map = m.build(Stats::default());
        for e in &map.edges {
            assert_eq!(e.client_errors, want_client[&e.protocol], "{e:?}");
            assert_eq!(e.errors, want_errors[&e.protocol], "{e:?}");
        }
        let http = map
            .edges
            .iter()
            .find(|e| e.protocol == Protocol::Http)
            .expect("http edge");
        assert_eq!((http.requests, http.responses), (11, 5));
        // Five answers of at least 1 ms: no percentile may be near 0.
        assert!(http.latency_us.p50 >= 980, "{:?}", http.latency_us);
        let dot = map.to_dot();
        assert!(dot.contains("http 11 err 2 4xx 2 6 no response"), "{dot}");
        assert!(map
            .to_graphml()
            .contains("<data key=\"client_errors\">2</data>"));

        // An edge with no answer at all says so, and GraphML gives it no latency.
        let mut m = MapBuilder::new(Level::Ip);
        let mut e = entry("10.0.0.1", "10.0.0.2", None, 0, 0);
        e.has_response = false;
        m.add(&e);
        let map = m.build(Stats::default());
        assert!(map.to_mermaid().contains("http 1 no response"));
        assert!(!map.to_graphml().contains("key=\"p50\">"));
        let json: serde_json::Value = serde_json::from_str(&map.to_json()).expect("json");
        assert_eq!(json["edges"][0]["client_errors"], 0);
        assert_eq!(json["edges"][0]["responses"], 0);
    }

    #[test]
    fn edges_list_the_capture_nodes_that_saw_them() {
        let mut m = MapBuilder::new(Level::Ip);
        for node in ["worker-2", "worker-1", "worker-2", ""] {
            let mut e = entry("10.0.0.1", "10.0.0.2", None, 200, 10);
            e.node_name = node.to_string();
            m.add(&e);
        }
        let mut other = entry("10.0.0.3", "10.0.0.2", None, 200, 10);
        other.node_name = String::new();
        m.add(&other);
        let map = m.build(Stats::default());
        let by_src = |s: &str| map.edges.iter().find(|e| e.source == s).expect("edge");
        assert_eq!(by_src("ip:10.0.0.1").nodes, ["worker-1", "worker-2"]);
        assert!(by_src("ip:10.0.0.3").nodes.is_empty());
        let json = serde_json::to_string(&map).expect("json");
        assert_eq!(json.matches("\"nodes\":[\"worker-1\"").count(), 1);
    }
}
