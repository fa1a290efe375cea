//! Who an address is, at the time of the traffic.
//!
//! Pod IPs are reused within minutes and CDN addresses serve many names, so an address alone
//! names nothing: [`IdentityIndex`] keeps, per address, the intervals during which a source
//! named it, and answers "who was `ip` at time `t`". Sources, best first (DESIGN §4): DNS
//! answers dissected from the traffic (the name the client asked for, valid for the TTL plus
//! a grace period), names taken from the traffic itself when no answer was seen (TLS SNI, the
//! HTTP `Host` header), and user zones (named CIDRs). Kubernetes sources plug in above these.
//!
//! Memory is bounded: a cap on tracked addresses and on intervals per address, with an
//! eviction counter.
#![deny(clippy::unwrap_used)]

pub mod history;
mod k8s;
mod zones;

use std::net::IpAddr;
use std::sync::Arc;

pub use k8s::{holdings, holdings_of, Holding, K8sError, Owners};
use rustc_hash::FxHashMap as HashMap;
use wiremap_model::{Identity, IdentityKind, Timestamp};
pub use zones::{ZoneError, Zones};

/// Tunables of the index.
#[derive(Debug, Clone, Copy)]
pub struct IdentityLimits {
    /// Seconds a DNS answer stays valid past its TTL.
    pub grace_secs: i64,
    /// Most addresses tracked.
    pub max_addresses: usize,
    /// Most intervals kept per address (the oldest go first).
    pub max_intervals: usize,
}

impl Default for IdentityLimits {
    fn default() -> Self {
        IdentityLimits {
            grace_secs: 300,
            max_addresses: 1_000_000,
            max_intervals: 16,
        }
    }
}

#[derive(Debug, Clone)]
struct Interval {
    from: Timestamp,
    to: Timestamp,
    who: Arc<Identity>,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityStats {
    /// DNS answers indexed.
    pub dns_answers: u64,
    /// Traffic hints indexed.
    pub hints: u64,
    /// Addresses dropped to respect the cap.
    pub evicted_addresses: u64,
}

/// The time-aware index.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    limits: IdentityLimits,
    k8s: HashMap<IpAddr, Vec<Interval>>,
    /// Holdings from live watches, replaced as a whole on every change.
    k8s_live: HashMap<IpAddr, Vec<Interval>>,
    dns: HashMap<IpAddr, Vec<Interval>>,
    hints: HashMap<IpAddr, Vec<Interval>>,
    names: HashMap<(IdentityKind, String), Arc<Identity>>,
    zones: Zones,
    stats: IdentityStats,
}

fn push_interval(list: &mut Vec<Interval>, iv: Interval, max: usize) {
    // Same name again: extend the interval instead of adding one.
    if let Some(last) = list.last_mut() {
        if Arc::ptr_eq(&last.who, &iv.who) && iv.from <= last.to {
            last.to = last.to.max(iv.to);
            return;
        }
    }
    let at = list.partition_point(|x| x.from <= iv.from);
    list.insert(at, iv);
    if list.len() > max {
        list.remove(0);
    }
}

fn lookup(list: &[Interval], ts: Timestamp) -> Option<&Interval> {
    let at = list.partition_point(|x| x.from <= ts);
    at.checked_sub(1).map(|i| &list[i])
}

impl IdentityIndex {
    /// An empty index.
    pub fn new(limits: IdentityLimits) -> Self {
        IdentityIndex {
            limits,
            ..IdentityIndex::default()
        }
    }

    /// Sets the user zones.
    pub fn set_zones(&mut self, zones: Zones) {
        self.zones = zones;
    }

    /// Counters so far.
    pub fn stats(&self) -> &IdentityStats {
        &self.stats
    }

