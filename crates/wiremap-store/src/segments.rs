//! The segments of a data directory: listing them, loading their indexes (rebuilding one a
//! crash left out, cutting torn tails), setting bad ones aside, and the queries over them.
//!
//! Nothing in the directory can stop the store: a name that only looks like a segment (a
//! directory, a differently padded number) is ignored, and a segment whose entries file is not
//! this store's (bad magic) or cannot be read is moved into `quarantine/` by the writer, or
//! skipped and counted by a read-only reader. Queries skip what they cannot read.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wiremap_model::{Entry, Identity};

use crate::block::Want;
use crate::damage;
use crate::read::{self, Magic};
use crate::rollup::RollupBuilder;
use crate::{io, scan_entries, scan_packets, seg_path, Scope, SegmentMeta, StoreError, StoreStats};

/// Where the writer moves segments it cannot use, inside the data directory.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Segment numbers of the regular files named exactly like a segment's entries file,
/// ascending. Only an unreadable directory is an error.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for d in fs::read_dir(dir).map_err(io(dir))? {
        let Ok(d) = d else { continue };
        let Ok(name) = d.file_name().into_string() else {
            continue;
        };
        let Some(seq) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".entries"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let path = seg_path(dir, seq, "entries");
        if path.file_name() != Some(d.file_name().as_os_str()) {
            continue;
        }
        // Follows a link: a link to a segment file is one.
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            eprintln!(
                "wiremap: warning: {}: not a regular file, ignored",
                path.display()
            );
            continue;
        }
        seqs.push(seq);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The magic of the oldest or newest segment when another wiremap's format wrote it: this
/// binary must not append to that store (a later one), and cannot read it (an earlier one:
/// the error says how to import the data again).
pub(crate) fn other_format(dir: &Path, seqs: &[u64]) -> Option<StoreError> {
    for seq in [seqs.last()?, seqs.first()?] {
        let path = seg_path(dir, *seq, "entries");
        if let Ok(Some(m @ (Magic::Newer(_) | Magic::Older(_)))) = read::magic_of(&path) {
            return Some(read::magic_error(&path.display().to_string(), m));
        }
    }
    None
}

/// A free name for `name` in the quarantine directory (a segment number can come back once
/// the store was emptied).
fn free_name(qdir: &Path, name: &str) -> PathBuf {
    let mut dest = qdir.join(name);
    let mut n = 1;
    while dest.symlink_metadata().is_ok() {
        dest = qdir.join(format!("{name}.{n}"));
        n += 1;
    }
    dest
}

/// Moves every file of segment `seq` into `quarantine/`.
fn quarantine(dir: &Path, seq: u64, why: &StoreError) {
    let qdir = dir.join(QUARANTINE_DIR);
    let mut moved = Vec::new();
    let made = fs::create_dir_all(&qdir);
    for ext in ["idx", "rollup", "entries", "packets"] {
        let src = seg_path(dir, seq, ext);
        if src.symlink_metadata().is_err() {
            continue;
        }
        let Some(name) = src.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let r = made
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|()| fs::rename(&src, free_name(&qdir, name)).map_err(|e| e.to_string()));
        match r {
            Ok(()) => moved.push(name.to_string()),
            Err(e) => eprintln!(
                "wiremap: warning: {}: cannot move into {}: {e}",
                src.display(),
                qdir.display()
            ),
        }
        damage::forget(&src);
    }
    eprintln!(
        "wiremap: warning: {why}: segment set aside (moved to {}: {})",
        qdir.display(),
        moved.join(", ")
    );
}

/// A segment that cannot be used: the writer (`repair`) sets it aside, a reader counts it.
fn unusable(dir: &Path, seq: u64, repair: bool, stats: &mut StoreStats, why: &StoreError) {
    if repair {
        quarantine(dir, seq, why);
        stats.quarantined_segments += 1;
    } else {
        damage::unreadable(&seg_path(dir, seq, "entries"), why);
    }
}

