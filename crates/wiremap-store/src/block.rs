//! Entry blocks: entries are written in LZ4-compressed blocks of about 64 KiB, each with a
//! small head (ids, time range, protocols present) that a reader checks before it
//! decompresses anything, so a scan skips the blocks its window, protocols or id cursor rule
//! out, and a stored entry costs a fraction of its encoded size.
//!
//! Why LZ4 (`lz4_flex`, pure Rust, already used by the agent uplink): entries repeat
//! themselves (the same peers, names, commands), decompression runs at gigabytes per
//! second, and compression keeps up with import on one core.

use wiremap_model::{Entry, Protocol};

use crate::codec::{put_i, put_u, Corrupt, Cursor};
use crate::{Scope, MAX_RECORD};

/// Raw bytes of entries after which a block is cut.
pub(crate) const BLOCK_RAW: usize = 64 << 10;

/// What a block holds, readable without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHead {
    /// Entries in the block.
    pub count: u64,
    /// First and last entry id (ids grow within a segment).
    pub ids: (u64, u64),
    /// Earliest and latest entry time, nanoseconds.
    pub times: (i64, i64),
    /// Bit `i` set: an entry of `Protocol::ALL[i]` is in the block.
    pub protocols: u32,
    /// Bytes of the entries once decompressed.
    pub raw_len: u64,
}

fn protocol_bit(p: Protocol) -> u32 {
    Protocol::ALL
        .iter()
        .position(|x| *x == p)
        .map_or(0, |i| 1u32 << i)
}

impl BlockHead {
    fn put(&self, out: &mut Vec<u8>) {
        put_u(out, self.count);
        put_u(out, self.ids.0);
        put_u(out, self.ids.1.wrapping_sub(self.ids.0));
        put_i(out, self.times.0);
        put_i(out, self.times.1.wrapping_sub(self.times.0));
        put_u(out, u64::from(self.protocols));
        put_u(out, self.raw_len);
    }

    pub(crate) fn get(c: &mut Cursor<'_>) -> Result<BlockHead, Corrupt> {
        let count = c.u()?;
        let first = c.u()?;
        let last = first.wrapping_add(c.u()?);
        let t0 = c.i()?;
        let t1 = t0.wrapping_add(c.i()?);
        let protocols = u32::try_from(c.u()?).map_err(|_| Corrupt("protocols"))?;
        let raw_len = c.u()?;
        if raw_len > u64::from(MAX_RECORD)
            || count == 0
            || count > raw_len
            || last < first
            || t1 < t0
        {
            return Err(Corrupt("block head"));
        }
        Ok(BlockHead {
            count,
            ids: (first, last),
            times: (t0, t1),
            protocols,
            raw_len,
        })
    }
}

/// What a reader wants from a segment's blocks; a block none of whose entries can be
/// wanted is skipped without decompressing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want<'a> {
    /// Time window and protocols (`None`: all).
    pub scope: Option<&'a Scope>,
    /// Only entries with a larger id.
    pub after_id: u64,
    /// Only this entry.
    pub id: Option<u64>,
    /// Leave the entries' protocol details out (they read as `Detail::None`): for a reader
    /// that needs only the entries' own fields (a map whose filter reads no details).
    pub lean: bool,
    /// Set by another thread to end the read early (checked at every record).
    pub halt: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Want<'_> {
    /// Whether the read was asked to end.
    pub(crate) fn halted(&self) -> bool {
        self.halt
            .is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Want<'_> {
    /// The protocols its scope allows, as a mask of [`BlockHead::protocols`] bits (`None`:
    /// any); computed once per read, then checked per block and per entry.
    pub(crate) fn protocol_mask(&self) -> Option<u32> {
        let ps = self.scope?.protocols.as_ref()?;
        Some(ps.iter().fold(0u32, |m, p| m | protocol_bit(*p)))
    }

    /// Whether an entry of protocol `p` can be wanted, given [`Want::protocol_mask`].
    pub(crate) fn protocol(mask: Option<u32>, p: Protocol) -> bool {
        mask.is_none_or(|m| m & protocol_bit(p) != 0)
    }

    /// Whether a block can hold a wanted entry (`mask`: [`Want::protocol_mask`]).
    pub(crate) fn block(&self, h: &BlockHead, mask: Option<u32>) -> bool {
        if h.ids.1 <= self.after_id {
            return false;
        }
        if self.id.is_some_and(|id| id < h.ids.0 || id > h.ids.1) {
            return false;
        }
        let Some(s) = self.scope else { return true };
        if s.from.is_some_and(|f| h.times.1 < f.0) || s.to.is_some_and(|t| h.times.0 > t.0) {
            return false;
        }
        mask.is_none_or(|m| m & h.protocols != 0)
    }
}

