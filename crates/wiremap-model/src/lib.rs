//! Plain data shared by every wiremap stage.
//!
//! Nothing here does I/O or reads a clock: the types describe what was seen on the wire
//! ([`Timestamp`], [`FlowKey`]), who the two sides are ([`Endpoint`], [`Identity`]) and one
//! application-level exchange ([`Entry`]). Keeping them in one dependency-light crate lets the
//! capture, dissect, identity, map and server stages agree without depending on each other.
#![deny(clippy::unwrap_used)]

mod drop;
mod entry;
mod flow;
mod identity;
mod names;
mod size;
mod time;

pub use drop::{DropCounts, DropReason, Stats};
pub use entry::{
    AppInfo, AppVal, ConnInfo, Detail, DnsInfo, Entry, HttpInfo, Protocol, TlsInfo, Transport,
};
pub use flow::{Direction, FlowKey};
pub use identity::{Endpoint, Identity, IdentityKind, IdentityPtr};
pub use names::{app_field, known_name, APP_FIELDS, CONN_ERRORS, CONN_STATES, RESOLUTION_STATUSES};
pub use time::Timestamp;
