//! The pcapng section inside one packets frame (see [`crate::packets`]): little-endian, one
//! section header, an interface block per link type, enhanced packet blocks, as
//! `wiremap_capture::PcapngWriter` writes them. The frame's CRC has verified these bytes, so
//! damage here means a writer bug or a forged file; it is still only skipped.
//!
//! Every block carries its length at both ends. A block whose lengths disagree, or whose body
//! cannot be what its type says, is skipped and the parser resynchronises on the next offset
//! where a known block type has agreeing lengths and a sane body (tried first where the
//! damaged block's own length points). Checking a candidate's body costs up to its length,
//! so that work is charged to the file's budget.

use std::ops::{ControlFlow, RangeInclusive};

use wiremap_capture::LinkType;
use wiremap_model::Timestamp;

use crate::damage::Span;
use crate::packets::PacketVisitor;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const EPB: u32 = 6;
/// Byte-order magic of a little-endian section.
const BOM: u32 = 0x1a2b_3c4d;

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

/// Little-endian `u32` at `i` (in bounds: callers checked the block's length).
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Parses an interface block `b` (whole, at least 20 bytes).
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
    match btype {
        SHB => len >= 28 && u32_at(b, 8) == BOM,
        IDB => len >= 20 && parse_idb(b).is_some(),
        EPB => len >= 32 && u32_at(b, 20) as usize <= len - 32,
        _ => true,
    }
}

enum Block {
    End,
    Whole { btype: u32, len: usize },
    Bad { next: Option<usize> },
}

/// The block at `pos` of `raw`, with its length at both ends.
fn lengths(raw: &[u8], pos: usize) -> Option<(u32, usize)> {
    let head = raw.get(pos..pos.checked_add(12)?)?;
    let (btype, len) = (u32_at(head, 0), u32_at(head, 4) as usize);
    if len < 12 || len % 4 != 0 || raw.len() - pos < len {
        return None;
    }
    Some((btype, len))
}

fn block_at(raw: &[u8], pos: usize) -> Block {
    if pos >= raw.len() {
        return Block::End;
    }
    let Some((btype, len)) = lengths(raw, pos) else {
        return Block::Bad { next: None };
    };
    let b = &raw[pos..pos + len];
    if u32_at(b, len - 4) as usize != len || !sane(btype, b) {
        return Block::Bad {
            next: Some(pos + len),
        };
    }
    Block::Whole { btype, len }
}

/// Whether a block the writer writes starts at `q`; `None` when the budget is spent.
fn candidate(raw: &[u8], q: usize, budget: &mut u64) -> Option<bool> {
    let Some((btype, len)) = lengths(raw, q) else {
        return Some(false);
    };
    if !matches!(btype, SHB | IDB | EPB) || u32_at(raw, q + len - 4) as usize != len {
        return Some(false);
    }
    *budget = budget.checked_sub(len as u64)?;
    Some(sane(btype, &raw[q..q + len]))
}

