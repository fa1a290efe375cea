use std::collections::BTreeMap;
use std::net::IpAddr;

use wiremap_model::{
    Detail, Direction, DropCounts, DropReason, Endpoint, Entry, Protocol, Timestamp,
};
use wiremap_reassembly::FlowInfo;

/// An address a DNS answer named, for the identity index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// When the answer was seen.
    pub ts: Timestamp,
    /// The address.
    pub addr: IpAddr,
    /// The name the client asked for (CNAME chains followed back to it).
    pub name: String,
    /// Record TTL in seconds.
    pub ttl: u32,
}

/// What dissectors produced; drained by the caller after each packet.
#[derive(Debug, Default)]
pub struct Output {
    /// Finished entries, in emission order.
    pub entries: Vec<Entry>,
    /// DNS answers.
    pub answers: Vec<DnsAnswer>,
}

/// Counters of detection and dissection. `events` holds every desync or parse failure by a
/// stable name (`http_desync`, `dns_malformed`, …).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DissectStats {
    /// Flows per detected protocol (`http`, `tls`, `dns`, `tcp`, `udp`).
    pub flows: BTreeMap<&'static str, u64>,
    /// Desyncs, malformed messages and other losses, by reason.
    pub events: DropCounts,
}

impl DissectStats {
    /// Counts one occurrence of `event`.
    pub fn event(&mut self, event: DropReason) {
        self.events.add(event);
    }
}

/// What a dissector sees of its flow and where it writes.
#[derive(Debug)]
pub struct Cx<'a> {
    /// The flow.
    pub info: &'a FlowInfo,
    /// Output queue.
    pub out: &'a mut Output,
    /// Counters.
    pub stats: &'a mut DissectStats,
    /// Index of the next entry in this flow.
    pub index: &'a mut u32,
    /// Capture node name to stamp on entries.
    pub node: &'a str,
    /// Keep entries lean (see [`crate::DissectConfig::lean`]).
    pub lean: bool,
}

impl Cx<'_> {
    /// Endpoint of side `dir`'s sender.
    pub fn endpoint(&self, dir: Direction) -> Endpoint {
        let k = &self.info.key;
        match dir {
            Direction::AtoB => Endpoint::new(k.a_ip, k.a_port),
            Direction::BtoA => Endpoint::new(k.b_ip, k.b_port),
        }
    }

    /// Emits an entry whose client sent in `client` direction.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        client: Direction,
        protocol: Protocol,
        ts: Timestamp,
        response_ts: Option<Timestamp>,
        request_size: u64,
        response_size: u64,
        status_code: i64,
        error: bool,
        detail: Detail,
    ) {
        let entry = Entry {
            id: 0,
            stream: self.info.id,
            index: *self.index,
            timestamp: ts,
            elapsed_time: response_ts.map(|r| ts.micros_until(r)).unwrap_or(0),
            protocol,
            transport: self.info.key.transport,
            src: self.endpoint(client),
            dst: self.endpoint(client.flip()),
            request_size,
            response_size,
            has_response: response_ts.is_some(),
            status_code,
            error,
            node_name: self.node.to_string(),
            seen_by: Vec::new(),
            // The ISN is the initiator's: it names the connection only when the initiator
            // is the client.
            client_isn: if client == Direction::AtoB {
                self.info.client_isn
            } else {
                None
            },
            detail,
        };
        *self.index += 1;
        self.out.entries.push(entry);
    }
}
