//! The embedded store: nothing to start, a directory of time segments.
//!
//! Each segment is up to four files: `seg-N.entries` (records framed with their length and
//! CRC-32: identity and field-name definitions, and blocks of LZ4-compressed entries whose
//! heads say which ids, times and protocols they hold), `seg-N.packets` (the raw packets as
//! LZ4-compressed frames of pcapng, see [`read_packets`]; [`export`] writes them out as a
//! pcapng file) and, once the segment is closed, `seg-N.rollup` (its edge rollups per minute
//! and for the whole segment, which answer maps without reading entries) and `seg-N.idx`
//! (its index: time range, entry ids, protocols, namespaces). Queries read the indexes first
//! and skip every segment that cannot hold a match, then every block that cannot.
//!
//! Modules: `writer` (appends, rotation, retention), `segments` (listing, loading and
//! recovering indexes, scans), `read` and `packets` (the readers), `block` and `codec` (the
//! entry format), `rollup`, `backend` (the query seam, [`EntryStore`]).
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
mod block;
mod codec;
mod damage;
mod export;
mod packets;
mod pcapng;
mod press;
mod read;
mod rollup;
mod segments;
mod writer;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wiremap_model::{Entry, Timestamp};

pub use backend::{EntrySink, EntryStore, Query, Segments};
pub use block::Want;
pub use codec::{decode_entry, put_entry, Corrupt};
pub use damage::{FileScan, Span};
pub use export::{export, export_all_until, export_until, ExportReport};
pub use packets::{read_packets, scan_packets, PacketVisitor, ALL_TIME};
pub use read::{read_entries, scan_entries};
pub use rollup::{read_rollups, ROLLUP_MAGIC};
pub use segments::{get, inspect, scan, QUARANTINE_DIR};
pub use wiremap_identity::history::History;
/// What a query can be narrowed to before reading entries: its time window and what its
/// filter implies (one struct with the filter language's pruning conditions).
pub use wiremap_kfl::Prune as Scope;
pub use writer::Store;

/// The segment format this binary writes and reads (the last three digits of the magic).
const FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = SEGMENT_MAGIC;
/// The first bytes of every entries file of this format.
pub const SEGMENT_MAGIC: &[u8; 8] = b"WMSEG002";
const REC_IDENTITY: u8 = 1;
/// One entry, uncompressed (readable; the writer puts entries in blocks).
const REC_ENTRY: u8 = 2;
/// An application field name, numbered in the order written.
const REC_NAME: u8 = 3;
/// A block of entries (see [`block`]).
const REC_BLOCK: u8 = 4;
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
    /// An earlier wiremap wrote the store in a format this binary no longer reads.
    #[error("{path}: written by an earlier wiremap (segment format {found}; this binary reads format {supported}): import the capture again into a new data directory (`wiremap serve --pcap FILE --data NEW_DIR`), or read this one with the earlier version")]
    OlderFormat {
        /// The file.
        path: String,
        /// Its format version.
        found: u32,
        /// The format this binary reads.
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
    /// Bytes of the rollup file (written when the segment closes).
    #[serde(default)]
    pub rollup_bytes: u64,
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
        self.entry_bytes + self.packet_bytes + self.rollup_bytes
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

/// Path of a segment's packets file.
pub fn packets_path(dir: &Path, seq: u64) -> PathBuf {
    seg_path(dir, seq, "packets")
}
