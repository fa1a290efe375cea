//! Every way wiremap drops, cuts or gives up on traffic or state, as one type.
//!
//! Why one enum: a counter is named and explained in one place, counting costs an array
//! index instead of a string, and the names that `stats.dropped`, `/api/stats` and
//! `wiremap_dropped_total{reason}` show cannot drift from their documentation
//! (`wiremap drops` prints this table). Frames the decoder refuses are counted by their own
//! typed error (`truncated_<header>`, `malformed_<header>`, `unsupported_link`,
//! `tunnel_too_deep`).

macro_rules! reasons {
    ($($variant:ident = $name:literal, $meaning:literal;)*) => {
        /// Why something was dropped, cut or not understood.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum DropReason {
            $(#[doc = $meaning] $variant,)*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),*];

            /// The counter's name (`http_desync`, `flows_evicted_memory`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            /// One sentence on what was lost and what happens next.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $meaning,)*
                }
            }
        }
    };
}

reasons! {
    NonIpFrames = "non_ip_frames", "Frames that carry no IP (ARP, LLDP, STP…): not traffic between endpoints.";
    OtherIpProtocols = "other_ip_protocols", "IP packets that are neither TCP nor UDP (ICMP, SCTP…).";
    FragmentsEvicted = "fragments_evicted", "IP fragments dropped unreassembled: the fragment table was full or the datagram timed out.";
    FragmentsInvalid = "fragments_invalid", "IP fragments that overlap inconsistently or exceed the datagram's size.";
    TcpGaps = "tcp_gaps", "Holes declared in TCP streams: bytes the capture never showed (acknowledged by the peer, past the out-of-order buffer, or open at the flow's end).";
    TcpGapBytes = "tcp_gap_bytes", "Bytes in those holes.";
    FlowsEvicted = "flows_evicted", "Flows closed early because the flow table was full (least recently active first).";
    FlowsEvictedMemory = "flows_evicted_memory", "Flows closed early to stay within --memory-limit (least recently active first).";
    OrphanTcpPackets = "orphan_tcp_packets", "TCP packets for no known flow that could not start one (a stray ACK, RST or FIN; not the last packets of a connection that closed in the two minutes before).";
    IdentityAddressesEvicted = "identity_addresses_evicted", "Learnt names (DNS answers, SNI/Host hints) forgotten to stay within the identity budget.";
    MapEntriesFolded = "map_entries_folded", "Entries drawn on an \"other\" node or edge because the map reached its node or edge budget.";
    MapEntriesDropped = "map_entries_dropped", "Entries left off the map because even its \"other\" edges were full.";
    HttpDesync = "http_desync", "HTTP/1 bytes that were not a message where one was expected; the direction searches for the next start line.";
    HttpResync = "http_resync", "HTTP/1 found a request or status line again after a desync.";
    HttpGapDesync = "http_gap_desync", "A TCP gap inside an HTTP/1 message whose end is unknown; the direction resynchronises.";
    HttpChunkDesync = "http_chunk_desync", "A malformed chunk in a chunked HTTP/1 body; the direction resynchronises.";
    HttpHeadTooLarge = "http_head_too_large", "An HTTP/1 head over 64 KiB: dropped, the direction resynchronises.";
    HttpHeadUnfinished = "http_head_unfinished", "A flow ended holding an incomplete HTTP/1 head.";
    HttpMalformed = "http_malformed", "An HTTP/1 head that does not parse.";
    HttpMalformedHeaders = "http_malformed_headers", "HTTP/1 headers that do not parse; the message is kept without them.";
    HttpUnmatchedResponse = "http_unmatched_response", "An HTTP/1 response with no request seen for it.";
    Http2Desync = "http2_desync", "HTTP/2 bytes that are not a frame; the direction is lost.";
    Http2GapDesync = "http2_gap_desync", "A TCP gap in an HTTP/2 connection; the direction is lost.";
    Http2ContinuationLost = "http2_continuation_lost", "A CONTINUATION frame without the HEADERS it continues.";
    Http2HeaderBlockTooLarge = "http2_header_block_too_large", "HEADERS and CONTINUATION over 256 KiB: the block is dropped and the direction's HPACK table restarts as if joined mid-stream.";
    Http2HeaderListTruncated = "http2_header_list_truncated", "A decoded HTTP/2 header list over 256 KiB, or a field over 64 KiB: fields dropped or cut.";
    Http2HpackError = "http2_hpack_error", "A malformed HPACK block; decoding stopped there.";
    Http2MalformedHeaders = "http2_malformed_headers", "HTTP/2 headers without the pseudo-headers a request or response needs.";
    Http2StreamsEvicted = "http2_streams_evicted", "HTTP/2 streams forgotten because a connection held too many open at once.";
    Http2DataSkipped = "http2_data_skipped", "An HTTP/2 DATA frame over 64 KiB counted by its length instead of buffered.";
    DnsDesync = "dns_desync", "DNS over TCP bytes that are not a message; the direction is lost.";
    DnsGapDesync = "dns_gap_desync", "A TCP gap in DNS over TCP; the direction is lost.";
    DnsMalformed = "dns_malformed", "A DNS message that does not parse.";
    DnsPendingEvicted = "dns_pending_evicted", "DNS queries forgotten unanswered because a flow held too many at once.";
    DnsUnmatchedResponse = "dns_unmatched_response", "A DNS response with no query seen for it.";
    DnsAnswersTruncated = "dns_answers_truncated", "A DNS reply with over 1,024 records: its entry keeps the first 1,024.";
    TlsDesync = "tls_desync", "TLS bytes that are not a record; the handshake is not read further.";
    TlsHandshakeTooLarge = "tls_handshake_too_large", "A TLS handshake message over its cap: not read.";
    TlsMalformedClientHello = "tls_malformed_client_hello", "A ClientHello that does not parse.";
    TlsMalformedServerHello = "tls_malformed_server_hello", "A ServerHello that does not parse.";
    QuicUndecryptable = "quic_undecryptable", "A QUIC flow whose Initial packets could not be decrypted (no SNI).";
    RedisDesync = "redis_desync", "Redis bytes that are not RESP; the direction is lost.";
    RedisGapDesync = "redis_gap_desync", "A TCP gap in a Redis connection; the direction is lost.";
    RedisMessageSkipped = "redis_message_skipped", "A Redis message over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    RedisPush = "redis_push", "A Redis push or pub/sub message that answers no command.";
    KafkaDesync = "kafka_desync", "Kafka bytes that are not a message; the direction is lost.";
    KafkaGapDesync = "kafka_gap_desync", "A TCP gap in a Kafka connection; the direction is lost.";
    KafkaMessageSkipped = "kafka_message_skipped", "A Kafka message over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    KafkaMalformedRequest = "kafka_malformed_request", "A Kafka request header that does not parse.";
    KafkaPendingEvicted = "kafka_pending_evicted", "Kafka requests forgotten unanswered because a flow held too many at once.";
    KafkaUnmatchedResponse = "kafka_unmatched_response", "A Kafka response with no request seen for it.";
    MongodbDesync = "mongodb_desync", "MongoDB bytes that are not a message; the direction is lost.";
    MongodbGapDesync = "mongodb_gap_desync", "A TCP gap in a MongoDB connection; the direction is lost.";
    MongodbMessageSkipped = "mongodb_message_skipped", "A MongoDB message over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    MongodbPendingEvicted = "mongodb_pending_evicted", "MongoDB requests forgotten unanswered because a flow held too many at once.";
    MongodbUnmatchedReply = "mongodb_unmatched_reply", "A MongoDB reply with no request seen for it.";
    PostgresqlDesync = "postgresql_desync", "PostgreSQL bytes that are not a message; the direction is lost.";
    PostgresqlGapDesync = "postgresql_gap_desync", "A TCP gap in a PostgreSQL connection; the direction is lost.";
    PostgresqlMessageSkipped = "postgresql_message_skipped", "A PostgreSQL message over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    PostgresqlPendingEvicted = "postgresql_pending_evicted", "PostgreSQL queries forgotten unanswered because a flow held too many at once.";
    PostgresqlUnmatchedError = "postgresql_unmatched_error", "A PostgreSQL error with no query seen for it.";
    MysqlDesync = "mysql_desync", "MySQL bytes that are not a packet; the direction is lost.";
    MysqlGapDesync = "mysql_gap_desync", "A TCP gap in a MySQL connection; the direction is lost.";
    MysqlMessageSkipped = "mysql_message_skipped", "A MySQL packet over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    MysqlUnknownCommand = "mysql_unknown_command", "A MySQL command byte wiremap does not know; no entry for it.";
    AmqpDesync = "amqp_desync", "AMQP bytes that are not a frame; the direction is lost.";
    AmqpGapDesync = "amqp_gap_desync", "A TCP gap in an AMQP connection; the direction is lost.";
    AmqpMessageSkipped = "amqp_message_skipped", "An AMQP frame over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    AmqpPendingEvicted = "amqp_pending_evicted", "AMQP methods forgotten unanswered because a channel held too many at once.";
    WsDesync = "ws_desync", "WebSocket bytes that are not a frame; the direction is lost.";
    WsGapDesync = "ws_gap_desync", "A TCP gap in a WebSocket connection; the direction is lost.";
    WsMessageSkipped = "ws_message_skipped", "A WebSocket frame over the 8 MiB buffer: read from its first 16 KiB and skipped by length.";
    WsServerFrame = "ws_server_frame", "A WebSocket server frame that answers no client message.";
    UplinkBufferEntries = "uplink_buffer_entries", "Entries an agent dropped because its buffer for the hub was full (hub away or too slow); the oldest batches go first.";
    UplinkBufferPackets = "uplink_buffer_packets", "Raw packets an agent dropped with the batches its full buffer let go.";
    UplinkBatchRejected = "uplink_batch_rejected", "Agent batches the hub could not decode (answered 400; the agent drops them).";
    HubReleasedEarly = "hub_released_early", "Entries the hub stored before their twin from another node could arrive, because too many were waiting (they may then count twice).";
    SinkBufferEntries = "sink_buffer_entries", "Entries the hub could not get into ClickHouse before its buffer for it filled (ClickHouse away or too slow); the oldest go first. They stay in the hub's own store.";
    HubForgottenEarly = "hub_forgotten_early", "Stored entries whose key the hub forgot early (too many remembered), so a very late twin could count twice.";
}

