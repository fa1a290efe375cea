//! The batch an agent sends the hub: who sent it (agent instance, sequence number, node),
//! the agent's counters, and the items (entries still to be named, DNS answers, raw packets),
//! LZ4-compressed.
//!
//! Layout: `WMU2`, the head in varints and length-prefixed byte strings, then the items as one
//! size-prefixed LZ4 block; entries in the store's record codec (identities empty: the hub
//! names them). Everything read is
//! bounded: the declared size before decompressing, every count and length against the bytes
//! left.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wiremap_capture::LinkType;
use wiremap_dissect::DnsAnswer;
use wiremap_model::{Entry, Stats, Timestamp};

const MAGIC: &[u8; 4] = b"WMU2";

/// Largest batch, decompressed. An agent cuts batches well below it.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// A batch that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not LZ4, or a declared size over [`MAX_BATCH_BYTES`].
    #[error("batch does not decompress: {0}")]
    Compression(String),
    /// Not a batch of this version.
    #[error("not a wiremap batch (bad magic or version)")]
    Magic,
    /// Cut short or inconsistent.
    #[error("corrupt batch: {0}")]
    Corrupt(&'static str),
}

/// What an agent reports about itself with every batch (totals since it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// Its pipeline: packets, bytes, flows, entries, drops by reason (its buffer's drops
    /// among them, as `uplink_buffer_*`).
    pub pipeline: Stats,
    /// Packets the kernel dropped (rings full).
    pub kernel_drops: u64,
    /// Batches sent again after a failed attempt.
    pub resent: u64,
}

/// Most drop reasons an agent reports, and their longest name: the hub keeps every agent's
/// last counters, so they must stay small.
const MAX_REASONS: u64 = 256;
const MAX_REASON_NAME: usize = 64;

/// One raw packet, for the hub's store (export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    /// Capture time.
    pub ts: Timestamp,
    /// Link type.
    pub link: LinkType,
    /// Length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

/// A raw packet still in the capture buffer, written into a batch without a copy of its own.
#[derive(Debug, Clone, Copy)]
pub struct RawPacketRef<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Link type.
    pub link: LinkType,
    /// Length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// One item of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A finished entry, not yet named.
    Entry(Entry),
    /// An address a DNS answer named.
    Answer(DnsAnswer),
    /// A raw packet.
    Packet(RawPacket),
}

/// A batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Random per agent process: a restarted agent is a new sender.
    pub instance: u64,
    /// 1, 2, 3… per instance; the hub acknowledges by the highest stored. 0 is a probe: no
    /// items, only the question of what is stored.
    pub seq: u64,
    /// The agent's node.
    pub node: String,
    /// The agent's counters.
    pub counters: AgentCounters,
    /// Items in capture order.
    pub items: Vec<Item>,
}

