//! Reading a segment's entries: every byte is untrusted. Records are framed by length and
//! CRC-32; a record that fails (bad length, bad CRC, undecodable body) is skipped and the
//! reader resynchronises on the next frame whose CRC verifies, so one damaged record costs
//! that record, not the rest of the segment.
//!
//! Resynchronisation first tries where the damaged frame's own length points (a flipped
//! payload byte leaves it right), then every following offset. A candidate must have a
//! plausible length and record type before its CRC is computed, and the CRC work of one file
//! is capped, so a hostile file costs bounded time; past the cap the rest of the file counts
//! as damaged. Bytes after the last intact record that hold no intact record are a torn tail
//! (a crash mid-write) when the segment may still be unfinished, and damage when it is closed.

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use wiremap_model::{Entry, Identity};

use crate::block::{self, BlockHead, Want};
use crate::codec::{self, Corrupt, Layout};
use crate::damage::{self, damaged_to_end, resync, FileScan, Found, Span, Window};
use crate::{
    StoreError, FORMAT_VERSION, MAGIC, MAX_RECORD, REC_BLOCK, REC_ENTRY, REC_IDENTITY, REC_NAME,
};

/// CRC bytes one file's resynchronisation may compute before giving up on the rest.
const RESYNC_BUDGET: u64 = 256 << 20;
/// Bytes kept behind a resynchronisation candidate, to tell whether the span was one record.
const KEEP_BEHIND: u64 = 1 << 20;

/// What a segment file's first eight bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Magic {
    /// This binary's format.
    Current,
    /// A well-formed magic of a later format.
    Newer(u32),
    /// A well-formed magic of an earlier format.
    Older(u32),
    /// Anything else.
    Foreign,
}

pub(crate) fn classify(m: &[u8]) -> Magic {
    if m == MAGIC {
        return Magic::Current;
    }
    let version = m
        .strip_prefix(b"WMSEG")
        .filter(|d| d.len() == 3 && d.iter().all(u8::is_ascii_digit))
        .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u32>().ok());
    match version {
        Some(v) if v > FORMAT_VERSION => Magic::Newer(v),
        Some(v) if v >= 1 => Magic::Older(v),
        _ => Magic::Foreign,
    }
}

