//! `GET /api/map/diff`: the map of the current window against a base window ([`MapDiff`]),
//! both built by the path `/api/map` takes (same query parser, rollups, limits and stop
//! conditions), and the same question over a data directory read without a server
//! ([`diff_store`], for `wiremap diff --data`).

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use wiremap_map::{MapBuilder, MapDiff, Thresholds};
use wiremap_model::{Stats, Timestamp};
use wiremap_store::{EntryStore, Segments};

use crate::api::{
    bad, build_map, finish, fold, internal, json_response, plan, ApiError, Params, Plan, Q,
    TIME_RANGE,
};
use crate::{parse_time, query, App, Snapshot};

/// What a diff asks, as the API's query parameters spell it.
#[derive(Debug, Clone, Default)]
pub struct DiffQuery {
    /// `pod`, `workload` (default), `service`, `namespace`, `ip`.
    pub level: Option<String>,
    /// KFL filter applied to both windows.
    pub q: Option<String>,
    /// Current window start (RFC 3339, `now`, or relative to the newest data like `-5m`).
    pub from: Option<String>,
    /// Current window end.
    pub to: Option<String>,
    /// Base window start (required).
    pub base_from: Option<String>,
    /// Base window end (required).
    pub base_to: Option<String>,
}

/// Why a diff over a data directory gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum DiffStoreError {
    /// The question or the directory is wrong (the API would answer 400).
    #[error("{0}")]
    BadInput(String),
    /// Reading failed.
    #[error("{0}")]
    Failed(String),
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Checks one window's bounds: both must parse, and the start must not be after the end.
fn check_window(
    from: (&Option<String>, &str),
    to: (&Option<String>, &str),
    now: Timestamp,
) -> Result<(), ApiError> {
    let parse = |(v, name): (&Option<String>, &str)| -> Result<Option<Timestamp>, ApiError> {
        match given(v) {
            None => Ok(None),
            Some(s) => parse_time(s, now).map(Some).ok_or_else(|| {
                bad(format!(
                    "bad `{name}` time `{s}`: RFC 3339 from {TIME_RANGE}, `now`, or relative like -5m"
                ))
            }),
        }
    };
    if let (Some(f), Some(t)) = (parse(from)?, parse(to)?) {
        if f > t {
            return Err(bad(format!(
                "the window is inverted: `{}` ({f}) is after `{}` ({t})",
                from.1, to.1
            )));
        }
    }
    Ok(())
}

/// The plans of the base and the current window; every problem is a 400 naming the parameter.
pub(crate) fn plans(p: &Params, snap: &Snapshot) -> Result<(Plan, Plan), ApiError> {
    match (given(&p.base_from), given(&p.base_to)) {
        (None, None) => {
            return Err(bad(
                "a diff needs the base window it compares with: `base_from` and `base_to`",
            ))
        }
        (None, Some(_)) => return Err(bad("the base window's start `base_from` is missing")),
        (Some(_), None) => return Err(bad("the base window's end `base_to` is missing")),
        (Some(_), Some(_)) => {}
    }
    let now = snap.now();
    check_window((&p.base_from, "base_from"), (&p.base_to, "base_to"), now)?;
    check_window((&p.from, "from"), (&p.to, "to"), now)?;
    // Whole maps only: a node's or an edge's entries are `/api/entries`' business.
    let current = Params {
        node: None,
        edge: None,
        ..p.clone()
    };
    let base = Params {
        from: p.base_from.clone(),
        to: p.base_to.clone(),
        ..current.clone()
    };
    Ok((plan(&base, snap)?, plan(&current, snap)?))
}

fn diff(
    base: &wiremap_map::ServiceMap,
    current: &wiremap_map::ServiceMap,
) -> Result<MapDiff, ApiError> {
    MapDiff::new(base, current, &Thresholds::default()).map_err(internal)
}

pub(crate) async fn map_diff(State(app): State<App>, Q(p): Q) -> Response {
    if let Some(r) = crate::api::bad_map_format(&p) {
        return r;
    }
    let a = app.clone();
    query::run(&app, move |run| {
        let snap = a.shared.segments();
        let d = plans(&p, &snap).and_then(|(base, current)| {
            let b = build_map(&a, &base, &snap, run)?;
            let c = build_map(&a, &current, &snap, run)?;
            diff(&b, &c)
        });
        let d = match d {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        };
        match p.format.as_deref() {
            Some("dot") => {
                ([(header::CONTENT_TYPE, "text/vnd.graphviz")], d.to_dot()).into_response()
            }
            Some("mermaid") => {
                ([(header::CONTENT_TYPE, "text/plain")], d.to_mermaid()).into_response()
            }
            _ => json_response(&d),
        }
    })
    .await
}

/// The diff of two windows of the data directory `dir`, read as `wiremap export` reads it
/// (nothing written, safe while a capture writes to it), with the API's parser and map path
/// and the default map limits.
pub fn diff_store(dir: &Path, q: &DiffQuery) -> Result<MapDiff, DiffStoreError> {
    if !dir.is_dir() {
        return Err(DiffStoreError::BadInput(format!(
            "{}: not a data directory",
            dir.display()
        )));
    }
    let segments = wiremap_store::inspect(dir)
        .map_err(|e| DiffStoreError::BadInput(format!("{}: {e}", dir.display())))?;
    let reader: Arc<dyn EntryStore> = Arc::new(Segments {
        dir: dir.to_path_buf(),
        segments: segments.clone(),
    });
    let snap = Snapshot {
        dir: dir.to_path_buf(),
        segments,
        last_id: 0,
        reader,
    };
    let p = Params {
        level: q.level.clone(),
        q: q.q.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        base_from: q.base_from.clone(),
        base_to: q.base_to.clone(),
        ..Params::default()
    };
    let map = |plan: &Plan| {
        let mut b = MapBuilder::new(plan.level);
        fold(plan, &snap, &|| false, &mut b).map_err(internal)?;
        Ok::<_, ApiError>(finish(b, plan, Stats::default()))
    };
    plans(&p, &snap)
        .and_then(|(base, current)| diff(&map(&base)?, &map(&current)?))
        .map_err(|e| {
            let msg = e.message();
            if e.status() == StatusCode::BAD_REQUEST {
                DiffStoreError::BadInput(msg)
            } else {
                DiffStoreError::Failed(msg)
            }
        })
}
