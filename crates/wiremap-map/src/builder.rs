//! [`MapBuilder`]: entries folded into nodes and edges, within a node and an edge budget.
//!
//! Why a budget: node ids come from traffic, so a spoofed SYN flood names a node per source
//! address, and a map nobody can load is no map. Past `max_nodes`, a new node folds into an
//! "other" node of its namespace (or `other:external` / `other:internal` for bare addresses
//! and DNS names); past `max_edges`, a new edge folds into the edge between its ends' "other"
//! nodes. The busiest nodes come first in any real traffic, so they keep their names. What
//! folded is counted: per "other" node (`folded`), and in the map's `stats.dropped`
//! (`map_entries_folded`, `map_entries_dropped` once even the "other" edges are full).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rustc_hash::FxHashMap as HashMap;
use wiremap_model::{DropReason, Endpoint, Entry, IdentityPtr, Protocol, Timestamp};

use crate::{
    is_internal, node_of, Bytes, Edge, Latency, Level, Node, ServiceMap, Sketch, Stats, Window,
    MAX_ADDRESSES,
};

/// Nodes a map holds by default before the rest fold into "other" nodes.
pub const DEFAULT_MAX_NODES: usize = 10_000;
/// Edges a map holds by default before the rest fold into edges between "other" nodes.
pub const DEFAULT_MAX_EDGES: usize = 50_000;
/// Capture nodes listed per edge.
pub const MAX_EDGE_NODES: usize = 16;
/// Endpoints remembered per node of the budget (about 40 bytes each).
const SEEN_PER_NODE: usize = 16;
/// Marks a remembered endpoint that was folded into an "other" node.
const FOLDED: u32 = 1 << 31;

#[derive(Debug, Clone)]
struct NodeAgg {
    /// Endpoints folded into this ("other") node.
    folded: u64,
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
    /// Capture nodes that saw the edge (at most [`MAX_EDGE_NODES`]).
    nodes: BTreeSet<String>,
    requests: u64,
    responses: u64,
    errors: u64,
    client_errors: u64,
    bytes: Bytes,
    latency: Sketch,
    first: Timestamp,
    last: Timestamp,
}

/// What one entry or rollup adds to an edge.
struct Counts<'a> {
    requests: u64,
    responses: u64,
    errors: u64,
    client_errors: u64,
    bytes: Bytes,
    latency: Sample<'a>,
    first: Timestamp,
    last: Timestamp,
}

/// The latency an addition brings.
#[derive(Clone, Copy)]
enum Sample<'a> {
    None,
    /// One entry's.
    One(u64),
    /// A rollup's.
    Many(&'a Sketch),
}

/// Exchanges between two endpoints over one protocol seen by one capture node, aggregated:
/// what a store keeps per minute (ClickHouse's edge rollups). [`MapBuilder::add_rollup`]
/// folds it exactly as it would fold the entries it sums up.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    /// Client (its port is not used).
    pub src: Endpoint,
    /// Server (its port is not used).
    pub dst: Endpoint,
    /// Protocol.
    pub protocol: Protocol,
    /// Capture node (`""` when unknown).
    pub node_name: String,
    /// Other capture nodes that saw some of these exchanges (evidence: see `Entry::seen_by`).
    pub seen_by: Vec<String>,
    /// Entries.
    pub requests: u64,
    /// Entries with a response.
    pub responses: u64,
    /// Failed entries.
    pub errors: u64,
    /// Entries answered with an HTTP 4xx.
    pub client_errors: u64,
    /// Bytes each way.
    pub bytes: Bytes,
    /// Latency of the entries with a response.
    pub latency: Sketch,
    /// Earliest entry.
    pub first: Timestamp,
    /// Latest entry.
    pub last: Timestamp,
}

