//! The embedded store: nothing to start, a directory of time segments.
//!
//! Each segment is three files: `seg-N.entries` (entries in a compact binary form, each record
//! framed with its length and CRC-32), `seg-N.packets` (the raw packets as LZ4-compressed
//! frames of pcapng, see [`read_packets`]; [`export`] writes them out as a pcapng file) and,
//! once the segment is closed, `seg-N.idx` (its index: time range, entry ids, protocols,
//! namespaces). Queries read the indexes first and skip every segment that
//! cannot hold a match.
//!
//! Why this shape: appends are sequential writes, a crash can only tear the tail of the open
//! segment (found by the framing and cut off at the next start), and retention deletes whole
//! files, oldest first, with no compaction. Time comes from the data, never the wall clock,
//! so an imported capture ages by its own timestamps.
//!
//! Every byte read back is untrusted. A damaged record or packet block is skipped and the
//! reader resynchronises on the next intact one ([`read_entries`], [`read_packets`]); the loss
//! is counted in [`StoreStats::damaged_records`] / [`StoreStats::damaged_bytes`] and logged
//! with file and offset. At start-up a segment whose entries file is not this store's or
//! cannot be read is moved into `quarantine/` ([`QUARANTINE_DIR`]) and the rest is served;
//! only a torn tail (bytes after the last intact record holding no intact record) is cut.
#![deny(clippy::unwrap_used)]

mod backend;
mod codec;
mod damage;
mod export;
mod packets;
mod pcapng;
mod read;
mod segments;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wiremap_capture::LinkType;
use wiremap_model::{Entry, Identity, Protocol, Timestamp};

pub use backend::{EntrySink, EntryStore, Query, Segments};
pub use codec::{decode_entry, put_entry, Corrupt};
pub use damage::{FileScan, Span};
pub use export::{export, export_until, ExportReport};
pub use packets::{read_packets, scan_packets, PacketVisitor, ALL_TIME};
pub use read::{read_entries, scan_entries};
pub use segments::{get, inspect, scan, QUARANTINE_DIR};
pub use wiremap_identity::history::History;

/// The segment format this binary writes and reads (the last three digits of the magic).
const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"WMSEG001";
const REC_IDENTITY: u8 = 1;
const REC_ENTRY: u8 = 2;
/// Largest record accepted when reading (anything longer is corruption).
const MAX_RECORD: u32 = 64 << 20;
/// Identity names listed in a segment index (beyond that the index says "any").
const MAX_INDEX_NAMES: usize = 4096;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process has the store open for writing.
    #[error("{path}: the data directory is in use by another wiremap process")]
    Locked {
        /// The directory.
        path: String,
    },
    /// A later wiremap wrote the store in a format this binary does not know.
    #[error("{path}: written by a newer wiremap (segment format {found}; this binary reads up to {supported}); use that version or move the data directory aside")]
    NewerFormat {
        /// The file.
        path: String,
        /// Its format version.
        found: u32,
        /// The newest this binary reads.
        supported: u32,
    },
    /// A file that is not a wiremap segment.
    #[error("{path}: not a wiremap segment ({reason})")]
    Foreign {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another backend behind [`EntryStore`] failed (ClickHouse unreachable, …).
    #[error("{backend}: {message}")]
    Backend {
        /// Which.
        backend: &'static str,
        /// What it said.
        message: String,
    },
    /// The query's stop flag ended it.
    #[error("query stopped")]
    Stopped,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where and how much to keep.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// Drop segments whose newest data is older than this (relative to the newest stored).
    pub retention_secs: Option<i64>,
    /// Drop the oldest segments while the store is larger than this.
    pub max_size: Option<u64>,
    /// Close a segment after this much capture time once it holds `segment_min_bytes`.
    pub segment_secs: i64,
    /// Close a segment at this size (entries + packets).
    pub segment_bytes: u64,
    /// A segment younger (in bytes) than this stays open past `segment_secs`, up to
    /// `segment_max_secs`: sparse traffic over a long time (an imported capture spanning
    /// months) makes a handful of segments, not three files per minute.
    pub segment_min_bytes: u64,
    /// Close a segment after this much capture time whatever its size (retention drops
    /// whole segments, so this bounds how long data outlives its retention).
    pub segment_max_secs: i64,
}

