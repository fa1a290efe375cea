//! TLS handshakes as seen in the clear: ClientHello (SNI, ALPN, offered versions) and
//! ServerHello (chosen version and ALPN). One entry per ClientHello, closed with the
//! connection's byte counts; the encrypted rest is only counted.

use wiremap_model::{Detail, Direction, DropReason, Protocol, Timestamp, TlsInfo, Transport};

use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

/// Largest handshake message reassembled.
const MAX_HANDSHAKE: usize = 64 * 1024;

/// A parsed ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// Server name indication.
    pub sni: String,
    /// Offered ALPN protocols.
    pub alpn: Vec<String>,
    /// Highest offered version.
    pub version: u16,
}

/// A parsed ServerHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// Chosen version.
    pub version: u16,
    /// Chosen ALPN protocol.
    pub alpn: String,
}

/// Human name of a protocol version.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        0 => String::new(),
        v => format!("0x{v:04x}"),
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

struct Reader<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.d.get(self.p..self.p + n)?;
        self.p += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

fn alpn_list(d: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader { d, p: 0 };
    let list = r.vec16()?;
    let mut l = Reader { d: list, p: 0 };
    let mut out = Vec::new();
    while l.p < list.len() {
        out.push(String::from_utf8_lossy(l.vec8()?).into_owned());
    }
    Some(out)
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader { d: body, p: 0 };
    let legacy = r.u16()?;
    r.take(32)?;
    r.vec8()?;
    r.vec16()?;
    r.vec8()?;
    let mut ch = ClientHello {
        version: legacy,
        ..ClientHello::default()
    };
    if r.p == body.len() {
        return Some(ch);
    }
    let exts = r.vec16()?;
    let mut e = Reader { d: exts, p: 0 };
    while e.p < exts.len() {
        let ty = e.u16()?;
        let data = e.vec16()?;
        match ty {
            0 => {
                let mut s = Reader { d: data, p: 0 };
                let list = s.vec16()?;
                let mut l = Reader { d: list, p: 0 };
                while l.p < list.len() {
                    let kind = l.u8()?;
                    let name = l.vec16()?;
                    if kind == 0 {
                        ch.sni = String::from_utf8_lossy(name).to_ascii_lowercase();
                    }
                }
            }
            16 => ch.alpn = alpn_list(data)?,
            43 => {
                let mut s = Reader { d: data, p: 0 };
                let list = s.vec8()?;
                let best = list
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .filter(|v| !is_grease(*v))
                    .max();
                if let Some(b) = best {
                    ch.version = ch.version.max(b);
                }
            }
            _ => {}
        }
    }
    Some(ch)
}

/// Parses a ServerHello body.
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader { d: body, p: 0 };
    let mut sh = ServerHello {
        version: r.u16()?,
        alpn: String::new(),
    };
    r.take(32)?;
    r.vec8()?;
    r.u16()?;
    r.u8()?;
    if r.p == body.len() {
        return Some(sh);
    }
    let exts = r.vec16()?;
    let mut e = Reader { d: exts, p: 0 };
    while e.p < exts.len() {
        let ty = e.u16()?;
        let data = e.vec16()?;
        match ty {
            16 => sh.alpn = alpn_list(data)?.into_iter().next().unwrap_or_default(),
            43 if data.len() == 2 => sh.version = u16::from_be_bytes([data[0], data[1]]),
            _ => {}
        }
    }
    Some(sh)
}

fn record_header_ok(d: &[u8]) -> bool {
    (20..=23).contains(&d[0]) && d[1] == 3 && d[2] <= 4
}

/// TLS: a record header with a plausible type and version, a handshake that starts with a
/// hello, or application data on a connection joined mid-stream.
#[derive(Debug)]
pub struct TlsProbe;

impl Probe for TlsProbe {
    fn name(&self) -> &'static str {
        "tls"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.len() < 3 {
            let ok = match d {
                [] => true,
                [t] => (20..=23).contains(t),
                [t, v] => (20..=23).contains(t) && *v == 3,
                _ => false,
            };
            return if ok { Verdict::NeedMore } else { Verdict::No };
        }
        if !record_header_ok(d) {
            return Verdict::No;
        }
        if d.len() < 6 {
            return Verdict::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([d[3], d[4]]));
        if len == 0 || len > (1 << 14) + 2048 {
            return Verdict::No;
        }
        match d[0] {
            22 if matches!(d[5], 1 | 2) => Verdict::Yes,
            22 => Verdict::No,
            // A mid-stream join: two consecutive well-formed records make it TLS.
            _ => match d.get(5 + len..5 + len + 3) {
                Some(next) if record_header_ok(next) => Verdict::Yes,
                Some(_) => Verdict::No,
                None if d.len() < 5 + len + 3 && d.len() < 4096 => Verdict::NeedMore,
                None => Verdict::No,
            },
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Tls::default())
    }
}

#[derive(Debug, Default)]
struct Side {
    /// Bytes of the record being read.
    rec: Vec<u8>,
    /// Handshake bytes reassembled across records.
    hs: Vec<u8>,
    hs_ts: Option<Timestamp>,
    rec_ts: Timestamp,
    /// Stopped reading records (encrypted from here, or lost).
    done: bool,
}

