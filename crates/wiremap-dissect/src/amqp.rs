//! AMQP 0-9-1: the protocol header, then frames; one entry per client method frame, answered
//! by the next server method frame of the same class (the `-Ok` replies). Exchange, routing
//! key and queue are read from the methods that carry them; a close with a reply code ≥ 300
//! is an error.

use std::collections::VecDeque;

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, flush, Events, Frame, Framer, Pending};
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const HEADER: &[u8] = b"AMQP";
const FRAME_END: u8 = 0xce;

fn frame(d: &[u8]) -> Frame {
    if d.starts_with(HEADER) || (d.len() < 4 && HEADER.starts_with(d)) {
        return if d.len() >= 8 {
            Frame::Len(8)
        } else {
            Frame::Need
        };
    }
    if d.len() < 7 {
        return Frame::Need;
    }
    if !matches!(d[0], 1..=4 | 8) {
        return Frame::Bad;
    }
    let size = u32::from_be_bytes([d[3], d[4], d[5], d[6]]) as usize;
    if size > 128 << 20 {
        return Frame::Bad;
    }
    match d.get(7 + size) {
        Some(&FRAME_END) => Frame::Len(8 + size),
        Some(_) => Frame::Bad,
        None => Frame::Len(8 + size),
    }
}

/// `class.method` name.
pub fn method_name(class: u16, method: u16) -> String {
    let c = match class {
        10 => "connection",
        20 => "channel",
        30 => "access",
        40 => "exchange",
        50 => "queue",
        60 => "basic",
        85 => "confirm",
        90 => "tx",
        _ => return format!("{class}.{method}"),
    };
    let m = match (class, method) {
        (10, 10) => "start",
        (10, 11) => "start-ok",
        (10, 20) => "secure",
        (10, 21) => "secure-ok",
        (10, 30) => "tune",
        (10, 31) => "tune-ok",
        (10, 40) => "open",
        (10, 41) => "open-ok",
        (10, 50) | (20, 40) => "close",
        (10, 51) | (20, 41) => "close-ok",
        (20, 10) => "open",
        (20, 11) => "open-ok",
        (20, 20) => "flow",
        (20, 21) => "flow-ok",
        (40 | 50, 10) => "declare",
        (40 | 50, 11) => "declare-ok",
        (40, 20) => "delete",
        (40, 21) => "delete-ok",
        (40, 30) | (50, 20) => "bind",
        (40, 31) | (50, 21) => "bind-ok",
        (50, 30) => "purge",
        (50, 31) => "purge-ok",
        (50, 40) => "delete",
        (50, 41) => "delete-ok",
        (50, 50) => "unbind",
        (50, 51) => "unbind-ok",
        (60, 10) => "qos",
        (60, 11) => "qos-ok",
        (60, 20) => "consume",
        (60, 21) => "consume-ok",
        (60, 30) => "cancel",
        (60, 31) => "cancel-ok",
        (60, 40) => "publish",
        (60, 50) => "return",
        (60, 60) => "deliver",
        (60, 70) => "get",
        (60, 71) => "get-ok",
        (60, 72) => "get-empty",
        (60, 80) => "ack",
        (60, 90) => "reject",
        (60, 100) => "recover-async",
        (60, 110) => "recover",
        (60, 111) => "recover-ok",
        (60, 120) => "nack",
        (85, 10) => "select",
        (85, 11) => "select-ok",
        (90, 10) => "select",
        (90, 11) => "select-ok",
        (90, 20) => "commit",
        (90, 21) => "commit-ok",
        (90, 30) => "rollback",
        (90, 31) => "rollback-ok",
        _ => return format!("{c}.{method}"),
    };
    format!("{c}.{m}")
}

fn shortstr(d: &[u8], at: usize) -> Option<(String, usize)> {
    let n = usize::from(*d.get(at)?);
    let s = d.get(at + 1..at + 1 + n)?;
    Some((String::from_utf8_lossy(s).into_owned(), at + 1 + n))
}

/// Methods whose peer does not answer.
fn asynchronous(class: u16, method: u16) -> bool {
    matches!(
        (class, method),
        (60, 40) | (60, 50) | (60, 60) | (60, 80) | (60, 90) | (60, 100) | (60, 120)
    ) || method % 2 == 1 && class != 60
}

/// AMQP 0-9-1: the `AMQP` protocol header, or a method frame ending in 0xCE.
#[derive(Debug)]
pub struct AmqpProbe;

