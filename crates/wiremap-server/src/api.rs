//! REST handlers (DESIGN §8). Every query runs on a blocking thread: it reads segment files.

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use wiremap_ingest::{lock, Snapshot};
use wiremap_kfl::Filter;
use wiremap_map::{node_id, Level, MapBuilder, ServiceMap, Window};
use wiremap_model::{Entry, Timestamp};
use wiremap_store::{Query as StoreQuery, Scope};

use crate::query::{self, Run};
use crate::{parse_time, App};

/// Query parameters shared by the endpoints.
#[derive(Debug, Default, Deserialize, Clone)]
pub(crate) struct Params {
    pub(crate) q: Option<String>,
    pub(crate) level: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<u64>,
    /// Only entries with this node (at `level`) on either side.
    pub(crate) node: Option<String>,
    /// Only entries of this edge: `source|target|protocol` node ids at `level`.
    pub(crate) edge: Option<String>,
    /// `/api/map` output: `json` (default), `dot`, `mermaid`.
    pub(crate) format: Option<String>,
    /// `/api/map/diff`: the base window the map is compared with.
    pub(crate) base_from: Option<String>,
    pub(crate) base_to: Option<String>,
    /// `/api/export.pcapng`: `true` for every stored packet of the window.
    pub(crate) all_packets: Option<bool>,
}

/// An error answer: status and JSON body.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, Box<Value>);

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(status, Box::new(json!({"error": msg.into()})))
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.0
    }

    /// What the body's `error` says.
    pub(crate) fn message(&self) -> String {
        self.1["error"].as_str().unwrap_or_default().to_string()
    }
}

/// The query string of a request: a JSON 400 naming what is wrong with it when it does not
/// parse (axum's own rejection is plain text).
pub(crate) struct Q(pub(crate) Params);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Q {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<Params>::from_request_parts(parts, state).await {
            Ok(Query(p)) => Ok(Q(p)),
            Err(e) => Err(bad(format!("bad query string: {}", e.body_text()))),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(*self.1)).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

pub(crate) fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

/// Entries of one node or one edge of a map.
pub(crate) enum Part {
    Node(String),
    Edge(String, String, String),
}

/// A parsed query: filter, window and the scope that prunes segments.
pub(crate) struct Plan {
    pub(crate) filter: Option<Filter>,
    pub(crate) part: Option<Part>,
    pub(crate) scope: Scope,
    pub(crate) level: Level,
    pub(crate) window: Window,
}

/// The times a timestamp can hold (nanoseconds in an i64).
pub(crate) const TIME_RANGE: &str = "1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z";

/// Builds the plan; relative times count back from the newest stored data.
pub(crate) fn plan(p: &Params, snap: &Snapshot) -> Result<Plan, ApiError> {
    let now = snap.now();
    let level = match p.level.as_deref() {
        None | Some("") => Level::default(),
        Some(l) => Level::parse(l).ok_or_else(|| {
            bad(format!(
                "unknown level `{l}` (pod, workload, service, namespace, ip)"
            ))
        })?,
    };
    let time = |v: &Option<String>, what: &str| -> Result<Option<Timestamp>, ApiError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => parse_time(s, now).map(Some).ok_or_else(|| {
                bad(format!(
                    "bad `{what}` time `{s}`: RFC 3339 from {TIME_RANGE}, `now`, or relative like -5m"
                ))
            }),
        }
    };
    let from = time(&p.from, "from")?;
    let to = time(&p.to, "to")?;
    let filter = match p.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(q) => Some(Filter::compile(q, now).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                Box::new(json!({"error": e.to_string(), "kfl": kfl_error(&e)})),
            )
        })?),
    };
    // The window, narrowed by what the filter implies.
    let mut scope = Scope::window(from, to);
    if let Some(f) = &filter {
        scope = scope.and(f.prune().clone());
    }
    let part = match (p.node.as_deref(), p.edge.as_deref()) {
        (Some(n), _) if !n.is_empty() => Some(Part::Node(n.to_string())),
        (_, Some(e)) if !e.is_empty() => {
            let mut it = e.rsplitn(3, '|');
            match (it.next(), it.next(), it.next()) {
                (Some(proto), Some(t), Some(s)) => {
                    Some(Part::Edge(s.to_string(), t.to_string(), proto.to_string()))
                }
                _ => {
                    return Err(bad(format!(
                        "bad edge `{e}`: expected source|target|protocol"
                    )))
                }
            }
        }
        _ => None,
    };
    Ok(Plan {
        filter,
        part,
        scope,
        level,
        window: Window { from, to },
    })
}

fn kfl_error(e: &wiremap_kfl::KflError) -> Value {
    json!({
        "message": e.message,
        "line": e.line,
        "column": e.column,
        "start": e.span.start,
        "end": e.span.end,
        "display": e.to_string(),
    })
}

