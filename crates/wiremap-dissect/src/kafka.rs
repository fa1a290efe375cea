//! Kafka: length-prefixed requests matched to responses by correlation id; API key and
//! version, client id.

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, flush, Events, Frame, Framer, Pending};
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

/// Highest API key wiremap recognises (Kafka 3.x/4.x define up to ~75).
const MAX_API_KEY: i16 = 100;
const MAX_FRAME: usize = 100 << 20;

/// Name of an API key.
pub fn api_name(k: i16) -> &'static str {
    match k {
        0 => "Produce",
        1 => "Fetch",
        2 => "ListOffsets",
        3 => "Metadata",
        4 => "LeaderAndIsr",
        5 => "StopReplica",
        6 => "UpdateMetadata",
        7 => "ControlledShutdown",
        8 => "OffsetCommit",
        9 => "OffsetFetch",
        10 => "FindCoordinator",
        11 => "JoinGroup",
        12 => "Heartbeat",
        13 => "LeaveGroup",
        14 => "SyncGroup",
        15 => "DescribeGroups",
        16 => "ListGroups",
        17 => "SaslHandshake",
        18 => "ApiVersions",
        19 => "CreateTopics",
        20 => "DeleteTopics",
        21 => "DeleteRecords",
        22 => "InitProducerId",
        23 => "OffsetForLeaderEpoch",
        24 => "AddPartitionsToTxn",
        25 => "AddOffsetsToTxn",
        26 => "EndTxn",
        27 => "WriteTxnMarkers",
        28 => "TxnOffsetCommit",
        29 => "DescribeAcls",
        30 => "CreateAcls",
        31 => "DeleteAcls",
        32 => "DescribeConfigs",
        33 => "AlterConfigs",
        34 => "AlterReplicaLogDirs",
        35 => "DescribeLogDirs",
        36 => "SaslAuthenticate",
        37 => "CreatePartitions",
        38 => "CreateDelegationToken",
        39 => "RenewDelegationToken",
        40 => "ExpireDelegationToken",
        41 => "DescribeDelegationToken",
        42 => "DeleteGroups",
        43 => "ElectLeaders",
        44 => "IncrementalAlterConfigs",
        45 => "AlterPartitionReassignments",
        46 => "ListPartitionReassignments",
        47 => "OffsetDelete",
        48 => "DescribeClientQuotas",
        49 => "AlterClientQuotas",
        50 => "DescribeUserScramCredentials",
        51 => "AlterUserScramCredentials",
        55 => "DescribeQuorum",
        57 => "UpdateFeatures",
        60 => "DescribeCluster",
        61 => "DescribeProducers",
        64 => "UnregisterBroker",
        65 => "DescribeTransactions",
        66 => "ListTransactions",
        67 => "AllocateProducerIds",
        68 => "ConsumerGroupHeartbeat",
        69 => "ConsumerGroupDescribe",
        71 => "GetTelemetrySubscriptions",
        72 => "PushTelemetry",
        _ => "Unknown",
    }
}

fn be_i16(d: &[u8], i: usize) -> Option<i16> {
    Some(i16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]))
}

fn be_i32(d: &[u8], i: usize) -> Option<i32> {
    Some(i32::from_be_bytes([
        *d.get(i)?,
        *d.get(i + 1)?,
        *d.get(i + 2)?,
        *d.get(i + 3)?,
    ]))
}

fn frame(d: &[u8]) -> Frame {
    match be_i32(d, 0) {
        None => Frame::Need,
        Some(n) if n < 4 || n as usize > MAX_FRAME => Frame::Bad,
        Some(n) => Frame::Len(4 + n as usize),
    }
}

/// A request header: (api key, version, correlation id, client id).
fn request_header(d: &[u8]) -> Option<(i16, i16, i32, String)> {
    let len = be_i32(d, 0)?;
    let key = be_i16(d, 4)?;
    let ver = be_i16(d, 6)?;
    let corr = be_i32(d, 8)?;
    if !(0..=MAX_API_KEY).contains(&key) || !(0..=30).contains(&ver) || len < 10 {
        return None;
    }
    let cid_len = be_i16(d, 12)?;
    let client = match cid_len {
        -1 => String::new(),
        n if n >= 0 => {
            let s = d.get(14..14 + n as usize)?;
            if !s.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                return None;
            }
            String::from_utf8_lossy(s).into_owned()
        }
        _ => return None,
    };
    if 14 + client.len() > 4 + len as usize {
        return None;
    }
    Some((key, ver, corr, client))
}

/// Kafka requests: plausible length, API key, version and printable client id.
#[derive(Debug)]
pub struct KafkaProbe;

impl Probe for KafkaProbe {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.len() < 14 {
            return match frame(d) {
                Frame::Bad => Verdict::No,
                _ => Verdict::NeedMore,
            };
        }
        match (frame(d), request_header(d)) {
            (Frame::Len(n), Some((key, ..))) if api_name(key) != "Unknown" && n >= 14 => {
                Verdict::Yes
            }
            (Frame::Len(_), None)
                if d.len() < 14 + 256
                    && be_i16(d, 12).is_some_and(|n| n > 0 && 14 + n as usize > d.len()) =>
            {
                Verdict::NeedMore
            }
            _ => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Kafka::default())
    }
}

/// The Kafka dissector of one connection.
#[derive(Debug, Default)]
pub struct Kafka {
    framer: Framer,
    client: Option<Direction>,
    pending: Vec<Pending>,
}

impl Dissector for Kafka {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let client = &mut self.client;
        let pending = &mut self.pending;
        self.framer.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::KafkaDesync,
                skipped: DropReason::KafkaMessageSkipped,
            },
            frame,
            |cx, t, msg, len| {
                if client.is_none_or(|c| c == dir) {
                    if let Some((key, ver, corr, cid)) = request_header(msg) {
                        *client = Some(dir);
                        let name = api_name(key);
                        let info = AppInfo::default()
                            .int("kafka_api_key", i64::from(key))
                            .str("kafka_api_key_name", name)
                            .int("kafka_api_version", i64::from(ver))
                            .str("kafka_client_id", cid)
                            .str("kafka_request_summary", format!("{name} v{ver}"))
                            .bool("kafka_request", true);
                        if pending.len() > 1024 {
                            pending.remove(0);
                            cx.stats.event(DropReason::KafkaPendingEvicted);
                        }
                        pending.push(Pending {
                            ts: t,
                            client: dir,
                            info,
                            size: len,
                            key: i64::from(corr),
                        });
                        return;
                    }
                    if Some(dir) == *client {
                        cx.stats.event(DropReason::KafkaMalformedRequest);
                        return;
                    }
                }
                let Some(corr) = be_i32(msg, 4) else { return };
                match pending.iter().position(|p| p.key == i64::from(corr)) {
                    Some(i) => {
                        let p = pending.remove(i);
                        emit_app(
                            cx,
                            Protocol::Kafka,
                            p,
                            Some((t, len)),
                            0,
                            false,
                            AppInfo::default().bool("kafka_response", true),
                        );
                    }
                    None => cx.stats.event(DropReason::KafkaUnmatchedResponse),
                }
            },
        );
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::KafkaGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        flush(cx, Protocol::Kafka, std::mem::take(&mut self.pending));
    }
}
