//! HTTP/2 (h2c with prior knowledge, after `Upgrade: h2c`, or joined mid-stream) and gRPC on
//! top: one entry per stream, with method, path, authority, status, `grpc-status` and
//! `grpc-message` from the trailers, and message counts for streaming calls.

use std::collections::BTreeMap;

use wiremap_model::{Detail, Direction, DropReason, HttpInfo, Protocol, Timestamp, Transport};

use crate::hpack::Hpack;
use crate::redact::Redactor;
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const MAX_FRAME: usize = 1 << 24;
/// Largest header block gathered from HEADERS and CONTINUATION frames.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// DATA frames longer than this are not buffered whole: their start is read, the rest
/// skipped by length.
const MAX_HELD_DATA: usize = 64 * 1024;
/// Most streams tracked at once per connection.
const MAX_STREAMS: usize = 4096;
/// Header bytes kept for one stream over all its HEADERS frames (name, value and 32 each,
/// as HPACK counts them); more are dropped and counted.
const MAX_STREAM_HEADERS: usize = 256 * 1024;
/// Header bytes kept for all the open streams of a connection together.
const MAX_FLOW_HEADERS: usize = 1024 * 1024;

fn frame_header(d: &[u8]) -> Option<(usize, u8, u8, u32)> {
    let h = d.get(..9)?;
    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
    let sid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    Some((len, h[3], h[4], sid))
}

/// Whether `d` is a run of well-formed frames (for mid-stream detection).
fn plausible_frames(d: &[u8]) -> Verdict {
    let mut p = 0;
    let mut seen = 0;
    let mut headers = false;
    while p < d.len() {
        let Some((len, ty, _, sid)) = frame_header(&d[p..]) else {
            return if seen > 0 && headers {
                Verdict::Yes
            } else {
                Verdict::NeedMore
            };
        };
        let sid_ok = match ty {
            0 | 1 | 2 | 3 | 5 | 9 => sid != 0,
            4 | 6 | 7 => sid == 0,
            8 => true,
            _ => false,
        };
        if ty > 9 || len > 1 << 14 || !sid_ok || (ty == 4 && len % 6 != 0) || (ty == 6 && len != 8)
        {
            return Verdict::No;
        }
        headers |= matches!(ty, 1 | 4);
        seen += 1;
        p += 9 + len;
    }
    if headers {
        Verdict::Yes
    } else {
        Verdict::NeedMore
    }
}

/// HTTP/2: the client connection preface, or a run of well-formed frames with a HEADERS or
/// SETTINGS frame among them.
#[derive(Debug)]
pub struct Http2Probe;

impl Probe for Http2Probe {
    fn name(&self) -> &'static str {
        "http2"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.starts_with(PREFACE) {
            return Verdict::Yes;
        }
        if PREFACE.starts_with(d) {
            return Verdict::NeedMore;
        }
        // A single partial frame could be anything: ask for a complete one.
        match plausible_frames(d) {
            Verdict::NeedMore if d.len() > 4096 => Verdict::No,
            v => v,
        }
    }
    fn build(&self, cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Http2::new(cfg))
    }
}

#[derive(Debug, Default)]
struct Stream {
    client: Option<Direction>,
    ts: Option<Timestamp>,
    end_ts: Option<Timestamp>,
    method: String,
    path: String,
    authority: String,
    content_type: String,
    status: i64,
    grpc_status: Option<i64>,
    grpc_message: String,
    has_request: bool,
    has_response: bool,
    closed: [bool; 2],
    bytes: [u64; 2],
    messages: [u64; 2],
    reset: Option<u32>,
    /// Header bytes kept for this stream (see [`MAX_STREAM_HEADERS`]).
    header_bytes: usize,
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
}

/// A header block split over CONTINUATION frames.
#[derive(Debug)]
struct Continued {
    sid: u32,
    block: Vec<u8>,
    /// Flags of the HEADERS frame (END_STREAM).
    flags: u8,
    /// Over [`MAX_HEADER_BLOCK`]: the rest is skipped, not kept.
    dropped: bool,
}

/// Counts what the caps of a header block dropped and whether it was malformed.
fn count_decoded(cx: &mut Cx<'_>, d: &crate::hpack::Decoded) {
    if d.error {
        cx.stats.event(DropReason::Http2HpackError);
    }
    if d.truncated {
        cx.stats.event(DropReason::Http2HeaderListTruncated);
    }
}