/// The block being filled.
#[derive(Debug, Default)]
pub(crate) struct BlockBuf {
    raw: Vec<u8>,
    head: Option<BlockHead>,
}

impl BlockBuf {
    /// Adds an encoded entry.
    pub(crate) fn push(&mut self, e: &Entry, encoded: &[u8]) {
        put_u(&mut self.raw, encoded.len() as u64);
        self.raw.extend_from_slice(encoded);
        let bit = protocol_bit(e.protocol);
        let t = e.timestamp.0;
        let h = self.head.get_or_insert(BlockHead {
            count: 0,
            ids: (e.id, e.id),
            times: (t, t),
            protocols: 0,
            raw_len: 0,
        });
        h.count += 1;
        h.ids.1 = e.id;
        h.times = (h.times.0.min(t), h.times.1.max(t));
        h.protocols |= bit;
        h.raw_len = self.raw.len() as u64;
    }

    /// Raw bytes held.
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    /// Writes the block's record payload (`kind`, head, compressed entries) to `out` and
    /// empties the buffer; nothing when it is empty.
    pub(crate) fn finish(&mut self, kind: u8, out: &mut Vec<u8>) -> bool {
        let Some(h) = self.head.take() else {
            return false;
        };
        out.push(kind);
        h.put(out);
        out.extend_from_slice(&lz4_flex::block::compress(&self.raw));
        self.raw.clear();
        true
    }
}

/// Decompresses a block body whose head says `raw_len` bytes.
pub(crate) fn decompress(h: &BlockHead, body: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let n = usize::try_from(h.raw_len).map_err(|_| Corrupt("block length"))?;
    let raw = lz4_flex::block::decompress(body, n).map_err(|_| Corrupt("block data"))?;
    if raw.len() != n {
        return Err(Corrupt("block length"));
    }
    Ok(raw)
}

/// Splits decompressed block bytes into the encoded entries (each prefixed by its length).
pub(crate) fn entries(raw: &[u8]) -> impl Iterator<Item = Result<&[u8], Corrupt>> {
    let mut c = Cursor::new(raw);
    std::iter::from_fn(move || {
        if c.is_empty() {
            return None;
        }
        Some(
            c.u()
                .and_then(|n| usize::try_from(n).map_err(|_| Corrupt("entry length")))
                .and_then(|n| c.take(n)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_every_prefix_fails() {
        let h = BlockHead {
            count: 3,
            ids: (10, 12),
            times: (-5, 1_700_000_000_000_000_000),
            protocols: 0b101,
            raw_len: 300,
        };
        let mut out = Vec::new();
        h.put(&mut out);
        assert_eq!(BlockHead::get(&mut Cursor::new(&out)), Ok(h));
        for cut in 0..out.len() {
            assert!(BlockHead::get(&mut Cursor::new(&out[..cut])).is_err());
        }
        // A head claiming more than a record can hold is refused before any allocation.
        let mut big = h;
        big.raw_len = u64::from(MAX_RECORD) + 1;
        let mut out = Vec::new();
        big.put(&mut out);
        assert!(BlockHead::get(&mut Cursor::new(&out)).is_err());
    }

    #[test]
    fn wants_prune_by_time_protocol_and_id() {
        let h = BlockHead {
            count: 2,
            ids: (5, 9),
            times: (100, 200),
            protocols: protocol_bit(Protocol::Redis),
            raw_len: 10,
        };
        let at = |f: i64, t: i64| {
            Scope::window(
                Some(wiremap_model::Timestamp(f)),
                Some(wiremap_model::Timestamp(t)),
            )
        };
        assert!(Want {
            scope: Some(&at(150, 300)),
            ..Want::default()
        }
        .block(&h, None));
        assert!(!Want {
            scope: Some(&at(201, 300)),
            ..Want::default()
        }
        .block(&h, None));
        let dns = Scope {
            protocols: Some([Protocol::Dns].into()),
            ..Scope::default()
        };
        let w = Want {
            scope: Some(&dns),
            ..Want::default()
        };
        assert!(!w.block(&h, w.protocol_mask()));
        assert!(Want::protocol(w.protocol_mask(), Protocol::Dns));
        assert!(!Want::protocol(w.protocol_mask(), Protocol::Redis));
        assert!(!Want {
            after_id: 9,
            ..Want::default()
        }
        .block(&h, None));
        assert!(Want {
            id: Some(7),
            ..Want::default()
        }
        .block(&h, None));
        assert!(!Want {
            id: Some(4),
            ..Want::default()
        }
        .block(&h, None));
    }
}
