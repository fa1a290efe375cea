//! The embedded store: nothing to start, a directory of time segments.
//!
//! Each segment is three files: `seg-N.entries` (entries in a compact binary form, each record
//! framed with its length and CRC-32), `seg-N.pcapng` (the raw packets, which Wireshark opens
//! as they are) and, once the segment is closed, `seg-N.idx` (its index: time range, entry
//! ids, protocols, namespaces). Queries read the indexes first and skip every segment that
//! cannot hold a match.
//!
//! Why this shape: appends are sequential writes, a crash can only tear the tail of the open
//! segment (found by the framing and cut off at the next start), and retention deletes whole
//! files, oldest first, with no compaction. Time comes from the data, never the wall clock,
//! so an imported capture ages by its own timestamps.
#![deny(clippy::unwrap_used)]

mod codec;
mod export;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wiremap_capture::{FileSource, LinkType, PacketSource, PcapngWriter};
use wiremap_model::{Entry, Identity, Protocol, Timestamp};

pub use codec::Corrupt;
pub use export::{export, ExportReport};
pub use wiremap_identity::history::History;

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
    /// The directory holds something that is not a wiremap store.
    #[error("{path}: not a wiremap segment ({reason})")]
    Foreign {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
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
    /// Close a segment after this much capture time.
    pub segment_secs: i64,
    /// Close a segment at this size (entries + packets).
    pub segment_bytes: u64,
}

impl StoreConfig {
    /// Defaults for `dir`: no retention, one-minute segments of at most 64 MiB.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            retention_secs: None,
            max_size: None,
            segment_secs: 60,
            segment_bytes: 64 << 20,
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
}

