//! The writer: appends entries (in compressed blocks, see [`crate::block`]) and packets to
//! the open segment, keeps its index and rollups as it goes, closes it by size, span or row
//! count, and applies retention by deleting whole segments, oldest first.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use wiremap_capture::LinkType;
use wiremap_model::{Entry, Identity, Timestamp};

use crate::block::BlockBuf;
use crate::rollup::{RollupBuilder, MAX_ROWS};
use crate::{
    codec, damage, frame, io, packets, seg_path, segments, SegmentMeta, StoreConfig, StoreError,
    StoreStats, MAGIC, REC_BLOCK, REC_IDENTITY, REC_NAME,
};

/// Entries a segment holds at most: bounds what a query reads of the open segment (which has
/// no rollups yet) and what the writer aggregates.
pub(crate) const MAX_SEGMENT_ENTRIES: u64 = 262_144;

pub(crate) struct Open {
    pub(crate) meta: SegmentMeta,
    entries: BufWriter<File>,
    packets: packets::Writer<File>,
    /// Application field names written so far, with their numbers.
    names: FxHashMap<&'static str, u64>,
    /// The same by address and length (equal addresses and lengths are equal strings, and a
    /// dissector's literal keeps its address), so a name costs no string hashing per entry.
    name_ptrs: FxHashMap<(usize, usize), u64>,
    /// The entries file.
    entries_path: PathBuf,
    /// The entries block being filled.
    block: BlockBuf,
    /// The segment's rollups so far.
    rollup: RollupBuilder,
    /// Identity numbers by pointer (a fast path for the shared `Arc`s of one run); the `Arc`
    /// is kept so its address cannot be reused by another identity.
    by_ptr: FxHashMap<usize, (Arc<Identity>, u64)>,
    /// Identity numbers by value: equal identities behind different pointers share one.
    by_value: FxHashMap<Arc<Identity>, u64>,
    /// Reused buffers: one record's payload, and the framed records of one append.
    payload: Vec<u8>,
    framed: Vec<u8>,
}

/// The store: closed segments plus the one being written.
pub struct Store {
    pub(crate) cfg: StoreConfig,
    /// Held (locked) while the store is open for writing.
    _lock: File,
    pub(crate) closed: Vec<SegmentMeta>,
    pub(crate) open: Option<Open>,
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
        if let Some(e) = segments::other_format(&cfg.dir, &seqs) {
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
        // Closed segments only: `stats` adds the open one as it is then (counting it here too
        // counted it twice whenever retention ran while a segment was open).
        for m in &self.closed {
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
            s.bytes += o.bytes();
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
                names: FxHashMap::default(),
                name_ptrs: FxHashMap::default(),
                entries_path: epath,
                block: BlockBuf::default(),
                rollup: RollupBuilder::default(),
                by_ptr: FxHashMap::default(),
                by_value: FxHashMap::default(),
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
            let bytes = o.bytes();
            bytes >= cap
                || (age > span && bytes >= min)
                || age > max_span
                || o.meta.entries >= MAX_SEGMENT_ENTRIES
                || o.rollup.rows() >= MAX_ROWS
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
        let o = self.open_segment()?;
        let mut payload = std::mem::take(&mut o.payload);
        let mut out = std::mem::take(&mut o.framed);
        out.clear();
        // New identities and field names are written before the block that refers to them.
        let mut fresh: Vec<Arc<Identity>> = Vec::new();
        let mut fresh_names: Vec<&'static str> = Vec::new();
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
        let (names, name_ptrs) = (&mut o.names, &mut o.name_ptrs);
        let mut name = |out: &mut Vec<u8>, k: &'static str| {
            let at = (k.as_ptr() as usize, k.len());
            let n = match name_ptrs.get(&at) {
                Some(n) => *n,
                None => {
                    let next = names.len() as u64 + 1;
                    let n = *names.entry(k).or_insert_with(|| {
                        fresh_names.push(k);
                        next
                    });
                    name_ptrs.insert(at, n);
                    n
                }
            };
            codec::put_u(out, n);
        };
        payload.clear();
        codec::put_entry_with(&mut payload, e, &mut number, &mut name, true);
        let src_n = e.src.identity.as_ref().map_or(0, &mut number);
        let dst_n = e.dst.identity.as_ref().map_or(0, &mut number);
        let encoded_len = payload.len();
        let mut def = Vec::new();
        for id in &fresh {
            def.clear();
            def.push(REC_IDENTITY);
            codec::put_identity(&mut def, id);
            frame(&mut out, &def);
        }
        for k in &fresh_names {
            def.clear();
            def.push(REC_NAME);
            codec::put_s(&mut def, k);
            frame(&mut out, &def);
        }
        o.block.push(e, &payload);
        if o.block.len() >= crate::block::BLOCK_RAW {
            def.clear();
            o.block.finish(REC_BLOCK, &mut def);
            frame(&mut out, &def);
        }
        o.payload = payload;
        let written = o.entries.write_all(&out).map_err(io(&o.entries_path));
        if written.is_ok() {
            o.meta.entry_bytes += out.len() as u64;
        }
        o.framed = out;
        if let Err(e) = written {
            // The definitions numbered for this entry may not have reached the file: later
            // numbers would be off by them. The next entry starts a segment of its own.
            let _ = self.close_open();
            return Err(e);
        }
        let o = match self.open.as_mut() {
            Some(o) => o,
            None => unreachable!("still open"),
        };
        o.meta.add_entry(e);
        o.rollup.add(e, src_n, dst_n);
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
        let o = self.open_segment()?;
        if let Err(e) = o.packets.write(ts, link, data, orig_len) {
            // The path only when it is needed: this runs for every packet.
            return Err(io(&o.packets_path())(e));
        }
        o.meta.packet_bytes = o.packets.written();
        o.meta.packets += 1;
        o.meta.see(ts);
        Ok(())
    }

