//! Edge rollups of a segment: per minute, and for the whole segment, one row per client,
//! server (address and identity; ports are not kept), protocol and capture node, with the
//! counts, bytes, first and last time and the latency sketch the map needs. A map over a
//! window merges the rollups of the segments it covers whole and of the minutes it covers
//! whole, and reads entries only at its ragged ends.
//!
//! The writer aggregates while it appends (bounded: a segment closes once it holds
//! [`MAX_ROWS`] minute rows) and writes `seg-N.rollup` when the segment closes, before its
//! index: magic, then two frames (length, CRC-32, LZ4 body): the identity and node tables
//! with the segment's rows, then the minute rows. A missing or damaged rollup file costs
//! speed, never an answer: the reader scans that segment's entries instead.

use rustc_hash::FxHashMap;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use wiremap_map::{Bytes, Rollup, Sketch};
use wiremap_model::{Endpoint, Entry, Identity, Protocol, Timestamp};

use crate::codec::{self, put_i, put_ip, put_s, put_u, Corrupt, Cursor};
use crate::{frame, io, StoreError, MAX_RECORD};

/// A minute of capture time, in nanoseconds: the finest rollup bucket.
pub(crate) const MINUTE: i64 = 60_000_000_000;
/// Minute rows a segment holds at most (it closes when it reaches them): bounds the
/// writer's memory whatever the traffic (a flood of distinct peers makes small segments).
pub(crate) const MAX_ROWS: usize = 65_536;
/// The first bytes of every rollup file. 002 added the HTTP 4xx count to each row.
pub const ROLLUP_MAGIC: &[u8; 8] = b"WMRLP002";
/// The magics of earlier rollup formats: such a file is derived data this binary does not
/// read, so it counts as missing (the segment's entries are read instead, and the writer
/// rebuilds it at start-up), never as damage.
const OLDER_MAGICS: [&[u8; 8]; 1] = [b"WMRLP001"];
const MAGIC: &[u8; 8] = ROLLUP_MAGIC;
/// Longest capture node name a rollup file may hold.
const MAX_NODE_NAME: usize = 1024;
/// Most other nodes a row may list.
const MAX_SEEN_BY: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    minute: i64,
    src: IpAddr,
    src_id: u32,
    dst: IpAddr,
    dst_id: u32,
    protocol: u8,
    node: u32,
}

#[derive(Debug, Clone, Default)]
struct Agg {
    requests: u64,
    responses: u64,
    errors: u64,
    client_errors: u64,
    request_bytes: u64,
    response_bytes: u64,
    zeros: u64,
    /// Latency sketch buckets, sorted.
    buckets: Vec<(i32, u64)>,
    first: i64,
    last: i64,
    /// Other nodes that saw these exchanges (node numbers, sorted).
    seen_by: Vec<u32>,
}

fn add_bucket(v: &mut Vec<(i32, u64)>, b: i32, n: u64) {
    match v.binary_search_by_key(&b, |(k, _)| *k) {
        Ok(i) => v[i].1 = v[i].1.saturating_add(n),
        Err(i) => v.insert(i, (b, n)),
    }
}

/// Adds a node to a row's other nodes (sorted), up to [`MAX_SEEN_BY`] (they are evidence:
/// the row's counts do not depend on them).
fn note_seen(v: &mut Vec<u32>, n: u32) {
    if let Err(i) = v.binary_search(&n) {
        if v.len() < MAX_SEEN_BY {
            v.insert(i, n);
        }
    }
}

