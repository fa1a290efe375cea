//! Where an HTTP/1 message starts: request and status lines, for detection and for
//! resynchronisation after a gap or a malformed message.

pub(crate) const METHODS: [&[u8]; 54] = [
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PURGE",
    b"LINK",
    b"UNLINK",
    b"M-SEARCH",
    b"CCM_POST",
    b"RPC_CONNECT",
    b"RPC_IN_DATA",
    b"RPC_OUT_DATA",
    b"BPROPFIND",
    b"BPROPPATCH",
    b"BCOPY",
    b"BDELETE",
    b"BMOVE",
    b"POLL",
    b"MKWORKSPACE",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"UNCHECKOUT",
    b"LABEL",
    b"UPDATE",
    b"ACL",
    b"MKCALENDAR",
    b"ORDERPATCH",
    b"MKREDIRECTREF",
    b"UPDATEREDIRECTREF",
    b"SSTP_DUPLEX_POST",
    b"BIND",
    b"REBIND",
    b"UNBIND",
    b"QUERY",
];

/// What the bytes at `d` start with.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Start {
    Request,
    Response,
    Partial,
    No,
}

pub(crate) fn line_start(d: &[u8]) -> Start {
    if d.len() >= 7 && &d[..7] == b"HTTP/1." {
        // Exactly three digits, so that every start found here parses as a head: a resync
        // never retries a head that is bound to fail.
        return if d.len() >= 13
            && d[8] == b' '
            && d[9..12].iter().all(u8::is_ascii_digit)
            && matches!(d[12], b' ' | b'\r' | b'\n')
        {
            Start::Response
        } else if d.len() < 13 {
            Start::Partial
        } else {
            Start::No
        };
    }
    if d.len() < 7 && b"HTTP/1."[..d.len()] == *d {
        return Start::Partial;
    }
    let tok_end = d.iter().take(20).position(|&c| c == b' ');
    let Some(te) = tok_end else {
        let cand = d.len() < 20 && METHODS.iter().any(|m| m.starts_with(d));
        return if cand { Start::Partial } else { Start::No };
    };
    if !METHODS.contains(&&d[..te]) {
        return Start::No;
    }
    // A known method and a space make a request line, as for Wireshark: clients send
    // malformed targets and versions and servers answer them. The line must be text.
    let line_end = d.iter().take(8192).position(|&c| c == b'\n');
    match line_end {
        None if d.len() < 8192 && d.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\r') => {
            Start::Partial
        }
        None => Start::No,
        Some(e) => {
            let line = d[..e].strip_suffix(b"\r").unwrap_or(&d[..e]);
            if line
                .iter()
                .all(|&c| (0x20..0x7f).contains(&c) || c == b'\t')
            {
                Start::Request
            } else {
                Start::No
            }
        }
    }
}

/// Cheap check at a message boundary: a status line or a known method and a space (the
/// rest of the line is checked by the parser).
pub(crate) fn plausible_start(d: &[u8]) -> bool {
    if d.len() < 7 {
        return b"HTTP/1."[..d.len()] == *d
            || METHODS.iter().any(|m| m.starts_with(d) || d.starts_with(m));
    }
    if d.starts_with(b"HTTP/1.") {
        return true;
    }
    match d.iter().take(20).position(|&c| c == b' ') {
        Some(te) => METHODS.contains(&&d[..te]),
        None => d.len() < 20 && METHODS.iter().any(|m| m.starts_with(d)),
    }
}

/// Finds the first position in `d` where a message of the wanted kind starts at a line start.
pub(crate) fn find_start(d: &[u8], want_request: Option<bool>) -> Option<(usize, Start)> {
    let mut i = 0;
    loop {
        let s = line_start(&d[i..]);
        let ok = matches!(
            (s, want_request),
            (Start::Request, None | Some(true)) | (Start::Response, None | Some(false))
        );
        if ok {
            return Some((i, s));
        }
        if s == Start::Partial {
            // Possibly a start cut by the end of the buffer: resume from here later.
            return Some((i, Start::Partial));
        }
        let nl = d[i..].iter().position(|&c| c == b'\n')?;
        i += nl + 1;
        if i >= d.len() {
            return None;
        }
    }
}
