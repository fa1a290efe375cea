//! Where an HTTP/1 message ends: the blank line after its head, and the body framing its
//! headers announce (chunked, a length, or the connection's close).

/// Where the head that starts the buffer ends (after its blank line), searching from `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// A chunk-size line's value, up to its first non-hex byte (extensions follow).
pub(crate) fn parse_hex(line: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut any = false;
    for &c in line {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        any = true;
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    any.then_some(v)
}

/// How the body of a message is delimited.
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The value of header `name` (case-insensitive).
pub(crate) fn header<'h>(raw: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    raw.iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The body framing a head announces (RFC 9112 §6.3, in order of precedence).
pub(crate) fn framing(raw: &[httparse::Header<'_>], is_response: bool) -> Framing {
    let mut len = None;
    for h in raw {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
        {
            return Framing::Chunked;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
    }
    match len {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None if is_response => Framing::UntilClose,
        None => Framing::None,
    }
}
