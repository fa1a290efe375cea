//! Splitting a direction's bytes into length-delimited messages, for the binary protocols.

use wiremap_model::{Direction, DropReason, Timestamp};

use crate::Cx;

/// What a framing function says about the bytes at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Not enough bytes to know the message's length.
    Need,
    /// The next message is this many bytes long.
    Len(usize),
    /// Not this protocol: the stream is lost from here.
    Bad,
}

/// Largest message a framer buffers. A longer one (within its protocol's own maximum, which
/// the framing function enforces) is handed over as its first [`HEAD_KEEP`] bytes and the rest
/// is skipped by counting, so the flow survives it.
const MAX_MESSAGE: usize = 8 << 20;
/// Bytes of a skipped message kept for its entry (command, query text, headers).
pub(crate) const HEAD_KEEP: usize = 16 * 1024;

/// Per-direction buffers of a message-oriented protocol.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: [Vec<u8>; 2],
    /// Arrival of the first byte of the buffered message.
    ts: [Timestamp; 2],
    lost: [bool; 2],
    /// Bytes of an over-long message still to pass unread.
    skip: [u64; 2],
}

impl Framer {
    /// Bytes its buffers hold.
    pub(crate) fn held(&self) -> usize {
        self.buf[0].capacity() + self.buf[1].capacity()
    }
}

/// Counter names of one protocol's framer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events {
    /// Not this protocol any more: the direction is lost.
    pub desync: DropReason,
    /// A message over the buffering cap was read by its head and skipped by length.
    pub skipped: DropReason,
}

impl Framer {
    /// Appends `data` and hands every complete message to `on` with the time its first byte
    /// arrived and its full length; a message over [`MAX_MESSAGE`] comes as its first
    /// [`HEAD_KEEP`] bytes only (the length says how long it really was).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn feed(
        &mut self,
        cx: &mut Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        events: Events,
        frame: impl Fn(&[u8]) -> Frame,
        mut on: impl FnMut(&mut Cx<'_>, Timestamp, &[u8], u64),
    ) {
        let d = dir.index();
        if self.lost[d] {
            return;
        }
        let mut rest = self.pass(d, data);
        // First finish the message a previous chunk left incomplete, taking from `data` only
        // the bytes it needs; the rest of `data` is then framed in place.
        while !self.buf[d].is_empty() && !rest.is_empty() {
            let take = match frame(&self.buf[d]) {
                Frame::Len(0) | Frame::Bad => {
                    self.lose(cx, d, events.desync);
                    return;
                }
                Frame::Len(n) if n > MAX_MESSAGE => HEAD_KEEP.saturating_sub(self.buf[d].len()),
                Frame::Len(n) if n <= self.buf[d].len() => 0,
                Frame::Len(n) => (n - self.buf[d].len()).min(rest.len()),
                // The length is not known yet: grow geometrically so long values stay linear.
                Frame::Need => self.buf[d].len().max(64),
            }
            .min(rest.len());
            self.buf[d].extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            // What was taken may hold more than one message: hand over all the whole ones.
            loop {
                match frame(&self.buf[d]) {
                    Frame::Len(n) if n > MAX_MESSAGE && self.buf[d].len() >= HEAD_KEEP => {
                        let have = self.buf[d].len();
                        on(cx, self.ts[d], &self.buf[d][..HEAD_KEEP], n as u64);
                        cx.stats.event(events.skipped);
                        self.buf[d].clear();
                        self.skip[d] = (n - have) as u64;
                        self.ts[d] = ts;
                        rest = self.pass(d, rest);
                        break;
                    }
                    Frame::Len(n) if n != 0 && n <= self.buf[d].len() => {
                        on(cx, self.ts[d], &self.buf[d][..n], n as u64);
                        self.buf[d].drain(..n);
                        self.ts[d] = ts;
                    }
                    _ => break,
                }
            }
            if self.buf[d].len() > MAX_MESSAGE {
                self.lose(cx, d, events.desync);
                return;
            }
        }
        // Whole messages are handled where they lie.
        while !rest.is_empty() {
            match frame(rest) {
                Frame::Len(0) | Frame::Bad => {
                    self.lose(cx, d, events.desync);
                    return;
                }
                Frame::Len(n) if n <= rest.len() => {
                    on(cx, ts, &rest[..n], n as u64);
                    rest = &rest[n..];
                }
                Frame::Len(n) if n > MAX_MESSAGE && rest.len() >= HEAD_KEEP => {
                    on(cx, ts, &rest[..HEAD_KEEP], n as u64);
                    cx.stats.event(events.skipped);
                    self.skip[d] = (n - rest.len()) as u64;
                    rest = &[];
                }
                _ => break,
            }
        }
        if !rest.is_empty() {
            self.buf[d].extend_from_slice(rest);
            self.ts[d] = ts;
        }
    }