impl StoreConfig {
    /// Defaults for `dir`: no retention; segments of at most 64 MiB that close after a
    /// minute of capture time once they hold 4 MiB, and after a day whatever they hold.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            retention_secs: None,
            max_size: None,
            segment_secs: 60,
            segment_bytes: 64 << 20,
            segment_min_bytes: 4 << 20,
            segment_max_secs: 86_400,
        }
    }

    fn segment_cap(&self) -> u64 {
        // Small caps need several segments to drop from.
        match self.max_size {
            Some(m) => self.segment_bytes.min((m / 8).max(64 << 10)),
            None => self.segment_bytes,
        }
    }
}

/// The index of one segment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Sequence number (file name).
    pub seq: u64,
    /// Earliest entry or packet time, nanoseconds.
    pub from: Option<i64>,
    /// Latest entry or packet time, nanoseconds.
    pub to: Option<i64>,
    /// First and last entry id.
    pub ids: Option<(u64, u64)>,
    /// Entries.
    pub entries: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes of the entries file.
    pub entry_bytes: u64,
    /// Bytes of the packets file.
    pub packet_bytes: u64,
    /// Protocols present.
    pub protocols: BTreeSet<String>,
    /// Namespaces of either side.
    pub namespaces: BTreeSet<String>,
    /// Identity names of either side (`None`: too many to list).
    pub names: Option<BTreeSet<String>>,
    /// Closed (indexed on disk) or still being written.
    pub closed: bool,
}

impl SegmentMeta {
    fn see(&mut self, t: Timestamp) {
        self.from = Some(self.from.map_or(t.0, |f| f.min(t.0)));
        self.to = Some(self.to.map_or(t.0, |x| x.max(t.0)));
    }

    fn add_entry(&mut self, e: &Entry) {
        self.see(e.timestamp);
        self.ids = Some(self.ids.map_or((e.id, e.id), |(a, _)| (a, e.id)));
        self.entries += 1;
        if !self.protocols.contains(e.protocol.as_str()) {
            self.protocols.insert(e.protocol.as_str().to_string());
        }
        for ep in [&e.src, &e.dst] {
            let Some(id) = &ep.identity else { continue };
            if !id.namespace.is_empty() && !self.namespaces.contains(&id.namespace) {
                self.namespaces.insert(id.namespace.clone());
            }
            if let Some(names) = &mut self.names {
                if !id.name.is_empty() && !names.contains(&id.name) {
                    names.insert(id.name.clone());
                    if names.len() > MAX_INDEX_NAMES {
                        self.names = None;
                    }
                }
            }
        }
    }

    /// Total bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.entry_bytes + self.packet_bytes
    }

    /// Whether this segment can hold entries of `q`.
    pub fn may_match(&self, q: &Scope) -> bool {
        if self.entries == 0 {
            return false;
        }
        let (Some(f), Some(t)) = (self.from, self.to) else {
            return false;
        };
        if q.from.is_some_and(|x| t < x.0) || q.to.is_some_and(|x| f > x.0) {
            return false;
        }
        if let Some(ps) = &q.protocols {
            if !ps.iter().any(|p| self.protocols.contains(p.as_str())) {
                return false;
            }
        }
        if let Some(ns) = &q.namespaces {
            if !ns.iter().any(|n| self.namespaces.contains(n)) {
                return false;
            }
        }
        true
    }
}

/// What a query can be narrowed to before reading entries.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Earliest entry time (inclusive).
    pub from: Option<Timestamp>,
    /// Latest entry time (inclusive).
    pub to: Option<Timestamp>,
    /// Only these protocols can match.
    pub protocols: Option<BTreeSet<Protocol>>,
    /// Only entries involving these namespaces can match.
    pub namespaces: Option<BTreeSet<String>>,
}

impl Scope {
    /// Whether an entry lies in the time window.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|x| t <= x)
    }
}

