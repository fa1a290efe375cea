//! Reading a segment's packets file: pcapng as the store writes it (little-endian, one
//! section, an interface block per link type, enhanced packet blocks), every byte untrusted.
//!
//! pcapng has no checksum, but every block carries its length at both ends. A block whose
//! lengths disagree, or whose body cannot be what its type says, is damaged: it is skipped
//! and the reader resynchronises on the next offset where a known block type has agreeing
//! lengths and a sane body (tried first where the damaged block's own length points). Each
//! candidate costs constant work, so a damaged span costs time linear in its length. A byte
//! flipped inside packet data leaves the framing intact and cannot be seen.

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use wiremap_capture::LinkType;
use wiremap_model::Timestamp;

use crate::damage::{self, FileScan, Span, Window};
use crate::StoreError;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const EPB: u32 = 6;
/// Byte-order magic of a little-endian section.
const BOM: u32 = 0x1a2b_3c4d;
/// Largest block accepted (packets are cut at 256 KiB by the writer).
const MAX_BLOCK: u32 = 16 << 20;

/// Sees each stored packet: time, link type, bytes, length on the wire.
pub type PacketVisitor<'a> = dyn FnMut(Timestamp, LinkType, &[u8], u32) -> ControlFlow<()> + 'a;

/// An interface: link type and timestamp units (nanoseconds per unit as a rational).
#[derive(Debug, Clone, Copy)]
struct Iface {
    link: LinkType,
    /// `if_tsresol`: 10^-n (`false`) or 2^-n (`true`) seconds per unit.
    resol: (bool, u8),
}

impl Iface {
    fn nanos(&self, units: u64) -> Option<i64> {
        let n = u32::from(self.resol.1);
        let ns: u128 = match self.resol {
            // The writer stores nanoseconds as the bits of an i64.
            (false, 9) => return Some(units as i64),
            (false, _) if n < 9 => u128::from(units) * 10u128.pow(9 - n),
            (false, _) => u128::from(units) / 10u128.checked_pow(n - 9)?,
            (true, _) => (u128::from(units) * 1_000_000_000) >> n.min(127),
        };
        i64::try_from(ns).ok()
    }
}

/// Parses an interface block's body `[8, len - 4)`.
fn parse_idb(b: &[u8]) -> Option<Iface> {
    let link = LinkType(u32::from(u16::from_le_bytes([b[8], b[9]])));
    let mut resol = (false, 6);
    let mut o = 16;
    let end = b.len() - 4;
    while o + 4 <= end {
        let code = u16::from_le_bytes([b[o], b[o + 1]]);
        let olen = usize::from(u16::from_le_bytes([b[o + 2], b[o + 3]]));
        if code == 0 {
            break;
        }
        let v = o + 4;
        if v + olen > end {
            return None;
        }
        if code == 9 && olen >= 1 {
            let r = b[v];
            resol = (r & 0x80 != 0, r & 0x7f);
        }
        o = v + olen.div_ceil(4) * 4;
    }
    Some(Iface { link, resol })
}

/// Whether the block `b` (whole, lengths agreeing) has the body its type says.
fn sane(btype: u32, b: &[u8]) -> bool {
    let len = b.len();
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    match btype {
        SHB => len >= 28 && u32_at(8) == BOM,
        IDB => len >= 20 && parse_idb(b).is_some(),
        EPB => len >= 32 && u32_at(20) as usize <= len - 32,
        _ => true,
    }
}

enum Block {
    End,
    Whole { btype: u32, len: usize },
    Bad { next: Option<u64> },
}

fn block_at<R: Read>(w: &mut Window<R>, pos: u64) -> std::io::Result<Block> {
    if !w.have(pos, 1)? {
        return Ok(Block::End);
    }
    if !w.have(pos, 12)? {
        return Ok(Block::Bad { next: None });
    }
    let (btype, len) = (w.u32_at(pos), w.u32_at(pos + 4));
    if len < 12 || len % 4 != 0 || len > MAX_BLOCK || !w.have(pos, len as usize)? {
        return Ok(Block::Bad { next: None });
    }
    let n = len as usize;
    if w.u32_at(pos + u64::from(len) - 4) != len || !sane(btype, w.get(pos, n)) {
        return Ok(Block::Bad {
            next: Some(pos + u64::from(len)),
        });
    }
    Ok(Block::Whole { btype, len: n })
}

