//! The pipeline that every front end shares: packets in, identified entries out.
//!
//! [`Engine::packet`] takes one captured packet through decode, reassembly and dissection,
//! feeds DNS answers to the identity index, and hands each finished [`Entry`] — with a run-
//! unique id and the identities of both sides at the time of the exchange — to the caller.
//! [`run_sources`] drives an engine over capture files merged in time order, turning a
//! truncated tail into a warning and anything worse into an error that names the file and
//! record. Everything dropped anywhere in the pipeline ends up in [`Engine::stats`].
#![deny(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use wiremap_capture::{CaptureError, FileSource, Merge, Packet, PacketSource};
use wiremap_decode::{Decoder, Transport as L4};
use wiremap_dissect::{Dissect, DissectConfig, Session};
use wiremap_identity::{IdentityIndex, IdentityLimits, Zones};
pub use wiremap_model::Stats;
use wiremap_model::{Detail, DropReason, Entry, Timestamp};
use wiremap_reassembly::{FlowTable, Limits};

/// Settings of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Flow table caps and timeouts.
    pub limits: Limits,
    /// Dissector settings.
    pub dissect: DissectConfig,
    /// Identity index caps.
    pub identity: IdentityLimits,
    /// User zones.
    pub zones: Zones,
    /// Kubernetes address holdings (from `--k8s` snapshots).
    pub k8s: Vec<wiremap_identity::Holding>,
}

/// The memory budget of a pipeline when none is given: flows, buffers and names together.
pub const DEFAULT_MEMORY_LIMIT: usize = 128 << 20;

impl EngineConfig {
    /// Shares one memory budget among the parts that grow with the traffic: three quarters
    /// for the flow table with its reassembly and dissector buffers, one quarter for the
    /// names learnt from DNS answers and traffic hints (about 2 KiB an address with its
    /// intervals). Kubernetes holdings are the cluster's own size and not counted here.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.limits.max_memory = bytes / 4 * 3;
        self.identity.max_addresses = (bytes / 4 / 2048).max(1024);
    }
}

/// The pipeline.
pub struct Engine {
    decoder: Decoder,
    table: FlowTable<Session>,
    dissect: Dissect,
    identity: IdentityIndex,
    packets: u64,
    bytes: u64,
    entries: u64,
    /// Frames that yielded no segment, by why (named only when stats are asked for).
    decode_errors: std::collections::HashMap<Option<wiremap_decode::DecodeError>, u64>,
    last_ts: Timestamp,
    scratch: Vec<Item>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("packets", &self.packets)
            .field("entries", &self.entries)
            .finish()
    }
}

/// What a run over capture files reported besides entries.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Inputs that stopped short after good records; their good part was used.
    pub warnings: Vec<String>,
    /// Inputs that could not be read at all, or broke in the middle.
    pub errors: Vec<CaptureError>,
}

impl Engine {
    /// A pipeline with `cfg`.
    pub fn new(cfg: EngineConfig) -> Self {
        let mut identity = IdentityIndex::new(cfg.identity);
        identity.set_zones(cfg.zones);
        identity.add_k8s(cfg.k8s);
        Engine {
            decoder: Decoder::new(),
            table: FlowTable::new(cfg.limits),
            dissect: Dissect::new(cfg.dissect),
            identity,
            packets: 0,
            bytes: 0,
            entries: 0,
            decode_errors: Default::default(),
            last_ts: Timestamp(i64::MIN),
            scratch: Vec::new(),
        }
    }

    /// Runs one packet through the pipeline; finished entries go to `out`.
    pub fn packet(&mut self, p: &Packet<'_>, out: &mut dyn FnMut(Entry)) {
        self.process(p);
        self.drain(out);
    }

    fn process(&mut self, p: &Packet<'_>) {
        self.packets += 1;
        self.bytes += p.data.len() as u64;
        self.last_ts = self.last_ts.max(p.ts);
        match self.decoder.decode(p.ts, p.link.0, p.data) {
            Ok(Some(seg)) => match seg.transport {
                L4::Tcp(t) => self
                    .table
                    .tcp(&mut self.dissect, p.ts, seg.src, seg.dst, &t),
                L4::Udp {
                    src_port,
                    dst_port,
                    payload,
                } => self.table.udp(
                    &mut self.dissect,
                    p.ts,
                    (seg.src, src_port),
                    (seg.dst, dst_port),
                    payload,
                ),
                // `None`: an IP protocol other than TCP and UDP.
                L4::Other(_) => *self.decode_errors.entry(None).or_insert(0) += 1,
            },
            Ok(None) => {}
            Err(e) => *self.decode_errors.entry(Some(e)).or_insert(0) += 1,
        }
    }