impl Rollup {
    /// The rollup of one entry: adding it folds the map exactly as adding the entry does.
    pub fn from_entry(e: &Entry) -> Rollup {
        let mut latency = Sketch::default();
        if e.has_response {
            latency.add(e.elapsed_time.max(0) as u64);
        }
        Rollup {
            src: e.src.clone(),
            dst: e.dst.clone(),
            protocol: e.protocol,
            node_name: e.node_name.clone(),
            seen_by: e.seen_by.clone(),
            requests: 1,
            responses: u64::from(e.has_response),
            errors: u64::from(e.error),
            client_errors: u64::from(e.client_error()),
            bytes: Bytes {
                request: e.request_size,
                response: e.response_size,
            },
            latency,
            first: e.timestamp,
            last: e.timestamp,
        }
    }
}

/// Folds entries into a map.
#[derive(Debug)]
pub struct MapBuilder {
    level: Level,
    /// Nodes in order of first sight, with their ids.
    nodes: Vec<(String, NodeAgg)>,
    ids: HashMap<String, u32>,
    /// An endpoint seen before goes straight to its node: no id to format, no string to hash.
    seen: HashMap<(IpAddr, IdentityPtr), u32>,
    edges: HashMap<(u32, u32, Protocol), EdgeAgg>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    max_nodes: usize,
    max_edges: usize,
    /// "Other" nodes made past `max_nodes` (they do not count against it).
    others: usize,
    /// The "other" node of each namespace, and of internal / external addresses.
    other_ns: HashMap<String, u32>,
    other_plain: [Option<u32>; 2],
    /// Entries with an end or an edge folded into an "other" node.
    folded_entries: u64,
    /// Entries not mapped at all: even their "other" edge had no room.
    dropped_entries: u64,
}

impl Default for MapBuilder {
    fn default() -> Self {
        MapBuilder::new(Level::default())
    }
}

impl MapBuilder {
    /// An empty map at `level`, within [`DEFAULT_MAX_NODES`] and [`DEFAULT_MAX_EDGES`].
    pub fn new(level: Level) -> Self {
        MapBuilder::with_limits(level, DEFAULT_MAX_NODES, DEFAULT_MAX_EDGES)
    }

    /// An empty map at `level` holding at most `max_nodes` named nodes and `max_edges` edges
    /// (plus the "other" nodes and edges the rest fold into).
    pub fn with_limits(level: Level, max_nodes: usize, max_edges: usize) -> Self {
        MapBuilder {
            level,
            nodes: Vec::new(),
            ids: HashMap::default(),
            seen: HashMap::default(),
            edges: HashMap::default(),
            from: None,
            to: None,
            max_nodes: max_nodes.max(1),
            max_edges: max_edges.max(1),
            others: 0,
            other_ns: HashMap::default(),
            other_plain: [None; 2],
            folded_entries: 0,
            dropped_entries: 0,
        }
    }

    /// The node of `ep`, and whether it was folded into an "other" node.
    fn node(&mut self, ep: &Endpoint) -> (u32, bool) {
        let key = (ep.ip, IdentityPtr(ep.identity.clone()));
        if let Some(&v) = self.seen.get(&key) {
            return (v & !FOLDED, v & FOLDED != 0);
        }
        let (id, name, kind, namespace) = node_of(self.level, ep);
        let (i, folded) = match self.ids.get(&id) {
            Some(&i) => (i, false),
            None if self.nodes.len() - self.others >= self.max_nodes => {
                let external = matches!(kind, "dns" | "ip") && !is_internal(ep.ip);
                let o = self.other(&namespace, external);
                if let Some((_, n)) = self.nodes.get_mut(o as usize) {
                    n.folded += 1;
                }
                self.remember(key, o | FOLDED);
                return (o, true);
            }
            None => {
                let identity = ep.identity();
                let agg = NodeAgg {
                    folded: 0,
                    name,
                    kind,
                    namespace,
                    labels: identity.labels.clone(),
                    addresses: BTreeSet::new(),
                    external: matches!(kind, "dns" | "ip") && !is_internal(ep.ip),
                    out: 0,
                    inn: 0,
                };
                (self.push(id, agg), false)
            }
        };
        if let Some((_, n)) = self.nodes.get_mut(i as usize) {
            if n.addresses.len() < MAX_ADDRESSES {
                n.addresses.insert(ep.ip);
            }
        }
        self.remember(key, i);
        (i, folded)
    }

