//! WebSocket frames after an HTTP `Upgrade: websocket` (RFC 6455): one entry per client
//! frame, answered by the next server frame; opcode, payload length, permessage-deflate.

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{Events, Frame, Framer};
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

fn frame(d: &[u8]) -> Frame {
    if d.len() < 2 {
        return Frame::Need;
    }
    let masked = d[1] & 0x80 != 0;
    let (len, at) = match d[1] & 0x7f {
        126 => match d.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Frame::Need,
        },
        127 => match d.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or([0; 8])), 10),
            None => return Frame::Need,
        },
        n => (u64::from(n), 2),
    };
    if len > 64 << 20 {
        return Frame::Bad;
    }
    Frame::Len(at + if masked { 4 } else { 0 } + len as usize)
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "reserved",
    }
}

/// Header facts of a frame: (opcode, compressed, payload offset, mask).
fn header(d: &[u8]) -> (u8, bool, usize, Option<[u8; 4]>) {
    let op = d[0] & 0x0f;
    let rsv1 = d[0] & 0x40 != 0;
    let masked = d[1] & 0x80 != 0;
    let at = match d[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mask = if masked {
        d.get(at..at + 4).map(|m| [m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    (op, rsv1, at + if masked { 4 } else { 0 }, mask)
}

/// Reached only through an HTTP upgrade (frames alone are too short to recognise).
#[derive(Debug)]
pub struct WsProbe;

impl Probe for WsProbe {
    fn name(&self) -> &'static str {
        "ws"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, _d: &[u8]) -> Verdict {
        Verdict::No
    }
    fn build(&self, cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Ws {
            redact: crate::redact::Redactor::new(cfg),
            ..Ws::default()
        })
    }
}

#[derive(Debug)]
struct Pending {
    ts: Timestamp,
    opcode: u8,
    compressed: bool,
    len: u64,
    size: u64,
    data: String,
}

/// The WebSocket dissector of one upgraded connection.
#[derive(Debug, Default)]
pub struct Ws {
    framer: Framer,
    client: Option<Direction>,
    pending: Option<Pending>,
    /// Client text is kept only with secret-looking JSON values replaced.
    redact: crate::redact::Redactor,
}

impl Ws {
    fn emit(cx: &mut Cx<'_>, client: Direction, p: Pending, resp: Option<(Timestamp, u64, u64)>) {
        let (rts, rsize, rlen) = match resp {
            Some((t, s, l)) => (Some(t), s, l),
            None => (None, 0, 0),
        };
        let info = AppInfo::default()
            .str("ws_opcode", opcode_name(p.opcode))
            .bool("ws_request", true)
            .bool("ws_response", rts.is_some())
            .int("ws_request_payload_length", p.len as i64)
            .int("ws_response_payload_length", rlen as i64)
            .str("ws_request_payload_data", p.data)
            .bool("ws_compressed", p.compressed);
        let error = p.opcode == 8;
        cx.emit(
            client,
            Protocol::Ws,
            p.ts,
            rts,
            p.size,
            rsize,
            0,
            error && rts.is_none(),
            wiremap_model::Detail::App(Box::new(info)),
        );
    }
}

impl Dissector for Ws {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let mut framer = std::mem::take(&mut self.framer);
        framer.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::WsDesync,
                skipped: DropReason::WsMessageSkipped,
            },
            frame,
            |cx, t, m, len| {
                let (op, compressed, at, mask) = header(m);
                let payload = &m[at.min(m.len())..];
                // Clients mask their frames; servers do not.
                let from_client = match self.client {
                    Some(c) => c == dir,
                    None => {
                        let c = if mask.is_some() { dir } else { dir.flip() };
                        self.client = Some(c);
                        c == dir
                    }
                };
                let client = self.client.unwrap_or(dir);
                if from_client {
                    let data = if op == 1 && !compressed {
                        let n = payload.len().min(256);
                        let clear: Vec<u8> = payload[..n]
                            .iter()
                            .enumerate()
                            .map(|(i, b)| b ^ mask.map_or(0, |k| k[i % 4]))
                            .collect();
                        let text = String::from_utf8_lossy(&clear);
                        crate::redact::json_text(&self.redact, &text).into_owned()
                    } else {
                        String::new()
                    };
                    if let Some(old) = self.pending.take() {
                        Ws::emit(cx, client, old, None);
                    }
                    self.pending = Some(Pending {
                        ts: t,
                        opcode: op,
                        compressed,
                        len: len.saturating_sub(at as u64),
                        size: len,
                        data,
                    });
                } else if let Some(p) = self.pending.take() {
                    Ws::emit(cx, client, p, Some((t, len, len.saturating_sub(at as u64))));
                } else {
                    cx.stats.event(DropReason::WsServerFrame);
                }
            },
        );
        self.framer = framer;
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::WsGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        if let (Some(p), Some(c)) = (self.pending.take(), self.client) {
            Ws::emit(cx, c, p, None);
        }
    }
}