/// Loads segment `seq`: its index, or (open at a crash) an index rebuilt by reading it, which
/// with `repair` cuts its torn tails and is written. `None`: the segment is unusable (set
/// aside with `repair`). Errors: writes that fail.
pub(crate) fn load(
    dir: &Path,
    seq: u64,
    repair: bool,
    stats: &mut StoreStats,
) -> Result<Option<SegmentMeta>, StoreError> {
    let epath = seg_path(dir, seq, "entries");
    if repair {
        // Written whole and renamed into place: a leftover is a write a crash cut short.
        for ext in ["idx.tmp", "rollup.tmp"] {
            let _ = fs::remove_file(seg_path(dir, seq, ext));
        }
    }
    // The magic first: a file that is not this store's is set aside whatever its index says.
    match read::magic_of(&epath) {
        Ok(None | Some(Magic::Current)) => {}
        Ok(Some(m)) => {
            let e = read::magic_error(&epath.display().to_string(), m);
            unusable(dir, seq, repair, stats, &e);
            return Ok(None);
        }
        Err(e) => {
            unusable(dir, seq, repair, stats, &io(&epath)(e));
            return Ok(None);
        }
    }
    let idx = seg_path(dir, seq, "idx");
    if let Ok(text) = fs::read_to_string(&idx) {
        if let Ok(mut meta) = serde_json::from_str::<SegmentMeta>(&text) {
            if meta.seq == seq {
                let rpath = seg_path(dir, seq, "rollup");
                // Rollups of an earlier format are derived data: made again from the entries
                // (readers meanwhile take the file as missing and read the entries).
                if repair && meta.closed && crate::rollup::is_older(&rpath) {
                    let mut rollup = Renumbered::default();
                    scan_entries(&epath, true, &Want::default(), &mut |e| {
                        rollup.add(&e);
                        ControlFlow::Continue(())
                    })?;
                    meta.rollup_bytes = rollup.write(&rpath)?;
                    write_index(dir, &meta)?;
                }
                return Ok(Some(meta));
            }
        }
    }
    let mut meta = SegmentMeta {
        seq,
        names: Some(BTreeSet::new()),
        ..SegmentMeta::default()
    };
    // The rollups are rebuilt as the entries are read.
    let mut rollup = Renumbered::default();
    let scanned = scan_entries(&epath, false, &Want::default(), &mut |e| {
        meta.add_entry(&e);
        rollup.add(&e);
        ControlFlow::Continue(())
    });
    let Some(good) = intact(dir, seq, repair, stats, &epath, scanned)? else {
        return Ok(None);
    };
    meta.entry_bytes = good;
    let ppath = seg_path(dir, seq, "packets");
    if ppath.exists() {
        let mut packets = 0;
        let (mut from, mut to) = (None::<i64>, None::<i64>);
        let scanned = scan_packets(&ppath, false, crate::ALL_TIME, &mut |ts, _, _, _| {
            packets += 1;
            from = Some(from.map_or(ts.0, |f| f.min(ts.0)));
            to = Some(to.map_or(ts.0, |t| t.max(ts.0)));
            ControlFlow::Continue(())
        });
        let Some(good) = intact(dir, seq, repair, stats, &ppath, scanned)? else {
            return Ok(None);
        };
        meta.packets = packets;
        meta.packet_bytes = good;
        for t in [from, to].into_iter().flatten() {
            meta.see(wiremap_model::Timestamp(t));
        }
    }
    if repair {
        meta.closed = true;
        meta.rollup_bytes = rollup.write(&seg_path(dir, seq, "rollup"))?;
        write_index(dir, &meta)?;
    }
    Ok(Some(meta))
}

/// A segment's rollups made again from its entries, identities numbered by value.
#[derive(Default)]
struct Renumbered {
    rollup: RollupBuilder,
    idents: Vec<Arc<Identity>>,
    numbers: HashMap<Arc<Identity>, u64>,
}

impl Renumbered {
    fn add(&mut self, e: &Entry) {
        let mut number = |id: &Option<Arc<Identity>>| -> u64 {
            let Some(id) = id else { return 0 };
            let next = self.numbers.len() as u64 + 1;
            *self.numbers.entry(id.clone()).or_insert_with(|| {
                self.idents.push(id.clone());
                next
            })
        };
        let (s, d) = (number(&e.src.identity), number(&e.dst.identity));
        self.rollup.add(e, s, d);
    }

    fn write(&self, path: &Path) -> Result<u64, StoreError> {
        self.rollup.write(path, &self.idents)
    }
}

pub(crate) fn write_index(dir: &Path, meta: &SegmentMeta) -> Result<(), StoreError> {
    let idx = seg_path(dir, meta.seq, "idx");
    let tmp = seg_path(dir, meta.seq, "idx.tmp");
    let text = serde_json::to_string(meta).map_err(|e| io(&idx)(e.into()))?;
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, &idx).map_err(io(&idx))
}

/// How much of a segment file a scan found intact, its torn tail cut when repairing; `None`
/// when the file cannot be used (the segment is then set aside or skipped).
fn intact(
    dir: &Path,
    seq: u64,
    repair: bool,
    stats: &mut StoreStats,
    path: &Path,
    scanned: Result<crate::damage::FileScan, StoreError>,
) -> Result<Option<u64>, StoreError> {
    let good = match scanned {
        Ok(s) => s.good,
        Err(e) => {
            unusable(dir, seq, repair, stats, &e);
            return Ok(None);
        }
    };
    if repair {
        stats.torn_bytes_truncated += truncate(path, good)?;
    }
    Ok(Some(good))
}