    /// Remembers where an endpoint went. One node can have many addresses (a DNS name, a
    /// namespace) and a flood many folded ones: the shortcut map is bounded too, past which
    /// endpoints are looked up by id.
    fn remember(&mut self, key: (IpAddr, IdentityPtr), v: u32) {
        if self.seen.len() < SEEN_PER_NODE * self.max_nodes {
            self.seen.insert(key, v);
        }
    }

    fn push(&mut self, id: String, agg: NodeAgg) -> u32 {
        let i = self.nodes.len() as u32;
        self.nodes.push((id.clone(), agg));
        self.ids.insert(id, i);
        i
    }

    /// The "other" node that folded nodes of `namespace` (or outside any) go to.
    fn other(&mut self, namespace: &str, external: bool) -> u32 {
        let known = if !namespace.is_empty() {
            self.other_ns.get(namespace).copied()
        } else {
            self.other_plain[usize::from(external)]
        };
        if let Some(i) = known {
            return i;
        }
        let (id, name) = if !namespace.is_empty() {
            (
                format!("other:{namespace}"),
                format!("other in {namespace}"),
            )
        } else if external {
            ("other:external".to_string(), "other external".to_string())
        } else {
            ("other:internal".to_string(), "other internal".to_string())
        };
        if let Some(&i) = self.ids.get(&id) {
            return i;
        }
        self.others += 1;
        let agg = NodeAgg {
            folded: 0,
            name,
            kind: "other",
            namespace: namespace.to_string(),
            labels: Default::default(),
            addresses: BTreeSet::new(),
            external,
            out: 0,
            inn: 0,
        };
        let i = self.push(id, agg);
        if namespace.is_empty() {
            self.other_plain[usize::from(external)] = Some(i);
        } else {
            self.other_ns.insert(namespace.to_string(), i);
        }
        i
    }

    /// The "other" node a node folds into when its edges have no room.
    fn other_of(&mut self, i: u32) -> u32 {
        let Some((_, n)) = self.nodes.get(i as usize) else {
            return i;
        };
        if n.kind == "other" {
            return i;
        }
        let (ns, ext) = (n.namespace.clone(), n.external);
        self.other(&ns, ext)
    }

    /// Adds one entry.
    pub fn add(&mut self, e: &Entry) {
        self.fold(
            &e.src,
            &e.dst,
            e.protocol,
            (&e.node_name, &e.seen_by),
            Counts {
                requests: 1,
                responses: u64::from(e.has_response),
                errors: u64::from(e.error),
                client_errors: u64::from(e.client_error()),
                bytes: Bytes {
                    request: e.request_size,
                    response: e.response_size,
                },
                latency: if e.has_response {
                    Sample::One(e.elapsed_time.max(0) as u64)
                } else {
                    Sample::None
                },
                first: e.timestamp,
                last: e.timestamp,
            },
        );
    }

    /// Adds the aggregate of many entries between two endpoints (a store's rollup): the
    /// same map as adding each of them, in the order of their first timestamps.
    pub fn add_rollup(&mut self, r: &Rollup) {
        if r.requests == 0 {
            return;
        }
        self.fold(
            &r.src,
            &r.dst,
            r.protocol,
            (&r.node_name, &r.seen_by),
            Counts {
                requests: r.requests,
                responses: r.responses,
                errors: r.errors,
                client_errors: r.client_errors,
                bytes: r.bytes,
                latency: Sample::Many(&r.latency),
                first: r.first,
                last: r.last,
            },
        );
    }