    /// Closes every flow (end of input) and emits what they still held.
    pub fn finish(&mut self, out: &mut dyn FnMut(Entry)) {
        let ts = self.last_ts.max(Timestamp(0));
        let mut items = std::mem::take(&mut self.scratch);
        let (identity, entries) = (&mut self.identity, &mut self.entries);
        self.table.finish_in_batches(&mut self.dissect, ts, |d| {
            collect(d, entries, &mut items);
            for item in items.drain(..) {
                apply(identity, item, out);
            }
        });
        self.scratch = items;
    }

    fn close_all(&mut self) {
        let ts = self.last_ts.max(Timestamp(0));
        self.table.finish(&mut self.dissect, ts);
    }

    fn drain(&mut self, out: &mut dyn FnMut(Entry)) {
        let mut items = std::mem::take(&mut self.scratch);
        self.collect(&mut items);
        for item in items.drain(..) {
            apply(&mut self.identity, item, out);
        }
        self.scratch = items;
    }

    /// Moves what the dissectors produced, in order, into `batch`: DNS answers, and entries
    /// numbered but not yet named (identity is applied by [`apply`]).
    fn collect(&mut self, batch: &mut Vec<Item>) {
        collect(&mut self.dissect, &mut self.entries, batch);
    }

    /// Replaces the Kubernetes holdings kept by live watches.
    pub fn set_live_k8s(&mut self, holdings: Vec<wiremap_identity::Holding>) {
        self.identity.set_live_k8s(holdings);
    }

    /// Decodes, reassembles and dissects one packet without naming anything: DNS answers and
    /// unnamed entries go to `out` in the order they were produced, for a naming engine
    /// ([`Engine::name`]) that may be fed by several dissecting ones.
    pub fn dissect(&mut self, p: &Packet<'_>, out: &mut Vec<Item>) {
        self.process(p);
        self.collect(out);
    }

    /// Closes every flow of a dissecting engine; what they held goes to `out`.
    pub fn finish_dissect(&mut self, out: &mut Vec<Item>) {
        self.close_all();
        self.collect(out);
    }

    /// Names one item from a dissecting engine with this engine's identity index.
    pub fn name(&mut self, item: Item, out: &mut dyn FnMut(Entry)) {
        apply(&mut self.identity, item, out);
    }

    /// Resolves an address at a time (for front ends that show flows without entries).
    pub fn resolve(
        &mut self,
        ip: IpAddr,
        ts: Timestamp,
    ) -> Option<std::sync::Arc<wiremap_model::Identity>> {
        self.identity.resolve(ip, ts)
    }

    /// Counters of the whole pipeline; `dropped` lists every non-zero drop and desync.
    pub fn stats(&self) -> Stats {
        let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
        for (e, n) in &self.decode_errors {
            let name = e.map_or_else(
                || DropReason::OtherIpProtocols.name().to_string(),
                |e| e.counter(),
            );
            *dropped.entry(name).or_insert(0) += n;
        }
        let d = self.decoder.stats();
        let r = self.table.stats();
        let i = self.identity.stats();
        let mut counts = self.dissect.stats().events.clone();
        for (k, v) in [
            (DropReason::NonIpFrames, d.non_ip),
            (DropReason::FragmentsEvicted, d.fragments.evicted),
            (DropReason::FragmentsInvalid, d.fragments.invalid),
            (DropReason::TcpGaps, r.gaps),
            (DropReason::TcpGapBytes, r.gap_bytes),
            (DropReason::FlowsEvicted, r.evicted_flows),
            (DropReason::FlowsEvictedMemory, r.memory_evicted_flows),
            (DropReason::OrphanTcpPackets, r.orphan_packets),
            (DropReason::IdentityAddressesEvicted, i.evicted_addresses),
        ] {
            counts.add_n(k, v);
        }
        for (k, v) in counts.nonzero() {
            dropped.insert(k.name().to_string(), v);
        }
        Stats {
            packets: self.packets,
            bytes: self.bytes,
            flows: r.tcp_flows + r.udp_flows,
            entries: self.entries,
            dropped,
        }
    }
}

/// Moves what the dissectors produced into `batch`, numbering entries from `entries`.
fn collect(dissect: &mut Dissect, entries: &mut u64, batch: &mut Vec<Item>) {
    let o = dissect.output();
    if o.entries.is_empty() && o.answers.is_empty() {
        return;
    }
    batch.extend(o.answers.drain(..).map(Item::Answer));
    for mut e in o.entries.drain(..) {
        *entries += 1;
        e.id = *entries;
        batch.push(Item::Entry(e));
    }
}

