//! TCP reassembly and UDP pseudo-flows.
//!
//! A [`FlowTable`] turns segments into ordered byte streams, one per direction, and hands them
//! to a [`StreamHandler`] (the dissectors). It buffers out-of-order data, drops retransmitted
//! and overlapping bytes, and declares a gap when the data can never arrive: when the peer has
//! acknowledged bytes the capture never showed, or when the buffer for one direction reaches
//! its cap. Flows close on FIN, RST, idleness or eviction; all timing comes from packet
//! timestamps, so a capture replays identically. Memory is bounded by a flow cap, a per-
//! direction buffer cap and one budget for the flows, their buffers and the handler's buffers
//! together (past it the least recently active flows close), and everything dropped on the
//! way is counted in [`ReassemblyStats`].
#![deny(clippy::unwrap_used)]

mod handler;
mod table;

pub use handler::{CloseReason, FlowInfo, Limits, ReassemblyStats, StreamHandler};
pub use table::FlowTable;
