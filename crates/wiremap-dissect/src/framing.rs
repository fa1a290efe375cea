//! Splitting a direction's bytes into length-delimited messages, for the binary protocols.

use wiremap_model::{Direction, Timestamp};

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

/// Largest message a framer buffers; longer ones desynchronise the direction (counted).
const MAX_MESSAGE: usize = 8 << 20;

/// Per-direction buffers of a message-oriented protocol.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: [Vec<u8>; 2],
    /// Arrival of the first byte of the buffered message.
    ts: [Timestamp; 2],
    lost: [bool; 2],
}

impl Framer {
    /// Appends `data` and hands every complete message to `on` with the time its first byte
    /// arrived.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn feed(
        &mut self,
        cx: &mut Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        desync: &'static str,
        frame: impl Fn(&[u8]) -> Frame,
        mut on: impl FnMut(&mut Cx<'_>, Timestamp, &[u8]),
    ) {
        let d = dir.index();
        if self.lost[d] {
            return;
        }
        // First finish the message a previous chunk left incomplete, taking from `data` only
        // the bytes it needs; the rest of `data` is then framed in place.
        let mut rest = data;
        while !self.buf[d].is_empty() && !rest.is_empty() {
            let take = match frame(&self.buf[d]) {
                Frame::Len(n) if n > MAX_MESSAGE || n == 0 => {
                    self.lose(cx, d, desync);
                    return;
                }
                Frame::Len(n) if n <= self.buf[d].len() => 0,
                Frame::Len(n) => (n - self.buf[d].len()).min(rest.len()),
                // The length is not known yet: grow geometrically so long values stay linear.
                Frame::Need => rest.len().min(self.buf[d].len().max(64)),
                Frame::Bad => {
                    self.lose(cx, d, desync);
                    return;
                }
            };
            self.buf[d].extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            // What was taken may hold more than one message: hand over all the whole ones.
            while let Frame::Len(n) = frame(&self.buf[d]) {
                if n == 0 || n > self.buf[d].len() {
                    break;
                }
                on(cx, self.ts[d], &self.buf[d][..n]);
                self.buf[d].drain(..n);
                self.ts[d] = ts;
            }
            if self.buf[d].len() > MAX_MESSAGE {
                self.lose(cx, d, desync);
                return;
            }
        }
        // Whole messages are handled where they lie.
        while !rest.is_empty() {
            match frame(rest) {
                Frame::Len(0) => {
                    self.lose(cx, d, desync);
                    return;
                }
                Frame::Len(n) if n <= rest.len() => {
                    on(cx, ts, &rest[..n]);
                    rest = &rest[n..];
                }
                Frame::Bad => {
                    self.lose(cx, d, desync);
                    return;
                }
                _ => break,
            }
        }
        if !rest.is_empty() {
            self.buf[d].extend_from_slice(rest);
            self.ts[d] = ts;
        }
    }

    fn lose(&mut self, cx: &mut Cx<'_>, d: usize, event: &'static str) {
        cx.stats.event(event);
        self.lost[d] = true;
        self.buf[d] = Vec::new();
    }

    /// Bytes were lost: this direction cannot be framed any more.
    pub(crate) fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, event: &'static str) {
        cx.stats.event(event);
        self.lost[dir.index()] = true;
        self.buf[dir.index()] = Vec::new();
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
        info.fields.push((k, wiremap_model::AppVal::Int(v)));
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