/// The HTTP/2 dissector of one connection.
#[derive(Debug, Default)]
pub struct Http2 {
    buf: [Vec<u8>; 2],
    preface: [bool; 2],
    hpack: [Option<Hpack>; 2],
    /// Header block being continued, per direction.
    cont: [Option<Continued>; 2],
    streams: BTreeMap<u32, Stream>,
    /// Header bytes kept for all open streams (see [`MAX_FLOW_HEADERS`]).
    header_bytes: usize,
    client: Option<Direction>,
    lost: [bool; 2],
    started_clean: bool,
    redact: Redactor,
    /// Bytes of a large DATA frame still to pass, per direction.
    skip: [usize; 2],
}

fn strip_padding(payload: &[u8], flags: u8, priority: bool) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & 0x08 != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if priority && flags & 0x20 != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

impl Http2 {
    /// A dissector with the configured redactions.
    pub fn new(cfg: &DissectConfig) -> Self {
        Http2 {
            redact: Redactor::new(cfg),
            ..Http2::default()
        }
    }

    fn emit(&mut self, cx: &mut Cx<'_>, sid: u32) {
        let Some(s) = self.streams.remove(&sid) else {
            return;
        };
        self.header_bytes = self.header_bytes.saturating_sub(s.header_bytes);
        if !s.has_request {
            return;
        }
        let client = s.client.or(self.client).unwrap_or(Direction::AtoB);
        let grpc = s.content_type.starts_with("application/grpc")
            || (s.content_type.is_empty() && s.grpc_status.is_some());
        let (protocol, status) = if grpc {
            (Protocol::Grpc, s.grpc_status.unwrap_or(0))
        } else {
            (Protocol::Http, s.status)
        };
        let error = if grpc {
            s.grpc_status.is_some_and(|g| g != 0)
        } else {
            s.status >= 500
        } || s.reset.is_some_and(|c| c != 0 && c != 8);
        let path = s.path.split('?').next().unwrap_or("").to_string();
        let mut req_h = s.request_headers;
        if grpc {
            req_h.push((
                "grpc-messages".into(),
                s.messages[client.index()].to_string(),
            ));
        }
        let mut resp_h = s.response_headers;
        if grpc {
            resp_h.push((
                "grpc-messages".into(),
                s.messages[client.flip().index()].to_string(),
            ));
            if !s.grpc_message.is_empty() {
                resp_h.push(("grpc-message".into(), s.grpc_message.clone()));
            }
        }
        let info = HttpInfo {
            method: s.method,
            url: s.path.clone(),
            path,
            http_version: "HTTP/2".into(),
            host: s.authority,
            status_text: s.grpc_message,
            request_headers: req_h,
            response_headers: resp_h,
            request_body_size: s.bytes[client.index()],
            response_body_size: s.bytes[client.flip().index()],
            ..HttpInfo::default()
        };
        let ts = s.ts.unwrap_or(cx.info.first_ts);
        let rts = if s.has_response {
            Some(s.end_ts.unwrap_or(ts))
        } else {
            None
        };
        cx.emit(
            client,
            protocol,
            ts,
            rts,
            s.bytes[client.index()],
            s.bytes[client.flip().index()],
            status,
            error,
            Detail::Http(Box::new(info)),
        );
    }

