//! The state readers share with the ingest loop ([`Shared`]) and the loop's front half
//! ([`Ingest`]): an engine writing into the store, recent entries for live streams,
//! counters and per-edge metrics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Serialize;
use wiremap_capture::{KernelStats, Packet};
use wiremap_engine::{Engine, Stats};
use wiremap_model::{DropReason, Entry, IdentityPtr};
use wiremap_store::{EntrySink, EntryStore, Segments, Store, StoreStats};

/// Entries kept in memory for live streams that fall behind.
pub const RECENT_CAP: usize = 200_000;
/// Bytes those entries may take (estimated from their encoded size): entries carry headers
/// and query text, so a count alone does not bound them.
pub const RECENT_BYTES: usize = 64 << 20;
/// Distinct edges exported as Prometheus series (more are counted in `overflow`).
pub const MAX_EDGE_SERIES: usize = 10_000;
/// Latency histogram bucket bounds, seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Locks `m`, taking over a lock a panicking holder poisoned (counters and maps stay usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Recently stored entries, oldest first, ids increasing, within [`RECENT_CAP`] entries and
/// [`RECENT_BYTES`] bytes. A stream behind what it holds starts over from the store.
#[derive(Debug, Default)]
pub struct Recent {
    entries: VecDeque<(Arc<Entry>, usize)>,
    bytes: usize,
}

/// What an entry costs in memory held by the ring: what it holds, and its `Arc`.
fn entry_cost(e: &Entry) -> usize {
    e.heap_bytes() + 2 * std::mem::size_of::<usize>()
}

impl Recent {
    /// Entries with an id above `cursor`, or `None` when some of them already left memory.
    pub fn since(&self, cursor: u64) -> Option<Vec<Arc<Entry>>> {
        let first = self.entries.front().map(|e| e.0.id);
        if first.is_some_and(|f| f > cursor + 1) {
            return None;
        }
        let at = self.entries.partition_point(|e| e.0.id <= cursor);
        Some(self.entries.range(at..).map(|e| Arc::clone(&e.0)).collect())
    }

    /// Id of the newest entry.
    pub fn last_id(&self) -> Option<u64> {
        self.entries.back().map(|e| e.0.id)
    }

    /// Adds entries (with their encoded sizes), dropping the oldest past the bounds.
    fn extend(&mut self, new: impl IntoIterator<Item = (Arc<Entry>, usize)>) {
        for (e, _) in new {
            let cost = entry_cost(&e);
            self.bytes += cost;
            self.entries.push_back((e, cost));
        }
        while self.entries.len() > RECENT_CAP || self.bytes > RECENT_BYTES {
            match self.entries.pop_front() {
                Some((_, cost)) => self.bytes -= cost,
                None => break,
            }
        }
    }
}

/// Counters of one edge for Prometheus.
#[derive(Debug, Clone, Default)]
pub struct EdgeSeries {
    /// Requests.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Latency histogram: counts per bucket of [`LATENCY_BUCKETS`] (cumulative on output).
    pub buckets: [u64; 12],
    /// Responses timed.
    pub timed: u64,
    /// Sum of latencies, seconds.
    pub sum: f64,
}

/// Per-edge series keyed by (client, server, protocol) at workload level.
#[derive(Debug, Default)]
pub struct EdgeMetrics {
    /// The series, in the order they appeared.
    pub series: Vec<(SeriesKey, EdgeSeries)>,
    /// Entries of edges beyond [`MAX_EDGE_SERIES`].
    pub overflow: u64,
    /// Where each series is in `series`.
    index: HashMap<SeriesKey, usize>,
    /// Series by endpoints and protocol (`None`: past the limit), so that names are
    /// formatted and looked up once per pair of endpoints rather than once per entry.
    keys: rustc_hash::FxHashMap<EndpointsKey, Option<usize>>,
}

/// Client, server and protocol of a series.
pub type SeriesKey = (String, String, &'static str);

/// Both endpoints (address and identity, by pointer) and the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndpointsKey {
    ips: (std::net::IpAddr, std::net::IpAddr),
    ids: (IdentityPtr, IdentityPtr),
    protocol: wiremap_model::Protocol,
}

/// Endpoint pairs whose series keys are remembered (then the memory starts over).
const MAX_KEYS: usize = 65_536;