/// Cuts `path` to `good` bytes (a torn tail); returns the bytes cut.
fn truncate(path: &Path, good: u64) -> Result<u64, StoreError> {
    let len = fs::metadata(path).map_err(io(path))?.len();
    if len > good {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(good).map_err(io(path))?;
        eprintln!(
            "wiremap: {}: cut a torn tail of {} bytes at offset {good}",
            path.display(),
            len - good
        );
        return Ok(len - good);
    }
    Ok(0)
}

/// The segments of a store another process may be writing, read without changing anything:
/// a segment without index (the open one) is indexed by reading it, and a segment that cannot
/// be used is skipped and counted as damage. Only an unreadable directory is an error.
pub fn inspect(dir: &Path) -> Result<Vec<SegmentMeta>, StoreError> {
    let mut stats = StoreStats::default();
    let mut v = Vec::new();
    for seq in list(dir)? {
        if let Some(m) = load(dir, seq, false, &mut stats)? {
            v.push(m);
        }
    }
    Ok(v)
}

/// Visits the entries of `segments` (from [`crate::Store::segments`]) that lie in `scope`,
/// oldest first, skipping segments their index rules out. Damaged records are skipped and
/// counted, a segment that cannot be read is skipped and counted: the query answers from the
/// rest.
pub fn scan(
    dir: &Path,
    segments: &[SegmentMeta],
    scope: &Scope,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let want = Want {
        scope: Some(scope),
        ..Want::default()
    };
    scan_want(dir, segments, &want, visit)
}

/// [`scan`] of what `want` wants (its scope, ids above its cursor).
pub(crate) fn scan_want(
    dir: &Path,
    segments: &[SegmentMeta],
    want: &Want<'_>,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let all = Scope::default();
    let scope = want.scope.unwrap_or(&all);
    for m in segments
        .iter()
        .filter(|m| m.may_match(scope) && m.ids.is_some_and(|(_, l)| l > want.after_id))
    {
        if want.halted() {
            break;
        }
        let mut stop = false;
        let path = seg_path(dir, m.seq, "entries");
        let r = scan_entries(&path, m.closed, want, &mut |e| {
            let r = visit(e);
            stop = r.is_break();
            r
        });
        if let Err(e) = r {
            damage::unreadable(&path, &e);
        }
        if stop {
            break;
        }
    }
    Ok(())
}

/// Entries a decoding thread hands over at once.
const AHEAD_BATCH: usize = 4096;

/// [`scan_want`] with the reading and decoding on a thread of its own, a few batches ahead
/// of `visit` (which folds them into a map on the caller's thread): a long scan uses two
/// cores. Meant for lean entries (no details), which carry almost nothing allocated, so
/// handing them across threads costs little. Without a thread it scans here.
pub(crate) fn scan_ahead(
    dir: &Path,
    segments: &[SegmentMeta],
    want: &Want<'_>,
    stop: &dyn Fn() -> bool,
    visit: &mut dyn FnMut(&Entry) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let halt = std::sync::atomic::AtomicBool::new(false);
    let ahead = Want {
        halt: Some(&halt),
        ..*want
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Entry>>(4);
        let ahead = &ahead;
        let reader = std::thread::Builder::new()
            .name("scan".into())
            .spawn_scoped(s, move || {
                let mut batch = Vec::with_capacity(AHEAD_BATCH);
                let r = scan_want(dir, segments, ahead, &mut |e| {
                    batch.push(e);
                    if batch.len() >= AHEAD_BATCH
                        && tx
                            .send(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(AHEAD_BATCH),
                            ))
                            .is_err()
                    {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                });
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                r
            });
        let Ok(reader) = reader else {
            return scan_want(dir, segments, want, &mut |e| {
                if stop() {
                    return ControlFlow::Break(());
                }
                visit(&e)
            });
        };
        // The stop flag is polled while waiting too: a selective scan may send rarely.
        'all: loop {
            let batch = match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(b) => b,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if stop() {
                        break 'all;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            // Lent in place: an entry is a few hundred bytes, not worth moving again.
            for e in &batch {
                if stop() || visit(e).is_break() {
                    break 'all;
                }
            }
        }
        halt.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(rx);
        reader.join().unwrap_or_else(|_| {
            Err(StoreError::Backend {
                backend: "embedded",
                message: "the scanning thread failed".into(),
            })
        })
    })
}

/// Finds one entry by id (segments that cannot be read are skipped and counted).
pub fn get(dir: &Path, segments: &[SegmentMeta], id: u64) -> Result<Option<Entry>, StoreError> {
    let mut found = None;
    for m in segments {
        if !m.ids.is_some_and(|(a, b)| a <= id && id <= b) {
            continue;
        }
        let path = seg_path(dir, m.seq, "entries");
        let want = Want {
            id: Some(id),
            ..Want::default()
        };
        let r = scan_entries(&path, m.closed, &want, &mut |e| {
            found = Some(e);
            ControlFlow::Break(())
        });
        if let Err(e) = r {
            damage::unreadable(&path, &e);
        }
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}
