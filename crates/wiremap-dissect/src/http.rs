//! HTTP/1.0 and HTTP/1.1: keep-alive, pipelining, chunked and close-delimited bodies,
//! `Upgrade`/101 and CONNECT hand-off, resynchronisation after gaps and mid-stream joins.

use std::collections::VecDeque;

use wiremap_model::{Detail, Direction, DropReason, HttpInfo, Protocol, Timestamp, Transport};

pub use crate::gql::graphql_operation;
use crate::gql::{gql_from, MAX_GQL_BODY};
use crate::http_framing::{find_head_end, framing, header, parse_hex, Framing};
use crate::http_start::{find_start, line_start, plausible_start, Start, METHODS};
use crate::redact::Redactor;
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

/// Largest message head kept while waiting for its end.
const MAX_HEAD: usize = 64 * 1024;
/// A head buffer grown past this is dropped after use rather than kept for the flow's life.
const KEEP_CAPACITY: usize = 4096;
/// Headers parsed per message.
const MAX_HEADERS: usize = 128;
/// The value stored in place of a secret.
pub use crate::redact::REDACTED;

/// Recognises HTTP/1.x from a request or status line at a line start.
#[derive(Debug)]
pub struct HttpProbe;

impl Probe for HttpProbe {
    fn name(&self) -> &'static str {
        "http"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, data: &[u8]) -> Verdict {
        match line_start(data) {
            Start::Request | Start::Response => return Verdict::Yes,
            Start::Partial => return Verdict::NeedMore,
            Start::No => {}
        }
        // A mid-stream join: a message may start after the tail of a body.
        match find_start(data, None) {
            Some((_, Start::Request | Start::Response)) => Verdict::Yes,
            Some((_, Start::Partial)) => Verdict::NeedMore,
            _ => Verdict::No,
        }
    }
    fn build(&self, cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Http::new(cfg))
    }
}

/// What one pass over a segment's bytes ended with.
enum Run {
    /// Consumed; the rest after a protocol switch, if one happened.
    Done(Option<[Vec<u8>; 2]>),
    /// Read these bytes again from this offset.
    Again(Vec<u8>, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Between messages.
    Start,
    /// Reading a head.
    Head,
    /// A body of known remaining length.
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    Trailers,
    /// A response body that ends with the connection.
    UntilClose,
    /// Lost: looking for the next message start.
    Resync,
    /// Holding bytes after an Upgrade or CONNECT request until the response says yes or no.
    Hold,
}

#[derive(Debug)]
struct Half {
    st: St,
    buf: Vec<u8>,
    /// Timestamp of the first byte of the current message.
    start_ts: Timestamp,
    /// Bytes of the current message so far.
    size: u64,
    body: u64,
}

impl Half {
    fn new() -> Self {
        Half {
            st: St::Start,
            buf: Vec::new(),
            start_ts: Timestamp(0),
            size: 0,
            body: 0,
        }
    }
}

#[derive(Debug)]
struct Req {
    ts: Timestamp,
    info: HttpInfo,
    size: u64,
    complete: bool,
    /// Asked to switch protocols (Upgrade header or CONNECT).
    switching: bool,
}

#[derive(Debug)]
struct Resp {
    ts: Timestamp,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    head_size: u64,
}

/// The HTTP/1.x dissector of one connection.
#[derive(Debug)]
pub struct Http {
    half: [Half; 2],
    client: Option<Direction>,
    pending: VecDeque<Req>,
    resp: Option<Resp>,
    redact: Redactor,
    lean: bool,
    /// The response just parsed switched protocols.
    switch_now: bool,
    /// A switch found while resynchronising, reported with the next call.
    deferred: Option<[Vec<u8>; 2]>,
    /// Time of the latest bytes per direction: a response ends when its last byte arrives.
    last_ts: [Timestamp; 2],
    /// What the last `Upgrade` switched to (`websocket`, `h2c`).
    switched_to: String,
    /// Body of the current request, kept while it may be a GraphQL operation.
    gql_body: Option<Vec<u8>>,
}

impl Http {
    /// A dissector with the configured redactions.
    pub fn new(cfg: &DissectConfig) -> Self {
        Http {
            half: [Half::new(), Half::new()],
            client: None,
            pending: VecDeque::new(),
            resp: None,
            redact: Redactor::new(cfg),
            lean: cfg.lean,
            switch_now: false,
            deferred: None,
            last_ts: [Timestamp(0); 2],
            switched_to: String::new(),
            gql_body: None,
        }
    }