    fn named(&mut self, kind: IdentityKind, name: &str) -> Arc<Identity> {
        let key = (kind, name.to_string());
        self.names
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Identity {
                    kind,
                    name: name.to_string(),
                    // Only an answer makes a DNS name; a hint names without resolving.
                    dns: if kind == IdentityKind::Dns {
                        name.to_string()
                    } else {
                        String::new()
                    },
                    ..Identity::default()
                })
            })
            .clone()
    }

    fn make_room(&mut self, now: Timestamp) {
        if self.dns.len() + self.hints.len() < self.limits.max_addresses {
            return;
        }
        let before = self.dns.len() + self.hints.len();
        let horizon = now.plus_secs(-3600);
        self.dns
            .retain(|_, l| l.last().is_some_and(|i| i.to >= horizon));
        self.hints
            .retain(|_, l| l.last().is_some_and(|i| i.to >= horizon));
        if self.dns.len() + self.hints.len() >= self.limits.max_addresses {
            self.hints.clear();
            let keep = self.limits.max_addresses / 2;
            let mut n = 0;
            self.dns.retain(|_, _| {
                n += 1;
                n <= keep
            });
        }
        self.stats.evicted_addresses += (before - self.dns.len() - self.hints.len()) as u64;
    }

    /// Indexes Kubernetes address holdings (from snapshots or watches). An address held by
    /// several objects over time resolves to the one holding it at the time of the traffic.
    pub fn add_k8s(&mut self, holdings: Vec<Holding>) {
        index_holdings(&mut self.k8s, holdings);
    }

    /// Replaces the holdings that live watches maintain (snapshot holdings stay).
    pub fn set_live_k8s(&mut self, holdings: Vec<Holding>) {
        self.k8s_live.clear();
        index_holdings(&mut self.k8s_live, holdings);
    }

    /// Indexes a DNS answer: `addr` is `name` from `ts` for `ttl` seconds plus the grace.
    pub fn add_dns(&mut self, ts: Timestamp, addr: IpAddr, name: &str, ttl: u32) {
        self.make_room(ts);
        let who = self.named(IdentityKind::Dns, name);
        let to = ts.plus_secs(i64::from(ttl) + self.limits.grace_secs);
        let max = self.limits.max_intervals;
        push_interval(
            self.dns.entry(addr).or_default(),
            Interval { from: ts, to, who },
            max,
        );
        self.stats.dns_answers += 1;
    }

    /// Indexes a name seen in the traffic to `addr` (TLS SNI, HTTP Host), used when no DNS
    /// answer names the address.
    pub fn add_hint(&mut self, ts: Timestamp, addr: IpAddr, name: &str) {
        let mut name = name.trim();
        // `host:port` and `[v6]:port` forms of the Host header.
        if let Some((h, port)) = name.rsplit_once(':') {
            if port.bytes().all(|c| c.is_ascii_digit()) && !h.contains(':') {
                name = h;
            }
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.parse::<IpAddr>().is_ok() {
            return;
        }
        self.make_room(ts);
        let who = self.named(IdentityKind::Hint, &name);
        let max = self.limits.max_intervals;
        let to = ts.plus_secs(self.limits.grace_secs);
        push_interval(
            self.hints.entry(addr).or_default(),
            Interval { from: ts, to, who },
            max,
        );
        self.stats.hints += 1;
    }

    /// Who `addr` was at `ts`; `None` for a bare address.
    ///
    /// A DNS answer given before `ts` wins, the latest one first; past its TTL and grace it
    /// still names the address (clients cache longer than they should) but is marked `stale`.
    pub fn resolve(&mut self, addr: IpAddr, ts: Timestamp) -> Option<Arc<Identity>> {
        // Cluster objects first: a pod over a service over a node (DESIGN §4).
        let fixed = self.k8s.get(&addr);
        let live = if self.k8s_live.is_empty() {
            None
        } else {
            self.k8s_live.get(&addr)
        };
        if fixed.is_some() || live.is_some() {
            let best = fixed
                .into_iter()
                .flatten()
                .chain(live.into_iter().flatten())
                .filter(|iv| iv.from <= ts && ts <= iv.to)
                .min_by_key(|iv| (iv.who.kind, std::cmp::Reverse(iv.from)));
            if let Some(iv) = best {
                return Some(iv.who.clone());
            }
        }
        if let Some(iv) = self.dns.get(&addr).and_then(|l| lookup(l, ts)) {
            if ts <= iv.to {
                return Some(iv.who.clone());
            }
            let name = iv.who.name.clone();
            let key = (IdentityKind::Dns, format!("{name}\u{0}stale"));
            let stale = self
                .names
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Identity {
                        kind: IdentityKind::Dns,
                        dns: name.clone(),
                        name,
                        resolution_status: "stale",
                        ..Identity::default()
                    })
                })
                .clone();
            return Some(stale);
        }
        if let Some(iv) = self.hints.get(&addr).and_then(|l| lookup(l, ts)) {
            return Some(iv.who.clone());
        }
        self.zones.lookup(addr)
    }
}