/// What the dissecting half of the pipeline hands to the naming half, in order.
#[derive(Debug)]
pub enum Item {
    /// An address a DNS answer named.
    Answer(wiremap_dissect::DnsAnswer),
    /// A finished entry, identities still to fill.
    Entry(Entry),
}

/// The naming half: feeds answers and traffic hints to the index and names both sides of
/// each entry as they were at its time.
fn apply(identity: &mut IdentityIndex, item: Item, out: &mut dyn FnMut(Entry)) {
    match item {
        Item::Answer(a) => identity.add_dns(a.ts, a.addr, &a.name, a.ttl),
        Item::Entry(mut e) => {
            let hint = match &e.detail {
                Detail::Tls(t) if !t.sni.is_empty() => Some(t.sni.as_str()),
                Detail::Http(h) if !h.host.is_empty() => Some(h.host.as_str()),
                _ => None,
            };
            if let Some(h) = hint {
                identity.add_hint(e.timestamp, e.dst.ip, h);
            }
            e.src.identity = identity.resolve(e.src.ip, e.timestamp);
            e.dst.identity = identity.resolve(e.dst.ip, e.timestamp);
            out(e);
        }
    }
}

/// Opens capture files (`-` is standard input) as one time-ordered source.
pub fn open_files(paths: &[String]) -> Result<Box<dyn PacketSource + Send>, CaptureError> {
    let mut sources: Vec<Box<dyn PacketSource + Send>> = Vec::with_capacity(paths.len());
    for p in paths {
        sources.push(Box::new(FileSource::open(p)?));
    }
    // One input needs no merging.
    if sources.len() == 1 {
        if let Some(only) = sources.pop() {
            return Ok(only);
        }
    }
    Ok(Box::new(Merge::new(sources)))
}

/// Drives `engine` over `source` to its end. A source that stops short after good records
/// (a truncated tail) is a warning; one that breaks otherwise is an error, but the other
/// inputs and everything read before still count. `progress` gets the bytes consumed.
///
/// Two threads share the work: this one decodes, reassembles and dissects; a second one
/// names the entries (identity) and hands them to `out`, in the order they were produced.
pub fn run_source(
    engine: &mut Engine,
    source: &mut dyn PacketSource,
    progress: &mut dyn FnMut(u64),
    out: &mut (dyn FnMut(Entry) + Send),
) -> RunReport {
    const BATCH: usize = 512;
    let mut identity = std::mem::take(&mut engine.identity);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(16);
    let report = std::thread::scope(|scope| {
        let naming = &mut identity;
        let sink = &mut *out;
        let namer = scope.spawn(move || {
            for batch in rx {
                for item in batch {
                    apply(naming, item, sink);
                }
            }
        });
        let mut report = RunReport::default();
        let mut batch: Vec<Item> = Vec::with_capacity(BATCH * 2);
        let mut n: u64 = 0;
        loop {
            match source.advance() {
                Ok(true) => {
                    let p = source.packet();
                    if !wiremap_decode::link_supported(p.link.0) {
                        let (record, offset) = source.location();
                        report.errors.push(CaptureError::UnsupportedLink {
                            name: source.name().to_string(),
                            link: p.link.0,
                            record,
                            offset,
                        });
                        break;
                    }
                    engine.process(&p);
                    engine.collect(&mut batch);
                    if batch.len() >= BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH * 2));
                        if tx.send(full).is_err() {
                            break;
                        }
                    }
                    n += 1;
                    if n.is_multiple_of(4096) {
                        progress(source.position());
                    }
                }
                Ok(false) => break,
                Err(e) if e.is_truncated_tail() => report.warnings.push(e.to_string()),
                Err(e) => report.errors.push(e),
            }
        }
        progress(source.position());
        engine.close_all();
        engine.collect(&mut batch);
        let _ = tx.send(batch);
        drop(tx);
        let _ = namer.join();
        report
    });
    engine.identity = identity;
    report
}

/// The resolution history carried by capture files that wiremap exported (pcapng custom
/// blocks ahead of the packets), as address holdings to load with cluster precedence. Files
/// without one, unreadable files and standard input give nothing here (their errors are
/// reported when they are read for real).
pub fn read_history(paths: &[String]) -> Vec<wiremap_identity::Holding> {
    let mut out = Vec::new();
    for p in paths.iter().filter(|p| *p != "-") {
        let Ok(mut src) = FileSource::open(p) else {
            continue;
        };
        if src.format() != wiremap_capture::FileFormat::Pcapng {
            continue;
        }
        let _ = src.advance();
        out.extend(wiremap_identity::history::holdings(&src.custom_blocks()));
    }
    out
}
