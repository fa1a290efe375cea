//! Damage found while reading segment files: skipped, counted once per damaged span, and
//! logged with its file and offset.
//!
//! Queries read segments through free functions (`scan`, `get`, `export`, `inspect`) that the
//! writer never sees, so the counts live in one process-wide table keyed by data directory;
//! `Store::stats` reads its own directory's totals. A span is counted the first time any
//! reader passes it: every reader walks a file from its start, so a span below the highest
//! offset already counted for that file was counted too. That holds with readers racing
//! (the check and the update happen under one lock) and costs one number per damaged file.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// A stretch of a segment file that did not read as intact records, skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of its first byte in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Records lost in it (a span whose record boundaries were damaged counts as one).
    pub records: u64,
    /// What was wrong.
    pub what: &'static str,
}

impl Span {
    /// One lost record (or block) of `len` bytes at `offset`.
    pub fn one(offset: u64, len: u64, what: &'static str) -> Span {
        Span {
            offset,
            len,
            records: 1,
            what,
        }
    }
}

/// What reading one segment file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileScan {
    /// Where the intact data ends: the file length, or the start of a torn tail (an unfinished
    /// last record with nothing intact after it), which start-up recovery cuts off. When the
    /// visitor stopped the scan, where it stopped.
    pub good: u64,
    /// Records skipped as damaged.
    pub damaged_records: u64,
    /// Bytes skipped as damaged.
    pub damaged_bytes: u64,
}

impl FileScan {
    pub(crate) fn add(&mut self, s: &Span) {
        self.damaged_records += s.records;
        self.damaged_bytes += s.len;
    }
}

#[derive(Debug, Default)]
struct DirDamage {
    records: u64,
    bytes: u64,
    /// Per file name: one past the offset of the last span counted.
    next: HashMap<String, u64>,
}