impl Plan {
    pub(crate) fn matches(&self, e: &Entry) -> bool {
        let part = match &self.part {
            None => true,
            Some(Part::Node(n)) => {
                node_id(self.level, &e.src) == *n || node_id(self.level, &e.dst) == *n
            }
            Some(Part::Edge(s, t, p)) => {
                e.protocol.as_str() == p
                    && node_id(self.level, &e.src) == *s
                    && node_id(self.level, &e.dst) == *t
            }
        };
        part && self.filter.as_ref().is_none_or(|f| f.matches(e))
    }
}

/// Folds what the plan selects into `b`: the store's own aggregates when it has them for
/// this question (edge rollups), else every entry it hands over, matched here.
pub(crate) fn fold(
    plan: &Plan,
    snap: &Snapshot,
    stop: &dyn Fn() -> bool,
    b: &mut MapBuilder,
) -> Result<(), wiremap_store::StoreError> {
    let q = StoreQuery {
        scope: &plan.scope,
        filter: plan.filter.as_ref(),
        after_id: 0,
        stop,
    };
    if plan.part.is_none() && snap.reader.rollups(&q, &mut |r| b.add_rollup(r))? {
        return Ok(());
    }
    snap.reader.scan_lean(&q, &mut |e| {
        if stop() {
            return ControlFlow::Break(());
        }
        if plan.matches(e) {
            b.add(e);
        }
        ControlFlow::Continue(())
    })
}

/// The map of a plan over the store, folded into at most the server's node and edge limits.
pub(crate) fn build_map(
    app: &App,
    plan: &Plan,
    snap: &Snapshot,
    run: &Run,
) -> Result<ServiceMap, ApiError> {
    let mut b = new_builder(app, plan.level);
    let r = fold(plan, snap, &|| run.stop(), &mut b);
    if run.stopped().is_some() {
        return Err(run.error(app.limits.query_timeout));
    }
    r.map_err(internal)?;
    let stats = lock(&app.shared.counters).pipeline.clone();
    Ok(finish(b, plan, stats))
}

/// The built map, with the plan's window when it has one (else the data's own).
pub(crate) fn finish(b: MapBuilder, plan: &Plan, stats: wiremap_model::Stats) -> ServiceMap {
    let mut m = b.build(stats);
    if plan.window.from.is_some() || plan.window.to.is_some() {
        m.window = plan.window;
    }
    m
}

/// A map builder within the server's limits.
pub(crate) fn new_builder(app: &App, level: Level) -> MapBuilder {
    MapBuilder::with_limits(level, app.limits.map_nodes, app.limits.map_edges)
}

/// The 400 for a `format` a map answer cannot take (json, dot, mermaid).
pub(crate) fn bad_map_format(p: &Params) -> Option<Response> {
    let f = p.format.as_deref();
    (!matches!(f, None | Some("" | "json" | "dot" | "mermaid"))).then(|| {
        bad(format!(
            "unknown format `{}` (json, dot, mermaid)",
            f.unwrap_or_default()
        ))
        .into_response()
    })
}

pub(crate) async fn map(State(app): State<App>, Q(p): Q) -> Response {
    if let Some(r) = bad_map_format(&p) {
        return r;
    }
    let a = app.clone();
    query::run(&app, move |run| {
        let snap = a.shared.segments();
        let plan = match plan(&p, &snap) {
            Ok(x) => x,
            Err(r) => return r.into_response(),
        };
        let m = match build_map(&a, &plan, &snap, run) {
            Ok(m) => m,
            Err(r) => return r.into_response(),
        };
        match p.format.as_deref() {
            Some("dot") => {
                ([(header::CONTENT_TYPE, "text/vnd.graphviz")], m.to_dot()).into_response()
            }
            Some("mermaid") => {
                ([(header::CONTENT_TYPE, "text/plain")], m.to_mermaid()).into_response()
            }
            _ => json_response(&m),
        }
    })
    .await
}

pub(crate) fn json_response<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

/// Most entries a page holds.
const MAX_PAGE: usize = 10_000;

pub(crate) async fn entries(State(app): State<App>, Q(p): Q) -> Response {
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return bad(format!("bad `limit` {limit}: from 1 to {MAX_PAGE}")).into_response();
    }
    let a = app.clone();
    query::run(&app, move |run| {
        let snap = a.shared.segments();
        let plan = match plan(&p, &snap) {
            Ok(x) => x,
            Err(r) => return r.into_response(),
        };
        let cursor = p.cursor.unwrap_or(0);
        let mut page: Vec<Entry> = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        let stop = || run.stop();
        let q = StoreQuery {
            scope: &plan.scope,
            filter: plan.filter.as_ref(),
            after_id: cursor,
            stop: &stop,
        };
        let r = snap.reader.scan(&q, &mut |e| {
            if run.stop() {
                return ControlFlow::Break(());
            }
            if e.id <= cursor || !plan.matches(&e) {
                return ControlFlow::Continue(());
            }
            if page.len() == limit {
                more = true;
                return ControlFlow::Break(());
            }
            page.push(e);
            ControlFlow::Continue(())
        });
        if let Err(e) = r {
            return internal(e).into_response();
        }
        if run.stopped().is_some() {
            return run.error(a.limits.query_timeout).into_response();
        }
        let next = if more {
            page.last().map(|e| e.id)
        } else {
            None
        };
        json_response(&json!({"entries": page, "next_cursor": next}))
    })
    .await
}