    fn headers(&self, raw: &[httparse::Header<'_>]) -> Vec<(String, String)> {
        if self.lean {
            return Vec::new();
        }
        raw.iter()
            .map(|h| {
                let k = h.name.to_ascii_lowercase();
                let raw = String::from_utf8_lossy(h.value).into_owned();
                let v = self.redact.header_owned(&k, raw);
                (k, v)
            })
            .collect()
    }

    /// Parses a complete head; returns false when it is not HTTP.
    fn on_head(&mut self, cx: &mut Cx<'_>, dir: Direction, head: &[u8]) -> Result<(), ()> {
        let di = dir.index();
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let nl = head.iter().position(|&c| c == b'\n').ok_or(())?;
        let line = head[..nl].strip_suffix(b"\r").unwrap_or(&head[..nl]);
        // Reason phrases may carry obs-text: read the line leniently.
        let line = String::from_utf8_lossy(line);
        let line: &str = &line;
        let raw: &[httparse::Header<'_>] = match httparse::parse_headers(&head[nl + 1..], &mut hdrs)
        {
            Ok(httparse::Status::Complete((_, h))) => h,
            _ => {
                cx.stats.event(DropReason::HttpMalformedHeaders);
                &[]
            }
        };
        let headers = self.headers(raw);
        if line.starts_with("HTTP/") {
            let mut parts = line.splitn(3, ' ');
            let _version = parts.next();
            let status: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or(())?;
            let reason = parts.next().unwrap_or("").to_string();
            if self.client.is_none() {
                self.client = Some(dir.flip());
            }
            let h = &mut self.half[di];
            h.size = head.len() as u64;
            h.body = 0;
            if (100..200).contains(&status) && status != 101 {
                h.st = St::Start;
                return Ok(());
            }
            let Some(req) = self.pending.front() else {
                cx.stats.event(DropReason::HttpUnmatchedResponse);
                // Skip its body as well as we can.
                h.st = match framing(raw, true) {
                    Framing::Length(n) => St::Body(n),
                    Framing::Chunked => St::ChunkSize,
                    Framing::None => St::Start,
                    Framing::UntilClose => St::Resync,
                };
                return Ok(());
            };
            let head_req = req.info.method == "HEAD";
            let connect_ok = req.info.method == "CONNECT" && (200..300).contains(&status);
            let switched = status == 101 || connect_ok;
            self.resp = Some(Resp {
                ts: h.start_ts,
                status,
                reason,
                headers,
                head_size: head.len() as u64,
            });
            h.st = if switched || head_req || status == 204 || status == 304 {
                St::Start
            } else {
                match framing(raw, true) {
                    Framing::Length(n) => St::Body(n),
                    Framing::Chunked => St::ChunkSize,
                    Framing::None => St::Start,
                    Framing::UntilClose => St::UntilClose,
                }
            };
            if h.st == St::Start {
                self.finish_response(cx, switched);
            }
            Ok(())
        } else {
            let (method, rest) = line.split_once(' ').ok_or(())?;
            if !METHODS.contains(&method.as_bytes()) {
                return Err(());
            }
            let rest = rest.trim_start();
            let (url, version) = match rest.rsplit_once(' ') {
                Some((u, v)) if v.starts_with("HTTP/") => (u.trim(), v),
                _ if rest.starts_with("HTTP/") && !rest.contains(' ') => ("", rest),
                _ => (rest, ""),
            };
            if self.client.is_none() {
                self.client = Some(dir);
            }
            let method = method.to_string();
            // A lean entry keeps the target only when it may be GraphQL (which names the edge).
            let keep_target = !self.lean || url.to_ascii_lowercase().contains("graphql");
            let (url, version) = if keep_target {
                (self.redact.target(url).into_owned(), version)
            } else {
                (String::new(), "")
            };
            let host = header(raw, "host")
                .map(|v| {
                    self.redact
                        .authority(&String::from_utf8_lossy(v))
                        .into_owned()
                })
                .unwrap_or_default();
            let upgrade =
                header(raw, "upgrade").map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
            let switching = method == "CONNECT" || upgrade.is_some();
            let path = url.split('?').next().unwrap_or("").to_string();
            let fr = framing(raw, false);
            let h = &mut self.half[di];
            h.size = head.len() as u64;
            h.body = 0;
            let info = HttpInfo {
                method,
                path,
                url,
                http_version: version.to_string(),
                host,
                request_headers: headers,
                request_headers_size: head.len() as u64,
                upgrade: upgrade.unwrap_or_default(),
                ..HttpInfo::default()
            };
            h.st = match fr {
                Framing::Length(n) => St::Body(n),
                Framing::Chunked => St::ChunkSize,
                _ if switching => St::Hold,
                _ => St::Start,
            };
            let complete = h.st == St::Start || h.st == St::Hold;
            // GraphQL rides on HTTP: a `graphql` path or content type.
            let ct = header(raw, "content-type")
                .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
                .unwrap_or_default();
            let gql = info.path.to_ascii_lowercase().contains("graphql") || ct.contains("graphql");
            let mut info = info;
            if gql {
                if complete {
                    info.gql_operation = gql_from(&info.url, &[]).unwrap_or_default();
                } else {
                    self.gql_body = Some(Vec::new());
                }
            }
            self.pending.push_back(Req {
                ts: h.start_ts,
                info,
                size: head.len() as u64,
                complete,
                switching,
            });
            Ok(())
        }
    }

    /// Keeps request body bytes while the request may be a GraphQL operation.
    fn keep_gql(&mut self, dir: Direction, bytes: &[u8]) {
        if self.client != Some(dir) {
            return;
        }
        if let Some(b) = &mut self.gql_body {
            let room = MAX_GQL_BODY.saturating_sub(b.len());
            b.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// The message in `dir` ended.
    fn message_done(&mut self, cx: &mut Cx<'_>, dir: Direction) {
        let di = dir.index();
        let is_client = self.client == Some(dir);
        let (size, body) = (self.half[di].size, self.half[di].body);
        self.half[di].st = St::Start;
        if is_client {
            let gql = self.gql_body.take();
            if let Some(req) = self.pending.iter_mut().rev().find(|r| !r.complete) {
                req.complete = true;
                req.size = size;
                req.info.request_body_size = body;
                if let Some(b) = gql {
                    req.info.gql_operation = gql_from(&req.info.url, &b).unwrap_or_default();
                }
                if req.switching {
                    self.half[di].st = St::Hold;
                }
            }
        } else if self.resp.is_some() {
            self.finish_response(cx, false);
        }
    }

    /// Pairs the response being read with the oldest request and emits the entry.
    fn finish_response(&mut self, cx: &mut Cx<'_>, switched: bool) {
        let Some(resp) = self.resp.take() else {
            return;
        };
        let Some(mut req) = self.pending.pop_front() else {
            return;
        };
        let server = self.client.map(Direction::flip).unwrap_or(Direction::BtoA);
        let sh = &self.half[server.index()];
        req.info.status_text = resp.reason;
        req.info.response_headers = resp.headers;
        req.info.response_headers_size = resp.head_size;
        req.info.response_body_size = sh.body;
        if switched && req.info.upgrade.is_empty() {
            req.info.upgrade = "tunnel".to_string();
        } else if !switched {
            req.info.upgrade.clear();
        }
        if switched {
            self.switched_to = req.info.upgrade.clone();
        }
        let size = if switched { resp.head_size } else { sh.size };
        let held_back = req.switching && !switched;
        self.switch_now = switched;
        // Latency runs from the request to the last byte of its response, as in Wireshark's
        // `http.time`: a long-poll that sends its headers at once still counts its wait.
        let end = self.last_ts[server.index()].max(resp.ts);
        self.emit(cx, req, Some((end, resp.status, size)));
        if held_back {
            // The switch was refused: what the client sent meanwhile is HTTP again.
            if let Some(client) = self.client {
                let ch = &mut self.half[client.index()];
                if ch.st == St::Hold {
                    ch.st = St::Start;
                    let held = std::mem::take(&mut ch.buf);
                    self.feed_owned(cx, client, resp.ts, held);
                }
            }
        }
    }

    fn emit(&self, cx: &mut Cx<'_>, req: Req, resp: Option<(Timestamp, u16, u64)>) {
        let client = self.client.unwrap_or(Direction::AtoB);
        let (rts, status, rsize) = match resp {
            Some((t, s, z)) => (Some(t), i64::from(s), z),
            None => (None, 0, 0),
        };
        let protocol = if req.info.gql_operation.is_empty() {
            Protocol::Http
        } else {
            Protocol::Gql
        };
        cx.emit(
            client,
            protocol,
            req.ts,
            rts,
            req.size,
            rsize,
            status,
            status >= 500,
            Detail::Http(Box::new(req.info)),
        );
    }

    /// Consumes `data` in `dir`; returns the unconsumed rest after a protocol switch.
    fn feed(
        &mut self,
        cx: &mut Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    ) -> Option<[Vec<u8>; 2]> {
        let di = dir.index();
        self.last_ts[di] = self.last_ts[di].max(ts);
        // Bytes held from earlier segments sometimes have to be joined with these and read
        // again (a malformed head split across segments, a start cut by a segment end): a
        // loop, not recursion, and each byte is copied at most once per segment.
        let mut owned: Option<(Vec<u8>, usize)> = None;
        loop {
            let input: &[u8] = match &owned {
                Some((v, from)) => &v[*from..],
                None => data,
            };
            match self.run(cx, dir, ts, input) {
                Run::Done(r) => return r,
                Run::Again(v, from) => owned = Some((v, from)),
            }
        }
    }

    /// One pass of [`Http::feed`] over `data`.
    fn run(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Run {
        let di = dir.index();
        let mut rest = data;
        // Bytes left after the end of the last head that failed to parse in this pass.
        let mut fence: Option<usize> = None;
        while !rest.is_empty() {
            let st = self.half[di].st;
            match st {
                St::Start => {
                    let skip = rest
                        .iter()
                        .take_while(|&&c| c == b'\r' || c == b'\n')
                        .count();
                    rest = &rest[skip..];
                    if rest.is_empty() {
                        break;
                    }
                    let h = &mut self.half[di];
                    h.start_ts = ts;
                    h.st = St::Head;
                    h.buf.clear();
                    // A message that does not start like HTTP means we are lost.
                    if !plausible_start(rest) {
                        cx.stats.event(DropReason::HttpDesync);
                        h.st = St::Resync;
                    }
                }
                St::Head => {
                    let h = &mut self.half[di];
                    // A head that arrives whole is parsed where it lies; only a head split
                    // across segments is copied.
                    let whole = if h.buf.is_empty() {
                        find_head_end(&rest[..rest.len().min(MAX_HEAD)], 0)
                    } else {
                        None
                    };
                    if whole.is_none() && h.buf.is_empty() && rest.len() >= MAX_HEAD {
                        // No end within the limit: too large. Look for the next message past
                        // what was searched, so no byte is searched twice.
                        cx.stats.event(DropReason::HttpHeadTooLarge);
                        h.st = St::Resync;
                        rest = &rest[MAX_HEAD..];
                        continue;
                    }
                    let (end, used) = match whole {
                        Some(end) => (end, end),
                        None => {
                            let old = h.buf.len();
                            h.buf.extend_from_slice(rest);
                            match find_head_end(&h.buf, old.saturating_sub(3)) {
                                Some(end) => (end, end - old),
                                None => {
                                    rest = &[];
                                    if h.buf.len() > MAX_HEAD {
                                        cx.stats.event(DropReason::HttpHeadTooLarge);
                                        h.buf.clear();
                                        h.st = St::Resync;
                                    }
                                    continue;
                                }
                            }
                        }
                    };
                    let held = whole
                        .is_none()
                        .then(|| std::mem::take(&mut self.half[di].buf));
                    let head: &[u8] = match &held {
                        Some(b) => &b[..end],
                        None => &rest[..end],
                    };
                    if self.on_head(cx, dir, head).is_err() {
                        cx.stats.event(DropReason::HttpMalformed);
                        // Look for the next message from the byte after this one's start,
                        // where it lies.
                        self.half[di].st = St::Resync;
                        match held {
                            // The held bytes already include all of `rest`.
                            Some(b) => return Run::Again(b, 1),
                            // A start inside a head that already failed: go past that head
                            // rather than parse its tail again and again.
                            None => match fence {
                                Some(f) if rest.len() > f => rest = &rest[rest.len() - f..],
                                _ => {
                                    fence = Some(rest.len() - end);
                                    rest = &rest[1..];
                                }
                            },
                        }
                        continue;
                    }
                    rest = &rest[used..];
                    if let Some(mut b) = held {
                        b.clear();
                        // Keep a small buffer for the next split head, not a large one.
                        if b.capacity() <= KEEP_CAPACITY {
                            self.half[di].buf = b;
                        }
                    }
                    if std::mem::take(&mut self.switch_now) {
                        let client = dir.flip();
                        let mut left: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                        left[client.index()] = std::mem::take(&mut self.half[client.index()].buf);
                        left[di] = rest.to_vec();
                        return Run::Done(Some(left));
                    }
                }
                St::Body(n) => {
                    let k = (rest.len() as u64).min(n);
                    self.keep_gql(dir, &rest[..k as usize]);
                    rest = &rest[k as usize..];
                    let h = &mut self.half[di];
                    h.size += k;
                    h.body += k;
                    if k == n {
                        self.message_done(cx, dir);
                    } else {
                        h.st = St::Body(n - k);
                    }
                }
                St::ChunkData(n) => {
                    let k = (rest.len() as u64).min(n);
                    self.keep_gql(dir, &rest[..k as usize]);
                    rest = &rest[k as usize..];
                    let h = &mut self.half[di];
                    h.size += k;
                    h.body += k;
                    h.st = if k == n {
                        St::ChunkSize
                    } else {
                        St::ChunkData(n - k)
                    };
                }
                St::ChunkSize | St::Trailers => {
                    let h = &mut self.half[di];
                    let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
                        h.buf.extend_from_slice(rest);
                        h.size += rest.len() as u64;
                        rest = &[];
                        if h.buf.len() > 4096 {
                            cx.stats.event(DropReason::HttpChunkDesync);
                            h.buf.clear();
                            h.st = St::Resync;
                        }
                        continue;
                    };
                    h.buf.extend_from_slice(&rest[..nl]);
                    h.size += nl as u64 + 1;
                    rest = &rest[nl + 1..];
                    let line = std::mem::take(&mut h.buf);
                    let trimmed: &[u8] = line.strip_suffix(b"\r").unwrap_or(&line);
                    if st == St::Trailers {
                        if trimmed.is_empty() {
                            self.message_done(cx, dir);
                        }
                    } else if trimmed.is_empty() {
                        // The CRLF that ends a chunk's data.
                    } else {
                        match parse_hex(trimmed) {
                            Some(0) => h.st = St::Trailers,
                            Some(n) => h.st = St::ChunkData(n),
                            None => {
                                cx.stats.event(DropReason::HttpChunkDesync);
                                h.st = St::Resync;
                            }
                        }
                    }
                    let mut line = line;
                    line.clear();
                    self.half[di].buf = line;
                }
                St::UntilClose => {
                    let h = &mut self.half[di];
                    h.size += rest.len() as u64;
                    h.body += rest.len() as u64;
                    rest = &[];
                }
                St::Hold => {
                    let h = &mut self.half[di];
                    if h.buf.len() + rest.len() > MAX_HEAD {
                        // No answer to the switch request: parse what was held as HTTP.
                        h.st = St::Start;
                        let held = std::mem::take(&mut h.buf);
                        if let Some(req) = self.pending.iter_mut().find(|r| r.switching) {
                            req.switching = false;
                        }
                        let _ = self.feed(cx, dir, ts, &held);
                        continue;
                    }
                    h.buf.extend_from_slice(rest);
                    rest = &[];
                }
                St::Resync => {
                    if let Some(joined) = self.resync(cx, dir, &mut rest) {
                        return Run::Again(joined, 0);
                    }
                }
            }
        }
        Run::Done(None)
    }

    /// Looks for the next message start in `rest`, where it lies, and moves `rest` to it.
    /// Bytes held from an earlier segment are first joined with `rest` and handed back, to
    /// be read again from the start.
    fn resync(&mut self, cx: &mut Cx<'_>, dir: Direction, rest: &mut &[u8]) -> Option<Vec<u8>> {
        let di = dir.index();
        let want = self.client.map(|c| c == dir);
        let h = &mut self.half[di];
        if !h.buf.is_empty() {
            let mut joined = std::mem::take(&mut h.buf);
            joined.extend_from_slice(rest);
            *rest = &[];
            return Some(joined);
        }
        match find_start(rest, want) {
            Some((at, Start::Request | Start::Response)) => {
                cx.stats.event(DropReason::HttpResync);
                h.st = St::Start;
                *rest = &rest[at..];
            }
            Some((at, _)) => {
                // A start cut by the end of the segment (a partial line is under 8 KiB).
                if rest.len() - at <= MAX_HEAD {
                    h.buf.extend_from_slice(&rest[at..]);
                }
                *rest = &[];
            }
            None => {
                // Keep a short tail in case a start straddles the boundary.
                let keep = rest.len().min(16);
                h.buf.extend_from_slice(&rest[rest.len() - keep..]);
                *rest = &[];
            }
        }
        None
    }

    fn feed_owned(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: Vec<u8>) {
        if let Some(left) = self.feed(cx, dir, ts, &data) {
            self.deferred = Some(left);
        }
    }

    fn close_all(&mut self, cx: &mut Cx<'_>) {
        // A head still unfinished when the flow ends (at most MAX_HEAD held) is a loss too.
        for h in &self.half {
            if h.st == St::Head && !h.buf.is_empty() {
                cx.stats.event(DropReason::HttpHeadUnfinished);
            }
        }
        if let Some(server) = self.client.map(Direction::flip) {
            if self.half[server.index()].st == St::UntilClose && self.resp.is_some() {
                self.finish_response(cx, false);
            }
        }
        if self.resp.is_some() {
            self.finish_response(cx, false);
        }
        while let Some(req) = self.pending.pop_front() {
            self.emit(cx, req, None);
        }
    }
}

impl Dissector for Http {
    fn held(&self) -> usize {
        let deferred = self
            .deferred
            .as_ref()
            .map_or(0, |d| d[0].capacity() + d[1].capacity());
        self.half[0].buf.capacity()
            + self.half[1].buf.capacity()
            + deferred
            + self.gql_body.as_ref().map_or(0, Vec::capacity)
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        if let Some(left) = self.feed(cx, dir, ts, data) {
            return Next::Handoff(left);
        }
        if let Some(left) = self.deferred.take() {
            return Next::Handoff(left);
        }
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        let h = &mut self.half[dir.index()];
        h.st = match h.st {
            St::Body(n) if len < n => St::Body(n - len),
            St::Body(n) if len == n => {
                self.message_done(cx, dir);
                return;
            }
            St::ChunkData(n) if len < n => St::ChunkData(n - len),
            St::UntilClose => St::UntilClose,
            St::Start => St::Resync,
            _ => {
                cx.stats.event(DropReason::HttpGapDesync);
                h.buf.clear();
                St::Resync
            }
        };
        if h.st == St::Resync {
            h.buf.clear();
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        self.close_all(cx);
    }

    fn successor(&self) -> Option<&'static str> {
        match self.switched_to.as_str() {
            "websocket" => Some("ws"),
            "h2c" => Some("http2"),
            _ => None,
        }
    }
}
