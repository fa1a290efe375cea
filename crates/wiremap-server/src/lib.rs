//! The live side of wiremap: [`Ingest`] feeds packets through the engine into the store, and
//! [`router`] serves what is stored over HTTP (DESIGN §8): the map, the diff of two windows'
//! maps, entries, KFL checks, pcapng export, statistics, Prometheus metrics and the live map
//! stream.
//!
//! Why the split: the pipeline stays synchronous and single-threaded (it owns the engine and
//! appends to the store); the server is async and only reads. They meet in [`Shared`]: the
//! store behind a mutex that queries hold just long enough to flush and list segments, a
//! bounded ring of recent entries for live streams, and counters.
#![deny(clippy::unwrap_used)]

mod agents;
mod api;
mod diff;
mod feed;
mod metrics;
mod query;
mod stream;
mod ui;

pub use agents::{AgentsLink, MAX_PUSH_BYTES};
pub use axum::Router;
pub use diff::{diff_store, DiffQuery, DiffStoreError};
pub use query::{Limits, QueryCounters};
pub use ui::standalone_html;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use wiremap_model::Timestamp;

// The ingest side the API reads from, for callers that reach it through this crate.
pub use wiremap_ingest::{
    lock_counters, EdgeMetrics, Ingest, LiveCounters, Recent, Shared, Snapshot, FLUSH_EVERY,
    RECENT_CAP,
};

/// How the server is reached.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Bearer token every request must carry (header, `token` query parameter or cookie).
    pub token: Option<String>,
    /// Extra origins allowed to open the live stream (besides the server's own).
    pub origins: Vec<String>,
}

/// Whether `addr` may be listened on with `access`: loopback always; anything else needs a
/// token or an explicit `insecure`.
pub fn check_listen(addr: SocketAddr, access: &Access, insecure: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || access.token.is_some() || insecure {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without --token (or --insecure): the API shows captured traffic"
    ))
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    pub(crate) access: Arc<Access>,
    pub(crate) limits: Arc<Limits>,
    /// Places for queries that read the store.
    pub(crate) gate: Arc<tokio::sync::Semaphore>,
    /// Live maps shared by stream clients.
    pub(crate) feeds: Arc<feed::Feeds>,
    /// Queries stopped early or refused, by why.
    pub(crate) queries: Arc<QueryCounters>,
    /// Live stream connections open.
    pub(crate) stream_clients: Arc<std::sync::atomic::AtomicU64>,
    /// Where agents deliver, on a hub.
    pub(crate) agents: Option<AgentsLink>,
}

/// The HTTP API over `shared`, with the default [`Limits`].
pub fn router(shared: Arc<Shared>, access: Access) -> Router {
    router_with(shared, access, Limits::default())
}

/// The HTTP API over `shared`.
pub fn router_with(shared: Arc<Shared>, access: Access, limits: Limits) -> Router {
    build(shared, access, limits, None)
}

/// The HTTP API of a hub: the same API over what the agents deliver, plus the agents' door
/// (`POST /api/agents/push`, behind the same token).
pub fn hub_router(shared: Arc<Shared>, access: Access, limits: Limits, link: AgentsLink) -> Router {
    build(shared, access, limits, Some(link))
}

fn build(
    shared: Arc<Shared>,
    access: Access,
    limits: Limits,
    agents: Option<AgentsLink>,
) -> Router {
    let hub = agents.is_some();
    let app = App {
        shared,
        access: Arc::new(access),
        gate: Arc::new(tokio::sync::Semaphore::new(
            limits.concurrent_queries.max(1),
        )),
        limits: Arc::new(limits),
        feeds: Arc::default(),
        queries: Arc::default(),
        stream_clients: Arc::default(),
        agents,
    };
    let mut r = Router::new();
    if hub {
        r = r.route(
            wiremap_uplink::PUSH_PATH,
            axum::routing::post(agents::push)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_PUSH_BYTES)),
        );
    }
    for (path, body, kind) in ui::assets() {
        r = r.route(&path, get(move || async move { ui::serve(body, kind) }));
    }
    r.route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/map", get(api::map))
        .route("/api/map/diff", get(diff::map_diff))
        .route("/api/entries", get(api::entries))
        .route("/api/entries/{id}", get(api::entry))
        .route("/api/kfl/check", get(api::kfl_check))
        .route("/api/export.pcapng", get(api::export))
        .route("/api/stats", get(api::stats))
        .route("/api/stream", get(stream::stream))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { query::refuse(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.access.token {
        let h = req.headers();
        let bearer = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_string)
        });
        let cookie = h
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| {
                c.split(';')
                    .find_map(|kv| kv.trim().strip_prefix("wiremap_token="))
                    .map(str::to_string)
            });
        let ok = [bearer.map(str::to_string), query, cookie]
            .into_iter()
            .flatten()
            .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({"error": "missing or wrong token"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a window bound: RFC 3339, `now`, or relative to `now` (`-5m`, `-1h`, `-30s`,
/// `-2d`, `-500ms`).
pub fn parse_time(s: &str, now: Timestamp) -> Option<Timestamp> {
    let s = s.trim();
    if s == "now" {
        return Some(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let (num, unit_ns) = if let Some(n) = rel.strip_suffix("ms") {
            (n, 1_000_000i64)
        } else if let Some(n) = rel.strip_suffix('s') {
            (n, 1_000_000_000)
        } else if let Some(n) = rel.strip_suffix('m') {
            (n, 60_000_000_000)
        } else if let Some(n) = rel.strip_suffix('h') {
            (n, 3_600_000_000_000)
        } else if let Some(n) = rel.strip_suffix('d') {
            (n, 86_400_000_000_000)
        } else {
            return None;
        };
        // Digits only (no sign, no `+`), and nothing that leaves the timestamp range.
        if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = num.parse().ok()?;
        return n
            .checked_mul(unit_ns)
            .and_then(|d| now.0.checked_sub(d))
            .map(Timestamp);
    }
    Timestamp::parse_rfc3339(s)
}

/// Serves `router` on `addr` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_absolute_and_relative() {
        let now = Timestamp::from_parts(1_700_000_000, 0);
        assert_eq!(
            parse_time("-5m", now),
            Some(Timestamp::from_parts(1_700_000_000 - 300, 0))
        );
        assert_eq!(parse_time("now", now), Some(now));
        assert_eq!(
            parse_time("-250ms", now),
            Some(Timestamp(now.0 - 250_000_000))
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now),
            Some(Timestamp::from_parts(1_700_000_000, 0))
        );
        assert_eq!(parse_time("-5x", now), None);
        assert_eq!(parse_time("--5m", now), None);
        assert_eq!(parse_time("-+5m", now), None);
        assert_eq!(parse_time("-999999999999d", now), None);
        assert_eq!(parse_time("9999-12-31T23:59:59Z", now), None);
        assert_eq!(parse_time("yesterday", now), None);
    }

    #[test]
    fn listening_elsewhere_needs_a_token() {
        let open: SocketAddr = "0.0.0.0:8899".parse().expect("addr");
        let lo: SocketAddr = "127.0.0.1:8899".parse().expect("addr");
        assert!(check_listen(lo, &Access::default(), false).is_ok());
        assert!(check_listen(open, &Access::default(), false).is_err());
        assert!(check_listen(open, &Access::default(), true).is_ok());
        let with = Access {
            token: Some("t".into()),
            ..Access::default()
        };
        assert!(check_listen(open, &with, false).is_ok());
    }
}
