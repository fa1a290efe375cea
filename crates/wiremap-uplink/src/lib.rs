//! The link from agents to the hub.
//!
//! An agent (`wiremap agent`, one per node) captures, reassembles and dissects on its node
//! and sends the entries — not yet named — with the DNS answers it saw and, unless told not
//! to, the raw packets, to the hub in compressed [`Batch`]es over HTTP ([`Uplink`]). The hub
//! (`wiremap hub`) keeps a [`Registry`] of agents, names every entry with its one identity
//! index, counts an exchange two agents saw once ([`Once`]) and stores it ([`hub_loop`]).
//!
//! Guarantees: the agent's buffer is bounded by bytes and drops the oldest batches when the
//! hub is away too long (counted); batches are numbered per agent process and acknowledged
//! only once stored, so what was buffered across a reconnect or a hub restart arrives once.
#![deny(clippy::unwrap_used)]

mod agents;
mod hub;
mod once;
mod sender;
mod wire;

pub use agents::{Admit, Registry, CONNECTED_WITHIN, MAX_NODES};
pub use hub::{hub_loop, lock_registry, HubConfig, Incoming};
pub use once::{Once, OnceConfig, OnceCounters, MAX_SEEN_BY};
pub use sender::{LinkStatus, SenderConfig, Uplink, PUSH_PATH};
pub use wire::{
    AgentCounters, Batch, Head, Item, RawPacket, RawPacketRef, WireError, MAX_BATCH_BYTES,
};