    /// Passes over the part of `data` that belongs to a message being skipped.
    fn pass<'a>(&mut self, d: usize, data: &'a [u8]) -> &'a [u8] {
        let k = self.skip[d].min(data.len() as u64) as usize;
        self.skip[d] -= k as u64;
        &data[k..]
    }

    fn lose(&mut self, cx: &mut Cx<'_>, d: usize, event: DropReason) {
        cx.stats.event(event);
        self.lost[d] = true;
        self.buf[d] = Vec::new();
    }

    /// `len` bytes were lost. Inside a message being skipped that costs nothing; anywhere
    /// else this direction cannot be framed any more.
    pub(crate) fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, len: u64, event: DropReason) {
        let d = dir.index();
        if self.buf[d].is_empty() && self.skip[d] >= len && !self.lost[d] {
            self.skip[d] -= len;
            return;
        }
        cx.stats.event(event);
        self.lost[d] = true;
        self.buf[d] = Vec::new();
    }
}

/// A request waiting for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub ts: Timestamp,
    pub client: Direction,
    pub info: wiremap_model::AppInfo,
    pub size: u64,
    pub key: i64,
}

/// The KFL size variables of a protocol's entries: request, response, total.
fn size_fields(p: wiremap_model::Protocol) -> (&'static str, &'static str, &'static str) {
    use wiremap_model::Protocol as P;
    match p {
        P::Redis => (
            "redis_request_size",
            "redis_response_size",
            "redis_total_size",
        ),
        P::Kafka => ("kafka_request_size", "kafka_response_size", "kafka_size"),
        P::Amqp => (
            "amqp_request_length",
            "amqp_response_length",
            "amqp_total_size",
        ),
        P::Mongodb => (
            "mongodb_request_size",
            "mongodb_response_size",
            "mongodb_total_size",
        ),
        P::Mysql => (
            "mysql_request_size",
            "mysql_response_size",
            "mysql_total_size",
        ),
        P::Postgresql => (
            "postgresql_request_size",
            "postgresql_response_size",
            "postgresql_total_size",
        ),
        _ => ("request_size", "response_size", "total_size"),
    }
}

/// Emits an application entry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_app(
    cx: &mut Cx<'_>,
    protocol: wiremap_model::Protocol,
    p: Pending,
    resp: Option<(Timestamp, u64)>,
    status: i64,
    error: bool,
    extra: wiremap_model::AppInfo,
) {
    let (rts, rsize) = match resp {
        Some((t, s)) => (Some(t), s),
        None => (None, 0),
    };
    if cx.lean {
        let (t, l) = (p.ts, p.size);
        cx.emit(
            p.client,
            protocol,
            t,
            rts,
            l,
            rsize,
            status,
            error,
            wiremap_model::Detail::None,
        );
        return;
    }
    let mut info = p.info;
    info.fields.extend(extra.fields);
    let (req, resp, total) = size_fields(protocol);
    let sizes = [
        (req, p.size as i64),
        (resp, rsize as i64),
        (total, (p.size + rsize) as i64),
    ];
    for (k, v) in sizes {
        info.push(k, wiremap_model::AppVal::Int(v));
    }
    cx.emit(
        p.client,
        protocol,
        p.ts,
        rts,
        p.size,
        rsize,
        status,
        error,
        wiremap_model::Detail::App(Box::new(info)),
    );
}

/// Emits every request still waiting when the flow ends, without a response.
pub(crate) fn flush(
    cx: &mut Cx<'_>,
    protocol: wiremap_model::Protocol,
    pending: impl IntoIterator<Item = Pending>,
) {
    for p in pending {
        emit_app(
            cx,
            protocol,
            p,
            None,
            0,
            false,
            wiremap_model::AppInfo::default(),
        );
    }
}
