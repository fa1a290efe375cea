//! A tolerant HPACK decoder (RFC 7541) for passive capture.
//!
//! Unlike an endpoint's decoder it never gives up on a header block: a connection joined
//! mid-stream has a dynamic table whose older entries were never seen, so a reference to one
//! yields an unknown field and decoding goes on. Entries added since the join sit at the
//! front of the table, where their indexes are right. Huffman strings are decoded with
//! `loona-hpack`'s decoder.

use std::collections::VecDeque;

use loona_hpack::huffman::HuffmanDecoder;

/// The static table (RFC 7541 Appendix A).
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// A decoded field; `None` parts could not be known.
pub type Field = (Option<String>, Option<String>);

/// Most bytes of decoded header list kept per block (names and values plus 32 per field, as
/// HTTP/2 counts `SETTINGS_MAX_HEADER_LIST_SIZE`): a small block of references to a large
/// dynamic entry must not grow without bound.
pub const MAX_LIST: usize = 256 * 1024;
/// Longest name or value kept; longer ones are cut here.
pub const MAX_FIELD: usize = 64 * 1024;

/// What one header block decoded to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The fields, up to [`MAX_LIST`].
    pub fields: Vec<Field>,
    /// Fields were dropped or cut by the caps.
    pub truncated: bool,
    /// The block is malformed (a bad integer or string); decoding stopped there.
    pub error: bool,
}

/// Appends a field to `out` within the caps.
fn keep(out: &mut Decoded, used: &mut usize, (n, v): (Option<&str>, Option<&str>)) {
    let cut = |s: &str| -> String {
        if s.len() <= MAX_FIELD {
            return s.to_string();
        }
        let mut end = MAX_FIELD;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let size =
        32 + n.map_or(0, |x| x.len().min(MAX_FIELD)) + v.map_or(0, |x| x.len().min(MAX_FIELD));
    if *used + size > MAX_LIST {
        out.truncated = true;
        return;
    }
    *used += size;
    out.truncated |=
        n.is_some_and(|x| x.len() > MAX_FIELD) || v.is_some_and(|x| x.len() > MAX_FIELD);
    out.fields.push((n.map(cut), v.map(cut)));
}

/// One direction's decoding state.
pub struct Hpack {
    table: VecDeque<(Option<String>, Option<String>)>,
    size: usize,
    max: usize,
    /// The table's history is complete (the connection was seen from its start).
    complete: bool,
}

fn integer(d: &[u8], at: usize, prefix: u8) -> Option<(usize, usize)> {
    let mask = (1u16 << prefix) as u8 - 1;
    let first = *d.get(at)? & mask;
    if first < mask {
        return Some((usize::from(first), at + 1));
    }
    let mut v = usize::from(mask);
    let mut shift = 0;
    let mut p = at + 1;
    loop {
        let b = *d.get(p)?;
        p += 1;
        v = v.checked_add(usize::from(b & 0x7f).checked_shl(shift)?)?;
        shift += 7;
        if b & 0x80 == 0 {
            return Some((v, p));
        }
        if shift > 28 {
            return None;
        }
    }
}

thread_local! {
    /// One Huffman decoder per thread: building its tables costs more than most header blocks.
    static HUFFMAN: std::cell::RefCell<HuffmanDecoder> = std::cell::RefCell::new(HuffmanDecoder::new());
}

fn string(d: &[u8], at: usize) -> Option<(Option<String>, usize)> {
    let huff = *d.get(at)? & 0x80 != 0;
    let (len, p) = integer(d, at, 7)?;
    let raw = d.get(p..p.checked_add(len)?)?;
    let s = if huff {
        HUFFMAN
            .with(|h| h.borrow_mut().decode(raw).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    } else {
        Some(String::from_utf8_lossy(raw).into_owned())
    };
    Some((s, p + len))
}

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hpack")
            .field("entries", &self.table.len())
            .field("complete", &self.complete)
            .finish()
    }
}

impl Hpack {
    /// A decoder; `complete` when decoding from the connection's first header block.
    pub fn new(complete: bool) -> Self {
        Hpack {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
            complete,
        }
    }

