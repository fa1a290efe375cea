//! IP fragment reassembly with a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;

use wiremap_model::Timestamp;

/// Counters of fragment handling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentStats {
    /// Fragments received.
    pub fragments: u64,
    /// Datagrams rebuilt.
    pub reassembled: u64,
    /// Incomplete datagrams dropped (timeout or table full).
    pub evicted: u64,
    /// Fragments that made no sense (overlapping past the end, too large).
    pub invalid: u64,
}

#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
pub(crate) struct Key {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
}

#[derive(Debug)]
struct Pending {
    first: Timestamp,
    /// Received byte ranges, kept sorted and merged.
    pieces: Vec<(usize, usize)>,
    data: Vec<u8>,
    total: Option<usize>,
}

/// Holds fragments until their datagram is complete.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    table: HashMap<Key, Pending>,
    out: Vec<u8>,
    stats: FragmentStats,
}

const MAX_PENDING: usize = 4096;
const MAX_DATAGRAM: usize = 65_535;
const TIMEOUT_SECS: i64 = 30;

impl Reassembler {
    pub(crate) fn stats(&self) -> FragmentStats {
        self.stats.clone()
    }

    /// Adds a fragment; returns the whole payload once every piece is in.
    pub(crate) fn add(
        &mut self,
        ts: Timestamp,
        key: Key,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Option<&[u8]> {
        self.stats.fragments += 1;
        let end = offset + payload.len();
        if end > MAX_DATAGRAM {
            self.stats.invalid += 1;
            return None;
        }
        if self.table.len() >= MAX_PENDING && !self.table.contains_key(&key) {
            let before = self.table.len();
            let cutoff = ts.plus_secs(-TIMEOUT_SECS);
            self.table.retain(|_, p| p.first >= cutoff);
            if self.table.len() >= MAX_PENDING {
                // Still full: drop the oldest.
                if let Some(k) = self
                    .table
                    .iter()
                    .min_by_key(|(_, p)| p.first)
                    .map(|(k, _)| *k)
                {
                    self.table.remove(&k);
                }
            }
            self.stats.evicted += (before - self.table.len()) as u64;
        }
        let p = self.table.entry(key).or_insert_with(|| Pending {
            first: ts,
            pieces: Vec::new(),
            data: Vec::new(),
            total: None,
        });
        if ts.nanos() - p.first.nanos() > TIMEOUT_SECS * 1_000_000_000 {
            p.pieces.clear();
            p.total = None;
            p.first = ts;
            self.stats.evicted += 1;
        }
        if !more {
            p.total = Some(end);
        }
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        p.data[offset..end].copy_from_slice(payload);
        p.pieces.push((offset, end));
        p.pieces.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(p.pieces.len());
        for &(s, e) in &p.pieces {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        p.pieces = merged;
        let complete = matches!((p.total, p.pieces.as_slice()), (Some(t), [(0, e)]) if *e >= t);
        if !complete {
            return None;
        }
        let p = self.table.remove(&key)?;
        let total = p.total.unwrap_or(0);
        self.out.clear();
        self.out.extend_from_slice(p.data.get(..total)?);
        self.stats.reassembled += 1;
        Some(&self.out)
    }
}