impl Probe for AmqpProbe {
    fn name(&self) -> &'static str {
        "amqp"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.len() < 8 {
            return if HEADER.starts_with(&d[..d.len().min(4)]) || d.first() == Some(&1) {
                Verdict::NeedMore
            } else {
                Verdict::No
            };
        }
        if d.starts_with(HEADER) {
            return Verdict::Yes;
        }
        match frame(d) {
            Frame::Len(n) if d.len() >= n && d[0] == 1 && n >= 12 => {
                let class = u16::from_be_bytes([d[7], d[8]]);
                if matches!(class, 10 | 20 | 40 | 50 | 60 | 85 | 90) {
                    Verdict::Yes
                } else {
                    Verdict::No
                }
            }
            Frame::Len(n) if d.len() < n && d.len() < 4096 => Verdict::NeedMore,
            _ => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Amqp::default())
    }
}

/// The AMQP dissector of one connection.
#[derive(Debug, Default)]
pub struct Amqp {
    framer: Framer,
    client: Option<Direction>,
    pending: VecDeque<(u16, Pending)>,
}

impl Dissector for Amqp {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        if self.client.is_none() {
            // The client sends the protocol header; joined mid-stream, the first speaker is
            // taken as the client, or the other side if it starts with a server-only method.
            let server_first = data.len() >= 11
                && data[0] == 1
                && matches!(
                    (
                        u16::from_be_bytes([data[7], data[8]]),
                        u16::from_be_bytes([data[9], data[10]])
                    ),
                    (10, 10) | (10, 30) | (60, 60)
                );
            self.client = Some(if server_first { dir.flip() } else { dir });
        }
        let client = self.client == Some(dir);
        let pending = &mut self.pending;
        self.framer.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::AmqpDesync,
                skipped: DropReason::AmqpMessageSkipped,
            },
            frame,
            |cx, t, m, len| {
                if m.starts_with(HEADER) || m.first() != Some(&1) || m.len() < 12 {
                    return;
                }
                let class = u16::from_be_bytes([m[7], m[8]]);
                let method = u16::from_be_bytes([m[9], m[10]]);
                let name = method_name(class, method);
                // A skipped frame's head has no frame-end byte.
                let args = &m[11..m.len() - usize::from(len == m.len() as u64)];
                if client {
                    let mut info = AppInfo::default()
                        .str("amqp_method", name.clone())
                        .bool("amqp_request", true);
                    // Arguments: reserved short, then short strings.
                    match (class, method) {
                        (60, 40) => {
                            if let Some((ex, q)) = shortstr(args, 2) {
                                let rk = shortstr(args, q).map(|(r, _)| r).unwrap_or_default();
                                info = info
                                    .str("amqp_summary", format!("exchange={ex} routing_key={rk}"))
                                    .str("amqp_exchange", ex)
                                    .str("amqp_routing_key", rk);
                            }
                        }
                        (50, 10) | (50, 20) | (60, 20) | (60, 70) | (50, 30) | (50, 40) => {
                            if let Some((queue, _)) = shortstr(args, 2) {
                                info = info
                                    .str("amqp_summary", format!("queue={queue}"))
                                    .str("amqp_queue", queue);
                            }
                        }
                        (40, 10) => {
                            if let Some((ex, _)) = shortstr(args, 2) {
                                info = info
                                    .str("amqp_summary", format!("exchange={ex}"))
                                    .str("amqp_exchange", ex);
                            }
                        }
                        _ => {}
                    }
                    let p = Pending {
                        ts: t,
                        client: dir,
                        info,
                        size: len,
                        key: i64::from(class),
                    };
                    if asynchronous(class, method) {
                        emit_app(cx, Protocol::Amqp, p, None, 0, false, AppInfo::default());
                    } else {
                        if pending.len() > 1024 {
                            pending.pop_front();
                            cx.stats.event(DropReason::AmqpPendingEvicted);
                        }
                        pending.push_back((class, p));
                    }
                    return;
                }
                // A close from the server (Connection.Close, Channel.Close) carries the reason
                // for an error.
                let (code, error) = if matches!((class, method), (10, 50) | (20, 40)) {
                    let c = args
                        .get(..2)
                        .map_or(0, |b| i64::from(u16::from_be_bytes([b[0], b[1]])));
                    (c, c >= 300)
                } else {
                    (0, false)
                };
                match pending.iter().position(|(c, _)| *c == class) {
                    Some(i) => {
                        if let Some((_, p)) = pending.remove(i) {
                            let extra = AppInfo::default()
                                .bool("amqp_response", true)
                                .str("amqp_reply", name);
                            emit_app(cx, Protocol::Amqp, p, Some((t, len)), code, error, extra);
                        }
                    }
                    None if error => {
                        if let Some((_, p)) = pending.pop_front() {
                            emit_app(
                                cx,
                                Protocol::Amqp,
                                p,
                                Some((t, len)),
                                code,
                                true,
                                AppInfo::default().str("amqp_reply", name),
                            );
                        }
                    }
                    None => {}
                }
            },
        );
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::AmqpGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        flush(
            cx,
            Protocol::Amqp,
            std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(_, p)| p),
        );
    }
}