/// An entry id: decimal digits only (no sign, no spaces), within u64.
fn entry_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(crate) async fn entry(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(id) = entry_id(&id) else {
        return bad(format!("bad entry id `{id}`: a positive decimal number")).into_response();
    };
    let a = app.clone();
    query::run(&app, move |_| {
        let snap = a.shared.segments();
        match snap.reader.get(id) {
            Ok(Some(e)) => json_response(&e),
            Ok(None) => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("no entry {id}")})),
            )
                .into_response(),
            Err(e) => internal(e).into_response(),
        }
    })
    .await
}

pub(crate) async fn kfl_check(State(app): State<App>, Q(p): Q) -> Response {
    let q = p.q.unwrap_or_default();
    // Checking reads no store and is bounded by the filter's own limits: no gate, so typing
    // in the filter bar is never refused while big queries run.
    tokio::task::spawn_blocking(move || {
        let snap = app.shared.segments();
        let now = snap.now();
        if q.trim().is_empty() {
            return json_response(&json!({"ok": true, "canonical": ""}));
        }
        match Filter::compile(&q, now) {
            Ok(f) => json_response(&json!({"ok": true, "canonical": f.canonical()})),
            Err(e) => json_response(&json!({"ok": false, "error": kfl_error(&e)})),
        }
    })
    .await
    .unwrap_or_else(|e| internal(format!("check failed: {e}")).into_response())
}

/// Sends what the export writes, in chunks, over a bounded channel: a slow download slows
/// the export down instead of filling memory.
struct ChanWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 << 10;

impl std::io::Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client left"))?;
        }
        Ok(())
    }
}

pub(crate) async fn export(State(app): State<App>, Q(p): Q) -> Response {
    let all = p.all_packets == Some(true);
    if all
        && (p.q.as_deref().is_some_and(|q| !q.trim().is_empty())
            || p.node.is_some()
            || p.edge.is_some())
    {
        return bad(
            "all_packets=true exports every packet of the window: it takes no q, node or edge",
        )
        .into_response();
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let gone = Arc::new(AtomicBool::new(false));
    let a = app.clone();
    // The export runs while the body streams: the gate's place and the query's stop
    // conditions go with it; the answer's status is known once the plan is.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let work = query::run_with(app.clone(), Arc::clone(&gone), move |run| {
        let snap = a.shared.segments();
        let plan = match plan(&p, &snap) {
            Ok(x) => x,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let mut w = ChanWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let r = if all {
            wiremap_store::export_all_until(
                &snap.dir,
                &snap.segments,
                &plan.scope,
                &|| run.stop(),
                &mut w,
            )
        } else {
            wiremap_store::export_until(
                &snap.dir,
                &snap.segments,
                &plan.scope,
                &|e| plan.matches(e),
                &|| run.stop(),
                &mut w,
            )
        };
        let r = r
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|_| std::io::Write::flush(&mut w));
        // A failed or stopped export ends the body with an error, so the client sees a cut
        // transfer, never a complete-looking file that is missing data.
        let failed = match (r, run.stopped()) {
            (Err(e), _) => Some(e),
            (Ok(()), Some(_)) => Some(std::io::Error::other("export stopped")),
            (Ok(()), None) => None,
        };
        if let Some(e) = failed {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let task = tokio::spawn(work);
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            // The work never started: the gate refused it or it failed.
            return match task.await {
                Ok(Err(e)) => e.into_response(),
                _ => internal("export failed").into_response(),
            };
        }
    }
    let guard = query::GoneOnDrop(gone);
    let body = futures_util::stream::poll_fn(move |cx| {
        let _ = &guard;
        rx.poll_recv(cx)
    });
    (
        [
            (header::CONTENT_TYPE, "application/vnd.tcpdump.pcap"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"wiremap-export.pcapng\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

pub(crate) async fn stats(State(app): State<App>) -> Response {
    let mut c = lock(&app.shared.counters).clone();
    // Queries find store damage the ingest loop never sees (and `serve --data` has none).
    c.store = lock(&app.shared.store).stats();
    let clients = app
        .stream_clients
        .load(std::sync::atomic::Ordering::Relaxed);
    json_response(&json!({
        "packets": c.pipeline.packets,
        "bytes": c.pipeline.bytes,
        "flows": c.pipeline.flows,
        "entries": c.pipeline.entries,
        "dropped": c.pipeline.dropped,
        "kernel": c.kernel,
        "kernel_drops": c.kernel.values().map(|k| k.drops).sum::<u64>(),
        "interfaces": c.interfaces,
        "duplicates": c.duplicates,
        "store": c.store,
        "store_errors": c.store_errors,
        "last_store_error": c.last_store_error,
        "capturing": c.capturing,
        "kubernetes": c.kubernetes,
        "stream_clients": clients,
        "stream_feeds": app.feeds.len(),
        "queries": app.queries.values().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "agents": c.agents,
        "cluster": c.cluster,
        "clickhouse": (!c.sink.is_empty()).then(|| json!({"counters": c.sink, "last_error": c.sink_error})),
    }))
}
