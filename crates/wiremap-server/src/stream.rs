//! `/api/stream`: the live map over a WebSocket. A full snapshot first, then every 500 ms a
//! delta (nodes and edges that changed since the last message sent) with a sequence number.
//!
//! Each connection folds new entries into its own map and diffs against what it last sent,
//! so a client that reads slowly simply gets fewer, larger deltas: nothing queues up per
//! client but that one map. `{"type":"pause"}` stops deltas (changes keep being folded in),
//! `{"type":"resume"}` sends them as one delta, `{"type":"snapshot"}` asks for a full map.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use wiremap_map::{MapBuilder, ServiceMap};

use crate::api::{new_builder, params, plan, Params, Plan};
use crate::live::lock;
use crate::query::{self, refuse, Run};
use crate::App;

/// Interval between deltas.
pub const TICK: Duration = Duration::from_millis(500);
/// Window of the first snapshot when the client names none.
const DEFAULT_FROM: &str = "-15m";

fn origin_ok(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser: tokens guard these.
        return true;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && bare == host
}

/// Largest message a client may send (they are a few bytes of JSON).
const MAX_CLIENT_MESSAGE: usize = 4 << 10;

pub(crate) async fn stream(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    State(app): State<App>,
    q: Result<Query<Params>, QueryRejection>,
) -> Response {
    if !origin_ok(&headers, &app.access.origins) {
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let mut p = match params(q) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let open = app.shared.stream_clients.load(Ordering::Relaxed);
    if open >= app.limits.stream_clients as u64 {
        app.shared
            .queries
            .stream_refused
            .fetch_add(1, Ordering::Relaxed);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("too many live streams open ({open})"),
        );
    }
    if p.from.as_deref().is_none_or(str::is_empty) {
        p.from = Some(DEFAULT_FROM.to_string());
    }
    p.to = None;
    // Bad filters and levels are refused before the upgrade, as plain HTTP errors.
    let shared = app.shared.clone();
    let snap = match tokio::task::spawn_blocking(move || shared.segments()).await {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let plan = match plan(&p, &snap) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("expected a WebSocket upgrade: {}", e.body_text()),
            )
        }
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            app.shared.stream_clients.fetch_add(1, Ordering::Relaxed);
            run(socket, app.clone(), plan).await;
            app.shared.stream_clients.fetch_sub(1, Ordering::Relaxed);
        })
}

/// Folds the stored entries of the plan's window into a fresh map; returns it with the id of
/// the newest entry it covers, or `None` when the run was stopped.
fn initial(app: &App, plan: &Plan, run: &Run) -> Option<(MapBuilder, u64)> {
    let snap = app.shared.segments();
    let mut b = new_builder(app, plan.level);
    let _ = wiremap_store::scan(&snap.dir, &snap.segments, &plan.scope, &mut |e| {
        if run.stop() {
            return ControlFlow::Break(());
        }
        if plan.matches(&e) {
            b.add(&e);
        }
        ControlFlow::Continue(())
    });
    match run.stopped() {
        Some(_) => None,
        None => Some((b, snap.last_id)),
    }
}

/// Starts over from the store, through the query gate.
async fn fresh(app: &App, plan: &Arc<Plan>, gone: &Arc<AtomicBool>) -> Option<(MapBuilder, u64)> {
    let (a, p) = (app.clone(), Arc::clone(plan));
    query::run_with(app.clone(), Arc::clone(gone), move |run| {
        initial(&a, &p, run)
    })
    .await
    .ok()
    .flatten()
}

/// Sends one message, or gives up on a client that has not taken the previous ones in time.
async fn send(
    app: &App,
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    msg: Message,
) -> bool {
    match tokio::time::timeout(app.limits.stream_send_timeout, tx.send(msg)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            app.shared
                .queries
                .stream_slow_clients
                .fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

fn digest<T: serde::Serialize>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// What the client was last sent: a digest per node id and edge key.
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

    fn delta(&mut self, m: &ServiceMap, seq: u64) -> serde_json::Value {
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
        json!({
            "type": "delta",
            "seq": seq,
            "upsert": {"nodes": nodes, "edges": edges},
            "remove": {"nodes": [], "edges": []},
            "window": m.window,
            "stats": m.stats,
        })
    }
}

async fn run(socket: WebSocket, app: App, plan: Plan) {
    let (mut tx, mut rx) = socket.split();
    let plan = Arc::new(plan);
    // Set when this function returns (the socket closed): a snapshot still being read stops.
    let gone = Arc::new(AtomicBool::new(false));
    let _guard = query::GoneOnDrop(Arc::clone(&gone));
    let Some((mut builder, mut cursor)) = fresh(&app, &plan, &gone).await else {
        return;
    };
    let mut seq: u64 = 0;
    let mut sent = Sent::default();
    let mut paused = false;
    let stats = || lock(&app.shared.counters).pipeline.clone();
    let snapshot = |builder: &MapBuilder, seq: u64, sent: &mut Sent| {
        let m = builder.build(stats());
        sent.reset(&m);
        Message::Text(
            json!({"type": "snapshot", "seq": seq, "map": m})
                .to_string()
                .into(),
        )
    };
    seq += 1;
    if !send(&app, &mut tx, snapshot(&builder, seq, &mut sent)).await {
        return;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let news = match app.shared.recent.read() {
                    Ok(r) => r.since(cursor),
                    Err(p) => p.into_inner().since(cursor),
                };
                match news {
                    Some(v) => {
                        for e in v {
                            cursor = cursor.max(e.id);
                            if plan.scope.contains(e.timestamp) && plan.matches(&e) {
                                builder.add(&e);
                            }
                        }
                    }
                    None => {
                        // Fell behind what memory holds: start over from the store.
                        let Some((b, c)) = fresh(&app, &plan, &gone).await else {
                            return;
                        };
                        builder = b;
                        cursor = c;
                        seq += 1;
                        if !send(&app, &mut tx, snapshot(&builder, seq, &mut sent)).await {
                            return;
                        }
                        continue;
                    }
                }
                if paused {
                    continue;
                }
                seq += 1;
                let msg = sent.delta(&builder.build(stats()), seq);
                if !send(&app, &mut tx, Message::Text(msg.to_string().into())).await {
                    return;
                }
            }
            msg = rx.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let kind = serde_json::from_str::<serde_json::Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_default();
                match kind.as_str() {
                    "pause" => {
                        paused = true;
                        seq += 1;
                        let m = json!({"type": "paused", "seq": seq}).to_string();
                        if !send(&app, &mut tx, Message::Text(m.into())).await {
                            return;
                        }
                    }
                    "resume" => paused = false,
                    "snapshot" => {
                        seq += 1;
                        if !send(&app, &mut tx, snapshot(&builder, seq, &mut sent)).await {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
