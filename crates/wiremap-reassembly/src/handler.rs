//! What the flow table promises its handler ([`StreamHandler`], [`FlowInfo`],
//! [`CloseReason`]) and what it is set with and counts ([`Limits`], [`ReassemblyStats`]).

use wiremap_model::{Direction, FlowKey, Timestamp};

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent FIN.
    Fin,
    /// A side sent RST.
    Reset,
    /// No packet for the idle timeout.
    Idle,
    /// Evicted to stay under the flow cap.
    Evicted,
    /// The input ended.
    End,
}

/// What a handler knows about a flow.
#[derive(Debug, Clone)]
pub struct FlowInfo {
    /// Unique id, in creation order.
    pub id: u64,
    /// Side A is the initiator when `initiator_known`, else the first sender.
    pub key: FlowKey,
    /// A SYN (or SYN-ACK) told who opened the connection.
    pub initiator_known: bool,
    /// First packet.
    pub first_ts: Timestamp,
    /// Last packet.
    pub last_ts: Timestamp,
    /// Packets per direction.
    pub packets: [u64; 2],
    /// Payload bytes delivered per direction.
    pub bytes: [u64; 2],
    /// A RST was seen.
    pub reset: bool,
    /// Bytes declared missing per direction.
    pub gap_bytes: [u64; 2],
    /// First packet from side B (the SYN-ACK when the initiator is known).
    pub first_reply_ts: Option<Timestamp>,
    /// The initiator's initial sequence number, from its SYN or the peer's SYN-ACK: the same
    /// on every capture point of the connection, so observations can be matched across nodes.
    pub client_isn: Option<u32>,
}

impl FlowInfo {
    /// A flow that starts at `ts`, with no packets yet.
    pub fn new(id: u64, key: FlowKey, initiator_known: bool, ts: Timestamp) -> Self {
        FlowInfo {
            id,
            key,
            initiator_known,
            first_ts: ts,
            last_ts: ts,
            packets: [0; 2],
            bytes: [0; 2],
            reset: false,
            gap_bytes: [0; 2],
            first_reply_ts: None,
            client_isn: None,
        }
    }
}

/// Receives the reassembled streams. `Session` is the handler's per-flow state, kept inside
/// the flow table so that each packet costs one hash lookup.
pub trait StreamHandler {
    /// Per-flow state.
    type Session;
    /// A flow starts.
    fn open(&mut self, info: &FlowInfo) -> Self::Session;
    /// In-order bytes in `dir` (for UDP: one datagram).
    fn data(
        &mut self,
        s: &mut Self::Session,
        info: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    );
    /// `len` bytes in `dir` will never be delivered.
    fn gap(
        &mut self,
        s: &mut Self::Session,
        info: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        len: u64,
    );
    /// The flow ended; no more calls for it.
    fn close(&mut self, s: Self::Session, info: &FlowInfo, ts: Timestamp, reason: CloseReason);
    /// Heap bytes the handler holds for all its sessions together (message buffers), counted
    /// against the table's memory budget. Must be cheap: it is asked once per packet.
    fn held(&self) -> usize {
        0
    }
}

/// Caps and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most flows held at once (TCP and UDP together).
    pub max_flows: usize,
    /// Most out-of-order bytes buffered per direction before a gap is declared.
    pub max_buffered: usize,
    /// Seconds without packets after which a TCP flow closes.
    pub tcp_idle_secs: i64,
    /// Seconds without packets after which a UDP flow closes.
    pub udp_idle_secs: i64,
    /// Bytes the flows, their out-of-order buffers and the handler's buffers may hold
    /// together; past it the least recently active flows are closed (counted).
    pub max_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 200_000,
            max_buffered: 1 << 20,
            tcp_idle_secs: 300,
            udp_idle_secs: 60,
            max_memory: 256 << 20,
        }
    }
}

/// Counters; every byte or flow dropped is here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// TCP flows created.
    pub tcp_flows: u64,
    /// UDP flows created.
    pub udp_flows: u64,
    /// Payload bytes seen again (retransmissions, overlaps) and dropped.
    pub duplicate_bytes: u64,
    /// Segments that arrived out of order and were buffered.
    pub out_of_order_segments: u64,
    /// Gaps declared.
    pub gaps: u64,
    /// Bytes never seen.
    pub gap_bytes: u64,
    /// Flows evicted to respect `max_flows`.
    pub evicted_flows: u64,
    /// Packets for no known flow that could not start one (stray ACK, RST, FIN).
    pub orphan_packets: u64,
    /// Flows closed early to keep within `max_memory`.
    pub memory_evicted_flows: u64,
    /// Bytes held now in out-of-order buffers, with each segment's bookkeeping (a gauge).
    pub buffered_bytes: u64,
}