/// Adds holdings to an interval map; a later holder ends an earlier one of the same kind.
fn index_holdings(map: &mut HashMap<IpAddr, Vec<Interval>>, holdings: Vec<Holding>) {
    for h in holdings {
        let to = h.to.unwrap_or(Timestamp(i64::MAX));
        let list = map.entry(h.addr).or_default();
        let iv = Interval {
            from: h.from,
            to,
            who: Arc::new(h.who),
        };
        let at = list.partition_point(|x| x.from <= iv.from);
        list.insert(at, iv);
    }
    // A later holder ends an earlier one (pod IPs are reused).
    for list in map.values_mut() {
        for i in 1..list.len() {
            let next = list[i].from;
            if list[i - 1].to > next && list[i - 1].who.kind == list[i].who.kind {
                list[i - 1].to = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn latest_answer_before_the_traffic_wins() {
        let mut x = IdentityIndex::new(IdentityLimits::default());
        x.add_dns(
            Timestamp::from_parts(100, 0),
            ip("1.2.3.4"),
            "a.example",
            60,
        );
        x.add_dns(
            Timestamp::from_parts(200, 0),
            ip("1.2.3.4"),
            "b.example",
            60,
        );
        assert!(x
            .resolve(ip("1.2.3.4"), Timestamp::from_parts(50, 0))
            .is_none());
        assert_eq!(
            x.resolve(ip("1.2.3.4"), Timestamp::from_parts(150, 0))
                .map(|i| i.name.clone()),
            Some("a.example".into())
        );
        assert_eq!(
            x.resolve(ip("1.2.3.4"), Timestamp::from_parts(250, 0))
                .map(|i| i.name.clone()),
            Some("b.example".into())
        );
        let late = x
            .resolve(ip("1.2.3.4"), Timestamp::from_parts(10_000, 0))
            .expect("stale");
        assert_eq!(
            (late.name.as_str(), late.resolution_status),
            ("b.example", "stale")
        );
    }

    #[test]
    fn dns_beats_hints() {
        let mut x = IdentityIndex::new(IdentityLimits::default());
        x.add_hint(
            Timestamp::from_parts(10, 0),
            ip("5.6.7.8"),
            "Host.Example:443",
        );
        let hint = x
            .resolve(ip("5.6.7.8"), Timestamp::from_parts(11, 0))
            .expect("hint");
        assert_eq!(
            (hint.kind, hint.name.as_str()),
            (IdentityKind::Hint, "host.example")
        );
        x.add_dns(
            Timestamp::from_parts(12, 0),
            ip("5.6.7.8"),
            "real.example",
            60,
        );
        let who = x
            .resolve(ip("5.6.7.8"), Timestamp::from_parts(13, 0))
            .expect("named");
        assert_eq!(
            (who.kind, who.name.as_str()),
            (IdentityKind::Dns, "real.example")
        );
    }

    #[test]
    fn address_cap_evicts_and_counts() {
        let mut x = IdentityIndex::new(IdentityLimits {
            max_addresses: 10,
            ..IdentityLimits::default()
        });
        for i in 0..30u8 {
            x.add_dns(
                Timestamp::from_parts(i64::from(i) * 10_000, 0),
                IpAddr::from([10, 0, 0, i]),
                "n",
                1,
            );
        }
        assert!(x.dns.len() <= 10);
        assert!(x.stats().evicted_addresses > 0);
    }
}