impl DropReason {
    /// How many reasons there are (for counters kept in an array).
    pub const COUNT: usize = DropReason::ALL.len();

    /// The reason named `name`.
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// Its place in [`DropReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts per reason, without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; DropReason::COUNT])
    }
}

impl DropCounts {
    /// Counts one.
    pub fn add(&mut self, r: DropReason) {
        self.0[r.index()] += 1;
    }

    /// Counts `n`.
    pub fn add_n(&mut self, r: DropReason, n: u64) {
        self.0[r.index()] += n;
    }

    /// The count of `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }

    /// Every non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.0[r.index()]))
            .filter(|(_, n)| *n > 0)
    }
}

/// Whole-run counters of a pipeline, shown with every map: what was read and produced, and
/// everything dropped or not understood by reason (the names of [`DropReason`], and the
/// decoder's `truncated_<header>`-style ones).
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Packets read.
    pub packets: u64,
    /// Bytes of captured packets.
    pub bytes: u64,
    /// Flows seen.
    pub flows: u64,
    /// Entries produced.
    pub entries: u64,
    /// Everything dropped or not understood, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            let n = r.name();
            assert!(seen.insert(n), "{n} twice");
            assert!(n
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
            assert!(r.meaning().ends_with('.'), "{n}");
            assert_eq!(DropReason::from_name(n), Some(*r));
            assert_eq!(DropReason::ALL[r.index()], *r);
        }
        let mut c = DropCounts::default();
        c.add(DropReason::HttpDesync);
        c.add_n(DropReason::TcpGapBytes, 5);
        let v: Vec<_> = c.nonzero().collect();
        assert_eq!(
            v,
            [(DropReason::TcpGapBytes, 5), (DropReason::HttpDesync, 1)]
        );
    }
}
