//! Protocol detection and dissection: ordered bytes in, [`Entry`]s out.
//!
//! [`Dissect`] is the [`StreamHandler`] behind the flow table. For each flow it buffers the
//! first bytes of both directions and asks every registered [`Probe`] whether they look like
//! its protocol — by content, never by port — then replays them into the chosen
//! [`Dissector`]. Dissectors are incremental and per direction: they keep only what they
//! need to finish the current message (a partial header, a chunk-size line), skip bodies by
//! counting, pair requests with responses, and resynchronise after a gap. A flow no probe
//! recognises still yields one `tcp` or `udp` entry. DNS answers leave through a side channel
//! ([`DnsAnswer`]) to the identity index.
//!
//! Dissectors never panic on any input; what they cannot make sense of is counted in
//! [`DissectStats`].
#![deny(clippy::unwrap_used)]

pub mod amqp;
mod conn;
mod context;
pub mod dns;
mod framing;
mod gql;
pub mod hpack;
pub mod http;
pub mod http2;
mod http_framing;
mod http_start;
pub mod kafka;
pub mod mongo;
pub mod mysql;
pub mod postgres;
pub mod quic;
pub mod redact;
pub mod redis;
mod session;
mod sql_redact;
pub mod tls;
pub mod ws;

pub use context::{Cx, DissectStats, DnsAnswer, Output};
pub use session::{Dissect, DissectConfig, Session};
use wiremap_model::{Direction, Timestamp, Transport};

/// What a probe thinks of the first bytes of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This is the protocol.
    Yes,
    /// This is not.
    No,
    /// Too few bytes to tell.
    NeedMore,
}

/// Recognises one protocol from the first bytes of a flow.
pub trait Probe: Send + Sync {
    /// Name for messages and counters.
    fn name(&self) -> &'static str;
    /// Transport this protocol runs on.
    fn transport(&self) -> Transport;
    /// Looks at the first bytes seen in `dir` (for UDP: one datagram).
    fn probe(&self, dir: Direction, data: &[u8]) -> Verdict;
    /// A fresh dissector for a flow this probe accepted.
    fn build(&self, cfg: &DissectConfig) -> Box<dyn Dissector>;
}

/// What a dissector asks of its session after consuming bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Keep feeding me.
    Continue,
    /// The connection switched protocol (HTTP Upgrade, CONNECT): detect again from here,
    /// starting with these bytes already received after the switch (per direction, A→B first).
    Handoff([Vec<u8>; 2]),
}

/// An incremental per-flow dissector.
pub trait Dissector: Send {
    /// In-order bytes of direction `dir` (for UDP: one datagram).
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next;
    /// `len` bytes of `dir` are lost.
    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, len: u64);
    /// The flow ended: emit whatever is pending.
    fn close(&mut self, cx: &mut Cx<'_>, ts: Timestamp);
    /// After a [`Next::Handoff`]: the protocol the connection switched to, when known (the
    /// name of a [`Probe`]), so detection can be skipped.
    fn successor(&self) -> Option<&'static str> {
        None
    }
    /// Heap bytes this dissector holds in its buffers, counted against the pipeline's memory
    /// budget; must be cheap (asked after every call).
    fn held(&self) -> usize {
        0
    }
}

/// The probes wiremap ships, in the order they are asked.
pub fn default_probes() -> Vec<Box<dyn Probe>> {
    vec![
        Box::new(tls::TlsProbe),
        Box::new(http::HttpProbe),
        Box::new(http2::Http2Probe),
        Box::new(redis::RedisProbe),
        Box::new(kafka::KafkaProbe),
        Box::new(mongo::MongoProbe),
        Box::new(postgres::PostgresProbe),
        Box::new(mysql::MysqlProbe),
        Box::new(amqp::AmqpProbe),
        Box::new(dns::DnsTcpProbe),
        Box::new(dns::DnsUdpProbe),
        Box::new(quic::QuicProbe),
        Box::new(ws::WsProbe),
    ]
}
