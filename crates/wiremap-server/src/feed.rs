//! One live map per distinct stream query, shared by every client that asks for it.
//!
//! Why: a map is the size of the traffic (up to the server's node budget), and a copy per
//! client made memory grow with clients × map size. A [`Feed`] folds new entries into one map
//! every 500 ms, diffs it against the previous tick once, and broadcasts the delta as
//! serialised text that every client sends as it is (the same bytes, shared); a full snapshot
//! is serialised at most once per tick, when some client needs one, and shared the same way.
//! Sequence numbers are the feed's ticks, so that no client needs a message of its own: a
//! snapshot carries the tick it shows, each delta the tick it leads to. A feed lives as long
//! as one client holds it.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use axum::extract::ws::Utf8Bytes;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use wiremap_ingest::lock;
use wiremap_map::{MapBuilder, ServiceMap};

use crate::api::{new_builder, Plan};
use crate::query::{self, Run};
use crate::stream::TICK;
use crate::App;

/// Deltas a feed keeps for clients that read slowly; one that falls further behind gets a
/// fresh snapshot instead.
const BACKLOG: usize = 8;

/// What a feed tells its clients each tick.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// The delta that leads to tick `.0`, as the message every client sends.
    Delta(u64, Utf8Bytes),
    /// The feed started over from the store: clients send a snapshot.
    Resync,
    /// The feed could not go on (its store scan failed or ran out of time): clients close.
    Closed,
}

/// Whether the first map is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    Pending,
    Yes,
    Failed,
}

#[derive(Debug)]
struct State {
    map: Arc<ServiceMap>,
    /// Which tick `map` is from.
    version: u64,
    /// The snapshot message of a version, made when first asked for.
    snapshot: Option<(u64, Utf8Bytes)>,
}

/// A shared live map.
#[derive(Debug)]
pub(crate) struct Feed {
    state: Mutex<State>,
    updates: broadcast::Sender<Update>,
    ready: watch::Receiver<Ready>,
    /// Set when the last client leaves: a first scan still running stops.
    gone: Arc<AtomicBool>,
    /// Set when the feed's task ended: new clients get a fresh feed instead.
    dead: AtomicBool,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Feed {
    /// New updates from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Waits until the first map is made; false if it could not be.
    pub(crate) async fn wait_ready(&self) -> bool {
        let mut r = self.ready.clone();
        loop {
            match *r.borrow_and_update() {
                Ready::Yes => return true,
                Ready::Failed => return false,
                Ready::Pending => {}
            }
            if r.changed().await.is_err() {
                return false;
            }
        }
    }

    /// The current map as a snapshot message, with the tick it shows: serialised at most
    /// once per tick, off the async workers and outside the lock (a big map takes a while),
    /// and shared by every client that sends it.
    pub(crate) async fn snapshot(&self) -> (u64, Utf8Bytes) {
        let (map, version) = {
            let s = lock(&self.state);
            if let Some((v, j)) = &s.snapshot {
                if *v == s.version {
                    return (*v, j.clone());
                }
            }
            (Arc::clone(&s.map), s.version)
        };
        let j: Utf8Bytes = tokio::task::spawn_blocking(move || {
            let map = serde_json::to_string(&*map).unwrap_or_else(|_| "{}".into());
            format!("{{\"seq\":{version},\"type\":\"snapshot\",\"map\":{map}}}")
        })
        .await
        .unwrap_or_else(|_| format!("{{\"seq\":{version},\"type\":\"snapshot\",\"map\":{{}}}}"))
        .into();
        let mut s = lock(&self.state);
        if s.version == version {
            s.snapshot = Some((version, j.clone()));
        }
        (version, j)
    }

    /// The whole current map as one delta, with the tick it leads to: every node and edge
    /// upserted (what a client that paused is sent when it resumes).
    pub(crate) async fn everything(&self) -> (u64, Utf8Bytes) {
        let (m, version) = {
            let s = lock(&self.state);
            (Arc::clone(&s.map), s.version)
        };
        let text = tokio::task::spawn_blocking(move || {
            delta_message(
                version,
                &m.nodes.iter().collect::<Vec<_>>(),
                &m.edges.iter().collect::<Vec<_>>(),
                &m,
            )
        })
        .await
        .unwrap_or_default();
        (version, text.into())
    }
}

/// A delta message: what changed, leading to tick `seq`.
fn delta_message(
    seq: u64,
    nodes: &[&wiremap_map::Node],
    edges: &[&wiremap_map::Edge],
    m: &ServiceMap,
) -> String {
    json!({
        "seq": seq,
        "type": "delta",
        "upsert": {"nodes": nodes, "edges": edges},
        "remove": {"nodes": [], "edges": []},
        "window": m.window,
        "stats": m.stats,
    })
    .to_string()
}

/// The feeds in use, by query.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    by_key: Mutex<HashMap<String, Weak<Feed>>>,
}

impl Feeds {
    /// The feed for `key`, started if nobody holds one.
    pub(crate) fn join(&self, app: &App, key: String, plan: Plan) -> Arc<Feed> {
        let mut by_key = lock(&self.by_key);
        if let Some(f) = by_key.get(&key).and_then(Weak::upgrade) {
            if !f.dead.load(std::sync::atomic::Ordering::Relaxed) {
                return f;
            }
        }
        by_key.retain(|_, w| {
            w.upgrade()
                .is_some_and(|f| !f.dead.load(std::sync::atomic::Ordering::Relaxed))
        });
        let (ready_tx, ready_rx) = watch::channel(Ready::Pending);
        let stats = lock(&app.shared.counters).pipeline.clone();
        let feed = Arc::new(Feed {
            state: Mutex::new(State {
                map: Arc::new(MapBuilder::new(plan.level).build(stats)),
                version: 0,
                snapshot: None,
            }),
            updates: broadcast::channel(BACKLOG).0,
            ready: ready_rx,
            gone: Arc::new(AtomicBool::new(false)),
            dead: AtomicBool::new(false),
        });
        by_key.insert(key, Arc::downgrade(&feed));
        tokio::spawn(run(
            app.clone(),
            Arc::new(plan),
            Arc::downgrade(&feed),
            ready_tx,
        ));
        feed
    }

