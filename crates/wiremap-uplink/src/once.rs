//! Counting an exchange once when two agents saw it (the client's node and the server's).
//!
//! Each observation gets a key both observers compute alike: the client's address and port,
//! the protocol, the request's size, and — when the capture saw the handshake — the client's
//! initial sequence number and the entry's index in the connection. Neither the server's
//! address nor the capture time is in the key: DNAT rewrites the one between the nodes, clock
//! skew shifts the other; times only have to agree within a tolerance. The hub holds each
//! named entry for a short window; an observation from another node with the same key merges
//! into it, and the one kept is the server side's (the node the server's identity is on),
//! else the one that saw the response; the other node is kept as evidence in `seen_by`.
//! Keys of released entries are remembered for a while, so a late twin is dropped, not
//! counted (`late_duplicates`). Pure: time comes from the caller.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use wiremap_model::{Entry, Protocol};

/// Most capture nodes listed in an entry's `seen_by`.
pub const MAX_SEEN_BY: usize = 16;

/// Windows and caps.
#[derive(Debug, Clone, Copy)]
pub struct OnceConfig {
    /// How long an entry waits for its twin, ms (hub clock).
    pub hold_ms: u64,
    /// How far apart two observations' capture times may be, ns (node clocks differ).
    pub tolerance_ns: i64,
    /// How long released keys are remembered, ms.
    pub remember_ms: u64,
    /// Most entries held (about 1.4 KB each in memory); past it the oldest go out early.
    pub max_held: usize,
    /// Most keys remembered; past it the oldest are forgotten early.
    pub max_remembered: usize,
}

impl Default for OnceConfig {
    fn default() -> Self {
        OnceConfig {
            hold_ms: 2_000,
            tolerance_ns: 2_000_000_000,
            remember_ms: 60_000,
            max_held: 100_000,
            max_remembered: 1_000_000,
        }
    }
}

/// What the rule did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OnceCounters {
    /// Observations merged into their twin while it was held.
    pub merged: u64,
    /// Observations whose twin had already been released: dropped.
    pub late_duplicates: u64,
    /// Entries released before their window ended (too many held).
    pub released_early: u64,
    /// Keys forgotten before their time (too many remembered).
    pub forgotten_early: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    port: u16,
    protocol: Protocol,
    isn: Option<u32>,
    index: u32,
    request_size: u64,
}

fn key_of(e: &Entry) -> Key {
    Key {
        client: e.src.ip,
        port: e.src.port,
        protocol: e.protocol,
        isn: e.client_isn,
        // Indexes agree only when both observers saw the connection from its start.
        index: if e.client_isn.is_some() { e.index } else { 0 },
        request_size: e.request_size,
    }
}

#[derive(Debug)]
struct Held {
    entry: Entry,
    key: Key,
    due: u64,
}

/// The merger.
#[derive(Debug, Default)]
pub struct Once {
    cfg: OnceConfig,
    held: VecDeque<Option<Held>>,
    /// Sequence number of `held[0]`.
    base: u64,
    live: usize,
    by_key: HashMap<Key, Vec<u64>>,
    /// Released keys: capture time and node of each.
    recent: HashMap<Key, VecDeque<(i64, String)>>,
    /// Release order: when to forget, the key, and how many observations it added.
    order: VecDeque<(u64, Key, usize)>,
    remembered: usize,
    /// What happened.
    pub counters: OnceCounters,
}

fn add_seen(e: &mut Entry, node: &str) {
    if !node.is_empty()
        && node != e.node_name
        && !e.seen_by.iter().any(|n| n == node)
        && e.seen_by.len() < MAX_SEEN_BY
    {
        e.seen_by.push(node.to_string());
    }
}

/// Keeps one of two observations of one exchange, with the other's nodes as evidence.
fn merge(kept: &mut Entry, other: Entry) {
    let server_node = [&kept.dst, &other.dst]
        .iter()
        .filter_map(|d| d.identity.as_ref())
        .map(|i| i.node.clone())
        .find(|n| !n.is_empty());
    let other_wins = match server_node {
        Some(n) if kept.node_name != n => other.node_name == n,
        Some(_) => false,
        None => !kept.has_response && other.has_response,
    };
    let loser = if other_wins {
        std::mem::replace(kept, other)
    } else {
        other
    };
    add_seen(kept, &loser.node_name);
    for n in &loser.seen_by {
        add_seen(kept, n);
    }
}

