//! Entries in, service map out.
//!
//! [`MapBuilder`] folds entries into nodes and edges at a chosen [`Level`]: an edge is keyed
//! by (source node, target node, protocol), directed client → server, and carries request,
//! response and error counts, bytes each way, a mergeable latency [`Sketch`] and first/last
//! seen. Node ids are stable strings (`dns:api.stripe.com`, `ip:203.0.113.7`,
//! `workload:shop/deployment/cart`) so that a UI keeps positions across updates. The result,
//! [`ServiceMap`], serialises to the normative JSON of DESIGN §5 and exports to Graphviz DOT
//! and Mermaid.
#![deny(clippy::unwrap_used)]

mod export;
mod sketch;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
pub use sketch::Sketch;
use wiremap_model::{Endpoint, Entry, IdentityKind, Protocol, Timestamp};

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

/// Whole-run counters shown with a map.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Packets read.
    pub packets: u64,
    /// Bytes of captured packets.
    pub bytes: u64,
    /// Flows seen.
    pub flows: u64,
    /// Entries produced.
    pub entries: u64,
    /// Everything dropped or not understood, by reason.
    pub dropped: BTreeMap<String, u64>,
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
    /// Failed exchanges.
    pub errors: u64,
    /// Bytes each way.
    pub bytes: Bytes,
    /// Latency percentiles.
    pub latency_us: Latency,
    /// First request.
    pub first_seen: Timestamp,
    /// Last request.
    pub last_seen: Timestamp,
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

#[derive(Debug, Clone)]
struct NodeAgg {
    name: String,
    kind: &'static str,
    namespace: String,
    labels: BTreeMap<String, String>,
    addresses: BTreeSet<IpAddr>,
    external: bool,
    out: u64,
    inn: u64,
}

#[derive(Debug, Clone)]
struct EdgeAgg {
    requests: u64,
    responses: u64,
    errors: u64,
    bytes: Bytes,
    latency: Sketch,
    first: Timestamp,
    last: Timestamp,
}

fn is_internal(ip: IpAddr) -> bool {
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

fn node_of(level: Level, ep: &Endpoint) -> (String, String, &'static str, String) {
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

/// An endpoint's identity compared by address: the same `Arc` is the same identity. Holding
/// the `Arc` keeps its address from being reused.
#[derive(Debug, Clone)]
struct IdentityRef(Option<std::sync::Arc<wiremap_model::Identity>>);

impl PartialEq for IdentityRef {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for IdentityRef {}

impl std::hash::Hash for IdentityRef {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0
            .as_ref()
            .map_or(0, |a| std::sync::Arc::as_ptr(a) as usize)
            .hash(h);
    }
}

/// Folds entries into a map.
#[derive(Debug, Default)]
pub struct MapBuilder {
    level: Level,
    /// Nodes in order of first sight, with their ids.
    nodes: Vec<(String, NodeAgg)>,
    ids: HashMap<String, u32>,
    /// An endpoint seen before goes straight to its node: no id to format, no string to hash.
    seen: HashMap<(std::net::IpAddr, IdentityRef), u32>,
    edges: HashMap<(u32, u32, Protocol), EdgeAgg>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl MapBuilder {
    /// An empty map at `level`.
    pub fn new(level: Level) -> Self {
        MapBuilder {
            level,
            ..MapBuilder::default()
        }
    }

    fn node(&mut self, ep: &Endpoint) -> u32 {
        let key = (ep.ip, IdentityRef(ep.identity.clone()));
        if let Some(&i) = self.seen.get(&key) {
            return i;
        }
        let (id, name, kind, namespace) = node_of(self.level, ep);
        let i = match self.ids.get(&id) {
            Some(&i) => i,
            None => {
                let i = self.nodes.len() as u32;
                let identity = ep.identity();
                self.nodes.push((
                    id.clone(),
                    NodeAgg {
                        name,
                        kind,
                        namespace,
                        labels: identity.labels.clone(),
                        addresses: BTreeSet::new(),
                        external: matches!(kind, "dns" | "ip") && !is_internal(ep.ip),
                        out: 0,
                        inn: 0,
                    },
                ));
                self.ids.insert(id, i);
                i
            }
        };
        if let Some((_, n)) = self.nodes.get_mut(i as usize) {
            if n.addresses.len() < MAX_ADDRESSES {
                n.addresses.insert(ep.ip);
            }
        }
        self.seen.insert(key, i);
        i
    }

    /// Adds one entry.
    pub fn add(&mut self, e: &Entry) {
        let src = self.node(&e.src);
        let dst = self.node(&e.dst);
        if let Some((_, n)) = self.nodes.get_mut(src as usize) {
            n.out += 1;
        }
        if let Some((_, n)) = self.nodes.get_mut(dst as usize) {
            n.inn += 1;
        }
        self.from = Some(self.from.map_or(e.timestamp, |f| f.min(e.timestamp)));
        self.to = Some(self.to.map_or(e.timestamp, |t| t.max(e.timestamp)));
        let edge = self
            .edges
            .entry((src, dst, e.protocol))
            .or_insert_with(|| EdgeAgg {
                requests: 0,
                responses: 0,
                errors: 0,
                bytes: Bytes::default(),
                latency: Sketch::default(),
                first: e.timestamp,
                last: e.timestamp,
            });
        edge.requests += 1;
        if e.has_response {
            edge.responses += 1;
            edge.latency.add(e.elapsed_time.max(0) as u64);
        }
        if e.error {
            edge.errors += 1;
        }
        edge.bytes.request += e.request_size;
        edge.bytes.response += e.response_size;
        edge.first = edge.first.min(e.timestamp);
        edge.last = edge.last.max(e.timestamp);
    }

    /// The map so far.
    pub fn build(&self, stats: Stats) -> ServiceMap {
        let mut nodes: Vec<Node> = self
            .nodes
            .iter()
            .map(|(id, n)| Node {
                id: id.clone(),
                name: n.name.clone(),
                kind: n.kind,
                namespace: n.namespace.clone(),
                labels: n.labels.clone(),
                addresses: n.addresses.iter().map(|a| a.to_string()).collect(),
                external: n.external,
                requests_out: n.out,
                requests_in: n.inn,
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut edges: Vec<Edge> = self
            .edges
            .iter()
            .map(|((s, t, p), e)| Edge {
                source: self
                    .nodes
                    .get(*s as usize)
                    .map(|n| n.0.clone())
                    .unwrap_or_default(),
                target: self
                    .nodes
                    .get(*t as usize)
                    .map(|n| n.0.clone())
                    .unwrap_or_default(),
                protocol: *p,
                requests: e.requests,
                responses: e.responses,
                errors: e.errors,
                bytes: e.bytes,
                latency_us: Latency {
                    p50: e.latency.quantile(0.5),
                    p90: e.latency.quantile(0.9),
                    p99: e.latency.quantile(0.99),
                },
                first_seen: e.first,
                last_seen: e.last,
            })
            .collect();
        edges.sort_by(|a, b| {
            (&a.source, &a.target, a.protocol).cmp(&(&b.source, &b.target, b.protocol))
        });
        ServiceMap {
            version: 1,
            level: self.level.as_str(),
            window: Window {
                from: self.from,
                to: self.to,
            },
            nodes,
            edges,
            stats,
        }
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

    use wiremap_model::{Detail, Identity, Transport};

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
}
