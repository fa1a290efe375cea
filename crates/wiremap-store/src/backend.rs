//! The query seam: what the API asks of a store. The embedded segments ([`Segments`]) and
//! the ClickHouse backend answer alike, so the API neither knows nor cares which it reads.
//!
//! Writing is the other half: [`EntrySink`] takes entries once they are named and numbered
//! (a backend that stores them elsewhere, as ClickHouse does for a hub, gets them there).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use wiremap_kfl::Filter;
use wiremap_map::Rollup;
use wiremap_model::Entry;

use crate::{Scope, SegmentMeta, StoreError};

/// One question.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// Time window and what prunes.
    pub scope: &'a Scope,
    /// The filter, for a backend that can apply it itself (callers still match every
    /// entry they are given: a backend may hand over more than the filter selects).
    pub filter: Option<&'a Filter>,
    /// Only entries with a larger id.
    pub after_id: u64,
    /// Polled while the query runs: `true` ends it early.
    pub stop: &'a dyn Fn() -> bool,
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("scope", self.scope)
            .field("after_id", &self.after_id)
            .finish_non_exhaustive()
    }
}

/// What the API reads from.
pub trait EntryStore: Send + Sync + std::fmt::Debug {
    /// `embedded`, `clickhouse`.
    fn kind(&self) -> &'static str;

    /// Visits the entries of `q`, by increasing id, until `visit` breaks or `q.stop` says so.
    fn scan(
        &self,
        q: &Query<'_>,
        visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// The entry numbered `id`.
    fn get(&self, id: u64) -> Result<Option<Entry>, StoreError>;

    /// The map's aggregates (one per endpoint pair, protocol and capture node) when the
    /// backend keeps or computes them without handing over every entry; `None` means: scan.
    fn rollups(&self, _q: &Query<'_>) -> Result<Option<Vec<Rollup>>, StoreError> {
        Ok(None)
    }
}

/// Where named, numbered entries also go (the hub's ClickHouse writer). Must not block:
/// a sink buffers, and counts what it has to drop.
pub trait EntrySink: Send + Sync + std::fmt::Debug {
    /// Entries in id order.
    fn append(&self, entries: &[Arc<Entry>]);

    /// Its counters (queued, stored, dropped, failures, …), for `/api/stats` and
    /// `/metrics`; `dropped` is what it had to let go.
    fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        std::collections::BTreeMap::new()
    }

    /// Its last error, `""` when none.
    fn last_error(&self) -> String {
        String::new()
    }
}

/// The embedded store's closed and open segments as of one moment.
#[derive(Debug, Clone)]
pub struct Segments {
    /// The data directory.
    pub dir: PathBuf,
    /// Its segments.
    pub segments: Vec<SegmentMeta>,
}

impl EntryStore for Segments {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn scan(
        &self,
        q: &Query<'_>,
        visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let after = q.after_id;
        let segs: Vec<SegmentMeta> = self
            .segments
            .iter()
            .filter(|m| after == 0 || m.ids.is_some_and(|(_, last)| last > after))
            .cloned()
            .collect();
        crate::scan(&self.dir, &segs, q.scope, &mut |e| {
            if (q.stop)() {
                return ControlFlow::Break(());
            }
            if e.id <= after {
                return ControlFlow::Continue(());
            }
            visit(e)
        })
    }

    fn get(&self, id: u64) -> Result<Option<Entry>, StoreError> {
        crate::get(&self.dir, &self.segments, id)
    }
}