impl Once {
    /// A merger with these windows and caps.
    pub fn new(cfg: OnceConfig) -> Self {
        Once {
            cfg,
            ..Once::default()
        }
    }

    /// Entries held now.
    pub fn held(&self) -> usize {
        self.live
    }

    /// One named observation, at hub time `now_ms`. Entries that leave early (too many held)
    /// go to `out`.
    pub fn offer(&mut self, e: Entry, now_ms: u64, out: &mut dyn FnMut(Entry)) {
        let key = key_of(&e);
        let tol = self.cfg.tolerance_ns.unsigned_abs();
        let ts = e.timestamp.0;
        if let Some(seqs) = self.by_key.get(&key) {
            let twin = seqs.iter().copied().find(|s| {
                let i = (s - self.base) as usize;
                self.held.get(i).and_then(|h| h.as_ref()).is_some_and(|h| {
                    h.entry.node_name != e.node_name
                        && !h.entry.seen_by.contains(&e.node_name)
                        && h.entry.timestamp.0.abs_diff(ts) <= tol
                })
            });
            if let Some(s) = twin {
                let i = (s - self.base) as usize;
                if let Some(Some(h)) = self.held.get_mut(i) {
                    merge(&mut h.entry, e);
                    self.counters.merged += 1;
                    return;
                }
            }
        }
        if let Some(seen) = self.recent.get(&key) {
            if seen
                .iter()
                .any(|(t, n)| *n != e.node_name && t.abs_diff(ts) <= tol)
            {
                self.counters.late_duplicates += 1;
                return;
            }
        }
        let seq = self.base + self.held.len() as u64;
        self.by_key.entry(key.clone()).or_default().push(seq);
        self.held.push_back(Some(Held {
            entry: e,
            key,
            due: now_ms + self.cfg.hold_ms,
        }));
        self.live += 1;
        while self.live > self.cfg.max_held {
            self.counters.released_early += 1;
            self.pop_front(now_ms, out);
        }
    }

    /// Releases the entries whose window ended by `now_ms`, oldest first.
    pub fn release(&mut self, now_ms: u64, out: &mut dyn FnMut(Entry)) {
        while let Some(front) = self.held.front() {
            match front {
                None => {
                    self.held.pop_front();
                    self.base += 1;
                }
                Some(h) if h.due <= now_ms => self.pop_front(now_ms, out),
                Some(_) => break,
            }
        }
        self.forget(now_ms);
    }

    /// Releases everything held (shutdown).
    pub fn drain(&mut self, now_ms: u64, out: &mut dyn FnMut(Entry)) {
        while !self.held.is_empty() {
            self.pop_front(now_ms, out);
        }
    }

    fn pop_front(&mut self, now_ms: u64, out: &mut dyn FnMut(Entry)) {
        let Some(front) = self.held.pop_front() else {
            return;
        };
        let seq = self.base;
        self.base += 1;
        let Some(h) = front else {
            return;
        };
        self.live -= 1;
        if let Some(v) = self.by_key.get_mut(&h.key) {
            v.retain(|s| *s != seq);
            if v.is_empty() {
                self.by_key.remove(&h.key);
            }
        }
        let ts = h.entry.timestamp.0;
        let seen = self.recent.entry(h.key.clone()).or_default();
        seen.push_back((ts, h.entry.node_name.clone()));
        seen.extend(h.entry.seen_by.iter().map(|n| (ts, n.clone())));
        let n = 1 + h.entry.seen_by.len();
        self.remembered += n;
        self.order
            .push_back((now_ms + self.cfg.remember_ms, h.key, n));
        out(h.entry);
        while self.remembered > self.cfg.max_remembered {
            self.counters.forgotten_early += 1;
            self.forget_front();
        }
    }

    fn forget(&mut self, now_ms: u64) {
        while self.order.front().is_some_and(|(t, _, _)| *t <= now_ms) {
            self.forget_front();
        }
    }