fn metric_name(ep: &wiremap_model::Endpoint) -> String {
    let id = ep.identity();
    let base = if !id.workload_name.is_empty() {
        id.workload_name.as_str()
    } else if !id.name.is_empty() {
        id.name.as_str()
    } else {
        return ep.ip.to_string();
    };
    if id.namespace.is_empty() {
        base.to_string()
    } else {
        format!("{}/{}", id.namespace, base)
    }
}

impl EdgeMetrics {
    fn add(&mut self, e: &Entry) {
        let ek = EndpointsKey {
            ips: (e.src.ip, e.dst.ip),
            ids: (
                IdentityPtr(e.src.identity.clone()),
                IdentityPtr(e.dst.identity.clone()),
            ),
            protocol: e.protocol,
        };
        let at = match self.keys.get(&ek) {
            Some(at) => *at,
            None => {
                if self.keys.len() >= MAX_KEYS {
                    self.keys.clear();
                }
                let key = (
                    metric_name(&e.src),
                    metric_name(&e.dst),
                    e.protocol.as_str(),
                );
                let at = match self.index.get(&key) {
                    Some(at) => Some(*at),
                    None if self.series.len() >= MAX_EDGE_SERIES => None,
                    None => {
                        self.series.push((key.clone(), EdgeSeries::default()));
                        self.index.insert(key, self.series.len() - 1);
                        Some(self.series.len() - 1)
                    }
                };
                self.keys.insert(ek, at);
                at
            }
        };
        let Some(at) = at else {
            self.overflow += 1;
            return;
        };
        let Some((_, s)) = self.series.get_mut(at) else {
            return;
        };
        s.requests += 1;
        if e.error {
            s.errors += 1;
        }
        if e.has_response {
            let secs = e.elapsed_time.max(0) as f64 / 1e6;
            s.timed += 1;
            s.sum += secs;
            if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
                s.buckets[i] += 1;
            }
        }
    }
}

/// Counters shown by `/api/stats` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveCounters {
    /// Pipeline counters (packets, bytes, flows, entries, drops by reason).
    pub pipeline: Stats,
    /// Kernel counters per interface.
    pub kernel: BTreeMap<String, KernelStats>,
    /// Interfaces picked up and let go while following every interface.
    pub interfaces: wiremap_capture::FollowCounts,
    /// Packets dropped as copies seen on another interface.
    pub duplicates: u64,
    /// Store counters.
    pub store: StoreStats,
    /// Writes the store refused (disk full, …).
    pub store_errors: u64,
    /// The last store error.
    pub last_store_error: String,
    /// Whether packets are still coming in.
    pub capturing: bool,
    /// Kubernetes watch counters (lists, events, errors, objects, tombstones, rebuilds),
    /// when watches run.
    pub kubernetes: BTreeMap<String, u64>,
    /// The agents a hub hears from (empty elsewhere).
    pub agents: Vec<AgentStatus>,
    /// What a hub did to count exchanges two agents saw once (empty elsewhere).
    pub cluster: BTreeMap<String, u64>,
    /// The store entries also go to (a hub's ClickHouse): its counters (empty without one).
    pub sink: BTreeMap<String, u64>,
    /// Its last error.
    pub sink_error: String,
}

/// One agent as the hub sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStatus {
    /// Its node.
    pub node: String,
    /// Its process (a restarted agent is a new one).
    pub instance: String,
    /// Heard from within the last 3 s.
    pub connected: bool,
    /// Seconds since it was last heard from.
    pub last_seen_secs_ago: f64,
    /// When it was last heard from, RFC 3339.
    pub last_seen: String,
    /// Entries per second it produced, over its last reports.
    pub entries_per_sec: f64,
    /// Its counters: packets, bytes, flows, entries, drops by reason (its buffer's among
    /// them).
    pub pipeline: Stats,
    /// Packets its kernel rings dropped.
    pub kernel_drops: u64,
    /// Entries and packets its buffer for the hub dropped.
    pub buffer_drops: u64,
    /// Batches it sent again after a failure.
    pub resent: u64,
    /// Batches received from it.
    pub batches: u64,
    /// Compressed bytes received from it.
    pub bytes: u64,
    /// Batches of its the hub had already (sent again after a reconnect) and skipped.
    pub duplicate_batches: u64,
}

/// The store as a query sees it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Data directory.
    pub dir: std::path::PathBuf,
    /// Segment indexes, oldest first.
    pub segments: Vec<wiremap_store::SegmentMeta>,
    /// Newest entry id.
    pub last_id: u64,
    /// What queries read: these segments, or the backend the entries also go to.
    pub reader: Arc<dyn EntryStore>,
}