impl Agg {
    fn merge(&mut self, o: &Agg) {
        if self.requests == 0 {
            (self.first, self.last) = (o.first, o.last);
        } else {
            self.first = self.first.min(o.first);
            self.last = self.last.max(o.last);
        }
        self.requests = self.requests.saturating_add(o.requests);
        self.responses = self.responses.saturating_add(o.responses);
        self.errors = self.errors.saturating_add(o.errors);
        self.client_errors = self.client_errors.saturating_add(o.client_errors);
        self.request_bytes = self.request_bytes.saturating_add(o.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(o.response_bytes);
        self.zeros = self.zeros.saturating_add(o.zeros);
        for (b, n) in &o.buckets {
            add_bucket(&mut self.buckets, *b, *n);
        }
        for s in &o.seen_by {
            note_seen(&mut self.seen_by, *s);
        }
    }
}

/// The rollups of the segment being written.
#[derive(Debug, Default)]
pub(crate) struct RollupBuilder {
    rows: FxHashMap<Key, Agg>,
    nodes: Vec<String>,
    node_no: FxHashMap<String, u32>,
}

impl RollupBuilder {
    fn node(&mut self, name: &str) -> u32 {
        // Most entries of a segment come from one node: check the last one named first
        // (lengths first: most imports name no node at all).
        if self
            .nodes
            .last()
            .is_some_and(|n| n.len() == name.len() && (name.is_empty() || n == name))
        {
            return self.nodes.len() as u32 - 1;
        }
        if let Some(n) = self.node_no.get(name) {
            return *n;
        }
        let n = self.nodes.len() as u32;
        self.nodes.push(name.to_string());
        self.node_no.insert(name.to_string(), n);
        n
    }

    /// Adds an entry whose identities have the numbers `src_id` and `dst_id` in the table
    /// given to [`RollupBuilder::write`] (0: none).
    pub(crate) fn add(&mut self, e: &Entry, src_id: u64, dst_id: u64) {
        let node = self.node(&e.node_name);
        let key = Key {
            minute: e.timestamp.0.div_euclid(MINUTE),
            src: e.src.ip,
            src_id: u32::try_from(src_id).unwrap_or(0),
            dst: e.dst.ip,
            dst_id: u32::try_from(dst_id).unwrap_or(0),
            protocol: Protocol::ALL
                .iter()
                .position(|p| *p == e.protocol)
                .unwrap_or(0) as u8,
            node,
        };
        let mut seen = [0u32; 4];
        let mut more = Vec::new();
        for (i, s) in e.seen_by.iter().enumerate() {
            let n = self.node(s);
            match seen.get_mut(i) {
                Some(x) => *x = n,
                None => more.push(n),
            }
        }
        let t = e.timestamp.0;
        let a = self.rows.entry(key).or_default();
        if a.requests == 0 {
            (a.first, a.last) = (t, t);
        } else {
            a.first = a.first.min(t);
            a.last = a.last.max(t);
        }
        a.requests += 1;
        a.responses += u64::from(e.has_response);
        a.errors += u64::from(e.error);
        a.client_errors += u64::from(e.client_error());
        a.request_bytes = a.request_bytes.saturating_add(e.request_size);
        a.response_bytes = a.response_bytes.saturating_add(e.response_size);
        if e.has_response {
            match Sketch::bucket_of(e.elapsed_time.max(0) as u64) {
                None => a.zeros += 1,
                Some(b) => add_bucket(&mut a.buckets, b, 1),
            }
        }
        let k = e.seen_by.len().min(seen.len());
        for n in seen[..k].iter().chain(&more) {
            note_seen(&mut a.seen_by, *n);
        }
    }

    /// Minute rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Writes the rollup file at `path` (through a temporary file: it appears whole or not
    /// at all); `idents[n - 1]` is identity `n`. Returns the bytes written.
    pub(crate) fn write(&self, path: &Path, idents: &[Arc<Identity>]) -> Result<u64, StoreError> {
        let mut totals: FxHashMap<Key, Agg> = FxHashMap::default();
        for (k, a) in &self.rows {
            totals.entry(Key { minute: 0, ..*k }).or_default().merge(a);
        }
        let mut head = Vec::new();
        put_u(&mut head, idents.len() as u64);
        for id in idents {
            codec::put_identity(&mut head, id);
        }
        put_u(&mut head, self.nodes.len() as u64);
        for n in &self.nodes {
            put_s(&mut head, n);
        }
        put_rows(&mut head, &totals);
        let mut minutes = Vec::new();
        put_rows(&mut minutes, &self.rows);
        let mut out = MAGIC.to_vec();
        for raw in [head, minutes] {
            let mut p = Vec::new();
            put_u(&mut p, raw.len() as u64);
            p.extend_from_slice(&lz4_flex::block::compress(&raw));
            frame(&mut out, &p);
        }
        let tmp = path.with_extension("rollup.tmp");
        fs::write(&tmp, &out).map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        Ok(out.len() as u64)
    }
}

fn put_rows(out: &mut Vec<u8>, rows: &FxHashMap<Key, Agg>) {
    let mut v: Vec<(&Key, &Agg)> = rows.iter().collect();
    // First seen first: a map folds nodes in the order it first sees them.
    v.sort_unstable_by_key(|(k, a)| (a.first, k.minute));
    put_u(out, v.len() as u64);
    for (k, a) in v {
        put_i(out, k.minute);
        put_ip(out, k.src);
        put_u(out, u64::from(k.src_id));
        put_ip(out, k.dst);
        put_u(out, u64::from(k.dst_id));
        out.push(k.protocol);
        put_u(out, u64::from(k.node));
        put_u(out, a.seen_by.len() as u64);
        for s in &a.seen_by {
            put_u(out, u64::from(*s));
        }
        for v in [
            a.requests,
            a.responses,
            a.errors,
            a.client_errors,
            a.request_bytes,
            a.response_bytes,
            a.zeros,
        ] {
            put_u(out, v);
        }
        put_u(out, a.buckets.len() as u64);
        for (b, n) in &a.buckets {
            put_i(out, i64::from(*b));
            put_u(out, *n);
        }
        put_i(out, a.first);
        put_i(out, a.last);
    }
}

/// Which rows to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// One row per key for the whole segment.
    Totals,
    /// The rows of the minutes numbered `from..=to` (minute = time / [`MINUTE`]).
    Minutes(i64, i64),
}