fn put_u(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_b(out: &mut Vec<u8>, b: &[u8]) {
    put_u(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_ts(out: &mut Vec<u8>, t: Timestamp) {
    put_u(out, ((t.0 << 1) ^ (t.0 >> 63)) as u64);
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// Everything of a batch but its items: readable without decompressing them, so the hub's
/// door can tell a new batch from one it has, and leave the items to its ingest thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// See [`Batch::instance`].
    pub instance: u64,
    /// See [`Batch::seq`].
    pub seq: u64,
    /// See [`Batch::node`].
    pub node: String,
    /// See [`Batch::counters`].
    pub counters: AgentCounters,
}

impl Head {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        put_u(out, self.instance);
        put_u(out, self.seq);
        put_b(out, self.node.as_bytes());
        let c = &self.counters;
        let p = &c.pipeline;
        for v in [
            p.packets,
            p.bytes,
            p.flows,
            p.entries,
            c.kernel_drops,
            c.resent,
        ] {
            put_u(out, v);
        }
        put_u(out, p.dropped.len() as u64);
        for (k, v) in &p.dropped {
            put_b(out, k.as_bytes());
            put_u(out, *v);
        }
    }
}

impl Batch {
    /// Appends one item to the (uncompressed) items of a batch being built.
    pub fn put_item(out: &mut Vec<u8>, item: &Item) {
        match item {
            Item::Entry(e) => {
                out.push(1);
                let mut rec = Vec::with_capacity(256);
                wiremap_store::put_entry(&mut rec, e, &mut |_| 0);
                put_b(out, &rec);
            }
            Item::Answer(a) => {
                out.push(2);
                put_ts(out, a.ts);
                put_ip(out, a.addr);
                put_b(out, a.name.as_bytes());
                put_u(out, u64::from(a.ttl));
            }
            Item::Packet(p) => Batch::put_packet(
                out,
                &RawPacketRef {
                    ts: p.ts,
                    link: p.link,
                    orig_len: p.orig_len,
                    data: &p.data,
                },
            ),
        }
    }

    /// Appends one raw packet (an [`Item::Packet`] that borrows its bytes).
    pub fn put_packet(out: &mut Vec<u8>, p: &RawPacketRef<'_>) {
        out.push(3);
        put_ts(out, p.ts);
        put_u(out, u64::from(p.link.0));
        put_u(out, u64::from(p.orig_len));
        put_b(out, p.data);
    }

    /// A batch's body: the head as it is, then the items ([`Batch::put_item`]) compressed.
    pub fn seal(head: &Head, items: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + items.len() / 2);
        head.put(&mut out);
        out.extend_from_slice(&lz4_flex::compress_prepend_size(items));
        out
    }

    /// The whole batch, encoded and compressed.
    pub fn encode(&self) -> Vec<u8> {
        let mut items = Vec::new();
        for i in &self.items {
            Batch::put_item(&mut items, i);
        }
        Batch::seal(
            &Head {
                instance: self.instance,
                seq: self.seq,
                node: self.node.clone(),
                counters: self.counters.clone(),
            },
            &items,
        )
    }

    /// Reads the head of a body; returns it with the compressed items that follow.
    pub fn head(body: &[u8]) -> Result<(Head, &[u8]), WireError> {
        let mut r = Reader { b: body };
        if r.take(4)? != MAGIC {
            return Err(WireError::Magic);
        }
        let instance = r.u()?;
        let seq = r.u()?;
        let node = r.string()?;
        let mut counters = AgentCounters {
            pipeline: Stats {
                packets: r.u()?,
                bytes: r.u()?,
                flows: r.u()?,
                entries: r.u()?,
                dropped: Default::default(),
            },
            kernel_drops: r.u()?,
            resent: r.u()?,
        };
        let n = r.u()?;
        if n > MAX_REASONS {
            return Err(WireError::Corrupt("too many drop reasons"));
        }
        for _ in 0..n {
            let k = r.string()?;
            if k.len() > MAX_REASON_NAME {
                return Err(WireError::Corrupt("drop reason name too long"));
            }
            let v = r.u()?;
            counters.pipeline.dropped.insert(k, v);
        }
        let head = Head {
            instance,
            seq,
            node,
            counters,
        };
        Ok((head, r.b))
    }

    /// Decompresses and decodes the items that follow a head.
    pub fn items(compressed: &[u8]) -> Result<Vec<Item>, WireError> {
        let declared = compressed
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(WireError::Corrupt("short"))?;
        if declared > MAX_BATCH_BYTES {
            return Err(WireError::Compression(format!(
                "declares {declared} bytes, over the {MAX_BATCH_BYTES} limit"
            )));
        }
        let raw = lz4_flex::decompress_size_prepended(compressed)
            .map_err(|e| WireError::Compression(e.to_string()))?;
        let mut r = Reader { b: &raw };
        let mut items = Vec::new();
        while !r.b.is_empty() {
            items.push(r.item()?);
        }
        Ok(items)
    }

    /// Decodes a whole body.
    pub fn decode(body: &[u8]) -> Result<Batch, WireError> {
        let (head, rest) = Batch::head(body)?;
        Ok(Batch::from_parts(head, Batch::items(rest)?))
    }

    /// A batch of a head and its items.
    pub fn from_parts(head: Head, items: Vec<Item>) -> Batch {
        Batch {
            instance: head.instance,
            seq: head.seq,
            node: head.node,
            counters: head.counters,
            items,
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.b.len() {
            return Err(WireError::Corrupt("length past the end"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let c = self.byte()?;
            v |= u64::from(c & 0x7f) << shift;
            if c & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Corrupt("long varint"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(self.u()?).map_err(|_| WireError::Corrupt("length"))?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError::Corrupt("not UTF-8"))
    }

    fn ts(&mut self) -> Result<Timestamp, WireError> {
        let z = self.u()?;
        Ok(Timestamp(((z >> 1) as i64) ^ -((z & 1) as i64)))
    }

    fn ip(&mut self) -> Result<IpAddr, WireError> {
        match self.byte()? {
            4 => {
                let b: [u8; 4] = self
                    .take(4)?
                    .try_into()
                    .map_err(|_| WireError::Corrupt("ip"))?;
                Ok(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let b: [u8; 16] = self
                    .take(16)?
                    .try_into()
                    .map_err(|_| WireError::Corrupt("ip"))?;
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => Err(WireError::Corrupt("address family")),
        }
    }

    fn item(&mut self) -> Result<Item, WireError> {
        match self.byte()? {
            1 => {
                let e = wiremap_store::decode_entry(self.bytes()?)
                    .map_err(|c| WireError::Corrupt(c.0))?;
                Ok(Item::Entry(e))
            }
            2 => Ok(Item::Answer(DnsAnswer {
                ts: self.ts()?,
                addr: self.ip()?,
                name: self.string()?,
                ttl: u32::try_from(self.u()?).map_err(|_| WireError::Corrupt("ttl"))?,
            })),
            3 => {
                let ts = self.ts()?;
                let link = u32::try_from(self.u()?).map_err(|_| WireError::Corrupt("link"))?;
                let orig_len =
                    u32::try_from(self.u()?).map_err(|_| WireError::Corrupt("orig_len"))?;
                let data = self.bytes()?.to_vec();
                Ok(Item::Packet(RawPacket {
                    ts,
                    link: LinkType(link),
                    orig_len,
                    data,
                }))
            }
            _ => Err(WireError::Corrupt("item type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremap_model::{Detail, DnsInfo, Endpoint, Protocol, Transport};

    fn entry(isn: Option<u32>) -> Entry {
        Entry {
            id: 0,
            stream: 3,
            index: 1,
            timestamp: Timestamp(1_700_000_000_123_456_789),
            elapsed_time: 420,
            protocol: Protocol::Dns,
            transport: Transport::Udp,
            src: Endpoint::new(
                "10.1.0.2"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                5353,
            ),
            dst: Endpoint::new(
                "10.2.0.9"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                53,
            ),
            request_size: 40,
            response_size: 90,
            has_response: true,
            status_code: 0,
            error: false,
            node_name: "node-1".into(),
            seen_by: Vec::new(),
            client_isn: isn,
            detail: Detail::Dns(Box::new(DnsInfo {
                questions: vec!["api.shop.test".into()],
                question_types: vec!["A".into()],
                answers: vec!["10.2.0.9".into()],
                request_length: 40,
                response_length: 90,
            })),
        }
    }

    fn batch() -> Batch {
        Batch {
            instance: 0xdead_beef_1234,
            seq: 77,
            node: "node-1".into(),
            counters: AgentCounters {
                pipeline: Stats {
                    packets: 10,
                    bytes: 1000,
                    flows: 2,
                    entries: 3,
                    dropped: [("uplink_buffer_entries".to_string(), 2)].into(),
                },
                kernel_drops: 1,
                resent: 4,
            },
            items: vec![
                Item::Entry(entry(Some(u32::MAX))),
                Item::Answer(DnsAnswer {
                    ts: Timestamp(-5),
                    addr: "fd00::1".parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                    name: "api.shop.test".into(),
                    ttl: 30,
                }),
                Item::Packet(RawPacket {
                    ts: Timestamp(1),
                    link: LinkType::ETHERNET,
                    orig_len: 1500,
                    data: vec![1, 2, 3],
                }),
                Item::Entry(entry(None)),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let b = batch();
        assert_eq!(Batch::decode(&b.encode()), Ok(b));
    }

    #[test]
    fn every_prefix_and_flipped_byte_is_an_error_or_a_batch() {
        let b = batch();
        let body = b.encode();
        let (head, _) = Batch::head(&body).expect("head");
        let mut items = Vec::new();
        for i in &b.items {
            Batch::put_item(&mut items, i);
        }
        // Items cut short anywhere: never a panic; a cut inside an item is an error.
        for n in 0..items.len() {
            if let Ok(got) = Batch::decode(&Batch::seal(&head, &items[..n])) {
                assert!(got.items.len() < b.items.len(), "prefix {n} decoded whole");
            }
        }
        for i in 0..items.len() {
            let mut bad = items.clone();
            bad[i] ^= 0x5a;
            let _ = Batch::decode(&Batch::seal(&head, &bad));
        }
        // The body cut anywhere, or with a byte flipped (the head, the LZ4 block).
        for n in 0..body.len() {
            assert!(Batch::decode(&body[..n]).is_err(), "body prefix {n}");
            let mut bad = body.clone();
            bad[n] ^= 0x5a;
            let _ = Batch::decode(&bad);
        }
        // Garbage and a lying size header.
        assert!(Batch::decode(b"").is_err());
        assert_eq!(Batch::decode(b"XXXX"), Err(WireError::Magic));
        let head_len = body.len() - Batch::head(&body).expect("head").1.len();
        let mut huge = body[..head_len].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2]);
        assert!(matches!(
            Batch::items(&huge[head_len..]),
            Err(WireError::Compression(_))
        ));
    }
}