struct Open {
    meta: SegmentMeta,
    entries: BufWriter<File>,
    packets: PcapngWriter<BufWriter<File>>,
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

fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

impl Store {
    /// Opens (or creates) the store in `cfg.dir`, cutting off torn tails a crash left and
    /// indexing the segment that was open.
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
        let seqs = list(&cfg.dir)?;
        let mut store = Store {
            _lock: lock,
            next_seq: seqs.last().map_or(1, |s| s + 1),
            cfg,
            closed: Vec::new(),
            open: None,
            next_id: 1,
            stats: StoreStats::default(),
        };
        for seq in seqs {
            let meta = load(&store.cfg.dir, seq, true, &mut store.stats)?;
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

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.stats.clone();
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

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    fn open_segment(&mut self) -> Result<&mut Open, StoreError> {
        if self.open.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let epath = seg_path(&self.cfg.dir, seq, "entries");
            let ppath = seg_path(&self.cfg.dir, seq, "pcapng");
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
            let packets =
                PcapngWriter::new(BufWriter::with_capacity(1 << 20, pf)).map_err(io(&ppath))?;
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
        let span = self.cfg.segment_secs.saturating_mul(1_000_000_000);
        let full = self.open.as_ref().is_some_and(|o| {
            o.meta.bytes() >= cap || o.meta.from.is_some_and(|f| ts.0.saturating_sub(f) > span)
        });
        if full {
            self.close_open()?;
            self.enforce_retention()?;
        }
        Ok(())
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
            .map_err(io(&seg_path(&dir, o.meta.seq, "pcapng")))?;
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
                .get_mut()
                .flush()
                .map_err(io(&seg_path(dir, o.meta.seq, "pcapng")))?;
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
                .get_mut()
                .flush()
                .map_err(io(&seg_path(&dir, o.meta.seq, "pcapng")))?;
            o.meta.closed = true;
            write_index(&dir, &o.meta)?;
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
            for ext in ["idx", "entries", "pcapng"] {
                let p = seg_path(&self.cfg.dir, m.seq, ext);
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

/// Segment numbers present in `dir`, ascending.
fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs: Vec<u64> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|d| {
            let name = d.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".entries")?
                .parse()
                .ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The segments of a store another process may be writing, read without changing anything
/// (the open segment is indexed by reading it up to its last whole record).
pub fn inspect(dir: &Path) -> Result<Vec<SegmentMeta>, StoreError> {
    let mut stats = StoreStats::default();
    list(dir)?
        .into_iter()
        .map(|seq| load(dir, seq, false, &mut stats))
        .collect()
}

fn load(
    dir: &Path,
    seq: u64,
    repair: bool,
    stats: &mut StoreStats,
) -> Result<SegmentMeta, StoreError> {
    let idx = seg_path(dir, seq, "idx");
    if let Ok(text) = fs::read_to_string(&idx) {
        if let Ok(meta) = serde_json::from_str::<SegmentMeta>(&text) {
            return Ok(meta);
        }
    }
    // Open at a crash: rebuild the index, cutting torn tails.
    let mut meta = SegmentMeta {
        seq,
        names: Some(BTreeSet::new()),
        ..SegmentMeta::default()
    };
    let epath = seg_path(dir, seq, "entries");
    let good = scan_entries(&epath, &mut |e| {
        meta.add_entry(&e);
        ControlFlow::Continue(())
    })?;
    if repair {
        stats.torn_bytes_truncated += truncate(&epath, good)?;
    }
    meta.entry_bytes = good;
    let ppath = seg_path(dir, seq, "pcapng");
    if ppath.exists() {
        let mut packets = 0;
        let mut span = Vec::new();
        let good = scan_packets(&ppath, &mut |ts, _, _, _| {
            packets += 1;
            span.push(ts);
            ControlFlow::Continue(())
        })?;
        if repair {
            stats.torn_bytes_truncated += truncate(&ppath, good)?;
        }
        meta.packets = packets;
        meta.packet_bytes = good;
        for t in span {
            meta.see(t);
        }
    }
    if repair {
        meta.closed = true;
        write_index(dir, &meta)?;
    }
    Ok(meta)
}

fn write_index(dir: &Path, meta: &SegmentMeta) -> Result<(), StoreError> {
    let idx = seg_path(dir, meta.seq, "idx");
    let tmp = seg_path(dir, meta.seq, "idx.tmp");
    let text = serde_json::to_string(meta).map_err(|e| io(&idx)(e.into()))?;
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, &idx).map_err(io(&idx))
}

fn truncate(path: &Path, good: u64) -> Result<u64, StoreError> {
    let len = fs::metadata(path).map_err(io(path))?.len();
    if len > good {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(good).map_err(io(path))?;
        return Ok(len - good);
    }
    Ok(0)
}

/// Reads a segment's entries in order; returns the length of its good prefix (a torn or
/// corrupt tail ends the scan there).
pub fn scan_entries(
    path: &Path,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<u64, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        // Deleted by retention after the query listed it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    read_entries(
        path.display().to_string(),
        BufReader::with_capacity(256 << 10, f),
        visit,
    )
}

/// Reads entries from a segment's bytes (see [`scan_entries`]); `name` is for messages.
pub fn read_entries(
    name: String,
    mut r: impl Read,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<u64, StoreError> {
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() {
        return Ok(0);
    }
    if &magic != MAGIC {
        return Err(StoreError::Foreign {
            path: name,
            reason: "bad magic".into(),
        });
    }
    let mut good = MAGIC.len() as u64;
    let mut idents: Vec<Arc<Identity>> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD {
            break;
        }
        buf.resize(len as usize, 0);
        if r.read_exact(&mut buf).is_err() || crc32fast::hash(&buf) != crc {
            break;
        }
        let mut c = codec::Cursor::new(&buf[1..]);
        match buf[0] {
            REC_IDENTITY => match codec::get_identity(&mut c) {
                Ok(id) => idents.push(Arc::new(id)),
                Err(_) => break,
            },
            REC_ENTRY => {
                let lookup = |n: u64| -> Result<Option<Arc<Identity>>, Corrupt> {
                    if n == 0 {
                        return Ok(None);
                    }
                    idents
                        .get(n as usize - 1)
                        .cloned()
                        .map(Some)
                        .ok_or(Corrupt("identity reference"))
                };
                match codec::get_entry(&mut c, &lookup) {
                    Ok(e) => {
                        good += 8 + u64::from(len);
                        if visit(e).is_break() {
                            return Ok(good);
                        }
                        continue;
                    }
                    Err(_) => break,
                }
            }
            _ => break,
        }
        good += 8 + u64::from(len);
    }
    Ok(good)
}

/// Sees each stored packet: time, link type, bytes, length on the wire.
pub type PacketVisitor<'a> = dyn FnMut(Timestamp, LinkType, &[u8], u32) -> ControlFlow<()> + 'a;

/// Reads a segment's packets in order; returns the length of its good prefix.
pub fn scan_packets(path: &Path, visit: &mut PacketVisitor<'_>) -> Result<u64, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    let name = path.display().to_string();
    let mut src = match FileSource::new(name, Box::new(BufReader::with_capacity(1 << 20, f))) {
        Ok(s) => s,
        // Not even a whole section header: nothing good.
        Err(_) => return Ok(0),
    };
    let mut good = src.position();
    loop {
        match src.advance() {
            Ok(true) => {
                let p = src.packet();
                good = src.position();
                if visit(p.ts, p.link, p.data, p.orig_len).is_break() {
                    break;
                }
            }
            Ok(false) => {
                good = src.position();
                break;
            }
            Err(_) => break,
        }
    }
    Ok(good)
}

/// Visits the entries of `segments` (from [`Store::segments`]) that lie in `scope`, oldest
/// first, skipping segments their index rules out.
pub fn scan(
    dir: &Path,
    segments: &[SegmentMeta],
    scope: &Scope,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    for m in segments.iter().filter(|m| m.may_match(scope)) {
        let mut stop = false;
        scan_entries(&seg_path(dir, m.seq, "entries"), &mut |e| {
            if !scope.contains(e.timestamp) {
                return ControlFlow::Continue(());
            }
            let r = visit(e);
            stop = r.is_break();
            r
        })?;
        if stop {
            break;
        }
    }
    Ok(())
}

/// Finds one entry by id.
pub fn get(dir: &Path, segments: &[SegmentMeta], id: u64) -> Result<Option<Entry>, StoreError> {
    let mut found = None;
    for m in segments {
        if !m.ids.is_some_and(|(a, b)| a <= id && id <= b) {
            continue;
        }
        scan_entries(&seg_path(dir, m.seq, "entries"), &mut |e| {
            if e.id == id {
                found = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(found)
}

/// Path of a segment's packets file.
pub fn packets_path(dir: &Path, seq: u64) -> PathBuf {
    seg_path(dir, seq, "pcapng")
}