/// Counters of the store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// Segments on disk.
    pub segments: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Entries stored (on disk now).
    pub entries: u64,
    /// Packets stored (on disk now).
    pub packets: u64,
    /// Segments deleted by retention.
    pub segments_dropped: u64,
    /// Bytes of torn tails cut off at start-up.
    pub torn_bytes_truncated: u64,
    /// Records skipped as damaged (bad length, CRC or body; a stretch whose record
    /// boundaries were damaged counts as one; packets count too), each counted once per
    /// process, when a reader first passes it.
    pub damaged_records: u64,
    /// Bytes of those records.
    pub damaged_bytes: u64,
    /// Segments moved into `quarantine/` at start-up (not this store's magic, unreadable).
    pub quarantined_segments: u64,
}

struct Open {
    meta: SegmentMeta,
    entries: BufWriter<File>,
    packets: packets::Writer<File>,
    /// Identity numbers by pointer (a fast path for the shared `Arc`s of one run); the `Arc`
    /// is kept so its address cannot be reused by another identity.
    by_ptr: HashMap<usize, (Arc<Identity>, u64)>,
    /// Identity numbers by value: equal identities behind different pointers share one.
    by_value: HashMap<Arc<Identity>, u64>,
    /// Reused buffers: one record's payload, and the framed records of one append.
    payload: Vec<u8>,
    framed: Vec<u8>,
}

/// The store: closed segments plus the one being written.
pub struct Store {
    cfg: StoreConfig,
    /// Held (locked) while the store is open for writing.
    _lock: File,
    closed: Vec<SegmentMeta>,
    open: Option<Open>,
    next_seq: u64,
    next_id: u64,
    stats: StoreStats,
    /// Encoded size of the last entry appended.
    last_entry_len: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.cfg.dir)
            .field("segments", &self.closed.len())
            .finish()
    }
}

fn seg_path(dir: &Path, seq: u64, ext: &str) -> PathBuf {
    dir.join(format!("seg-{seq:010}.{ext}"))
}

/// Opens a segment file to read; `None` when it is gone (deleted by retention after a query
/// listed it), which reads as empty.
pub(crate) fn open_existing(path: &Path) -> Result<Option<File>, StoreError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

pub(crate) fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