/// Whether a block the writer writes starts at `q` (constant work besides reading ahead).
fn candidate<R: Read>(w: &mut Window<R>, q: u64) -> std::io::Result<bool> {
    if !w.have(q, 12)? {
        return Ok(false);
    }
    let (btype, len) = (w.u32_at(q), w.u32_at(q + 4));
    if !matches!(btype, SHB | IDB | EPB) || len < 12 || len % 4 != 0 || len > MAX_BLOCK {
        return Ok(false);
    }
    if !w.have(q, len as usize)? || w.u32_at(q + u64::from(len) - 4) != len {
        return Ok(false);
    }
    Ok(sane(btype, w.get(q, len as usize)))
}

/// Reads the packets of a segment's pcapng bytes in order, skipping damaged blocks (each
/// damaged span goes to `damage`); `name` is for errors, `complete` as for
/// [`crate::read_entries`]. Only read errors are errors.
pub fn read_packets(
    name: &str,
    r: impl Read,
    complete: bool,
    visit: &mut PacketVisitor<'_>,
    damage: &mut dyn FnMut(&Span),
) -> Result<FileScan, StoreError> {
    let io = |source| StoreError::Io {
        path: name.to_string(),
        source,
    };
    let mut w = Window::new(r);
    let mut scan = FileScan::default();
    let mut lost = |s: Span, scan: &mut FileScan| {
        scan.add(&s);
        damage(&s);
    };
    let mut ifaces: Vec<Option<Iface>> = Vec::new();
    // Interface numbers at or above this follow a loss of unknown size: not trusted.
    let mut trusted: Option<usize> = None;
    let mut pos = 0u64;
    loop {
        w.drop_before(pos);
        match block_at(&mut w, pos).map_err(io)? {
            Block::End => {
                scan.good = pos;
                return Ok(scan);
            }
            Block::Whole { btype, len } => {
                let next = pos + len as u64;
                let b = w.get(pos, len);
                match btype {
                    SHB => {
                        ifaces.clear();
                        trusted = None;
                    }
                    IDB => ifaces.push(parse_idb(b)),
                    EPB => {
                        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                        let id = u(8) as usize;
                        let units = (u64::from(u(12)) << 32) | u64::from(u(16));
                        let (caplen, orig) = (u(20) as usize, u(24));
                        let iface = ifaces
                            .get(id)
                            .copied()
                            .flatten()
                            .filter(|_| trusted.is_none_or(|t| id < t));
                        match iface.and_then(|i| Some((i.link, i.nanos(units)?))) {
                            Some((link, ns)) => {
                                let data = &b[28..28 + caplen];
                                if visit(Timestamp(ns), link, data, orig).is_break() {
                                    scan.good = next;
                                    return Ok(scan);
                                }
                            }
                            None => {
                                lost(
                                    Span::one(pos, len as u64, "packet of an unknown interface"),
                                    &mut scan,
                                );
                            }
                        }
                    }
                    // The store writes no other block: one that frames right is a damaged
                    // type field. Unless its body is a packet's, it may have been an
                    // interface block, so later interface numbers are no longer trusted.
                    _ => {
                        if !sane(EPB, b) && trusted.is_none() {
                            trusted = Some(ifaces.len());
                        }
                        lost(
                            Span::one(pos, len as u64, "block of an unknown type"),
                            &mut scan,
                        );
                    }
                }
                pos = next;
            }
            Block::Bad { next } => {
                let mut found = None;
                if let Some(h) = next {
                    if candidate(&mut w, h).map_err(io)? {
                        found = Some(h);
                    }
                }
                let mut q = pos + 1;
                while found.is_none() {
                    w.drop_before(q);
                    if !w.have(q, 12).map_err(io)? {
                        break;
                    }
                    if candidate(&mut w, q).map_err(io)? {
                        found = Some(q);
                    }
                    q += 1;
                }
                match found {
                    Some(q) => {
                        // Only a lost interface block shifts the interface numbers: one
                        // block (its length pointed at `q`, or its trailing length says so)
                        // of another type costs nothing else, a lost interface block leaves a
                        // hole, anything else makes later numbers untrusted.
                        let one_block = pos >= w.base()
                            && q >= pos + 12
                            && (next == Some(q) || u64::from(w.u32_at(q - 4)) == q - pos);
                        match (one_block, one_block.then(|| w.u32_at(pos))) {
                            (true, Some(SHB | EPB)) => {}
                            (true, Some(IDB)) => ifaces.push(None),
                            _ => {
                                if trusted.is_none() {
                                    trusted = Some(ifaces.len());
                                }
                            }
                        }
                        lost(Span::one(pos, q - pos, "damaged block"), &mut scan);
                        pos = q;
                    }
                    None => {
                        let end = w.end().map_err(io)?;
                        scan.good = pos;
                        if complete {
                            lost(
                                Span::one(
                                    pos,
                                    end - pos,
                                    "damaged block at the end of a closed segment",
                                ),
                                &mut scan,
                            );
                            scan.good = end;
                        }
                        return Ok(scan);
                    }
                }
            }
        }
    }
}