    fn headers(
        &mut self,
        cx: &mut Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        sid: u32,
        block: &[u8],
        end_stream: bool,
    ) {
        let di = dir.index();
        let complete = self.started_clean;
        let decoded = self.hpack[di]
            .get_or_insert_with(|| Hpack::new(complete))
            .decode_bounded(block);
        count_decoded(cx, &decoded);
        let fields = decoded.fields;
        if self.streams.len() >= MAX_STREAMS && !self.streams.contains_key(&sid) {
            cx.stats.event(DropReason::Http2StreamsEvicted);
            if let Some(&old) = self.streams.keys().next() {
                self.emit(cx, old);
            }
        }
        let s = self.streams.entry(sid).or_default();
        let is_request = fields
            .iter()
            .any(|(n, _)| matches!(n.as_deref(), Some(":method" | ":path" | ":scheme")));
        let is_response = fields.iter().any(|(n, _)| n.as_deref() == Some(":status"));
        // The first HEADERS of a stream comes from its client.
        let from_client = match s.client {
            Some(c) => c == dir,
            None if is_response => false,
            None => {
                s.client = Some(dir);
                true
            }
        };
        if s.client.is_none() {
            s.client = Some(dir.flip());
        }
        if self.client.is_none() && (is_request || is_response) {
            self.client = Some(if is_request { dir } else { dir.flip() });
        }
        let mut dropped = false;
        for (n, v) in fields {
            let (Some(n), v) = (n, v) else { continue };
            // HTTP/2 requires lowercase names; a peer that sends others must not slip a
            // secret past redaction, whose lists are lowercase.
            let n = if n.bytes().any(|c| c.is_ascii_uppercase()) {
                n.to_ascii_lowercase()
            } else {
                n
            };
            let v = v.unwrap_or_default();
            let size = 32 + n.len() + v.len();
            if s.header_bytes + size > MAX_STREAM_HEADERS
                || self.header_bytes + size > MAX_FLOW_HEADERS
            {
                dropped = true;
                continue;
            }
            s.header_bytes += size;
            self.header_bytes += size;
            // Secrets go before anything is kept (gRPC metadata names are lowercase already).
            let v = match n.as_str() {
                ":path" => self.redact.target(&v).into_owned(),
                ":authority" => self.redact.authority(&v).into_owned(),
                _ => self.redact.header_owned(&n, v),
            };
            match n.as_str() {
                ":method" => s.method = v.clone(),
                ":path" => s.path = v.clone(),
                ":authority" => s.authority = v.clone(),
                ":status" => s.status = v.parse().unwrap_or(0),
                "content-type" => s.content_type = v.clone(),
                "grpc-status" => s.grpc_status = v.parse().ok(),
                "grpc-message" => s.grpc_message = v.clone(),
                _ => {}
            }
            if from_client {
                s.request_headers.push((n, v));
            } else {
                s.response_headers.push((n, v));
            }
        }
        if dropped {
            cx.stats.event(DropReason::Http2HeaderListTruncated);
        }
        if from_client {
            if !s.has_request {
                s.has_request = true;
                s.ts = Some(ts);
            }
        } else {
            s.has_response = true;
            s.end_ts = Some(ts);
        }
        if end_stream {
            s.closed[di] = true;
            if !from_client {
                s.end_ts = Some(ts);
            }
        }
        if s.closed[0] && s.closed[1] {
            self.emit(cx, sid);
        }
    }

