//! What one query may spend. Every query that reads the store takes a place in a gate (a
//! fixed number run at once, so a burst of requests queues instead of starting a thread and
//! a map each) and carries a [`Run`] that stops it when its client goes away, when the server
//! shuts down, or when its time is up: a query nobody waits for must not keep a core busy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{internal, ApiError};
use crate::{App, Shared};

/// Bounds on what clients of the API may make the server do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Queries that read the store at once (map, entries, export, stream snapshots).
    pub concurrent_queries: usize,
    /// How long a query may wait for its place before the answer is 503.
    pub queue_wait: Duration,
    /// How long a query may run before it is stopped (503).
    pub query_timeout: Duration,
    /// Live stream connections at once.
    pub stream_clients: usize,
    /// A stream message the client has not taken within this time disconnects it.
    pub stream_send_timeout: Duration,
    /// Nodes a map holds before the rest fold into "other" nodes.
    pub map_nodes: usize,
    /// Edges a map holds before the rest fold into edges between "other" nodes.
    pub map_edges: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Limits {
            concurrent_queries: (2 * cores).max(2),
            queue_wait: Duration::from_secs(10),
            query_timeout: Duration::from_secs(60),
            stream_clients: 64,
            stream_send_timeout: Duration::from_secs(10),
            map_nodes: wiremap_map::DEFAULT_MAX_NODES,
            map_edges: wiremap_map::DEFAULT_MAX_EDGES,
        }
    }
}

/// Queries stopped early, by why; shown in `/api/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct QueryCounters {
    /// Stopped because the client left.
    pub client_gone: AtomicU64,
    /// Stopped at shutdown.
    pub shutdown: AtomicU64,
    /// Stopped past `query_timeout`.
    pub timeout: AtomicU64,
    /// Refused: no place in the gate within `queue_wait`.
    pub busy: AtomicU64,
    /// Stream clients disconnected because they did not read.
    pub stream_slow_clients: AtomicU64,
    /// Stream connections refused past `stream_clients`.
    pub stream_refused: AtomicU64,
}

impl QueryCounters {
    /// Name and value of every counter.
    pub fn values(&self) -> [(&'static str, u64); 6] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("client_gone", l(&self.client_gone)),
            ("shutdown", l(&self.shutdown)),
            ("timeout", l(&self.timeout)),
            ("busy", l(&self.busy)),
            ("stream_slow_clients", l(&self.stream_slow_clients)),
            ("stream_refused", l(&self.stream_refused)),
        ]
    }
}

/// Why a query stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    ClientGone,
    Shutdown,
    Timeout,
}

/// A running query's stop conditions, checked by scans between entries.
#[derive(Debug)]
pub(crate) struct Run {
    gone: Arc<AtomicBool>,
    shared: Arc<Shared>,
    queries: Arc<QueryCounters>,
    deadline: Instant,
    calls: std::cell::Cell<u32>,
    stopped: std::cell::Cell<Option<Stop>>,
}

impl Run {
    pub(crate) fn new(gone: Arc<AtomicBool>, app: &App, timeout: Duration) -> Run {
        let (shared, queries) = (Arc::clone(&app.shared), Arc::clone(&app.queries));
        Run {
            gone,
            shared,
            queries,
            deadline: Instant::now() + timeout,
            calls: std::cell::Cell::new(0),
            stopped: std::cell::Cell::new(None),
        }
    }

    /// Whether the query should stop; cheap enough to call per entry (the clock is read
    /// every 256 calls).
    pub(crate) fn stop(&self) -> bool {
        if self.stopped.get().is_some() {
            return true;
        }
        let n = self.calls.get().wrapping_add(1);
        self.calls.set(n);
        let why = if self.gone.load(Ordering::Relaxed) {
            Some(Stop::ClientGone)
        } else if self.shared.stop.load(Ordering::Relaxed) {
            Some(Stop::Shutdown)
        } else if n.is_multiple_of(256) && Instant::now() >= self.deadline {
            Some(Stop::Timeout)
        } else {
            None
        };
        if let Some(w) = why {
            self.stopped.set(Some(w));
            let q = &self.queries;
            match w {
                Stop::ClientGone => &q.client_gone,
                Stop::Shutdown => &q.shutdown,
                Stop::Timeout => &q.timeout,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
        why.is_some()
    }

    /// Why it stopped, if it did.
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stopped.get()
    }

    /// The answer for a query that stopped early.
    pub(crate) fn error(&self, timeout: Duration) -> ApiError {
        match self.stopped() {
            Some(Stop::Timeout) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the query ran for {} s and was stopped (--query-timeout); narrow the window or the filter",
                    timeout.as_secs()
                ),
            ),
            Some(Stop::Shutdown) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
            }
            _ => internal("the query was stopped"),
        }
    }
}

/// Sets its flag when dropped: held by the request's future, which the server drops when the
/// client disconnects.
#[derive(Debug)]
pub(crate) struct GoneOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` on a blocking thread once the gate lets it in; `f` gets the query's [`Run`],
/// which stops when the request is dropped (its client left).
pub(crate) async fn run<F>(app: &App, f: F) -> Response
where
    F: FnOnce(&Run) -> Response + Send + 'static,
{
    let gone = Arc::new(AtomicBool::new(false));
    let _guard = GoneOnDrop(Arc::clone(&gone));
    match run_with(app.clone(), gone, f).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Runs `f` on a blocking thread once the gate lets it in; its [`Run`] stops when `gone` is
/// set (the stream sets it when its socket closes).
pub(crate) async fn run_with<T, F>(app: App, gone: Arc<AtomicBool>, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Run) -> T + Send + 'static,
    T: Send + 'static,
{
    let permit =
        match tokio::time::timeout(app.limits.queue_wait, Arc::clone(&app.gate).acquire_owned())
            .await
        {
            Ok(Ok(p)) => p,
            _ => {
                app.queries.busy.fetch_add(1, Ordering::Relaxed);
                return Err(busy(&app));
            }
        };
    let run = Run::new(gone, &app, app.limits.query_timeout);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&run)
    })
    .await
    .map_err(|e| internal(format!("query failed: {e}")))
}

fn busy(app: &App) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "too many queries running ({} at once); try again",
            app.limits.concurrent_queries
        ),
    )
}

/// A JSON error for requests refused before any query.
pub(crate) fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}
