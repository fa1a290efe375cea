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

    fn get(&self, i: usize) -> Field {
        if i == 0 {
            return (None, None);
        }
        if i <= STATIC.len() {
            let (n, v) = STATIC[i - 1];
            return (Some(n.to_string()), Some(v.to_string()));
        }
        match self.table.get(i - STATIC.len() - 1) {
            Some((n, v)) => (n.clone(), v.clone()),
            None => (None, None),
        }
    }

    /// Decodes a header block; fields that cannot be known come back as `None`.
    pub fn decode(&mut self, d: &[u8]) -> Vec<Field> {
        let mut out = Vec::new();
        let mut p = 0;
        while p < d.len() {
            let b = d[p];
            let step = if b & 0x80 != 0 {
                integer(d, p, 7).map(|(i, q)| {
                    out.push(self.get(i));
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
                        (self.get(idx).0, q)
                    };
                    let (value, q) = string(d, q)?;
                    if incremental {
                        let e = (name.clone(), value.clone());
                        self.size += Self::entry_size(&e);
                        self.table.push_front(e);
                        self.evict();
                    }
                    out.push((name, value));
                    Some(q)
                })()
            };
            match step {
                Some(q) if q > p => p = q,
                _ => {
                    out.push((None, None));
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
    fn unknown_dynamic_entries_do_not_stop_decoding() {
        let mut h = Hpack::new(false);
        let f = h.decode(&[0xc5, 0x83, 0x84]);
        assert_eq!(f[0], (None, None));
        assert_eq!(f[1].1.as_deref(), Some("POST"));
        assert_eq!(f[2].1.as_deref(), Some("/"));
    }
}
