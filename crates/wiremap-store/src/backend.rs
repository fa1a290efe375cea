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
use wiremap_model::{Detail, Entry, Timestamp, Transport};

use crate::block::Want;
use crate::rollup::{self, Part, MINUTE};
use crate::segments::{scan_ahead, scan_want};
use crate::{damage, seg_path, Scope, SegmentMeta, StoreError};

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

    /// [`EntryStore::scan`] for a caller that reads only the entries' own fields (a map):
    /// a backend may leave out the protocol details the filter does not read. Entries are
    /// lent, not given: a backend may decode a batch and hand over references to it.
    fn scan_lean(
        &self,
        q: &Query<'_>,
        visit: &mut dyn FnMut(&Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.scan(q, &mut |e| visit(&e))
    }

    /// The entry numbered `id`.
    fn get(&self, id: u64) -> Result<Option<Entry>, StoreError>;

    /// Visits the map's aggregates of `q` (rollups: per endpoint pair, protocol and capture
    /// node; a pair may come in several pieces, which the map merges) when the backend can
    /// answer `q` from aggregates it keeps or computes, without handing over every entry.
    /// `Ok(false)`, having visited nothing: it cannot (a filter that reads more than the
    /// rollups keep, a cursor), and the caller scans.
    fn rollups(&self, _q: &Query<'_>, _visit: &mut dyn FnMut(&Rollup)) -> Result<bool, StoreError> {
        Ok(false)
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
        let want = self.want(q, false);
        self.scan_plain(q, &want, visit)
    }

    fn scan_lean(
        &self,
        q: &Query<'_>,
        visit: &mut dyn FnMut(&Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let want = self.want(q, true);
        if want.lean && self.segments.len() > 1 {
            return scan_ahead(&self.dir, &self.segments, &want, q.stop, visit);
        }
        self.scan_plain(q, &want, &mut |e| visit(&e))
    }

    fn get(&self, id: u64) -> Result<Option<Entry>, StoreError> {
        crate::get(&self.dir, &self.segments, id)
    }

    /// Closed segments the window covers whole answer from their segment rollups, those it
    /// covers in part from their minute rollups for the whole minutes inside it and from
    /// entries at its ragged ends; the open segment (no rollups yet, at most
    /// 262,144 entries) and segments whose rollup file is
    /// missing or damaged from their entries.
    fn rollups(&self, q: &Query<'_>, visit: &mut dyn FnMut(&Rollup)) -> Result<bool, StoreError> {
        if q.after_id != 0 || q.filter.is_some_and(|f| !f.endpoint_only()) {
            return Ok(false);
        }
        let selects = |r: &Rollup| q.filter.is_none_or(|f| f.matches(&entry_of(r)));
        let (from, to) = (q.scope.from.map(|t| t.0), q.scope.to.map(|t| t.0));
        // The whole minutes inside the window (both ends inclusive).
        let first_full = from.map_or(i64::MIN, |f| {
            f.div_euclid(MINUTE) + i64::from(f.rem_euclid(MINUTE) != 0)
        });
        let last_full = to.map_or(i64::MAX, |t| t.saturating_add(1).div_euclid(MINUTE) - 1);
        let lean = q.filter.is_none_or(|f| !f.reads_details());
        let entries = |m: &SegmentMeta, scope: &Scope, visit: &mut dyn FnMut(&Rollup)| {
            let want = Want {
                scope: Some(scope),
                lean,
                ..Want::default()
            };
            scan_want(&self.dir, std::slice::from_ref(m), &want, &mut |e| {
                if (q.stop)() {
                    return ControlFlow::Break(());
                }
                if q.filter.is_none_or(|f| f.matches(&e)) {
                    visit(&Rollup::from_entry(&e));
                }
                ControlFlow::Continue(())
            })
        };
        for m in self.segments.iter().filter(|m| m.may_match(q.scope)) {
            if (q.stop)() {
                break;
            }
            let whole = m.closed
                && from.is_none_or(|f| m.from.is_some_and(|x| x >= f))
                && to.is_none_or(|t| m.to.is_some_and(|x| x <= t));
            if m.closed && (whole || first_full <= last_full) {
                let path = seg_path(&self.dir, m.seq, "rollup");
                let part = if whole {
                    Part::Totals
                } else {
                    Part::Minutes(first_full, last_full)
                };
                let mut got = Vec::new();
                match rollup::read(&path, part, &mut |r| {
                    if selects(r) {
                        got.push(r.clone());
                    }
                }) {
                    Ok(true) => {
                        if whole {
                            got.iter().for_each(&mut *visit);
                            continue;
                        }
                        // In time order (a map names nodes in the order it first sees them,
                        // which decides what folds when it is full): the ragged start, the
                        // whole minutes, the ragged end.
                        let (start, end) = (
                            first_full.saturating_mul(MINUTE),
                            last_full.saturating_add(1).saturating_mul(MINUTE),
                        );
                        let ragged = |(a, b): (i64, i64)| Scope {
                            from: Some(Timestamp(a)),
                            to: Some(Timestamp(b)),
                            ..q.scope.clone()
                        };
                        if let Some(w) = from.filter(|f| *f < start).map(|f| (f, start - 1)) {
                            entries(m, &ragged(w), visit)?;
                        }
                        got.iter().for_each(&mut *visit);
                        if let Some(w) = to.filter(|t| *t >= end).map(|t| (end, t)) {
                            entries(m, &ragged(w), visit)?;
                        }
                        continue;
                    }
                    Ok(false) => {}
                    Err(c) => damage::unreadable(&path, &c),
                }
            }
            entries(m, q.scope, visit)?;
        }
        Ok(true)
    }
}

impl Segments {
    /// What a scan of `q` wants; `lean` when the caller reads no details.
    fn want<'q>(&self, q: &Query<'q>, lean: bool) -> Want<'q> {
        Want {
            scope: Some(q.scope),
            after_id: q.after_id,
            id: None,
            lean: lean && q.filter.is_none_or(|f| !f.reads_details()),
            halt: None,
        }
    }

    fn scan_plain(
        &self,
        q: &Query<'_>,
        want: &Want<'_>,
        visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        scan_want(&self.dir, &self.segments, want, &mut |e| {
            if (q.stop)() {
                return ControlFlow::Break(());
            }
            visit(e)
        })
    }
}

/// An entry as a filter sees a rollup: its endpoints, protocol and capture nodes (all that
/// an [`wiremap_kfl::Filter::endpoint_only`] filter reads).
fn entry_of(r: &Rollup) -> Entry {
    Entry {
        id: 0,
        stream: 0,
        index: 0,
        timestamp: r.first,
        elapsed_time: 0,
        protocol: r.protocol,
        // Not kept by rollups, and not read by an endpoint-only filter.
        transport: Transport::Tcp,
        src: r.src.clone(),
        dst: r.dst.clone(),
        request_size: 0,
        response_size: 0,
        has_response: false,
        status_code: 0,
        error: false,
        node_name: r.node_name.clone(),
        seen_by: r.seen_by.clone(),
        client_isn: None,
        detail: Detail::None,
    }
}