    fn frame(
        &mut self,
        cx: &mut Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        (ty, flags, sid): (u8, u8, u32),
        payload: &[u8],
        len: usize,
    ) {
        let di = dir.index();
        if let Some(mut c) = self.cont[di].take() {
            if ty == 9 && sid == c.sid {
                if !c.dropped && c.block.len() + payload.len() > MAX_HEADER_BLOCK {
                    // Too big to hold: drop it. Its dynamic table updates are lost with it,
                    // so this direction decodes on as if joined mid-stream.
                    cx.stats.event(DropReason::Http2HeaderBlockTooLarge);
                    c.dropped = true;
                    c.block = Vec::new();
                    self.hpack[di] = Some(Hpack::new(false));
                }
                if !c.dropped {
                    c.block.extend_from_slice(payload);
                }
                if flags & 0x04 == 0 {
                    self.cont[di] = Some(c);
                } else if !c.dropped {
                    self.headers(cx, dir, ts, sid, &c.block, c.flags & 0x01 != 0);
                }
                return;
            }
            cx.stats.event(DropReason::Http2ContinuationLost);
        }
        match ty {
            0 => {
                let Some(s) = self.streams.get_mut(&sid) else {
                    return;
                };
                // `payload` may be only the start of a large frame (the rest is skipped):
                // sizes come from `len`, message counts from what is here.
                let (data, size) = if payload.len() == len {
                    let d = strip_padding(payload, flags, false).unwrap_or(&[]);
                    (d, d.len())
                } else if flags & 0x08 != 0 {
                    let pad = usize::from(payload.first().copied().unwrap_or(0));
                    (payload.get(1..).unwrap_or(&[]), len.saturating_sub(1 + pad))
                } else {
                    (payload, len)
                };
                s.bytes[di] += size as u64;
                // gRPC messages: a 5-byte prefix (compressed flag, length) each.
                let mut p = 0;
                while data.len() >= p + 5 && data[p] <= 1 {
                    let n = u32::from_be_bytes([data[p + 1], data[p + 2], data[p + 3], data[p + 4]])
                        as usize;
                    s.messages[di] += 1;
                    p += 5 + n;
                }
                let from_client = s.client == Some(dir);
                if !from_client {
                    s.end_ts = Some(ts);
                }
                if flags & 0x01 != 0 {
                    s.closed[di] = true;
                    if s.closed[0] && s.closed[1] {
                        self.emit(cx, sid);
                    }
                }
            }
            1 => {
                let Some(block) = strip_padding(payload, flags, true) else {
                    cx.stats.event(DropReason::Http2MalformedHeaders);
                    return;
                };
                if flags & 0x04 == 0 {
                    self.cont[di] = Some(Continued {
                        sid,
                        block: block.to_vec(),
                        flags,
                        dropped: false,
                    });
                } else {
                    self.headers(cx, dir, ts, sid, block, flags & 0x01 != 0);
                }
            }
            3 => {
                let code = payload
                    .get(..4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(0);
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.reset = Some(code);
                    s.end_ts = Some(ts);
                    s.has_response |= s.client != Some(dir);
                    self.emit(cx, sid);
                }
            }
            5 => {
                // PUSH_PROMISE: the promised stream's request headers come from the server.
                if let Some(block) = strip_padding(payload, flags, false).and_then(|b| b.get(4..)) {
                    let complete = self.started_clean;
                    let decoded = self.hpack[di]
                        .get_or_insert_with(|| Hpack::new(complete))
                        .decode_bounded(block);
                    count_decoded(cx, &decoded);
                }
            }
            _ => {}
        }
    }
}

impl Dissector for Http2 {
    fn held(&self) -> usize {
        let cont: usize = self.cont.iter().flatten().map(|c| c.block.capacity()).sum();
        let tables: usize = self.hpack.iter().flatten().map(Hpack::table_size).sum();
        self.buf[0].capacity() + self.buf[1].capacity() + cont + tables + self.header_bytes
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let di = dir.index();
        if self.lost[di] {
            return Next::Continue;
        }
        // The rest of a large DATA frame already handled: count it past, do not keep it.
        let skip = self.skip[di].min(data.len());
        self.skip[di] -= skip;
        let data = &data[skip..];
        if data.is_empty() {
            return Next::Continue;
        }
        self.buf[di].extend_from_slice(data);
        if !self.preface[di] {
            let b = &self.buf[di];
            if b.len() < PREFACE.len() && PREFACE.starts_with(b) {
                return Next::Continue;
            }
            if b.starts_with(PREFACE) {
                self.client = Some(dir);
                if self.hpack.iter().all(Option::is_none) && self.streams.is_empty() {
                    self.started_clean = true;
                }
                self.buf[di].drain(..PREFACE.len());
            }
            self.preface[di] = true;
        }
        let mut at = 0;
        let buf = std::mem::take(&mut self.buf[di]);
        while let Some((len, ty, flags, sid)) = frame_header(&buf[at..]) {
            if len > MAX_FRAME {
                cx.stats.event(DropReason::Http2Desync);
                self.lost[di] = true;
                return Next::Continue;
            }
            let Some(payload) = buf.get(at + 9..at + 9 + len) else {
                if ty == 0 && len > MAX_HELD_DATA {
                    // A large DATA frame: handle what is here and skip the rest by length.
                    let have = &buf[(at + 9).min(buf.len())..];
                    self.frame(cx, dir, ts, (ty, flags, sid), have, len);
                    self.skip[di] = len - have.len();
                    at = buf.len();
                    cx.stats.event(DropReason::Http2DataSkipped);
                }
                break;
            };
            self.frame(cx, dir, ts, (ty, flags, sid), payload, len);
            at += 9 + len;
        }
        let mut buf = buf;
        buf.drain(..at);
        self.buf[di] = buf;
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, _len: u64) {
        cx.stats.event(DropReason::Http2GapDesync);
        self.lost[dir.index()] = true;
        self.buf[dir.index()].clear();
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for sid in ids {
            self.emit(cx, sid);
        }
    }
}