    /// Feeds running now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.by_key)
            .values()
            .filter_map(Weak::upgrade)
            .filter(|f| !f.dead.load(std::sync::atomic::Ordering::Relaxed))
            .count()
    }
}

/// Folds the stored entries of the plan's window into a fresh map; returns it with the id of
/// the newest entry it covers, or `None` when the run was stopped.
fn initial(app: &App, plan: &Plan, run: &Run) -> Option<(MapBuilder, u64)> {
    let snap = app.shared.segments();
    let mut b = new_builder(app, plan.level);
    let _ = crate::api::fold(plan, &snap, &|| run.stop(), &mut b);
    match run.stopped() {
        Some(_) => None,
        None => Some((b, snap.last_id)),
    }
}

/// Starts over from the store, through the query gate.
async fn fresh(app: &App, plan: &Arc<Plan>, gone: Arc<AtomicBool>) -> Option<(MapBuilder, u64)> {
    let (a, p) = (app.clone(), Arc::clone(plan));
    query::run_with(app.clone(), gone, move |run| initial(&a, &p, run))
        .await
        .ok()
        .flatten()
}

fn digest<T: serde::Serialize>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// What the last tick showed: a digest per node id and edge key.
#[derive(Default)]
struct Sent {
    nodes: HashMap<String, u64>,
    edges: HashMap<String, u64>,
}

fn edge_key(e: &wiremap_map::Edge) -> String {
    format!("{}|{}|{}", e.source, e.target, e.protocol)
}

impl Sent {
    fn reset(&mut self, m: &ServiceMap) {
        self.nodes = m.nodes.iter().map(|n| (n.id.clone(), digest(n))).collect();
        self.edges = m.edges.iter().map(|e| (edge_key(e), digest(e))).collect();
    }

    /// The delta since the last call, as the message leading to tick `seq`.
    fn delta(&mut self, m: &ServiceMap, seq: u64) -> Utf8Bytes {
        let mut nodes = Vec::new();
        for n in &m.nodes {
            let d = digest(n);
            if self.nodes.insert(n.id.clone(), d) != Some(d) {
                nodes.push(n);
            }
        }
        let mut edges = Vec::new();
        for e in &m.edges {
            let d = digest(e);
            if self.edges.insert(edge_key(e), d) != Some(d) {
                edges.push(e);
            }
        }
        delta_message(seq, &nodes, &edges, m).into()
    }
}

/// The feed's task: the first map from the store, then a delta every tick, until no client
/// holds the feed.
async fn run(app: App, plan: Arc<Plan>, feed: Weak<Feed>, ready: watch::Sender<Ready>) {
    let Some(gone) = feed.upgrade().map(|f| Arc::clone(&f.gone)) else {
        return;
    };
    follow(&app, &plan, &feed, &ready, gone).await;
    // However the feed ended, its clients hear it and new ones get a fresh feed.
    let _ = ready.send(Ready::Failed);
    if let Some(f) = feed.upgrade() {
        f.dead.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = f.updates.send(Update::Closed);
    }
}

/// The feed's work until it cannot go on or nobody holds it.
async fn follow(
    app: &App,
    plan: &Arc<Plan>,
    feed: &Weak<Feed>,
    ready: &watch::Sender<Ready>,
    gone: Arc<AtomicBool>,
) {
    let app = app.clone();
    let Some((mut builder, mut cursor)) = fresh(&app, plan, Arc::clone(&gone)).await else {
        return;
    };
    let stats = || lock(&app.shared.counters).pipeline.clone();
    let mut sent = Sent::default();
    // The tick each published map is; deltas lead from one to the next.
    let mut version: u64 = 0;
    let publish = |f: &Feed, m: ServiceMap, version: u64| {
        let mut s = lock(&f.state);
        s.map = Arc::new(m);
        s.version = version;
    };
    {
        let Some(f) = feed.upgrade() else { return };
        let m = builder.build(stats());
        sent.reset(&m);
        version += 1;
        publish(&f, m, version);
    }
    let _ = ready.send(Ready::Yes);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        if feed.strong_count() == 0 {
            return;
        }
        let news = match app.shared.recent.read() {
            Ok(r) => r.since(cursor),
            Err(p) => p.into_inner().since(cursor),
        };
        let update = match news {
            Some(v) => {
                for e in v {
                    cursor = cursor.max(e.id);
                    if plan.scope.contains(e.timestamp) && plan.matches(&e) {
                        builder.add(&e);
                    }
                }
                let m = builder.build(stats());
                version += 1;
                let d = sent.delta(&m, version);
                let Some(f) = feed.upgrade() else { return };
                publish(&f, m, version);
                Update::Delta(version, d)
            }
            None => {
                // Fell behind what memory holds: start over from the store.
                let Some((b, c)) = fresh(&app, plan, Arc::clone(&gone)).await else {
                    return;
                };
                builder = b;
                cursor = c;
                let m = builder.build(stats());
                sent.reset(&m);
                version += 1;
                let Some(f) = feed.upgrade() else { return };
                publish(&f, m, version);
                Update::Resync
            }
        };
        if let Some(f) = feed.upgrade() {
            // No receiver is fine: clients may all be between subscribing and reading.
            let _ = f.updates.send(update);
        }
    }
}