struct Tables {
    idents: Vec<Arc<Identity>>,
    nodes: Vec<String>,
}

fn body(c: &mut Cursor<'_>) -> Result<Vec<u8>, Corrupt> {
    // A frame: length, CRC-32, then the raw length and the LZ4 data.
    let len = u32::from_le_bytes(c.take(4)?.try_into().map_err(|_| Corrupt("frame"))?);
    let crc = u32::from_le_bytes(c.take(4)?.try_into().map_err(|_| Corrupt("frame"))?);
    if len > MAX_RECORD {
        return Err(Corrupt("frame length"));
    }
    let p = c.take(len as usize)?;
    if crc32fast::hash(p) != crc {
        return Err(Corrupt("frame checksum"));
    }
    let mut pc = Cursor::new(p);
    let raw_len = pc.u()?;
    if raw_len > u64::from(MAX_RECORD) {
        return Err(Corrupt("frame length"));
    }
    let raw = lz4_flex::block::decompress(pc.rest(), raw_len as usize)
        .map_err(|_| Corrupt("frame data"))?;
    if raw.len() as u64 != raw_len {
        return Err(Corrupt("frame length"));
    }
    Ok(raw)
}

fn ident(t: &Tables, n: u64) -> Result<Option<Arc<Identity>>, Corrupt> {
    if n == 0 {
        return Ok(None);
    }
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| t.idents.get(i))
        .cloned()
        .map(Some)
        .ok_or(Corrupt("identity reference"))
}

fn node(t: &Tables, n: u64) -> Result<String, Corrupt> {
    usize::try_from(n)
        .ok()
        .and_then(|i| t.nodes.get(i))
        .cloned()
        .ok_or(Corrupt("node reference"))
}