/// The magic of the file at `path`: `None` when it is shorter than a magic and could be the
/// start of one (an empty or just-created segment).
pub(crate) fn magic_of(path: &Path) -> std::io::Result<Option<Magic>> {
    let mut f = std::fs::File::open(path)?;
    let mut m = [0u8; 8];
    let mut n = 0;
    while n < m.len() {
        match f.read(&mut m[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if n < m.len() {
        return Ok((!MAGIC.starts_with(&m[..n])).then_some(Magic::Foreign));
    }
    Ok(Some(classify(&m)))
}

pub(crate) fn magic_error(path: &str, m: Magic) -> StoreError {
    match m {
        Magic::Newer(found) => StoreError::NewerFormat {
            path: path.to_string(),
            found,
            supported: FORMAT_VERSION,
        },
        Magic::Older(found) => StoreError::OlderFormat {
            path: path.to_string(),
            found,
            supported: FORMAT_VERSION,
        },
        _ => StoreError::Foreign {
            path: path.to_string(),
            reason: "bad magic".into(),
        },
    }
}

/// The numbered tables of a segment (identities, field names): numbered in the order they
/// were written, so a damaged span that may have held a definition makes every later number
/// uncertain.
#[derive(Default)]
struct Tables {
    idents: Vec<Option<Arc<Identity>>>,
    /// `None`: a name this binary's dissectors never emit (its fields are left out).
    names: Vec<Option<&'static str>>,
    /// Numbers above these were given after a loss of unknown size: not trusted.
    idents_trusted: Option<u64>,
    names_trusted: Option<u64>,
}

impl Tables {
    fn ident(&self, n: u64) -> Result<Option<Arc<Identity>>, Corrupt> {
        if n == 0 || self.idents_trusted.is_some_and(|t| n > t) {
            // An entry keeps its addresses when its identity's number cannot be trusted.
            return Ok(None);
        }
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| self.idents.get(i))
            .cloned()
            .ok_or(Corrupt("identity reference"))
    }

    fn name(&self, c: &mut codec::Cursor<'_>) -> Result<Option<&'static str>, Corrupt> {
        let n = c.u()?;
        if n == 0 || self.names_trusted.is_some_and(|t| n > t) {
            return Ok(None);
        }
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| self.names.get(i))
            .copied()
            .ok_or(Corrupt("name reference"))
    }

    /// A span was lost: `kind` is its record type when the span is known to be one record.
    fn lost(&mut self, kind: Option<u8>) {
        match kind {
            Some(REC_ENTRY | REC_BLOCK) => {}
            // Its number is known; entries naming it keep their addresses only.
            Some(REC_IDENTITY) => self.idents.push(None),
            Some(REC_NAME) => self.names.push(None),
            _ => {
                if self.idents_trusted.is_none() {
                    self.idents_trusted = Some(self.idents.len() as u64);
                }
                if self.names_trusted.is_none() {
                    self.names_trusted = Some(self.names.len() as u64);
                }
            }
        }
    }
}

fn is_record(kind: u8) -> bool {
    matches!(kind, REC_IDENTITY | REC_ENTRY | REC_NAME | REC_BLOCK)
}

/// Decodes a record: definitions go into `t`, entries `want` may want to `visit` (a block
/// it rules out is not decompressed). `Err`: the record is damaged (entries of a damaged
/// block before the damage were visited).
fn decode(
    p: &[u8],
    t: &mut Tables,
    want: &Want<'_>,
    mask: Option<u32>,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, Corrupt> {
    let (&kind, body) = p.split_first().ok_or(Corrupt("empty record"))?;
    let mut c = codec::Cursor::new(body);
    match kind {
        REC_IDENTITY => {
            t.idents.push(Some(Arc::new(codec::get_identity(&mut c)?)));
            Ok(ControlFlow::Continue(()))
        }
        REC_NAME => {
            let n = c.s()?;
            t.names.push(wiremap_model::app_field(&n));
            Ok(ControlFlow::Continue(()))
        }
        REC_ENTRY => {
            let e = entry(&mut c, t, Layout::Inline)?;
            Ok(offer(e, want, mask, visit))
        }
        REC_BLOCK => {
            let h = BlockHead::get(&mut c)?;
            if !want.block(&h, mask) {
                return Ok(ControlFlow::Continue(()));
            }
            let raw = block::decompress(&h, c.rest())?;
            let layout = Layout::Framed {
                details: !want.lean,
            };
            let mut n = 0;
            for b in block::entries(&raw) {
                let e = entry(&mut codec::Cursor::new(b?), t, layout)?;
                n += 1;
                if offer(e, want, mask, visit).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            if n != h.count {
                return Err(Corrupt("block count"));
            }
            Ok(ControlFlow::Continue(()))
        }
        _ => Err(Corrupt("record type")),
    }
}

fn entry(c: &mut codec::Cursor<'_>, t: &Tables, layout: Layout) -> Result<Entry, Corrupt> {
    codec::get_entry(c, &|n| t.ident(n), &mut |c| t.name(c), layout)
}

fn offer(
    e: Entry,
    want: &Want<'_>,
    mask: Option<u32>,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> ControlFlow<()> {
    // The scope's protocols are necessary conditions of the filter: an entry of another
    // protocol (in a block that also holds wanted ones) is not worth handing over.
    if e.id <= want.after_id
        || want.id.is_some_and(|id| id != e.id)
        || !Want::protocol(mask, e.protocol)
        || want.scope.is_some_and(|s| !s.contains(e.timestamp))
    {
        return ControlFlow::Continue(());
    }
    visit(e)
}

enum Frame {
    /// The file ends exactly here.
    End,
    /// An intact frame with a payload of this length.
    Whole(usize),
    /// Not an intact frame; `next` is where its length says the next one starts.
    Bad { next: Option<u64> },
}

fn frame_at<R: Read>(w: &mut Window<R>, pos: u64) -> std::io::Result<Frame> {
    if !w.have(pos, 1)? {
        return Ok(Frame::End);
    }
    if !w.have(pos, 8)? {
        return Ok(Frame::Bad { next: None });
    }
    let len = w.u32_at(pos);
    if len == 0 || len > MAX_RECORD || !w.have(pos + 8, len as usize)? {
        return Ok(Frame::Bad { next: None });
    }
    if crc32fast::hash(w.get(pos + 8, len as usize)) != w.u32_at(pos + 4) {
        return Ok(Frame::Bad {
            next: Some(pos + 8 + u64::from(len)),
        });
    }
    Ok(Frame::Whole(len as usize))
}

/// Whether an intact frame starts at `q`; `None` when the budget is spent.
fn candidate<R: Read>(
    w: &mut Window<R>,
    q: u64,
    budget: &mut u64,
) -> std::io::Result<Option<bool>> {
    if !w.have(q, 9)? {
        return Ok(Some(false));
    }
    let len = w.u32_at(q);
    let kind = w.get(q + 8, 1)[0];
    if !(2..=MAX_RECORD).contains(&len) || !is_record(kind) {
        return Ok(Some(false));
    }
    if !w.have(q + 8, len as usize)? {
        return Ok(Some(false));
    }
    if *budget < u64::from(len) {
        return Ok(None);
    }
    *budget -= u64::from(len);
    Ok(Some(
        crc32fast::hash(w.get(q + 8, len as usize)) == w.u32_at(q + 4),
    ))
}

/// The record type of the damaged span `[pos, q)` when it is exactly one record: its length
/// pointed at `q`, or its CRC verifies over the span (only its length was damaged).
fn one_record<R: Read>(w: &Window<R>, pos: u64, q: u64, hint: Option<u64>) -> Option<u8> {
    if pos < w.base() || q < pos + 9 {
        return None;
    }
    let body = w.get(pos + 8, (q - pos - 8) as usize);
    (hint == Some(q) || crc32fast::hash(body) == w.u32_at(pos + 4)).then_some(body[0])
}

/// Reads the entries of a segment file's bytes in order, skipping damaged records (each
/// damaged span goes to `damage`); `name` is for errors. `complete`: the segment is closed, so
/// bad bytes at its end are damage rather than an unfinished write. Errors: a magic that is
/// not this store's ([`StoreError::Foreign`], [`StoreError::NewerFormat`]) and read errors.
pub fn read_entries(
    name: &str,
    r: impl Read,
    complete: bool,
    want: &Want<'_>,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    damage: &mut dyn FnMut(&Span),
) -> Result<FileScan, StoreError> {
    let io = |source| StoreError::Io {
        path: name.to_string(),
        source,
    };
    let mut w = Window::new(r);
    let mut scan = FileScan::default();
    if !w.have(0, MAGIC.len()).map_err(io)? {
        let n = w.end().map_err(io)? as usize;
        if MAGIC.starts_with(w.get(0, n)) {
            // Empty, or torn before its magic was whole.
            return Ok(scan);
        }
        return Err(magic_error(name, Magic::Foreign));
    }
    match classify(w.get(0, MAGIC.len())) {
        Magic::Current => {}
        m => return Err(magic_error(name, m)),
    }
    let mut lost = |s: Span, scan: &mut FileScan| {
        scan.add(&s);
        damage(&s);
    };
    let mut ids = Tables::default();
    let mask = want.protocol_mask();
    let mut budget = RESYNC_BUDGET;
    let mut pos = MAGIC.len() as u64;
    loop {
        w.drop_before(pos);
        if want.halted() {
            scan.good = pos;
            return Ok(scan);
        }
        match frame_at(&mut w, pos).map_err(io)? {
            Frame::End => {
                scan.good = pos;
                return Ok(scan);
            }
            Frame::Whole(n) => {
                let next = pos + 8 + n as u64;
                let payload = w.get(pos + 8, n);
                let kind = payload[0];
                match decode(payload, &mut ids, want, mask, visit) {
                    Ok(ControlFlow::Break(())) => {
                        scan.good = next;
                        return Ok(scan);
                    }
                    Ok(ControlFlow::Continue(())) => {}
                    Err(_) => {
                        ids.lost(Some(kind).filter(|k| is_record(*k)));
                        lost(Span::one(pos, next - pos, "undecodable record"), &mut scan);
                    }
                }
                pos = next;
            }
            Frame::Bad { next } => match resync(&mut w, pos, next, (8, KEEP_BEHIND), &mut |w, q| {
                candidate(w, q, &mut budget)
            })
            .map_err(io)?
            {
                Found::At(q) => {
                    ids.lost(one_record(&w, pos, q, next));
                    lost(Span::one(pos, q - pos, "damaged record"), &mut scan);
                    pos = q;
                }
                found @ (Found::Nothing | Found::GaveUp) => {
                    let gave_up = matches!(found, Found::GaveUp);
                    let closed = "damaged record at the end of a closed segment";
                    let (good, span) =
                        damaged_to_end(&mut w, pos, gave_up, complete, closed).map_err(io)?;
                    if let Some(s) = span {
                        lost(s, &mut scan);
                    }
                    scan.good = good;
                    return Ok(scan);
                }
            },
        }
    }
}

/// Reads a segment file's entries in order (see [`read_entries`]), counting and logging the
/// damage it skips. A missing file (deleted by retention after a query listed it) is empty.
pub fn scan_entries(
    path: &Path,
    complete: bool,
    want: &Want<'_>,
    visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> Result<FileScan, StoreError> {
    let Some(f) = crate::open_existing(path)? else {
        return Ok(FileScan::default());
    };
    read_entries(
        &path.display().to_string(),
        f,
        complete,
        want,
        visit,
        &mut |s| damage::report(path, s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use wiremap_model::{Endpoint, Protocol, Timestamp, Transport};

    fn entry(i: u64, who: Option<Arc<Identity>>) -> Entry {
        Entry {
            id: i,
            stream: i,
            index: 0,
            timestamp: Timestamp::from_parts(1_700_000_000 + i as i64, 0),
            elapsed_time: 0,
            protocol: Protocol::Tcp,
            transport: Transport::Tcp,
            src: Endpoint {
                ip: "10.0.0.1".parse().expect("ip"),
                port: 1,
                identity: who,
            },
            dst: Endpoint::new("10.0.0.2".parse().expect("ip"), 2),
            request_size: 0,
            response_size: 0,
            has_response: false,
            status_code: 0,
            error: false,
            node_name: String::new(),
            seen_by: Vec::new(),
            client_isn: None,
            detail: wiremap_model::Detail::None,
        }
    }

    /// A segment of `n` entries, the first two naming identities 1 and 2, every other one
    /// after that naming identity 1: bytes and the offset of each record.
    fn segment(n: u64) -> (Vec<u8>, Vec<u64>) {
        let a = Arc::new(Identity {
            name: "a".into(),
            ..Identity::default()
        });
        let b = Arc::new(Identity {
            name: "b".into(),
            ..Identity::default()
        });
        let mut out = MAGIC.to_vec();
        let mut at = Vec::new();
        for (k, id) in [&a, &b].into_iter().enumerate() {
            let mut p = vec![REC_IDENTITY];
            codec::put_identity(&mut p, id);
            at.push(out.len() as u64);
            frame(&mut out, &p);
            let mut p = vec![REC_ENTRY];
            codec::put_entry(&mut p, &entry(k as u64 + 1, Some(id.clone())), &mut |x| {
                if x.name == "a" {
                    1
                } else {
                    2
                }
            });
            at.push(out.len() as u64);
            frame(&mut out, &p);
        }
        for i in 3..=n {
            let mut p = vec![REC_ENTRY];
            let who = (i % 2 == 1).then(|| a.clone());
            codec::put_entry(&mut p, &entry(i, who), &mut |_| 1);
            at.push(out.len() as u64);
            frame(&mut out, &p);
        }
        (out, at)
    }

    fn read(bytes: &[u8], complete: bool) -> (Vec<Entry>, FileScan, Vec<Span>) {
        let mut got = Vec::new();
        let mut spans = Vec::new();
        let scan = read_entries(
            "test",
            bytes,
            complete,
            &Want::default(),
            &mut |e| {
                got.push(e);
                ControlFlow::Continue(())
            },
            &mut |s| spans.push(*s),
        )
        .expect("reads");
        (got, scan, spans)
    }

    fn ids(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_flipped_payload_byte_costs_one_record() {
        let (mut bytes, at) = segment(50);
        // Record 20 is entry 19 (records 0 and 2 are identities).
        let r = at[20] as usize;
        bytes[r + 12] ^= 0x40;
        let (got, scan, spans) = read(&bytes, true);
        let want: Vec<u64> = (1..=50).filter(|i| *i != 19).collect();
        assert_eq!(ids(&got), want);
        assert_eq!(scan.damaged_records, 1);
        assert_eq!(scan.damaged_bytes, at[21] - at[20]);
        assert_eq!(spans[0].offset, at[20]);
        assert_eq!(scan.good, bytes.len() as u64);
        // Identities are still right after the damage.
        assert!(got
            .iter()
            .filter(|e| e.id % 2 == 1)
            .all(|e| e.src.identity().name == "a"));
    }

    #[test]
    fn a_damaged_length_is_resynchronised_past() {
        let (mut bytes, at) = segment(50);
        let r = at[10] as usize;
        bytes[r + 1] ^= 0x7f;
        let (got, scan, _) = read(&bytes, true);
        assert_eq!(got.len(), 49);
        assert_eq!(scan.damaged_records, 1);
        assert_eq!(scan.damaged_bytes, at[11] - at[10]);
        // The lost record was an entry (its CRC verifies over the span): names still trusted.
        assert!(got
            .iter()
            .filter(|e| e.id % 2 == 1)
            .all(|e| e.src.identity().name == "a"));
    }

    #[test]
    fn a_lost_identity_leaves_its_entries_their_addresses() {
        let (mut bytes, at) = segment(10);
        // Record 2 is identity "b"; entry 2 names it.
        bytes[at[2] as usize + 10] ^= 1;
        let (got, scan, _) = read(&bytes, true);
        assert_eq!(ids(&got), (1..=10).collect::<Vec<_>>());
        assert_eq!(scan.damaged_records, 1);
        assert!(got[1].src.identity.is_none());
        assert_eq!(got[2].src.identity().name, "a");
    }

    #[test]
    fn torn_tail_vs_damage_at_the_end() {
        let (mut bytes, at) = segment(10);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
        let (got, scan, spans) = read(&bytes, false);
        assert_eq!(got.len(), 10);
        assert_eq!((scan.good, spans.len()), (whole, 0));
        // The same bytes at the end of a closed segment are damage, not a tail.
        let (_, scan, _) = read(&bytes, true);
        assert_eq!(scan.good, bytes.len() as u64);
        assert_eq!(scan.damaged_bytes, 7);
        // Damage in the middle with an unfinished record after it: the tail starts at the
        // unfinished record, the intact records between are kept.
        let (mut bytes, at2) = segment(10);
        bytes[at2[5] as usize + 9] ^= 0xff;
        bytes.extend_from_slice(&[40, 0, 0]);
        let (got, scan, _) = read(&bytes, false);
        assert_eq!(got.len(), 9);
        assert_eq!(scan.good, bytes.len() as u64 - 3);
        assert_eq!(at, at2);
    }

    #[test]
    fn foreign_and_newer_files_are_errors() {
        let mut bytes = segment(3).0;
        bytes[0] = b'X';
        let r = read_entries(
            "t",
            &bytes[..],
            true,
            &Want::default(),
            &mut |_| ControlFlow::Continue(()),
            &mut |_| {},
        );
        assert!(matches!(r, Err(StoreError::Foreign { .. })));
        bytes[..8].copy_from_slice(b"WMSEG007");
        let r = read_entries(
            "t",
            &bytes[..],
            true,
            &Want::default(),
            &mut |_| ControlFlow::Continue(()),
            &mut |_| {},
        );
        assert!(matches!(r, Err(StoreError::NewerFormat { found: 7, .. })));
        assert_eq!(read(b"WMS", false).1.good, 0);
    }

    #[test]
    fn garbage_costs_bounded_work() {
        // Every offset looks like the start of a big entry record whose CRC fails.
        let mut bytes = MAGIC.to_vec();
        while bytes.len() < (8 << 20) {
            bytes.extend_from_slice(&[REC_ENTRY, 0, 16, 0, 2, 2, 2, 2]);
        }
        let t = std::time::Instant::now();
        let (got, scan, _) = read(&bytes, true);
        assert!(got.is_empty());
        assert_eq!(scan.damaged_bytes, bytes.len() as u64 - 8);
        assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    }
}