/// Reads a segment's packets file in order (see [`read_packets`]), counting and logging the
/// damage it skips. A missing file is empty.
pub fn scan_packets(
    path: &Path,
    complete: bool,
    visit: &mut PacketVisitor<'_>,
) -> Result<FileScan, StoreError> {
    let Some(f) = crate::open_existing(path)? else {
        return Ok(FileScan::default());
    };
    read_packets(&path.display().to_string(), f, complete, visit, &mut |s| {
        damage::report(path, s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremap_capture::PcapngWriter;

    /// A packets file of `n` Ethernet packets of growing sizes, and each block's offset.
    fn file(n: usize) -> (Vec<u8>, Vec<u64>) {
        let mut w = PcapngWriter::new(Vec::new()).expect("writes");
        let mut at = Vec::new();
        for i in 0..n {
            // The first packet also writes the interface block.
            if i > 0 {
                at.push(w.written());
            }
            let data = vec![i as u8; 40 + i];
            w.write(
                Timestamp(1_700_000_000_000_000_000 + i as i64),
                LinkType::ETHERNET,
                &data,
                1500,
            )
            .expect("writes");
            if i == 0 {
                at.push(w.written() - (12 + 20 + 40));
            }
        }
        (w.finish().expect("finishes"), at)
    }

    fn read(bytes: &[u8], complete: bool) -> (Vec<u8>, FileScan) {
        let mut got = Vec::new();
        let scan = read_packets(
            "test",
            bytes,
            complete,
            &mut |ts, link, data, orig| {
                assert_eq!(link, LinkType::ETHERNET);
                assert_eq!(orig, 1500);
                assert_eq!(ts.0 - 1_700_000_000_000_000_000, i64::from(data[0]));
                got.push(data[0]);
                ControlFlow::Continue(())
            },
            &mut |_| {},
        )
        .expect("reads");
        (got, scan)
    }

    #[test]
    fn intact_files_read_whole() {
        let (bytes, _) = file(20);
        let (got, scan) = read(&bytes, true);
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
        assert_eq!(
            scan,
            FileScan {
                good: bytes.len() as u64,
                ..FileScan::default()
            }
        );
    }

    #[test]
    fn a_block_with_disagreeing_lengths_is_skipped_alone() {
        for field in [4usize, 0] {
            let (mut bytes, at) = file(20);
            // The leading length (or the type) of packet 7.
            bytes[at[7] as usize + field] ^= 0x10;
            let (got, scan) = read(&bytes, true);
            let want: Vec<u8> = (0..20).filter(|i| *i != 7).collect();
            assert_eq!(got, want, "field {field}");
            assert_eq!(scan.damaged_records, 1);
            assert_eq!(scan.damaged_bytes, at[8] - at[7]);
        }
        // The trailing length.
        let (mut bytes, at) = file(20);
        bytes[at[8] as usize - 4] ^= 0x01;
        let (got, _) = read(&bytes, true);
        assert_eq!(got.len(), 19);
    }

    #[test]
    fn a_torn_last_block_is_a_tail_and_damage_before_it_is_not() {
        let (mut bytes, at) = file(10);
        bytes[at[3] as usize + 4] = 0xff;
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[6, 0, 0, 0, 200, 0, 0, 0, 1, 2]);
        let (got, scan) = read(&bytes, false);
        assert_eq!(got.len(), 9);
        assert_eq!(scan.good, whole);
        assert_eq!(scan.damaged_records, 1);
    }

    #[test]
    fn a_lost_section_header_costs_nothing_else() {
        let (mut bytes, _) = file(5);
        bytes[8] ^= 0xff;
        let (got, scan) = read(&bytes, true);
        assert_eq!(got.len(), 5);
        assert_eq!(scan.damaged_bytes, 28);
    }
}
