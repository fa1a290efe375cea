//! A segment's packets file (`seg-N.packets`): the raw packets, compressed.
//!
//! Layout: the magic `WMPKT002`, then frames. A frame is a 32-byte header, all little-endian:
//! `len: u32` (payload bytes), `crc: u32` (CRC-32 of the 24 header bytes after it and the
//! payload), `raw_len: u32`, `count: u32` (packets), `first_ts: i64`, `last_ts: i64` (the
//! earliest and latest packet time, nanoseconds); then `len` bytes: an LZ4 block
//! (`lz4_flex`) of `raw_len` bytes that are one complete pcapng section (section header,
//! the interface blocks it uses, packet blocks) as `wiremap_capture::PcapngWriter` writes it.
//! Every frame stands alone, so the frames decompressed in order are a valid multi-section
//! pcapng, a reader can skip a frame outside its time window without decompressing it, and
//! damage costs the frames it touches.
//!
//! Why: stored as plain pcapng the packets are larger than the capture they came from; LZ4
//! is fast enough to keep up with an import, and `lz4_flex` is pure Rust and already in the
//! build. A frame is cut at 256 KiB of raw pcapng (LZ4 finds little more in larger blocks)
//! and at every flush, so a crash loses what a flush had not written, as with a buffered file.
//!
//! Reading, every byte is untrusted. A frame whose lengths are implausible, whose CRC fails or
//! that does not decompress to exactly `raw_len` bytes is skipped and the reader
//! resynchronises on the next offset where an intact frame starts (tried first where the bad
//! frame's own length points). Candidates must have a plausible header before their CRC is
//! computed, and the CRC work of one file is capped, so a hostile file costs bounded time.
//! Inside an intact frame the pcapng is parsed block by block ([`crate::pcapng`]).

use std::io::{Read, Write};
use std::ops::{ControlFlow, RangeInclusive};
use std::path::Path;

use wiremap_capture::{LinkType, PcapngWriter};
use wiremap_model::Timestamp;

use crate::damage::{self, damaged_to_end, resync, FileScan, Found, Span, Window};
use crate::press::{Job, Press};
use crate::StoreError;

/// The first bytes of every packets file.
pub(crate) const MAGIC: &[u8; 8] = b"WMPKT002";
const HEADER: usize = 32;
/// Raw pcapng at which the writer cuts a frame.
const FRAME_RAW: u64 = 256 << 10;
/// Largest raw frame written or accepted: a frame holds less than `FRAME_RAW` plus one packet.
pub(crate) const MAX_RAW: usize = 4 << 20;
/// Longest packet stored, the snap length the interface blocks declare (longer ones are cut,
/// their length on the wire kept).
const SNAPLEN: usize = 262_144;
/// A section header block and the smallest packet block.
const MIN_RAW: u32 = 28;
const MIN_EPB: u32 = 32;
/// CRC bytes one file's resynchronisation may compute before giving up on the rest.
const RESYNC_BUDGET: u64 = 256 << 20;

/// Every time there is: a window that prunes nothing.
pub const ALL_TIME: RangeInclusive<Timestamp> =
    RangeInclusive::new(Timestamp(i64::MIN), Timestamp(i64::MAX));

/// Sees each stored packet: time, link type, bytes, length on the wire.
pub type PacketVisitor<'a> = dyn FnMut(Timestamp, LinkType, &[u8], u32) -> ControlFlow<()> + 'a;

