//! The ingest path every front end shares: packets from a capture file, live rings or fanout
//! workers go through the engine into the store, and [`Shared`] is what readers (the HTTP
//! API, its live stream and metrics) see of it while it runs.
//!
//! Why a crate of its own: `serve`, `capture` and the cluster agent and hub all ingest the
//! same way; the HTTP API only reads, and depends on this crate, not the other way round.
#![deny(clippy::unwrap_used)]

mod pipeline;
mod shared;
mod sources;

pub use shared::{
    lock, lock_counters, AgentStatus, EdgeMetrics, EdgeSeries, Ingest, LiveCounters, Recent,
    Shared, Snapshot, FLUSH_EVERY, LATENCY_BUCKETS, MAX_EDGE_SERIES, RECENT_BYTES, RECENT_CAP,
};
pub use sources::{capture_loop, fanout_loop, import};
