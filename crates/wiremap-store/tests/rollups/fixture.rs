//! The store the rollup tests share: built from the shared captures, and the three ways to
//! get its map (rollups, entry scan, the appended entries) with a readable difference.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::PathBuf;
use wiremap_capture::{FileSource, PacketSource};
use wiremap_engine::{Engine, EngineConfig};
use wiremap_identity::Holding;
use wiremap_kfl::Filter;
use wiremap_map::{Level, MapBuilder, ServiceMap, Stats};
use wiremap_model::{Entry, Identity, IdentityKind, Timestamp};
use wiremap_store::{EntryStore, Query, Scope, SegmentMeta, Segments, Store, StoreConfig};

pub const SEC: i64 = 1_000_000_000;
pub const MINUTE: i64 = 60 * SEC;

/// Captures with many entries of the protocols rollups matter for (DNS, Redis, MySQL, HTTP,
/// TLS) and a few from inside Kubernetes, with the rounds each is copied in: one spans years
/// of capture time with a handful of entries (sparse segments); the thousand requests in
/// under a second fill segments by bytes in the middle of a minute (taken once: scanning
/// entries in a debug build is what the test's time goes to).
pub const CAPTURES: &[(&str, usize)] = &[
    ("dns_suricata_bug-1158-many-a.pcap", 3),
    ("redis_zeek_django-cloud.pcapng", 3),
    ("mysql_deepflow_171-mysql-20130.pcap", 3),
    ("http1_zeek_1000-requests-keepalive.pcap", 1),
    ("redis-k8s_deepflow_redis.pcap", 3),
    ("http1_sanders_espn-browsing.pcapng", 3),
    ("mysql_zeek_auth.pcap", 3),
    ("mixed_suricata_browsing-tls-dns-http.pcap", 3),
    ("redis_beats_session.pcap", 3),
    ("http1_zeek_methods-chunked.pcap", 3),
    ("dns-k8s_deepflow_istio-demo-tcp.pcap", 3),
    ("http1-k8s_deepflow_istio-productpage.pcap", 3),
    ("dns_zeek_edns-ecs-a-aaaa-cname-udp-tcp.pcap", 3),
];

/// Capture nodes the copies are tagged with (`""`: unknown, as on a single node).
pub const NODES: &[&str] = &["", "node-a", "node-b"];

pub fn pcaps_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("WIREMAP_PCAPS")
            .unwrap_or_else(|_| format!("{}/../../../shared/pcaps", env!("CARGO_MANIFEST_DIR"))),
    )
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wiremap-rollups-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Kubernetes names for addresses of the captures, so that pod, workload, service and
/// namespace levels group something (the rest is named from DNS or left bare).
pub fn holdings() -> Vec<Holding> {
    let pod = |ip: &str, ns: &str, pod: &str, workload: (&str, &str), service: &str| Holding {
        addr: ip.parse().expect("ip"),
        from: Timestamp(0),
        to: None,
        who: Identity {
            kind: IdentityKind::Pod,
            name: pod.to_string(),
            namespace: ns.to_string(),
            pod: pod.to_string(),
            service: service.to_string(),
            workload_kind: workload.0.to_string(),
            workload_name: workload.1.to_string(),
            node: "worker-1".to_string(),
            labels: BTreeMap::from([("app".to_string(), workload.1.to_string())]),
            ..Identity::default()
        },
    };
    let mut v = vec![
        pod(
            "172.20.1.171",
            "shop",
            "api-5c9f7-x2x9q",
            ("deployment", "api"),
            "",
        ),
        pod(
            "172.20.1.128",
            "db",
            "mysql-0",
            ("statefulset", "mysql"),
            "mysql",
        ),
        pod(
            "10.30.28.90",
            "shop",
            "web-6b8d4-k7mzp",
            ("deployment", "web"),
            "web",
        ),
        pod(
            "10.30.28.94",
            "kube-system",
            "coredns-7db6d-2xq8r",
            ("deployment", "coredns"),
            "kube-dns",
        ),
    ];
    v.push(Holding {
        addr: "192.168.1.8".parse().expect("ip"),
        from: Timestamp(0),
        to: None,
        who: Identity {
            kind: IdentityKind::Service,
            name: "legacy-db".to_string(),
            namespace: "db".to_string(),
            service: "legacy-db".to_string(),
            ..Identity::default()
        },
    });
    v
}

pub struct Built {
    pub store: Store,
    pub dir: PathBuf,
    /// Every entry as appended (with its id).
    pub entries: Vec<Entry>,
    /// Their timestamps, sorted.
    pub times: Vec<i64>,
}