fn rows(
    c: &mut Cursor<'_>,
    t: &Tables,
    minutes: Option<(i64, i64)>,
    visit: &mut dyn FnMut(&Rollup),
) -> Result<(), Corrupt> {
    let n = c.count()?;
    // The writer never writes more (a segment closes first): a larger count is damage, and
    // bounds what a reader holds of one file.
    if n > MAX_ROWS {
        return Err(Corrupt("row count"));
    }
    for _ in 0..n {
        let minute = c.i()?;
        let src_ip = codec::get_ip(c)?;
        let src_id = c.u()?;
        let dst_ip = codec::get_ip(c)?;
        let dst_id = c.u()?;
        let protocol = *Protocol::ALL
            .get(usize::from(c.byte()?))
            .ok_or(Corrupt("protocol"))?;
        let node_no = c.u()?;
        let ns = c.count()?;
        if ns > MAX_SEEN_BY {
            return Err(Corrupt("seen by"));
        }
        let mut seen: Vec<u64> = Vec::with_capacity(ns);
        for _ in 0..ns {
            // Sorted without repeats, as written: a row cannot name one node many times.
            let n = c.u()?;
            if seen.last().is_some_and(|l| n <= *l) {
                return Err(Corrupt("seen by order"));
            }
            seen.push(n);
        }
        let mut v = [0u64; 7];
        for x in &mut v {
            *x = c.u()?;
        }
        let nb = c.count()?;
        let mut buckets = Vec::with_capacity(nb.min(1024));
        for _ in 0..nb {
            let b = i32::try_from(c.i()?).map_err(|_| Corrupt("bucket"))?;
            buckets.push((b, c.u()?));
        }
        let first = c.i()?;
        let last = c.i()?;
        if minutes.is_some_and(|(a, b)| minute < a || minute > b) {
            continue;
        }
        let r = Rollup {
            src: Endpoint {
                ip: src_ip,
                port: 0,
                identity: ident(t, src_id)?,
            },
            dst: Endpoint {
                ip: dst_ip,
                port: 0,
                identity: ident(t, dst_id)?,
            },
            protocol,
            node_name: node(t, node_no)?,
            seen_by: seen.iter().map(|s| node(t, *s)).collect::<Result<_, _>>()?,
            requests: v[0],
            responses: v[1],
            errors: v[2],
            client_errors: v[3],
            bytes: Bytes {
                request: v[4],
                response: v[5],
            },
            latency: Sketch::from_parts(v[6], buckets),
            first: Timestamp(first),
            last: Timestamp(last),
        };
        visit(&r);
    }
    Ok(())
}

/// Whether the file at `path` is a rollup file of an earlier format (to be rebuilt).
pub(crate) fn is_older(path: &Path) -> bool {
    let mut head = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| OLDER_MAGICS.iter().any(|m| **m == head))
}

/// Visits the rows `part` of the rollup file at `path`. `Ok(false)`: there is no rollup
/// file of this format (a segment still open, one closed before a crash, or a file written
/// by an earlier wiremap); an error: the file is damaged (rows may have been visited: the
/// caller discards what it got from this file).
pub(crate) fn read(
    path: &Path,
    part: Part,
    visit: &mut dyn FnMut(&Rollup),
) -> Result<bool, Corrupt> {
    // A whole file holds the magic and two frames of at most a record each: a larger one is
    // damage, refused before it is read into memory.
    let most = MAGIC.len() as u64 + 2 * (8 + u64::from(MAX_RECORD));
    match fs::metadata(path) {
        Ok(m) if m.len() > most => return Err(Corrupt("rollup file too large")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) => return Err(Corrupt("unreadable rollup file")),
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) => return Err(Corrupt("unreadable rollup file")),
    };
    if OLDER_MAGICS.iter().any(|m| bytes.starts_with(*m)) {
        return Ok(false);
    }
    read_bytes(&bytes, part, visit)?;
    Ok(true)
}

/// Visits the rows of a whole rollup file's bytes: the segment's, then every minute's (a
/// reader of untrusted bytes: the fuzz target's door).
pub fn read_rollups(bytes: &[u8], visit: &mut dyn FnMut(&Rollup)) -> Result<(), Corrupt> {
    read_bytes(bytes, Part::Totals, visit)?;
    read_bytes(bytes, Part::Minutes(i64::MIN, i64::MAX), visit)
}

fn read_bytes(bytes: &[u8], part: Part, visit: &mut dyn FnMut(&Rollup)) -> Result<(), Corrupt> {
    let mut c = Cursor::new(bytes);
    if c.take(MAGIC.len())? != MAGIC {
        return Err(Corrupt("not a rollup file"));
    }
    let head = body(&mut c)?;
    let mut h = Cursor::new(&head);
    let n = h.count()?;
    let mut idents = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        idents.push(Arc::new(codec::get_identity(&mut h)?));
    }
    let n = h.count()?;
    let mut nodes = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let name = h.s()?;
        // Node names are host names: a longer one is damage (rows copy their node's name).
        if name.len() > MAX_NODE_NAME {
            return Err(Corrupt("node name"));
        }
        nodes.push(name);
    }
    let t = Tables { idents, nodes };
    match part {
        Part::Totals => rows(&mut h, &t, None, visit),
        Part::Minutes(a, b) => {
            let m = body(&mut c)?;
            rows(&mut Cursor::new(&m), &t, Some((a, b)), visit)
        }
    }
}