    fn entry_size(e: &(Option<String>, Option<String>)) -> usize {
        32 + e.0.as_ref().map_or(0, String::len) + e.1.as_ref().map_or(0, String::len)
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some(e) => self.size -= Self::entry_size(&e),
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    /// The field at index `i`, borrowed.
    fn get(&self, i: usize) -> (Option<&str>, Option<&str>) {
        if i == 0 {
            return (None, None);
        }
        if i <= STATIC.len() {
            let (n, v) = STATIC[i - 1];
            return (Some(n), Some(v));
        }
        match self.table.get(i - STATIC.len() - 1) {
            Some((n, v)) => (n.as_deref(), v.as_deref()),
            None => (None, None),
        }
    }

    /// Bytes the dynamic table holds (HPACK's own measure: name, value and 32 per entry).
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Decodes a header block; fields that cannot be known come back as `None`.
    pub fn decode(&mut self, d: &[u8]) -> Vec<Field> {
        self.decode_bounded(d).fields
    }

    /// Decodes a header block within [`MAX_LIST`] and [`MAX_FIELD`]. The whole block is
    /// always read, so the dynamic table stays right even when fields are dropped.
    pub fn decode_bounded(&mut self, d: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        let mut used = 0;
        let mut p = 0;
        while p < d.len() {
            let b = d[p];
            let step = if b & 0x80 != 0 {
                integer(d, p, 7).map(|(i, q)| {
                    let f = self.get(i);
                    keep(&mut out, &mut used, f);
                    q
                })
            } else if b & 0xe0 == 0x20 {
                integer(d, p, 5).map(|(n, q)| {
                    self.max = n.min(1 << 20);
                    self.evict();
                    q
                })
            } else {
                let incremental = b & 0xc0 == 0x40;
                let prefix = if incremental { 6 } else { 4 };
                (|| {
                    let (idx, q) = integer(d, p, prefix)?;
                    let (name, q) = if idx == 0 {
                        string(d, q)?
                    } else {
                        (self.get(idx).0.map(str::to_string), q)
                    };
                    let (value, q) = string(d, q)?;
                    keep(&mut out, &mut used, (name.as_deref(), value.as_deref()));
                    if incremental {
                        let e = (name, value);
                        self.size += Self::entry_size(&e);
                        self.table.push_front(e);
                        self.evict();
                    }
                    Some(q)
                })()
            };
            match step {
                Some(q) if q > p => p = q,
                _ => {
                    // An unknown field marks where decoding stopped (within the cap too).
                    keep(&mut out, &mut used, (None, None));
                    out.error = true;
                    break;
                }
            }
        }
        out
    }

    /// Whether every reference could be resolved so far.
    pub fn complete(&self) -> bool {
        self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        let mut h = Hpack::new(true);
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x0f, b'w', b'w', b'w', b'.', b'e', b'x', b'a', b'm', b'p',
            b'l', b'e', b'.', b'c', b'o', b'm',
        ];
        let f = h.decode(&first);
        assert_eq!(f[0], (Some(":method".into()), Some("GET".into())));
        assert_eq!(
            f[3],
            (Some(":authority".into()), Some("www.example.com".into()))
        );
        // The second request refers to the dynamic entry (index 62).
        let second = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x08, b'n', b'o', b'-', b'c', b'a', b'c', b'h', b'e',
        ];
        let f = h.decode(&second);
        assert_eq!(
            f[3],
            (Some(":authority".into()), Some("www.example.com".into()))
        );
        assert_eq!(
            f[4],
            (Some("cache-control".into()), Some("no-cache".into()))
        );
    }

    #[test]
    fn references_to_a_large_entry_stay_within_the_cap() {
        let mut h = Hpack::new(true);
        // One 100 KB literal added to the table (raise the table size first), then 10,000
        // one-byte references to it: 1 GB if copied out each time.
        let mut block = vec![0x3f, 0xe1, 0xff, 0x3f]; // size update to 1 MiB
        let value = vec![b'v'; 100_000];
        block.push(0x40);
        block.push(1);
        block.push(b'x');
        block.extend_from_slice(&[0x7f, 0xa1, 0x8c, 0x06]);
        block.extend_from_slice(&value);
        block.extend(std::iter::repeat_n(0xbe, 10_000));
        let d = h.decode_bounded(&block);
        assert!(!d.error, "{:?}", d.fields.len());
        assert!(d.truncated);
        let total: usize = d
            .fields
            .iter()
            .map(|(n, v)| {
                32 + n.as_ref().map_or(0, String::len) + v.as_ref().map_or(0, String::len)
            })
            .sum();
        assert!(total <= MAX_LIST, "{total}");
        assert!(d
            .fields
            .iter()
            .all(|(_, v)| v.as_ref().is_some_and(|v| v.len() <= MAX_FIELD)));
        // The table is intact: a later block still resolves the entry.
        let next = h.decode_bounded(&[0xbe]);
        assert_eq!(next.fields[0].0.as_deref(), Some("x"));
        assert!(next.truncated, "the value is cut to the field cap");
    }

    #[test]
    fn a_malformed_block_is_an_error() {
        let mut h = Hpack::new(true);
        let d = h.decode_bounded(&[0x82, 0x00, 0x7f]);
        assert!(d.error);
        assert_eq!(d.fields[0].1.as_deref(), Some("GET"));
    }

    #[test]
    fn unknown_dynamic_entries_do_not_stop_decoding() {
        let mut h = Hpack::new(false);
        let f = h.decode(&[0xc5, 0x83, 0x84]);
        assert_eq!(f[0], (None, None));
        assert_eq!(f[1].1.as_deref(), Some("POST"));
        assert_eq!(f[2].1.as_deref(), Some("/"));
    }
}