/// The store's directory goes with it, also when a test fails.
impl Drop for Built {
    fn drop(&mut self) {
        let _ = self.store.close_open();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Built {
    pub fn segments(&mut self) -> Segments {
        self.store.flush().expect("flush");
        Segments {
            dir: self.dir.clone(),
            segments: self.store.segments(),
        }
    }
}

/// Dissects each capture up to `rounds` times into a store with small segments, each copy shifted
/// to start a few minutes (and some odd nanoseconds) after the previous one ended. `None`
/// (with a message) when the shared captures are not there.
pub fn build(tag: &str, rounds: usize) -> Option<Built> {
    let base = pcaps_dir();
    let files: Vec<(PathBuf, usize)> = CAPTURES.iter().map(|(c, n)| (base.join(c), *n)).collect();
    if let Some((missing, _)) = files.iter().find(|(f, _)| !f.exists()) {
        eprintln!(
            "skipped: shared capture {} not found (set WIREMAP_PCAPS to the captures' directory)",
            missing.display()
        );
        return None;
    }
    let dir = tmpdir(tag);
    let mut cfg = StoreConfig::new(&dir);
    // Small segments: closed by span every couple of minutes, by bytes in the middle of a
    // dense minute, and sparse ones after five minutes whatever they hold.
    cfg.segment_secs = 90;
    cfg.segment_min_bytes = 0;
    cfg.segment_max_secs = 300;
    cfg.segment_bytes = 256 << 10;
    let mut store = Store::open(cfg).expect("opens");
    let mut entries = Vec::new();
    let mut cursor = 1_700_000_000 * SEC + 123_456_789;
    let mut copy = 0usize;
    for round in 0..rounds {
        for (k, (file, copies)) in files.iter().enumerate() {
            if round >= *copies {
                continue;
            }
            // Each round puts each capture on another node.
            let node = NODES[(round + k) % NODES.len()];
            let mut src = FileSource::open(&file.display().to_string()).expect("opens");
            let mut engine = Engine::new(EngineConfig {
                k8s: holdings(),
                ..EngineConfig::default()
            });
            let mut offset = None;
            let mut last = cursor;
            let mut n = 0u64;
            let mut keep = |store: &mut Store, mut e: Entry| {
                e.node_name = node.to_string();
                // Some exchanges were also seen by other nodes (evidence a hub adds).
                n += 1;
                if n.is_multiple_of(7) {
                    e.seen_by = vec!["node-c".to_string()];
                } else if n.is_multiple_of(11) {
                    e.seen_by = vec!["node-a".to_string(), "node-d".to_string()];
                }
                store.append_entry(&mut e).expect("entry");
                entries.push(e);
            };
            while src.advance().expect("reads") {
                let mut p = src.packet();
                let off = *offset.get_or_insert(cursor - p.ts.0);
                p.ts = Timestamp(p.ts.0 + off);
                last = last.max(p.ts.0);
                store
                    .append_packet(p.ts, p.link, p.data, p.orig_len)
                    .expect("packet");
                engine.packet(&p, &mut |e| keep(&mut store, e));
            }
            engine.finish(&mut |e| keep(&mut store, e));
            copy += 1;
            // A gap of one to eleven minutes, never a whole number of seconds.
            let gap = 60 * SEC + (copy as i64 * 7919 % 600) * SEC + copy as i64 * 1_234_567;
            cursor = last + gap;
        }
    }
    store.flush().expect("flush");
    let mut times: Vec<i64> = entries.iter().map(|e| e.timestamp.0).collect();
    times.sort_unstable();
    Some(Built {
        store,
        dir,
        entries,
        times,
    })
}

/// One map question.
#[derive(Debug, Clone)]
pub struct Case {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub filter: Option<String>,
    pub level: Level,
}

pub fn compile(src: &str, now: Timestamp) -> Filter {
    Filter::compile(src, now).unwrap_or_else(|e| panic!("`{src}` compiles: {e}"))
}

/// The scope the server gives a map query: the window narrowed by the filter.
pub fn scope_of(c: &Case, filter: Option<&Filter>) -> Scope {
    let s = Scope::window(c.from.map(Timestamp), c.to.map(Timestamp));
    match filter {
        Some(f) => s.and(f.prune().clone()),
        None => s,
    }
}

/// The map answered from rollups, or `None` when the store says it cannot.
pub fn rollup_map(segs: &Segments, c: &Case, filter: Option<&Filter>) -> Option<ServiceMap> {
    let scope = scope_of(c, filter);
    let q = Query {
        scope: &scope,
        filter,
        after_id: 0,
        stop: &|| false,
    };
    let mut b = MapBuilder::new(c.level);
    let mut visited = 0u64;
    let answered = segs
        .rollups(&q, &mut |r| {
            visited += 1;
            b.add_rollup(r);
        })
        .expect("rollups");
    if !answered {
        assert_eq!(visited, 0, "declined after visiting rollups");
        return None;
    }
    Some(b.build(Stats::default()))
}

/// The map from the entries a scan hands over, matched with the filter.
pub fn scan_map(segs: &Segments, c: &Case, filter: Option<&Filter>) -> ServiceMap {
    let scope = scope_of(c, filter);
    let q = Query {
        scope: &scope,
        filter,
        after_id: 0,
        stop: &|| false,
    };
    let mut b = MapBuilder::new(c.level);
    segs.scan(&q, &mut |e| {
        if filter.is_none_or(|f| f.matches(&e)) {
            b.add(&e);
        }
        ControlFlow::Continue(())
    })
    .expect("scan");
    b.build(Stats::default())
}

/// The map of the appended entries themselves.
pub fn reference_map(entries: &[Entry], c: &Case, filter: Option<&Filter>) -> ServiceMap {
    let window = Scope::window(c.from.map(Timestamp), c.to.map(Timestamp));
    let mut b = MapBuilder::new(c.level);
    for e in entries {
        if window.contains(e.timestamp) && filter.is_none_or(|f| f.matches(e)) {
            b.add(e);
        }
    }
    b.build(Stats::default())
}

/// The first difference between two maps, named precisely; `None` when they are equal.
/// Equal means exactly, latency percentiles too: sketches merge exactly, so a rollup's
/// percentiles are not merely within the sketch's error of the entries'.
pub fn difference(a_name: &str, a: &ServiceMap, b_name: &str, b: &ServiceMap) -> Option<String> {
    let names = (a_name, b_name);
    let node = |n: &wiremap_map::Node| n.id.clone();
    let edge = |e: &wiremap_map::Edge| {
        (
            e.source.clone(),
            e.target.clone(),
            e.protocol.as_str().to_string(),
        )
    };
    if let Some(d) = first_difference("node", names, &a.nodes, &b.nodes, node) {
        return Some(d);
    }
    if let Some(d) = first_difference("edge", names, &a.edges, &b.edges, edge) {
        return Some(d);
    }
    (a != b).then(|| {
        format!(
            "maps differ outside nodes and edges:\n {a_name}: {:?} {:?}\n {b_name}: {:?} {:?}",
            a.window, a.stats, b.window, b.stats
        )
    })
}

/// The first difference between two lists of `what` (nodes, edges): their key sets, then
/// the items one by one.
pub fn first_difference<T: PartialEq + std::fmt::Debug, K: Ord + std::fmt::Debug>(
    what: &str,
    (a_name, b_name): (&str, &str),
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
) -> Option<String> {
    let (ka, kb): (BTreeSet<K>, BTreeSet<K>) =
        (a.iter().map(&key).collect(), b.iter().map(&key).collect());
    if ka != kb {
        return Some(format!(
            "{what} sets differ: only in {a_name} {:?}; only in {b_name} {:?}",
            ka.difference(&kb).collect::<Vec<_>>(),
            kb.difference(&ka).collect::<Vec<_>>()
        ));
    }
    a.iter().zip(b).find(|(x, y)| x != y).map(|(x, y)| {
        format!(
            "{what} {:?} differs:\n {a_name}: {x:?}\n {b_name}: {y:?}",
            key(x)
        )
    })
}

/// How a window meets the closed segments: (covered whole, cut with a whole minute inside,
/// cut with none). Tells whether the cases reach the ragged-end logic at all.
pub fn coverage(segments: &[SegmentMeta], c: &Case) -> (usize, usize, usize) {
    let (mut whole, mut minutes, mut ragged) = (0, 0, 0);
    let lo = c.from.unwrap_or(i64::MIN);
    let hi = c.to.unwrap_or(i64::MAX);
    for m in segments.iter().filter(|m| m.closed && m.entries > 0) {
        let (Some(f), Some(t)) = (m.from, m.to) else {
            continue;
        };
        if t < lo || f > hi {
            continue;
        }
        if f >= lo && t <= hi {
            whole += 1;
            continue;
        }
        // A whole minute of the window that overlaps the segment.
        let first = lo.div_euclid(MINUTE) + i64::from(lo.rem_euclid(MINUTE) != 0);
        let last = hi.saturating_add(1).div_euclid(MINUTE) - 1;
        let (sf, st) = (f.div_euclid(MINUTE), t.div_euclid(MINUTE));
        if first <= last && first.max(sf) <= last.min(st) {
            minutes += 1;
        } else {
            ragged += 1;
        }
    }
    (whole, minutes, ragged)
}