    /// Folds `c` into the edge between `src` and `dst`; `node` and `also` are the capture
    /// nodes that saw it (the one it counts under, and the evidence of others).
    // Sums saturate: rollups may come from a store file, whose counts are not ours to trust.
    fn fold(
        &mut self,
        src: &Endpoint,
        dst: &Endpoint,
        p: Protocol,
        (node, also): (&str, &[String]),
        c: Counts<'_>,
    ) {
        let (mut src, fs) = self.node(src);
        let (mut dst, fd) = self.node(dst);
        let mut folded = fs || fd;
        if !self.edges.contains_key(&(src, dst, p)) && self.edges.len() >= self.max_edges {
            // Fold the client side first (a server with many clients keeps its name), then
            // the server side, then both; an edge that exists is taken, else the first is
            // made while "other" edges have room (a tenth more); past that, nothing.
            let (os, od) = (self.other_of(src), self.other_of(dst));
            let tries = [(os, dst), (src, od), (os, od)];
            let pick = tries
                .iter()
                .find(|(s, d)| self.edges.contains_key(&(*s, *d, p)))
                .copied()
                .or_else(|| {
                    (self.edges.len() < self.max_edges + self.max_edges / 10 + 16)
                        .then_some(tries[0])
                });
            let Some((s, d)) = pick else {
                self.dropped_entries = self.dropped_entries.saturating_add(c.requests);
                return;
            };
            (src, dst) = (s, d);
            folded = true;
        }
        if folded {
            self.folded_entries = self.folded_entries.saturating_add(c.requests);
        }
        if let Some((_, n)) = self.nodes.get_mut(src as usize) {
            n.out = n.out.saturating_add(c.requests);
        }
        if let Some((_, n)) = self.nodes.get_mut(dst as usize) {
            n.inn = n.inn.saturating_add(c.requests);
        }
        self.from = Some(self.from.map_or(c.first, |f| f.min(c.first)));
        self.to = Some(self.to.map_or(c.last, |t| t.max(c.last)));
        let edge = self.edges.entry((src, dst, p)).or_insert_with(|| EdgeAgg {
            nodes: BTreeSet::new(),
            requests: 0,
            responses: 0,
            errors: 0,
            client_errors: 0,
            bytes: Bytes::default(),
            latency: Sketch::default(),
            first: c.first,
            last: c.last,
        });
        edge.requests = edge.requests.saturating_add(c.requests);
        for n in std::iter::once(node).chain(also.iter().map(String::as_str)) {
            if !n.is_empty() && edge.nodes.len() < MAX_EDGE_NODES && !edge.nodes.contains(n) {
                edge.nodes.insert(n.to_string());
            }
        }
        edge.responses = edge.responses.saturating_add(c.responses);
        match c.latency {
            Sample::None => {}
            Sample::One(v) => edge.latency.add(v),
            Sample::Many(l) => edge.latency.merge(l),
        }
        edge.errors = edge.errors.saturating_add(c.errors);
        edge.client_errors = edge.client_errors.saturating_add(c.client_errors);
        edge.bytes.request = edge.bytes.request.saturating_add(c.bytes.request);
        edge.bytes.response = edge.bytes.response.saturating_add(c.bytes.response);
        edge.first = edge.first.min(c.first);
        edge.last = edge.last.max(c.last);
    }

    /// The map so far; what folded is added to `stats.dropped`.
    pub fn build(&self, mut stats: Stats) -> ServiceMap {
        for (k, v) in [
            (DropReason::MapEntriesFolded, self.folded_entries),
            (DropReason::MapEntriesDropped, self.dropped_entries),
        ] {
            if v > 0 {
                stats.dropped.insert(k.name().to_string(), v);
            }
        }
        let mut nodes: Vec<Node> = self
            .nodes
            .iter()
            // An "other" node made as a fold candidate and never used is no node.
            .filter(|(_, n)| n.kind != "other" || n.out + n.inn + n.folded > 0)
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
                folded: n.folded,
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
                client_errors: e.client_errors,
                bytes: e.bytes,
                latency_us: Latency {
                    p50: e.latency.quantile(0.5),
                    p90: e.latency.quantile(0.9),
                    p99: e.latency.quantile(0.99),
                },
                nodes: e.nodes.iter().cloned().collect(),
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