impl Store {
    /// Opens (or creates) the store in `cfg.dir`, cutting off torn tails a crash left and
    /// indexing the segment that was open. A segment that is not this store's or cannot be
    /// read is moved into `quarantine/` and the rest is served; files and directories that
    /// are not segments are ignored. Refused: a directory another process writes
    /// ([`StoreError::Locked`]), one whose newest segment a later wiremap wrote
    /// ([`StoreError::NewerFormat`]), and one that cannot be created, listed or written.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        let lock_path = cfg.dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked {
                path: cfg.dir.display().to_string(),
            });
        }
        let seqs = segments::list(&cfg.dir)?;
        if let Some(e) = segments::newer_format(&cfg.dir, &seqs) {
            return Err(e);
        }
        let mut store = Store {
            _lock: lock,
            next_seq: seqs.last().map_or(1, |s| s + 1),
            cfg,
            closed: Vec::new(),
            open: None,
            next_id: 1,
            stats: StoreStats::default(),
            last_entry_len: 0,
        };
        for seq in seqs {
            let Some(meta) = segments::load(&store.cfg.dir, seq, true, &mut store.stats)? else {
                continue;
            };
            if let Some((_, last)) = meta.ids {
                store.next_id = store.next_id.max(last + 1);
            }
            store.closed.push(meta);
        }
        store.recount();
        Ok(store)
    }

    fn recount(&mut self) {
        let mut s = StoreStats {
            segments_dropped: self.stats.segments_dropped,
            torn_bytes_truncated: self.stats.torn_bytes_truncated,
            quarantined_segments: self.stats.quarantined_segments,
            ..StoreStats::default()
        };
        for m in self
            .closed
            .iter()
            .chain(self.open.as_ref().map(|o| &o.meta))
        {
            s.segments += 1;
            s.bytes += m.bytes();
            s.entries += m.entries;
            s.packets += m.packets;
        }
        self.stats = s;
    }

    /// Counters (damage found by queries since the last call included).
    pub fn stats(&self) -> StoreStats {
        let mut s = self.stats.clone();
        (s.damaged_records, s.damaged_bytes) = damage::totals(&self.cfg.dir);
        if let Some(o) = &self.open {
            s.segments += 1;
            s.bytes += o.meta.bytes();
            s.entries += o.meta.entries;
            s.packets += o.meta.packets;
        }
        s
    }

    /// Id of the newest stored entry (0 when none).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Numbers the next entries after `id` at least: entries that also go to another store
    /// (a hub's ClickHouse, which outlives the hub's own directory) never reuse its ids.
    pub fn continue_after(&mut self, id: u64) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    fn open_segment(&mut self) -> Result<&mut Open, StoreError> {
        if self.open.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let epath = seg_path(&self.cfg.dir, seq, "entries");
            let ppath = seg_path(&self.cfg.dir, seq, "packets");
            let ef = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&epath)
                .map_err(io(&epath))?;
            let mut entries = BufWriter::with_capacity(256 << 10, ef);
            entries.write_all(MAGIC).map_err(io(&epath))?;
            let pf = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&ppath)
                .map_err(io(&ppath))?;
            let packets = packets::Writer::new(pf).map_err(io(&ppath))?;
            self.open = Some(Open {
                meta: SegmentMeta {
                    seq,
                    entry_bytes: MAGIC.len() as u64,
                    packet_bytes: packets.written(),
                    names: Some(BTreeSet::new()),
                    ..SegmentMeta::default()
                },
                entries,
                packets,
                by_ptr: HashMap::new(),
                by_value: HashMap::new(),
                payload: Vec::new(),
                framed: Vec::new(),
            });
        }
        match self.open.as_mut() {
            Some(o) => Ok(o),
            None => unreachable!("opened above"),
        }
    }

    fn maybe_rotate(&mut self, ts: Timestamp) -> Result<(), StoreError> {
        let cap = self.cfg.segment_cap();
        let min = self.cfg.segment_min_bytes.min(cap);
        let span = self.cfg.segment_secs.saturating_mul(1_000_000_000);
        let max_span = self.cfg.segment_max_secs.saturating_mul(1_000_000_000);
        let full = self.open.as_ref().is_some_and(|o| {
            let age = o.meta.from.map_or(0, |f| ts.0.saturating_sub(f));
            let bytes = o.meta.bytes();
            bytes >= cap || (age > span && bytes >= min) || age > max_span
        });
        if full {
            self.close_open()?;
            self.enforce_retention()?;
        }
        Ok(())
    }

    /// Bytes the last appended entry took encoded: a measure of its size for callers that
    /// keep entries in memory and must bound them by bytes.
    pub fn last_entry_len(&self) -> usize {
        self.last_entry_len
    }

    /// Appends an entry, giving it the next store-wide id.
    pub fn append_entry(&mut self, e: &mut Entry) -> Result<(), StoreError> {
        self.maybe_rotate(e.timestamp)?;
        e.id = self.next_id;
        self.next_id += 1;
        let dir = self.cfg.dir.clone();
        let o = self.open_segment()?;
        let mut payload = std::mem::take(&mut o.payload);
        let mut out = std::mem::take(&mut o.framed);
        out.clear();
        // New identities are written before the entry that refers to them.
        let mut fresh: Vec<Arc<Identity>> = Vec::new();
        let (by_ptr, by_value) = (&mut o.by_ptr, &mut o.by_value);
        let mut number = |id: &Arc<Identity>| -> u64 {
            let ptr = Arc::as_ptr(id) as usize;
            if let Some((_, n)) = by_ptr.get(&ptr) {
                return *n;
            }
            let next = by_value.len() as u64 + 1;
            let n = *by_value.entry(id.clone()).or_insert_with(|| {
                fresh.push(id.clone());
                next
            });
            by_ptr.insert(ptr, (id.clone(), n));
            n
        };
        payload.clear();
        payload.push(REC_ENTRY);
        codec::put_entry(&mut payload, e, &mut number);
        let encoded_len = payload.len();
        let mut def = vec![REC_IDENTITY];
        for id in &fresh {
            def.truncate(1);
            codec::put_identity(&mut def, id);
            frame(&mut out, &def);
        }
        frame(&mut out, &payload);
        o.payload = payload;
        let path = seg_path(&dir, o.meta.seq, "entries");
        let written = o.entries.write_all(&out).map_err(io(&path));
        if written.is_ok() {
            o.meta.entry_bytes += out.len() as u64;
        }
        o.framed = out;
        written?;
        o.meta.add_entry(e);
        self.last_entry_len = encoded_len;
        Ok(())
    }

    /// Appends a raw packet.
    pub fn append_packet(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), StoreError> {
        self.maybe_rotate(ts)?;
        let dir = self.cfg.dir.clone();
        let o = self.open_segment()?;
        o.packets
            .write(ts, link, data, orig_len)
            .map_err(io(&seg_path(&dir, o.meta.seq, "packets")))?;
        o.meta.packet_bytes = o.packets.written();
        o.meta.packets += 1;
        o.meta.see(ts);
        Ok(())
    }

    /// Writes everything buffered to the files (call at least once a second), then applies
    /// retention.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(o) = &mut self.open {
            let dir = &self.cfg.dir;
            o.entries
                .flush()
                .map_err(io(&seg_path(dir, o.meta.seq, "entries")))?;
            o.packets
                .flush()
                .map_err(io(&seg_path(dir, o.meta.seq, "packets")))?;
            o.meta.packet_bytes = o.packets.written();
        }
        self.enforce_retention()
    }

    /// Closes the open segment: flushes it and writes its index.
    pub fn close_open(&mut self) -> Result<(), StoreError> {
        if let Some(mut o) = self.open.take() {
            let dir = self.cfg.dir.clone();
            o.entries
                .flush()
                .map_err(io(&seg_path(&dir, o.meta.seq, "entries")))?;
            o.packets
                .flush()
                .map_err(io(&seg_path(&dir, o.meta.seq, "packets")))?;
            o.meta.packet_bytes = o.packets.written();
            o.meta.closed = true;
            segments::write_index(&dir, &o.meta)?;
            self.closed.push(o.meta);
            self.recount();
        }
        Ok(())
    }

    fn enforce_retention(&mut self) -> Result<(), StoreError> {
        let newest = self
            .closed
            .iter()
            .chain(self.open.as_ref().map(|o| &o.meta))
            .filter_map(|m| m.to)
            .max();
        let mut drop = 0;
        if let (Some(keep), Some(newest)) = (self.cfg.retention_secs, newest) {
            let limit = newest.saturating_sub(keep.saturating_mul(1_000_000_000));
            drop = self
                .closed
                .iter()
                .take_while(|m| m.to.is_none_or(|t| t < limit))
                .count();
        }
        if let Some(max) = self.cfg.max_size {
            let open = self.open.as_ref().map_or(0, |o| o.meta.bytes());
            let mut total: u64 = self.closed.iter().map(SegmentMeta::bytes).sum::<u64>() + open;
            for m in &self.closed[..drop] {
                total -= m.bytes();
            }
            while total > max && drop < self.closed.len() {
                total -= self.closed[drop].bytes();
                drop += 1;
            }
        }
        if drop == 0 {
            return Ok(());
        }
        for m in self.closed.drain(..drop) {
            // The index goes first: a crash in between leaves files that reload as a segment.
            for ext in ["idx", "entries", "packets"] {
                let p = seg_path(&self.cfg.dir, m.seq, ext);
                damage::forget(&p);
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&p)(e)),
                }
            }
            self.stats.segments_dropped += 1;
        }
        self.recount();
        Ok(())
    }

    /// Every segment's index, oldest first, the open one last (flush first to read it).
    pub fn segments(&self) -> Vec<SegmentMeta> {
        let mut v = self.closed.clone();
        if let Some(o) = &self.open {
            v.push(o.meta.clone());
        }
        v
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close_open();
    }
}

/// Path of a segment's packets file.
pub fn packets_path(dir: &Path, seq: u64) -> PathBuf {
    seg_path(dir, seq, "packets")
}