/// Writes a packets file: packets are gathered into a pcapng section in memory; a section
/// that is big enough, or what has gathered at [`Writer::flush`], becomes a frame, compressed
/// on a thread of its own ([`crate::press`]; inline if that thread cannot start) and written
/// in order. The buffers are kept from frame to frame.
#[derive(Debug)]
pub(crate) struct Writer<W: Write> {
    out: W,
    /// The section of the frame being gathered.
    section: Option<PcapngWriter<Vec<u8>>>,
    /// Its buffer between frames.
    spare: Vec<u8>,
    /// A buffer for a compressed frame.
    frame: Vec<u8>,
    press: Option<Press>,
    /// Whether a thread was asked for yet (it is started at the first frame).
    pressed: bool,
    count: u32,
    first: i64,
    last: i64,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a packets file on `out` (writes the magic).
    pub(crate) fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Writer {
            out,
            section: None,
            spare: Vec::new(),
            frame: Vec::new(),
            press: None,
            pressed: false,
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
            written: MAGIC.len() as u64,
        })
    }

    /// Adds a packet (cut at the snap length); writes a frame when enough has gathered.
    pub(crate) fn write(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> std::io::Result<()> {
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let data = &data[..data.len().min(SNAPLEN)];
        let section = match &mut self.section {
            Some(s) => s,
            None => self
                .section
                .insert(PcapngWriter::new(std::mem::take(&mut self.spare))?),
        };
        section.write(ts, link, data, orig_len)?;
        let full = section.written() >= FRAME_RAW;
        self.count += 1;
        self.first = self.first.min(ts.0);
        self.last = self.last.max(ts.0);
        if full {
            self.cut()?;
        }
        Ok(())
    }

    /// Hands the gathered packets over as one frame, and writes the frames that are ready.
    fn cut(&mut self) -> std::io::Result<()> {
        if self.section.is_none() {
            return Ok(());
        }
        if !self.pressed {
            self.pressed = true;
            self.press = Press::start(encode_frame);
        }
        // Bounded: wait for the oldest frame before sending one more (before the gathered
        // section is taken, so a failed write of an older frame does not lose it too).
        if self.press.as_ref().is_some_and(|p| !p.has_room()) {
            self.collect(true, 1)?;
        }
        let Some(section) = self.section.take() else {
            return Ok(());
        };
        let job = Job {
            raw: section.finish()?,
            count: self.count,
            first: self.first,
            last: self.last,
            frame: std::mem::take(&mut self.frame),
        };
        self.count = 0;
        self.first = i64::MAX;
        self.last = i64::MIN;
        // `Some`: no compressing thread (or it is gone) — compress here.
        let job = match &mut self.press {
            Some(p) => p.send(job).err(),
            None => Some(job),
        };
        if let Some(mut job) = job {
            // Inline, after whatever is still in flight: frames stay in order (and this one
            // is written even if an older one failed; the first error is reported).
            let earlier = self.collect(true, usize::MAX);
            encode_frame(&job.raw, job.count, job.first, job.last, &mut job.frame)?;
            job.raw.clear();
            self.spare = job.raw;
            self.write_frame(job.frame)?;
            earlier?;
        }
        self.collect(false, usize::MAX)
    }

    /// Writes up to `most` compressed frames that came back, waiting for them if `wait`.
    fn collect(&mut self, wait: bool, most: usize) -> std::io::Result<()> {
        for _ in 0..most {
            let Some((frame, raw)) = self.press.as_mut().and_then(|p| p.next(wait)) else {
                break;
            };
            if raw.capacity() > self.spare.capacity() {
                self.spare = raw;
            }
            self.write_frame(frame?)?;
        }
        Ok(())
    }

    fn write_frame(&mut self, frame: Vec<u8>) -> std::io::Result<()> {
        // A failed write may leave part of the frame on disk: readers skip it as damage.
        let r = self.out.write_all(&frame);
        if r.is_ok() {
            self.written += frame.len() as u64;
        }
        self.frame = frame;
        r
    }

    /// Writes what has gathered as a frame (however small), waits for every frame in flight
    /// and flushes `out`.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.cut()?;
        self.collect(true, usize::MAX)?;
        self.out.flush()
    }

    /// Bytes written to `out` so far, plus the raw bytes in flight and gathered for the next
    /// frame (which compress to fewer): segments are sized by what they hold before a frame
    /// is written. Exact after a flush.
    pub(crate) fn written(&self) -> u64 {
        self.written
            + self.press.as_ref().map_or(0, Press::raw_in_flight)
            + self.section.as_ref().map_or(0, PcapngWriter::written)
    }

    #[cfg(test)]
    fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes and returns `out`.
    #[cfg(test)]
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
        self.flush()?;
        self.press = None;
        Ok(self.out)
    }
}