impl Snapshot {
    /// Time of the newest stored data.
    pub fn newest(&self) -> Option<wiremap_model::Timestamp> {
        self.segments
            .iter()
            .filter_map(|m| m.to)
            .max()
            .map(wiremap_model::Timestamp)
    }

    /// What relative times count back from: the newest stored data, else the wall clock.
    pub fn now(&self) -> wiremap_model::Timestamp {
        self.newest()
            .unwrap_or_else(|| std::time::SystemTime::now().into())
    }
}

/// What the API shares with the ingest loop.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Mutex<Store>,
    /// Recent entries.
    pub recent: RwLock<Recent>,
    /// Counters.
    pub counters: Mutex<LiveCounters>,
    /// Per-edge metrics.
    pub edges: Mutex<EdgeMetrics>,
    /// Set to stop ingesting.
    pub stop: AtomicBool,
    /// Where queries read entries when not from the embedded segments (a hub's ClickHouse).
    pub backend: Option<Arc<dyn EntryStore>>,
}

impl Shared {
    /// Shares `store`.
    pub fn new(store: Store) -> Arc<Shared> {
        Shared::with_backend(store, None)
    }

    /// Shares `store`; queries read entries from `backend` when given (raw packets, and
    /// what exports select them by, stay in `store`).
    pub fn with_backend(store: Store, backend: Option<Arc<dyn EntryStore>>) -> Arc<Shared> {
        let stats = store.stats();
        Arc::new(Shared {
            store: Mutex::new(store),
            recent: RwLock::new(Recent::default()),
            counters: Mutex::new(LiveCounters {
                store: stats,
                ..LiveCounters::default()
            }),
            edges: Mutex::new(EdgeMetrics::default()),
            stop: AtomicBool::new(false),
            backend,
        })
    }

    /// Counts a write the store refused (shown in stats as `store_errors` and the last one).
    pub fn store_error(&self, e: &wiremap_store::StoreError) {
        let mut c = lock(&self.counters);
        c.store_errors += 1;
        c.last_store_error = e.to_string();
    }

    /// Flushes the store and lists its segments (what a query reads), with the id of the
    /// newest entry they hold.
    pub fn segments(&self) -> Snapshot {
        let mut s = lock(&self.store);
        let _ = s.flush();
        let (dir, segments) = (s.dir().to_path_buf(), s.segments());
        let reader: Arc<dyn EntryStore> = match &self.backend {
            Some(b) => b.clone(),
            None => Arc::new(Segments {
                dir: dir.clone(),
                segments: segments.clone(),
            }),
        };
        Snapshot {
            dir,
            segments,
            last_id: s.last_id(),
            reader,
        }
    }
}

/// Drives an engine into the store and the shared state. Not tied to a packet source: live
/// capture and file import both feed it packets.
#[derive(Debug)]
pub struct Ingest {
    engine: Engine,
    shared: Arc<Shared>,
    pending: Vec<(Arc<Entry>, usize)>,
    keep_packets: bool,
    k8s: Option<std::sync::mpsc::Receiver<Vec<wiremap_identity::Holding>>>,
    /// Counters of dissecting workers, when they do the dissection (fanout capture).
    workers: Option<Stats>,
    /// Where stored entries also go.
    sink: Option<Arc<dyn EntrySink>>,
}

/// How often buffered data reaches the files.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

impl Ingest {
    /// An ingest loop over `engine`; `keep_packets` stores the raw packets too.
    pub fn new(engine: Engine, shared: Arc<Shared>, keep_packets: bool) -> Self {
        Ingest {
            engine,
            shared,
            pending: Vec::new(),
            keep_packets,
            k8s: None,
            workers: None,
            sink: None,
        }
    }

    /// Hands every stored entry, in id order, to `sink` as well.
    pub fn set_sink(&mut self, sink: Arc<dyn EntrySink>) {
        self.sink = Some(sink);
    }