    /// Forgets the oldest released entry's observations (the front of its key's list:
    /// releases of one key are remembered in order).
    fn forget_front(&mut self) {
        let Some((_, key, n)) = self.order.pop_front() else {
            return;
        };
        if let Some(v) = self.recent.get_mut(&key) {
            let n = n.min(v.len());
            v.drain(..n);
            self.remembered -= n;
            if v.is_empty() {
                self.recent.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use wiremap_model::{Detail, Endpoint, Identity, Timestamp, Transport};

    fn obs(node: &str, ts: i64, isn: Option<u32>, server_node: &str) -> Entry {
        let mut dst = Endpoint::new("10.2.0.9".parse().expect("ip"), 80);
        dst.identity = Some(Arc::new(Identity {
            node: server_node.into(),
            ..Identity::default()
        }));
        Entry {
            id: 0,
            stream: 1,
            index: 0,
            timestamp: Timestamp(ts),
            elapsed_time: 10,
            protocol: Protocol::Http,
            transport: Transport::Tcp,
            src: Endpoint::new("10.1.0.2".parse().expect("ip"), 40000),
            dst,
            request_size: 78,
            response_size: 300,
            has_response: true,
            status_code: 200,
            error: false,
            node_name: node.into(),
            seen_by: Vec::new(),
            client_isn: isn,
            detail: Detail::None,
        }
    }

    fn run(once: &mut Once, items: Vec<(u64, Entry)>, end: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        for (t, e) in items {
            once.release(t, &mut |e| out.push(e));
            once.offer(e, t, &mut |e| out.push(e));
        }
        once.release(end, &mut |e| out.push(e));
        out
    }

    #[test]
    fn twins_count_once_and_the_server_side_is_kept() {
        let mut once = Once::new(OnceConfig::default());
        // The client's node reports first; the server's node 300 ms later, clock 1 ms off.
        let out = run(
            &mut once,
            vec![
                (0, obs("node-a", 1_000_000_000, Some(7), "node-b")),
                (300, obs("node-b", 1_001_000_000, Some(7), "node-b")),
            ],
            5_000,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].node_name, "node-b");
        assert_eq!(out[0].seen_by, vec!["node-a".to_string()]);
        assert_eq!(once.counters.merged, 1);
    }

    #[test]
    fn distinct_exchanges_stay_distinct() {
        let mut once = Once::new(OnceConfig::default());
        let mut same_node = obs("node-a", 1_000_000_000, Some(7), "");
        same_node.index = 0;
        let mut second = obs("node-a", 1_000_500_000, Some(7), "");
        second.index = 1;
        let mut other_conn = obs("node-b", 1_000_000_000, Some(8), "");
        other_conn.index = 0;
        let far = obs("node-b", 9_000_000_000, None, "");
        let near = obs("node-c", 1_000_000_000, None, "");
        let out = run(
            &mut once,
            vec![
                (0, same_node),
                (1, second),
                (2, other_conn),
                (3, far),
                (4, near),
            ],
            5_000,
        );
        // Same connection, next exchange; another connection; and two ISN-less observations
        // from two nodes 8 s apart (beyond the tolerance): five exchanges.
        assert_eq!(out.len(), 5, "{out:?}");
        assert_eq!(once.counters.merged, 0);
    }

    #[test]
    fn a_late_twin_is_dropped_not_counted() {
        let mut once = Once::new(OnceConfig::default());
        let out = run(
            &mut once,
            vec![
                (0, obs("node-a", 1_000_000_000, Some(7), "")),
                (2_500, obs("node-b", 1_000_000_000, Some(7), "")),
            ],
            10_000,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(once.counters.late_duplicates, 1);
        // Past the memory window the key is forgotten.
        once.release(100_000, &mut |_| {});
        assert!(once.recent.is_empty() && once.order.is_empty());
        assert_eq!(once.remembered, 0);
    }

    #[test]
    fn the_cap_releases_early_and_counts() {
        let mut once = Once::new(OnceConfig {
            max_held: 3,
            max_remembered: 2,
            ..OnceConfig::default()
        });
        let mut out = Vec::new();
        for i in 0..10u32 {
            once.offer(obs("n", i64::from(i), Some(i), ""), 0, &mut |e| out.push(e));
        }
        assert_eq!(once.held(), 3);
        assert_eq!(out.len(), 7);
        assert_eq!(once.counters.released_early, 7);
        assert!(once.remembered <= 2);
        once.drain(0, &mut |e| out.push(e));
        assert_eq!(out.len(), 10);
        assert_eq!(once.held(), 0);
    }
}