/// A whole frame: the header, then `raw` as one LZ4 block.
fn encode_frame(
    raw: &[u8],
    count: u32,
    first: i64,
    last: i64,
    frame: &mut Vec<u8>,
) -> std::io::Result<()> {
    frame.clear();
    frame.resize(
        HEADER + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    let n =
        lz4_flex::block::compress_into(raw, &mut frame[HEADER..]).map_err(std::io::Error::other)?;
    frame.truncate(HEADER + n);
    frame[0..4].copy_from_slice(&(n as u32).to_le_bytes());
    frame[8..12].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    frame[12..16].copy_from_slice(&count.to_le_bytes());
    frame[16..24].copy_from_slice(&first.to_le_bytes());
    frame[24..32].copy_from_slice(&last.to_le_bytes());
    let crc = crc32fast::hash(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A frame header as read.
#[derive(Debug, Clone, Copy)]
struct Head {
    len: u32,
    crc: u32,
    raw_len: u32,
    count: u32,
    first: i64,
    last: i64,
}

impl Head {
    fn parse(b: &[u8]) -> Head {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let i = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_le_bytes(a)
        };
        Head {
            len: u(0),
            crc: u(4),
            raw_len: u(8),
            count: u(12),
            first: i(16),
            last: i(24),
        }
    }

    /// Whether the writer could have written this header (the CRC not checked yet).
    fn plausible(&self) -> bool {
        let raw = self.raw_len as usize;
        self.len > 0
            && (MIN_RAW..=MAX_RAW as u32).contains(&self.raw_len)
            && self.raw_len.is_multiple_of(4)
            && self.len as usize <= lz4_flex::block::get_maximum_output_size(raw)
            && self.count > 0
            && self.count <= self.raw_len / MIN_EPB
            && self.first <= self.last
    }

    fn total(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }
}

enum Frame {
    /// The file ends exactly here.
    End,
    /// A frame whose header is plausible and whose CRC verifies.
    Whole(Head),
    /// Not an intact frame; `next` is where its length says the next one starts.
    Bad { next: Option<u64> },
}

fn frame_at<R: Read>(w: &mut Window<R>, pos: u64) -> std::io::Result<Frame> {
    if !w.have(pos, 1)? {
        return Ok(Frame::End);
    }
    if !w.have(pos, HEADER)? {
        return Ok(Frame::Bad { next: None });
    }
    let h = Head::parse(w.get(pos, HEADER));
    if !h.plausible() || !w.have(pos, h.total() as usize)? {
        return Ok(Frame::Bad { next: None });
    }
    if crc32fast::hash(w.get(pos + 8, h.total() as usize - 8)) != h.crc {
        return Ok(Frame::Bad {
            next: Some(pos + h.total()),
        });
    }
    Ok(Frame::Whole(h))
}

/// Whether an intact frame starts at `q`; `None` when the budget is spent.
fn candidate<R: Read>(
    w: &mut Window<R>,
    q: u64,
    budget: &mut u64,
) -> std::io::Result<Option<bool>> {
    if !w.have(q, HEADER)? {
        return Ok(Some(false));
    }
    let h = Head::parse(w.get(q, HEADER));
    if !h.plausible() || !w.have(q, h.total() as usize)? {
        return Ok(Some(false));
    }
    let Some(left) = budget.checked_sub(h.total()) else {
        return Ok(None);
    };
    *budget = left;
    Ok(Some(
        crc32fast::hash(w.get(q + 8, h.total() as usize - 8)) == h.crc,
    ))
}

/// What a read did besides visiting: for tests of the pruning.
#[derive(Debug, Default, Clone, Copy)]
struct Work {
    decompressed: u64,
}

/// Reads the packets of a segment's packets file in order, skipping damaged frames (each
/// damaged span goes to `damage`; a damaged frame counts as one record, however many packets
/// it held); `name` is for errors, `complete` as for [`crate::read_entries`]. Only packets
/// whose time lies in `times` are visited, and frames that hold none are not decompressed.
/// Only read errors are errors.
pub fn read_packets(
    name: &str,
    r: impl Read,
    complete: bool,
    times: RangeInclusive<Timestamp>,
    visit: &mut PacketVisitor<'_>,
    damage: &mut dyn FnMut(&Span),
) -> Result<FileScan, StoreError> {
    read_frames(name, r, complete, &times, visit, damage).map(|(scan, _)| scan)
}

fn read_frames(
    name: &str,
    r: impl Read,
    complete: bool,
    times: &RangeInclusive<Timestamp>,
    visit: &mut PacketVisitor<'_>,
    damage: &mut dyn FnMut(&Span),
) -> Result<(FileScan, Work), StoreError> {
    let io = |source| StoreError::Io {
        path: name.to_string(),
        source,
    };
    let mut w = Window::new(r);
    let mut scan = FileScan::default();
    let mut work = Work::default();
    let mut lost = |s: Span, scan: &mut FileScan| {
        scan.add(&s);
        damage(&s);
    };
    if !w.have(0, MAGIC.len()).map_err(io)? {
        // Empty, or torn before its magic was whole.
        let n = w.end().map_err(io)?;
        if complete && n > 0 {
            lost(
                Span::one(0, n, "packets file shorter than its magic"),
                &mut scan,
            );
            scan.good = n;
        }
        return Ok((scan, work));
    }
    if w.get(0, MAGIC.len()) != MAGIC {
        // Frames carry their own checks: a damaged magic costs only itself.
        lost(Span::one(0, MAGIC.len() as u64, "bad magic"), &mut scan);
    }
    let mut raw: Vec<u8> = Vec::new();
    let mut budget = RESYNC_BUDGET;
    let mut pos = MAGIC.len() as u64;
    loop {
        w.drop_before(pos);
        // A bad frame: where its length says the next one starts, and what was wrong.
        let (hint, what) = match frame_at(&mut w, pos).map_err(io)? {
            Frame::End => {
                scan.good = pos;
                return Ok((scan, work));
            }
            Frame::Bad { next } => (next, "damaged frame"),
            Frame::Whole(h) => {
                let next = pos + h.total();
                if h.last < times.start().0 || h.first > times.end().0 {
                    pos = next;
                    continue;
                }
                let n = h.raw_len as usize;
                raw.resize(n, 0);
                work.decompressed += 1;
                let payload = w.get(pos + HEADER as u64, h.len as usize);
                if lz4_flex::block::decompress_into(payload, &mut raw[..n]).ok() != Some(n) {
                    (Some(next), "frame that does not decompress")
                } else {
                    let mut inner = (0u64, false);
                    let flow = crate::pcapng::read_section(
                        &raw[..n],
                        times,
                        &mut budget,
                        visit,
                        &mut |s| {
                            inner.0 += s.records;
                            inner.1 = true;
                        },
                    );
                    if inner.1 {
                        // Offsets inside the section do not map to the file: the frame
                        // stands for its damaged blocks.
                        let s = Span {
                            offset: pos,
                            len: h.total(),
                            records: inner.0,
                            what: "damaged packet block inside a frame",
                        };
                        lost(s, &mut scan);
                    }
                    if flow.is_break() {
                        scan.good = next;
                        return Ok((scan, work));
                    }
                    pos = next;
                    continue;
                }
            }
        };
        match resync(&mut w, pos, hint, (HEADER, 0), &mut |w, q| {
            candidate(w, q, &mut budget)
        })
        .map_err(io)?
        {
            Found::At(q) => {
                lost(Span::one(pos, q - pos, what), &mut scan);
                pos = q;
            }
            found @ (Found::Nothing | Found::GaveUp) => {
                let gave_up = matches!(found, Found::GaveUp);
                let closed = "damaged frame at the end of a closed segment";
                let (good, span) =
                    damaged_to_end(&mut w, pos, gave_up, complete, closed).map_err(io)?;
                if let Some(s) = span {
                    lost(s, &mut scan);
                }
                scan.good = good;
                return Ok((scan, work));
            }
        }
    }
}

/// Reads a segment's packets file in order (see [`read_packets`]), counting and logging the
/// damage it skips. A missing file is empty.
pub fn scan_packets(
    path: &Path,
    complete: bool,
    times: RangeInclusive<Timestamp>,
    visit: &mut PacketVisitor<'_>,
) -> Result<FileScan, StoreError> {
    let Some(f) = crate::open_existing(path)? else {
        return Ok(FileScan::default());
    };
    read_packets(
        &path.display().to_string(),
        f,
        complete,
        times,
        visit,
        &mut |s| damage::report(path, s),
    )
}

#[cfg(test)]
mod tests;