    /// Takes Kubernetes holdings from live watches: each message replaces the previous.
    pub fn watch_k8s(&mut self, rx: std::sync::mpsc::Receiver<Vec<wiremap_identity::Holding>>) {
        self.k8s = Some(rx);
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn store_error(&self, e: &wiremap_store::StoreError) {
        self.shared.store_error(e);
    }

    /// Runs `f` with a sink that stores each entry it produces and queues it for the live
    /// streams; a store that refuses is counted, not fatal.
    fn store_entries(&mut self, f: impl FnOnce(&mut Engine, &mut dyn FnMut(Entry))) {
        let Ingest {
            engine,
            shared,
            pending,
            ..
        } = self;
        let mut err = None;
        {
            let mut store = lock(&shared.store);
            f(engine, &mut |mut e| match store.append_entry(&mut e) {
                Ok(()) => pending.push((Arc::new(e), store.last_entry_len())),
                Err(x) => err = Some(x),
            });
        }
        if let Some(e) = err {
            self.store_error(&e);
        }
    }

    /// Names entries and answers that agents dissected (the hub's one identity index), and
    /// hands the named entries to `out` instead of storing them.
    pub fn name_items(&mut self, batch: Vec<wiremap_engine::Item>, out: &mut dyn FnMut(Entry)) {
        for item in batch {
            self.engine.name(item, out);
        }
    }

    /// Stores named entries ([`Ingest::name_items`]).
    pub fn store_named(&mut self, entries: Vec<Entry>) {
        self.store_entries(|_, sink| {
            for e in entries {
                sink(e);
            }
        });
    }

    /// Stores a raw packet that was dissected elsewhere.
    pub fn store_packet(
        &mut self,
        ts: wiremap_model::Timestamp,
        link: wiremap_capture::LinkType,
        data: &[u8],
        orig_len: u32,
    ) {
        let r = lock(&self.shared.store).append_packet(ts, link, data, orig_len);
        if let Err(e) = r {
            self.store_error(&e);
        }
    }

    /// One packet through the pipeline and into the store.
    pub fn packet(&mut self, p: &Packet<'_>) {
        if self.keep_packets {
            let r = lock(&self.shared.store).append_packet(p.ts, p.link, p.data, p.orig_len);
            if let Err(e) = r {
                self.store_error(&e);
            }
        }
        self.store_entries(|engine, sink| engine.packet(p, sink));
    }

    /// Names and stores what dissecting workers produced ([`Engine::dissect`]); this
    /// ingest's engine only names.
    pub fn items(&mut self, batch: Vec<wiremap_engine::Item>) {
        self.store_entries(|engine, sink| {
            for item in batch {
                engine.name(item, sink);
            }
        });
    }

    /// The pipeline counters of dissecting workers, summed.
    pub fn set_worker_stats(&mut self, all: &[Stats]) {
        let mut sum = Stats::default();
        // Saturating: the counters may come from agents, whose numbers are not ours to trust.
        for s in all {
            sum.packets = sum.packets.saturating_add(s.packets);
            sum.bytes = sum.bytes.saturating_add(s.bytes);
            sum.flows = sum.flows.saturating_add(s.flows);
            sum.entries = sum.entries.saturating_add(s.entries);
            for (k, v) in &s.dropped {
                let d = sum.dropped.entry(k.clone()).or_insert(0);
                *d = d.saturating_add(*v);
            }
        }
        self.workers = Some(sum);
    }

    /// Publishes what was produced, flushes the store and refreshes the counters. Call at
    /// least every [`FLUSH_EVERY`], also when no packets come.
    /// Returns whether the store flushed.
    pub fn tick(&mut self, kernel: &[(String, KernelStats)], duplicates: u64) -> bool {
        if let Some(rx) = &self.k8s {
            if let Some(h) = rx.try_iter().last() {
                self.engine.set_live_k8s(h);
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let flushed = publish(&self.shared, self.sink.as_ref(), pending);
        let mut c = lock(&self.shared.counters);
        c.pipeline = match &self.workers {
            Some(w) => w.clone(),
            None => self.engine.stats(),
        };
        for (k, v) in kernel {
            c.kernel.insert(k.clone(), *v);
        }
        c.duplicates = duplicates;
        if let Some(sink) = &self.sink {
            c.sink = sink.counters();
            c.sink_error = sink.last_error();
            if let Some(&d) = c.sink.get("dropped").filter(|d| **d > 0) {
                c.pipeline
                    .dropped
                    .insert(DropReason::SinkBufferEntries.name().to_string(), d);
            }
        }
        match flushed {
            Ok(s) => {
                c.store = s;
                true
            }
            Err(e) => {
                c.store_errors += 1;
                c.last_store_error = e.to_string();
                false
            }
        }
    }

    /// End of input: closes every flow, stores what they held, closes the open segment.
    pub fn finish(&mut self) {
        self.store_entries(|engine, sink| engine.finish(sink));
        let _ = self.tick(&[], 0);
        if let Err(e) = lock(&self.shared.store).close_open() {
            self.store_error(&e);
        }
        lock(&self.shared.counters).store = lock(&self.shared.store).stats();
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}

impl Ingest {
    /// What the store side of an import needs on a thread of its own: the shared state, the
    /// sink, and whether raw packets are kept.
    pub(crate) fn store_side(&self) -> (Arc<Shared>, Option<Arc<dyn EntrySink>>, bool) {
        (self.shared.clone(), self.sink.clone(), self.keep_packets)
    }

    /// The engine, for a front end that stores what it produces elsewhere.
    pub(crate) fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// Publishes stored entries (the `/metrics` edge series, the sink, the recent entries the
/// live streams read) and flushes the store; returns its counters after the flush.
pub(crate) fn publish(
    shared: &Shared,
    sink: Option<&Arc<dyn EntrySink>>,
    pending: Vec<(Arc<Entry>, usize)>,
) -> Result<StoreStats, wiremap_store::StoreError> {
    if !pending.is_empty() {
        let mut m = lock(&shared.edges);
        for (e, _) in &pending {
            m.add(e);
        }
        if let Some(sink) = sink {
            let all: Vec<Arc<Entry>> = pending.iter().map(|(e, _)| e.clone()).collect();
            sink.append(&all);
        }
    }
    let flushed = {
        let mut store = lock(&shared.store);
        store.flush().map(|()| store.stats())
    };
    if !pending.is_empty() {
        let mut r = match shared.recent.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        r.extend(pending);
    }
    flushed
}

/// The counters, for front ends that set `capturing`.
pub fn lock_counters(shared: &Shared) -> MutexGuard<'_, LiveCounters> {
    lock(&shared.counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremap_model::{Detail, Endpoint, Protocol, Timestamp, Transport};

    fn entry(id: u64) -> Arc<Entry> {
        let ep = Endpoint::new("10.0.0.1".parse().expect("ip"), 1);
        Arc::new(Entry {
            id,
            stream: 0,
            index: 0,
            timestamp: Timestamp(0),
            elapsed_time: 0,
            protocol: Protocol::Tcp,
            transport: Transport::Tcp,
            src: ep.clone(),
            dst: ep,
            request_size: 0,
            response_size: 0,
            has_response: false,
            status_code: 0,
            error: false,
            node_name: String::new(),
            seen_by: Vec::new(),
            client_isn: None,
            detail: Detail::None,
        })
    }

    #[test]
    fn recent_entries_are_bounded_by_bytes_as_well_as_count() {
        let mut r = Recent::default();
        // 1,000 entries holding 256 KiB each: far more bytes than the budget.
        let big = |id| {
            let mut e = (*entry(id)).clone();
            e.node_name = "n".repeat(256 << 10);
            (Arc::new(e), 0)
        };
        r.extend((1..=1000).map(big));
        assert!(r.bytes <= RECENT_BYTES);
        assert!(r.entries.len() < 1000 && !r.entries.is_empty());
        assert_eq!(r.last_id(), Some(1000));
        // A reader at the start fell behind what memory holds; one at the end did not.
        assert!(r.since(0).is_none());
        assert_eq!(r.since(999).map(|v| v.len()), Some(1));
        // Small entries: the count bound applies.
        let mut r = Recent::default();
        r.extend((1..=(RECENT_CAP as u64 + 10)).map(|id| (entry(id), 10)));
        assert_eq!(r.entries.len(), RECENT_CAP);
    }

    #[test]
    fn edge_series_stop_at_their_limit_and_count_the_rest() {
        let mut m = EdgeMetrics::default();
        let pair = |i: u32| {
            let mut e = (*entry(u64::from(i))).clone();
            e.src = Endpoint::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 1);
            e.has_response = true;
            e.elapsed_time = 1_500;
            e
        };
        let n = MAX_EDGE_SERIES as u32 + 5;
        // Every pair twice: the second time through the cached series (or its absence).
        for _ in 0..2 {
            for i in 0..n {
                m.add(&pair(i));
            }
        }
        assert_eq!(m.series.len(), MAX_EDGE_SERIES);
        assert_eq!(m.overflow, 10);
        let (key, first) = &m.series[0];
        assert_eq!(
            key,
            &("10.0.0.0".to_string(), "10.0.0.1".to_string(), "tcp")
        );
        assert_eq!((first.requests, first.timed), (2, 2));
        assert!((first.sum - 0.003).abs() < 1e-9);
    }
}