#[derive(Debug)]
struct Hello {
    ts: Timestamp,
    client: Direction,
    ch: ClientHello,
}

/// The TLS dissector of one connection.
#[derive(Debug, Default)]
pub struct Tls {
    side: [Side; 2],
    hellos: Vec<Hello>,
    server: Option<(Timestamp, ServerHello)>,
    bytes: [u64; 2],
}

impl Tls {
    fn handshake(&mut self, cx: &mut Cx<'_>, dir: Direction) {
        let di = dir.index();
        loop {
            let hs = &self.side[di].hs;
            if hs.len() < 4 {
                return;
            }
            let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
            if len > MAX_HANDSHAKE {
                cx.stats.event(DropReason::TlsHandshakeTooLarge);
                self.side[di].done = true;
                return;
            }
            if hs.len() < 4 + len {
                return;
            }
            let ts = self.side[di].hs_ts.unwrap_or(self.side[di].rec_ts);
            let body = &hs[4..4 + len];
            match hs[0] {
                1 => match parse_client_hello(body) {
                    Some(ch) => self.hellos.push(Hello {
                        ts,
                        client: dir,
                        ch,
                    }),
                    None => cx.stats.event(DropReason::TlsMalformedClientHello),
                },
                2 => match parse_server_hello(body) {
                    Some(sh) => {
                        if self.server.is_none() {
                            self.server = Some((ts, sh));
                        }
                    }
                    None => cx.stats.event(DropReason::TlsMalformedServerHello),
                },
                _ => {}
            }
            let side = &mut self.side[di];
            side.hs.drain(..4 + len);
            side.hs_ts = if side.hs.is_empty() {
                None
            } else {
                Some(side.rec_ts)
            };
        }
    }
}

impl Dissector for Tls {
    fn held(&self) -> usize {
        self.side
            .iter()
            .map(|s| s.rec.capacity() + s.hs.capacity())
            .sum()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let di = dir.index();
        self.bytes[di] += data.len() as u64;
        if self.side[di].done {
            return Next::Continue;
        }
        let mut rest = data;
        while !rest.is_empty() && !self.side[di].done {
            let side = &mut self.side[di];
            if side.rec.is_empty() {
                side.rec_ts = ts;
            }
            let need_hdr = 5usize.saturating_sub(side.rec.len());
            if need_hdr > 0 {
                let k = need_hdr.min(rest.len());
                side.rec.extend_from_slice(&rest[..k]);
                rest = &rest[k..];
                if side.rec.len() < 5 {
                    break;
                }
                if !record_header_ok(&side.rec) {
                    cx.stats.event(DropReason::TlsDesync);
                    side.done = true;
                    break;
                }
            }
            let len = usize::from(u16::from_be_bytes([side.rec[3], side.rec[4]]));
            let have = side.rec.len() - 5;
            let k = (len - have.min(len)).min(rest.len());
            side.rec.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            if side.rec.len() < 5 + len {
                break;
            }
            let ctype = side.rec[0];
            if ctype == 22 {
                if side.hs.is_empty() {
                    side.hs_ts = Some(side.rec_ts);
                }
                let frag = side.rec[5..].to_vec();
                side.hs.extend_from_slice(&frag);
                side.rec.clear();
                self.handshake(cx, dir);
            } else {
                // ChangeCipherSpec, alert or application data: the clear part is over.
                side.rec.clear();
                side.done = true;
            }
        }
        Next::Continue
    }

    fn gap(&mut self, _cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.bytes[dir.index()] += len;
        self.side[dir.index()].done = true;
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        let hellos = std::mem::take(&mut self.hellos);
        let (sts, sh) = match &self.server {
            Some((t, sh)) => (Some(*t), sh.clone()),
            None => (None, ServerHello::default()),
        };
        if hellos.is_empty() {
            // Joined after the handshake: one entry for the encrypted connection.
            let c = crate::conn::client_side(cx);
            let detail = TlsInfo {
                server_version: version_name(sh.version),
                server_alpn: sh.alpn,
                ..TlsInfo::default()
            };
            let (req, resp) = (self.bytes[c.index()], self.bytes[c.flip().index()]);
            cx.emit(
                c,
                Protocol::Tls,
                cx.info.first_ts,
                sts,
                req,
                resp,
                0,
                false,
                Detail::Tls(Box::new(detail)),
            );
            return;
        }
        let n = hellos.len();
        for (i, h) in hellos.into_iter().enumerate() {
            // Connection bytes go to the first hello; a retried hello carries none.
            let (req, resp) = if i == 0 {
                (
                    self.bytes[h.client.index()],
                    self.bytes[h.client.flip().index()],
                )
            } else {
                (0, 0)
            };
            let detail = TlsInfo {
                sni: h.ch.sni,
                alpn: h.ch.alpn,
                client_version: version_name(h.ch.version),
                server_version: version_name(sh.version),
                server_alpn: sh.alpn.clone(),
            };
            let rts = sts.filter(|t| *t >= h.ts && i + 1 == n.min(i + 1));
            cx.emit(
                h.client,
                Protocol::Tls,
                h.ts,
                rts,
                req,
                resp,
                0,
                false,
                Detail::Tls(Box::new(detail)),
            );
        }
    }
}