fn table() -> MutexGuard<'static, HashMap<PathBuf, DirDamage>> {
    static T: OnceLock<Mutex<HashMap<PathBuf, DirDamage>>> = OnceLock::new();
    let m = T.get_or_init(|| Mutex::new(HashMap::new()));
    // Counters stay usable after a panic elsewhere.
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn split(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// Counts a span of `path` unless a reader counted it before; whether it was new.
fn count(path: &Path, offset: u64, len: u64, records: u64) -> bool {
    let (dir, name) = split(path);
    let mut t = table();
    let d = t.entry(dir).or_default();
    let next = d.next.entry(name).or_insert(0);
    if offset < *next {
        return false;
    }
    *next = offset + 1;
    d.records += records;
    d.bytes += len;
    true
}

/// Counts and logs a damaged span of `path`, unless a reader counted it before.
pub(crate) fn report(path: &Path, span: &Span) {
    if count(path, span.offset, span.len, span.records) {
        eprintln!(
            "wiremap: warning: {}: {} at offset {}: skipped {} bytes ({} record{})",
            path.display(),
            span.what,
            span.offset,
            span.len,
            span.records,
            if span.records == 1 { "" } else { "s" }
        );
    }
}

/// A segment file that cannot be read at all (a read error, not this store's magic) and is
/// left where it is: the whole file counts as one damaged span.
pub(crate) fn unreadable(path: &Path, why: &dyn std::fmt::Display) {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    if count(path, 0, len, 1) {
        eprintln!("wiremap: warning: {why}: segment skipped ({len} bytes)");
    }
}

/// Damaged records and bytes counted so far in `dir`.
pub(crate) fn totals(dir: &Path) -> (u64, u64) {
    table().get(dir).map_or((0, 0), |d| (d.records, d.bytes))
}

/// A file of `dir` is gone (retention, quarantine): a new file of that name starts afresh.
pub(crate) fn forget(path: &Path) {
    let (dir, name) = split(path);
    if let Some(d) = table().get_mut(&dir) {
        d.next.remove(&name);
    }
}

/// Bytes read ahead in one go.
const CHUNK: usize = 256 << 10;

/// A read-ahead window over a file, addressed by file offset: the readers look ahead (a
/// record's whole length, a resynchronisation candidate) and drop what they have passed.
pub(crate) struct Window<R> {
    r: R,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<R: Read> Window<R> {
    pub(crate) fn new(r: R) -> Self {
        Window {
            r,
            buf: Vec::new(),
            base: 0,
            eof: false,
        }
    }

    /// File offset of the oldest byte still held.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Makes `[at, at + n)` available (`at` not before [`Window::base`]); false when the file
    /// ends first.
    pub(crate) fn have(&mut self, at: u64, n: usize) -> std::io::Result<bool> {
        let Some(rel) = at.checked_sub(self.base) else {
            // A reader bug, not bad input: an error rather than a panic.
            return Err(std::io::Error::other("read before the window"));
        };
        let need = rel as usize + n;
        while self.buf.len() < need {
            if self.eof {
                return Ok(false);
            }
            // Read into spare capacity (no zero-filling of a chunk a small file never fills);
            // fewer bytes than asked means the file ended.
            let want = (need - self.buf.len()).max(CHUNK);
            let k = (&mut self.r).take(want as u64).read_to_end(&mut self.buf)?;
            if k < want {
                self.eof = true;
            }
        }
        Ok(true)
    }

    /// The bytes `[at, at + n)`, made available by [`Window::have`] before.
    pub(crate) fn get(&self, at: u64, n: usize) -> &[u8] {
        let rel = (at - self.base) as usize;
        &self.buf[rel..rel + n]
    }

    /// Little-endian `u32` at `at` (available).
    pub(crate) fn u32_at(&self, at: u64) -> u32 {
        let b = self.get(at, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Forgets the bytes before `at` (when enough have piled up to be worth moving).
    pub(crate) fn drop_before(&mut self, at: u64) {
        let rel = (at.saturating_sub(self.base) as usize).min(self.buf.len());
        if rel >= CHUNK && rel * 2 >= self.buf.len() {
            self.buf.drain(..rel);
            self.base += rel as u64;
        }
    }

    /// Reads to the end of the file; returns its length.
    pub(crate) fn end(&mut self) -> std::io::Result<u64> {
        loop {
            let len = self.base + self.buf.len() as u64;
            if self.eof {
                return Ok(len);
            }
            self.drop_before(len);
            let at = self.base + self.buf.len() as u64;
            self.have(at, CHUNK)?;
        }
    }
}

/// Whether an intact frame starts at an offset (`None`: the CRC budget is spent).
pub(crate) type Candidate<'a, R> =
    dyn FnMut(&mut Window<R>, u64) -> std::io::Result<Option<bool>> + 'a;

/// Where a reader picks up after damage.
pub(crate) enum Found {
    /// An intact frame starts here.
    At(u64),
    /// No intact frame up to the end of the file.
    Nothing,
    /// The CRC budget ran out first.
    GaveUp,
}

/// How a read ends when no intact frame follows the damage at `pos` (`gave_up`: the CRC
/// budget ran out first): the good length, and the damaged span to count. Bytes to the end
/// of an unfinished segment are a torn tail (not damage); in a closed one (`complete`) they
/// are damage, named `closed_what`.
pub(crate) fn damaged_to_end<R: Read>(
    w: &mut Window<R>,
    pos: u64,
    gave_up: bool,
    complete: bool,
    closed_what: &'static str,
) -> std::io::Result<(u64, Option<Span>)> {
    let end = w.end()?;
    Ok(if gave_up {
        let what = "damage past the resynchronisation budget";
        (end, Some(Span::one(pos, end - pos, what)))
    } else if complete {
        (end, Some(Span::one(pos, end - pos, closed_what)))
    } else {
        (pos, None)
    })
}

/// Finds the next intact frame after a damaged one at `pos`: first where the damaged frame's
/// own length pointed (`hint`), then at every following offset. `candidate` says whether an
/// intact frame starts at an offset (`None`: the budget is spent); `min` is the bytes a frame
/// needs to be examined, and `keep` how far behind a candidate the window keeps bytes.
pub(crate) fn resync<R: Read>(
    w: &mut Window<R>,
    pos: u64,
    hint: Option<u64>,
    (min, keep): (usize, u64),
    candidate: &mut Candidate<'_, R>,
) -> std::io::Result<Found> {
    if let Some(h) = hint {
        match candidate(w, h)? {
            Some(true) => return Ok(Found::At(h)),
            Some(false) => {}
            None => return Ok(Found::GaveUp),
        }
    }
    let mut q = pos + 1;
    loop {
        w.drop_before(q.saturating_sub(keep).max(pos));
        if !w.have(q, min)? {
            return Ok(Found::Nothing);
        }
        match candidate(w, q)? {
            Some(true) => return Ok(Found::At(q)),
            Some(false) => q += 1,
            None => return Ok(Found::GaveUp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_counted_once_whoever_reads_it() {
        let dir = PathBuf::from("/nonexistent/wiremap-damage-test");
        let file = dir.join("seg-0000000001.entries");
        let span = |offset| Span {
            offset,
            len: 10,
            records: 1,
            what: "test",
        };
        // Two readers racing over the same two spans.
        report(&file, &span(100));
        report(&file, &span(100));
        report(&file, &span(500));
        report(&file, &span(100));
        report(&file, &span(500));
        assert_eq!(totals(&dir), (2, 20));
        // The file is replaced: its spans count again.
        forget(&file);
        report(&file, &span(100));
        assert_eq!(totals(&dir), (3, 30));
    }

    #[test]
    fn the_window_reads_ahead_and_forgets() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let mut w = Window::new(&data[..]);
        assert!(w.have(10, 4).expect("reads"));
        assert_eq!(w.get(10, 4), &data[10..14]);
        assert!(w.have(600_000, 8).expect("reads"));
        w.drop_before(600_000);
        assert!(w.base() > 0 && w.base() <= 600_000);
        assert_eq!(w.get(600_000, 8), &data[600_000..600_008]);
        assert!(!w.have(999_999, 2).expect("reads"));
        assert_eq!(w.end().expect("reads"), 1_000_000);
    }
}