/// Parses one section `raw` (the whole decompressed frame), giving `visit` the packets whose
/// time lies in `times` and `lost` each damaged span (offsets into `raw`). Break: the visitor
/// stopped.
pub(crate) fn read_section(
    raw: &[u8],
    times: &RangeInclusive<Timestamp>,
    budget: &mut u64,
    visit: &mut PacketVisitor<'_>,
    lost: &mut dyn FnMut(Span),
) -> ControlFlow<()> {
    let mut ifaces: Vec<Option<Iface>> = Vec::new();
    // Interface numbers at or above this follow a loss of unknown size: not trusted.
    let mut trusted: Option<usize> = None;
    let mut pos = 0usize;
    loop {
        match block_at(raw, pos) {
            Block::End => return ControlFlow::Continue(()),
            Block::Whole { btype, len } => {
                let b = &raw[pos..pos + len];
                match btype {
                    SHB => {
                        ifaces.clear();
                        trusted = None;
                    }
                    IDB => ifaces.push(parse_idb(b)),
                    EPB => {
                        let id = u32_at(b, 8) as usize;
                        let units = (u64::from(u32_at(b, 12)) << 32) | u64::from(u32_at(b, 16));
                        let (caplen, orig) = (u32_at(b, 20) as usize, u32_at(b, 24));
                        let iface = ifaces
                            .get(id)
                            .copied()
                            .flatten()
                            .filter(|_| trusted.is_none_or(|t| id < t));
                        match iface.and_then(|i| Some((i.link, i.nanos(units)?))) {
                            Some((link, ns)) => {
                                let ts = Timestamp(ns);
                                if times.contains(&ts) {
                                    visit(ts, link, &b[28..28 + caplen], orig)?;
                                }
                            }
                            None => lost(Span::one(
                                pos as u64,
                                len as u64,
                                "packet of an unknown interface",
                            )),
                        }
                    }
                    // The store writes no other block: one that frames right is a damaged
                    // type field. Unless its body is a packet's, it may have been an
                    // interface block, so later interface numbers are no longer trusted.
                    _ => {
                        if !sane(EPB, b) && trusted.is_none() {
                            trusted = Some(ifaces.len());
                        }
                        lost(Span::one(
                            pos as u64,
                            len as u64,
                            "block of an unknown type",
                        ));
                    }
                }
                pos += len;
            }
            Block::Bad { next } => {
                let mut found = None;
                let mut spent = false;
                if let Some(h) = next {
                    match candidate(raw, h, budget) {
                        Some(true) => found = Some(h),
                        Some(false) => {}
                        None => spent = true,
                    }
                }
                let mut q = pos + 1;
                while found.is_none() && !spent && q + 12 <= raw.len() {
                    match candidate(raw, q, budget) {
                        Some(true) => found = Some(q),
                        Some(false) => q += 1,
                        None => spent = true,
                    }
                }
                let Some(q) = found else {
                    // The frame is whole, so bad bytes at its end are damage, not a tail.
                    let what = if spent {
                        "damage past the resynchronisation budget"
                    } else {
                        "damaged block at the end of a frame"
                    };
                    lost(Span::one(pos as u64, (raw.len() - pos) as u64, what));
                    return ControlFlow::Continue(());
                };
                // Only a lost interface block shifts the interface numbers: one block (its
                // length pointed at `q`, or its trailing length says so) of another type
                // costs nothing else, a lost interface block leaves a hole, anything else
                // makes later numbers untrusted.
                let one_block =
                    q >= pos + 12 && (next == Some(q) || u32_at(raw, q - 4) as usize == q - pos);
                match (one_block, u32_at(raw, pos)) {
                    (true, SHB | EPB) => {}
                    (true, IDB) => ifaces.push(None),
                    _ => {
                        if trusted.is_none() {
                            trusted = Some(ifaces.len());
                        }
                    }
                }
                lost(Span::one(pos as u64, (q - pos) as u64, "damaged block"));
                pos = q;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremap_capture::PcapngWriter;

    const ALL: RangeInclusive<Timestamp> = Timestamp(i64::MIN)..=Timestamp(i64::MAX);

    fn unbounded() -> u64 {
        u64::MAX
    }

    /// A section of `n` Ethernet packets of growing sizes, and each packet block's offset.
    fn section(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut w = PcapngWriter::new(Vec::new()).expect("writes");
        let mut at = Vec::new();
        for i in 0..n {
            // The first packet also writes the interface block.
            if i > 0 {
                at.push(w.written() as usize);
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
                at.push(w.written() as usize - (12 + 20 + 40));
            }
        }
        (w.finish().expect("finishes"), at)
    }

    fn read(raw: &[u8]) -> (Vec<u8>, Vec<Span>) {
        let mut got = Vec::new();
        let mut spans = Vec::new();
        let flow = read_section(
            raw,
            &ALL,
            &mut unbounded(),
            &mut |ts, link, data, orig| {
                assert_eq!(link, LinkType::ETHERNET);
                assert_eq!(orig, 1500);
                assert_eq!(ts.0 - 1_700_000_000_000_000_000, i64::from(data[0]));
                got.push(data[0]);
                ControlFlow::Continue(())
            },
            &mut |s| spans.push(s),
        );
        assert!(flow.is_continue());
        (got, spans)
    }

    #[test]
    fn intact_sections_read_whole() {
        let (raw, _) = section(20);
        let (got, spans) = read(&raw);
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
        assert!(spans.is_empty());
    }

    #[test]
    fn a_block_with_disagreeing_lengths_is_skipped_alone() {
        for field in [4usize, 0] {
            let (mut raw, at) = section(20);
            // The leading length (or the type) of packet 7.
            raw[at[7] + field] ^= 0x10;
            let (got, spans) = read(&raw);
            let want: Vec<u8> = (0..20).filter(|i| *i != 7).collect();
            assert_eq!(got, want, "field {field}");
            assert_eq!(spans.len(), 1);
            assert_eq!(spans[0].len as usize, at[8] - at[7]);
        }
        // The trailing length.
        let (mut raw, at) = section(20);
        raw[at[8] - 4] ^= 0x01;
        let (got, _) = read(&raw);
        assert_eq!(got.len(), 19);
    }

    #[test]
    fn a_bad_end_is_damage_and_a_lost_section_header_costs_nothing_else() {
        let (mut raw, _) = section(10);
        raw.extend_from_slice(&[6, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3, 4]);
        let (got, spans) = read(&raw);
        assert_eq!((got.len(), spans.len(), spans[0].len), (10, 1, 12));
        let (mut raw, _) = section(5);
        raw[8] ^= 0xff;
        let (got, spans) = read(&raw);
        assert_eq!(got.len(), 5);
        assert_eq!(spans.iter().map(|s| s.len).sum::<u64>(), 28);
    }

    #[test]
    fn a_lost_interface_block_costs_its_packets_only() {
        let mut w = PcapngWriter::new(Vec::new()).expect("writes");
        w.write(Timestamp(1), LinkType::ETHERNET, &[0; 40], 40)
            .expect("writes");
        let idb2 = w.written() as usize;
        w.write(Timestamp(2), LinkType::RAW, &[0x45; 20], 20)
            .expect("writes");
        w.write(Timestamp(3), LinkType::ETHERNET, &[0; 40], 40)
            .expect("writes");
        let mut raw = w.finish().expect("finishes");
        // The second interface block's body no longer parses.
        raw[idb2 + 18] = 0xff;
        let mut links = Vec::new();
        let mut lost = 0;
        let _ = read_section(
            &raw,
            &ALL,
            &mut unbounded(),
            &mut |_, link, _, _| {
                links.push(link);
                ControlFlow::Continue(())
            },
            &mut |_| lost += 1,
        );
        assert_eq!(links, vec![LinkType::ETHERNET, LinkType::ETHERNET]);
        assert_eq!(lost, 2);
    }

    #[test]
    fn packets_outside_the_window_are_not_visited_and_every_cut_reads() {
        let (raw, _) = section(10);
        let mut seen = 0;
        let from = Timestamp(1_700_000_000_000_000_003);
        let _ = read_section(
            &raw,
            &(from..=Timestamp(from.0 + 2)),
            &mut unbounded(),
            &mut |_, _, _, _| {
                seen += 1;
                ControlFlow::Continue(())
            },
            &mut |_| {},
        );
        assert_eq!(seen, 3);
        for n in 0..raw.len() {
            let mut bytes = 0;
            let _ = read_section(
                &raw[..n],
                &ALL,
                &mut unbounded(),
                &mut |_, _, _, _| ControlFlow::Continue(()),
                &mut |s| {
                    assert!(s.offset + s.len <= n as u64);
                    bytes += s.len;
                },
            );
            assert!(bytes <= n as u64);
        }
    }

    #[test]
    fn resynchronising_stops_at_the_budget() {
        let (mut raw, at) = section(20);
        raw[at[2] + 4] ^= 0x10;
        // Enough for no candidate: the rest of the section is one span.
        let mut budget = 16;
        let mut got = 0;
        let mut spans = Vec::new();
        let _ = read_section(
            &raw,
            &ALL,
            &mut budget,
            &mut |_, _, _, _| {
                got += 1;
                ControlFlow::Continue(())
            },
            &mut |s| spans.push(s),
        );
        assert_eq!(got, 2);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].what, "damage past the resynchronisation budget");
        assert_eq!(spans[0].offset + spans[0].len, raw.len() as u64);
    }
}