    /// Writes everything buffered to the files (call at least once a second), then applies
    /// retention.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(o) = &mut self.open {
            o.flush()?;
        }
        self.enforce_retention()
    }

    /// Closes the open segment: flushes it and writes its index.
    pub fn close_open(&mut self) -> Result<(), StoreError> {
        if let Some(mut o) = self.open.take() {
            let dir = self.cfg.dir.clone();
            o.flush()?;
            o.meta.closed = true;
            // The rollups before the index: a closed segment's rollup file is whole. One that
            // cannot be written costs speed (queries scan this segment), not the segment.
            match o
                .rollup
                .write(&seg_path(&dir, o.meta.seq, "rollup"), &o.idents())
            {
                Ok(n) => o.meta.rollup_bytes = n,
                Err(e) => {
                    eprintln!("wiremap: warning: {e}; maps read this segment's entries");
                    o.meta.rollup_bytes = 0;
                }
            }
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
            let open = self.open.as_ref().map_or(0, Open::bytes);
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
            for ext in ["idx", "rollup", "entries", "packets"] {
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

impl Open {
    /// Bytes the segment takes, the entries not yet in a written block counted as they are.
    fn bytes(&self) -> u64 {
        self.meta.bytes() + self.block.len() as u64
    }

    /// Writes the block being filled (a reader sees entries once their block is written),
    /// then everything buffered, to the files.
    fn flush(&mut self) -> Result<(), StoreError> {
        let mut p = Vec::new();
        if self.block.finish(REC_BLOCK, &mut p) {
            let mut out = Vec::with_capacity(p.len() + 8);
            frame(&mut out, &p);
            self.entries
                .write_all(&out)
                .map_err(io(&self.entries_path))?;
            self.meta.entry_bytes += out.len() as u64;
        }
        self.entries.flush().map_err(io(&self.entries_path))?;
        if let Err(e) = self.packets.flush() {
            return Err(io(&self.packets_path())(e));
        }
        self.meta.packet_bytes = self.packets.written();
        Ok(())
    }

    /// The packets file (named only when an error needs it).
    fn packets_path(&self) -> PathBuf {
        self.entries_path.with_extension("packets")
    }

    /// The identities in the order of their numbers (identity `n` is at `n - 1`): numbers
    /// are given from 1 without gaps.
    fn idents(&self) -> Vec<Arc<Identity>> {
        let mut v: Vec<(&Arc<Identity>, &u64)> = self.by_value.iter().collect();
        v.sort_unstable_by_key(|(_, n)| **n);
        v.into_iter().map(|(id, _)| id.clone()).collect()
    }
}
