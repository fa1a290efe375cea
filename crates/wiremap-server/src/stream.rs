//! `/api/stream`: the live map over a WebSocket. A full snapshot first, then every 500 ms a
//! delta (nodes and edges that changed since the last tick) with a sequence number.
//!
//! Clients with the same level, filter and window share one map ([`crate::feed`]) and send
//! the same message bytes: a connection holds only the tick its client is at. Sequence
//! numbers are the feed's ticks: a snapshot carries the tick it shows and each delta the
//! tick it leads to, so deltas follow a snapshot consecutively. A client that falls behind
//! the feed's short backlog gets a fresh snapshot instead of the deltas it missed, so nothing
//! queues up per client; one that takes nothing for `Limits::stream_send_timeout` is
//! disconnected. `{"type":"pause"}` stops deltas (acknowledged with `{"type":"paused"}`),
//! `{"type":"resume"}` sends what changed meanwhile as one delta (the whole map, upserted),
//! `{"type":"snapshot"}` asks for a full map.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

use crate::api::{plan, Q};
use crate::feed::{Feed, Update};
use crate::query::refuse;
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
    Q(mut p): Q,
) -> Response {
    if !origin_ok(&headers, &app.access.origins) {
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    // A place is taken now, not at the upgrade, so a burst of upgrades cannot pass the cap
    // together; it is given back when the connection (or a refused upgrade) ends.
    let Some(place) = Place::take(&app) else {
        app.queries.stream_refused.fetch_add(1, Ordering::Relaxed);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("too many live streams open ({})", app.limits.stream_clients),
        );
    };
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
    // Clients asking the same question share one map: same level, filter and part, and a
    // window that starts in the same minute (a relative `from` is resolved now, so a client
    // that comes an hour later asks another question).
    let from_minute = plan.window.from.map(|t| t.0.div_euclid(60_000_000_000));
    let key = format!(
        "{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}",
        plan.level.as_str(),
        p.q.as_deref().unwrap_or("").trim(),
        from_minute,
        p.node.as_deref().unwrap_or(""),
        p.edge.as_deref().unwrap_or(""),
    );
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _place = place;
            let feed = app.feeds.join(&app, key, plan);
            run(socket, app.clone(), feed).await;
        })
}

/// A live stream's place among the `Limits::stream_clients` allowed.
struct Place(Arc<std::sync::atomic::AtomicU64>);

impl Place {
    fn take(app: &App) -> Option<Place> {
        let open = &app.stream_clients;
        let cap = app.limits.stream_clients as u64;
        let mut n = open.load(Ordering::Relaxed);
        loop {
            if n >= cap {
                return None;
            }
            match open.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Place(Arc::clone(&app.stream_clients))),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
            app.queries
                .stream_slow_clients
                .fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

async fn run(socket: WebSocket, app: App, feed: Arc<Feed>) {
    let (mut tx, mut rx) = socket.split();
    let mut updates = feed.subscribe();
    // A client that leaves while the first map is read lets go of the feed at once (the
    // feed's scan stops when nobody holds it).
    let ready = loop {
        tokio::select! {
            r = feed.wait_ready() => break r,
            m = rx.next() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break false,
                Some(Ok(_)) => {}
            },
        }
    };
    if !ready {
        return;
    }
    // The tick the client's map is at; every message it is sent carries the feed's tick.
    let (mut at, first) = feed.snapshot().await;
    if !send(&app, &mut tx, Message::Text(first)).await {
        return;
    }
    let mut paused = false;
    // Changes arrived while paused: on resume the client gets the whole map as one delta.
    let mut held = false;
    loop {
        tokio::select! {
            u = updates.recv() => {
                let (seq, text) = match u {
                    Ok(Update::Delta(..)) if paused => {
                        held = true;
                        continue;
                    }
                    // Already shown by the snapshot the client got.
                    Ok(Update::Delta(seq, _)) if seq <= at => continue,
                    Ok(Update::Delta(seq, text)) if seq == at + 1 => (seq, text),
                    // Behind the feed's backlog, a tick missed, or the feed started over: a
                    // full map.
                    Ok(Update::Delta(..) | Update::Resync)
                    | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if paused {
                            held = true;
                            continue;
                        }
                        feed.snapshot().await
                    }
                    // The feed could not go on (its store scan failed or timed out).
                    Ok(Update::Closed) | Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(Message::Close(None)).await;
                        return;
                    }
                };
                at = seq;
                if !send(&app, &mut tx, Message::Text(text)).await {
                    return;
                }
            }
            msg = rx.next() => {
                let text_in = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let kind = serde_json::from_str::<serde_json::Value>(text_in.as_str())
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_default();
                let out = match kind.as_str() {
                    "pause" => {
                        paused = true;
                        Some((at, Utf8Bytes::from_static("{\"type\":\"paused\"}")))
                    }
                    "resume" => {
                        paused = false;
                        if std::mem::take(&mut held) {
                            Some(feed.everything().await)
                        } else {
                            None
                        }
                    }
                    "snapshot" => Some(feed.snapshot().await),
                    _ => None,
                };
                if let Some((seq, text)) = out {
                    at = seq;
                    if !send(&app, &mut tx, Message::Text(text)).await {
                        return;
                    }
                }
            }
        }
    }
}
