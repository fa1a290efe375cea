//! MongoDB wire protocol: OP_MSG and legacy OP_QUERY/OP_REPLY (and the other legacy
//! opcodes); command, database, collection and errors from the BSON bodies.

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, flush, Events, Frame, Framer, Pending};
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const MAX_MESSAGE: i32 = 48 << 20;

fn le_i32(d: &[u8], i: usize) -> Option<i32> {
    Some(i32::from_le_bytes([
        *d.get(i)?,
        *d.get(i + 1)?,
        *d.get(i + 2)?,
        *d.get(i + 3)?,
    ]))
}

fn opcode_name(op: i32) -> Option<&'static str> {
    Some(match op {
        1 => "OP_REPLY",
        2001 => "OP_UPDATE",
        2002 => "OP_INSERT",
        2004 => "OP_QUERY",
        2005 => "OP_GET_MORE",
        2006 => "OP_DELETE",
        2007 => "OP_KILL_CURSORS",
        2010 => "OP_COMMAND",
        2011 => "OP_COMMANDREPLY",
        2012 => "OP_COMPRESSED",
        2013 => "OP_MSG",
        _ => return None,
    })
}

fn frame(d: &[u8]) -> Frame {
    match (le_i32(d, 0), le_i32(d, 12)) {
        (Some(n), _) if !(16..=MAX_MESSAGE).contains(&n) => Frame::Bad,
        (Some(_), Some(op)) if opcode_name(op).is_none() => Frame::Bad,
        (Some(n), Some(_)) => Frame::Len(n as usize),
        _ => Frame::Need,
    }
}

fn cstring(d: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let n = d.get(at..)?.iter().position(|&c| c == 0)?;
    Some((&d[at..at + n], at + n + 1))
}

/// A BSON value, as far as wiremap reads it.
#[derive(Debug, Clone, PartialEq)]
enum Bson<'a> {
    Str(&'a [u8]),
    Num(f64),
    Other,
}

/// Elements of a BSON document at `at`: (name, value); stops at the first it cannot read.
fn elements(d: &[u8], at: usize) -> Vec<(&[u8], Bson<'_>)> {
    let mut out = Vec::new();
    let Some(len) = le_i32(d, at) else { return out };
    let end = (at + len.max(0) as usize).min(d.len());
    let mut p = at + 4;
    while p < end {
        let t = d[p];
        if t == 0 {
            break;
        }
        let Some((name, v)) = cstring(d, p + 1) else {
            break;
        };
        let (val, next) = match t {
            0x01 => (
                d.get(v..v + 8)
                    .map(|b| Bson::Num(f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))),
                v + 8,
            ),
            0x02 | 0x0d | 0x0e => match le_i32(d, v) {
                Some(n) if n >= 1 => (
                    d.get(v + 4..v + 4 + n as usize - 1).map(Bson::Str),
                    v + 4 + n as usize,
                ),
                _ => break,
            },
            0x03 | 0x04 => match le_i32(d, v) {
                Some(n) if n >= 5 => (Some(Bson::Other), v + n as usize),
                _ => break,
            },
            0x05 => match le_i32(d, v) {
                Some(n) if n >= 0 => (Some(Bson::Other), v + 5 + n as usize),
                _ => break,
            },
            0x06 | 0x0a | 0x7f | 0xff => (Some(Bson::Other), v),
            0x07 => (Some(Bson::Other), v + 12),
            0x08 => (d.get(v).map(|b| Bson::Num(f64::from(*b))), v + 1),
            0x09 | 0x11 | 0x12 => (
                d.get(v..v + 8)
                    .map(|b| Bson::Num(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64)),
                v + 8,
            ),
            0x0b => match cstring(d, v).and_then(|(_, q)| cstring(d, q)) {
                Some((_, q)) => (Some(Bson::Other), q),
                None => break,
            },
            0x10 => (le_i32(d, v).map(|i| Bson::Num(f64::from(i))), v + 4),
            0x13 => (Some(Bson::Other), v + 16),
            0x0c => match le_i32(d, v) {
                Some(n) if n >= 1 => (Some(Bson::Other), v + 4 + n as usize + 12),
                _ => break,
            },
            0x0f => match le_i32(d, v) {
                Some(n) if n >= 4 => (Some(Bson::Other), v + n as usize),
                _ => break,
            },
            _ => break,
        };
        let Some(val) = val else { break };
        out.push((name, val));
        p = next;
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Command facts of a request: (command, database, collection).
fn request_facts(op: i32, d: &[u8]) -> (String, String, String) {
    let (doc_at, mut db) = match op {
        2013 => {
            // flagBits, then sections; kind 0 is the command document.
            let mut p = 20;
            let mut found = None;
            while p < d.len() {
                let kind = d[p];
                if kind == 0 {
                    found = Some(p + 1);
                    break;
                }
                match le_i32(d, p + 1) {
                    Some(n) if n > 0 => p += 1 + n as usize,
                    _ => break,
                }
            }
            (found, String::new())
        }
        2004 => match cstring(d, 20) {
            Some((full, q)) => {
                let full = text(full);
                let db = full.split('.').next().unwrap_or("").to_string();
                (Some(q + 8), db)
            }
            None => (None, String::new()),
        },
        _ => {
            let coll = cstring(d, 20).map(|(c, _)| text(c)).unwrap_or_default();
            let (db, coll) = coll
                .split_once('.')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap_or((String::new(), coll));
            let cmd = opcode_name(op)
                .unwrap_or("")
                .trim_start_matches("OP_")
                .to_ascii_lowercase();
            return (cmd, db, coll);
        }
    };
    let Some(at) = doc_at else {
        return (String::new(), db, String::new());
    };
    let els = elements(d, at);
    let (mut cmd, mut coll) = (String::new(), String::new());
    if let Some((name, v)) = els.first() {
        cmd = text(name);
        if let Bson::Str(s) = v {
            coll = text(s);
        }
    }
    // A legacy query's document may wrap the command in `$query`/`query`.
    if cmd == "$query" || cmd == "query" {
        cmd = "find".into();
    }
    if let Some((_, Bson::Str(s))) = els.iter().find(|(n, _)| *n == b"$db") {
        db = text(s);
    }
    (cmd, db, coll)
}

/// Success and error of a reply: (ok, code, codeName, errmsg).
fn reply_facts(op: i32, d: &[u8]) -> (bool, i64, String, String) {
    let at = match op {
        2013 if d.get(20) == Some(&0) => 21,
        1 => 36,
        _ => return (true, 0, String::new(), String::new()),
    };
    let els = elements(d, at);
    let mut ok = true;
    let (mut code, mut name, mut msg) = (0, String::new(), String::new());
    for (k, v) in &els {
        match (*k, v) {
            (b"ok", Bson::Num(n)) => ok = *n != 0.0,
            (b"code", Bson::Num(n)) => code = *n as i64,
            (b"codeName", Bson::Str(s)) => name = text(s),
            (b"errmsg", Bson::Str(s)) | (b"$err", Bson::Str(s)) => {
                msg = text(s);
                ok = false;
            }
            _ => {}
        }
    }
    (ok, code, name, msg)
}

/// MongoDB: a plausible length, a known opcode, and for requests `responseTo == 0`.
#[derive(Debug)]
pub struct MongoProbe;

impl Probe for MongoProbe {
    fn name(&self) -> &'static str {
        "mongodb"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.len() < 16 {
            return if le_i32(d, 0).is_none_or(|n| (16..=MAX_MESSAGE).contains(&n)) {
                Verdict::NeedMore
            } else {
                Verdict::No
            };
        }
        match (frame(d), le_i32(d, 8), le_i32(d, 12)) {
            (Frame::Len(_), Some(0), Some(op)) if op != 1 && op != 2011 => Verdict::Yes,
            (Frame::Len(_), Some(r), Some(1 | 2011 | 2013)) if r != 0 => Verdict::Yes,
            _ => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Mongo::default())
    }
}

/// The MongoDB dissector of one connection.
#[derive(Debug, Default)]
pub struct Mongo {
    framer: Framer,
    pending: Vec<Pending>,
}

impl Dissector for Mongo {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let pending = &mut self.pending;
        self.framer.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::MongodbDesync,
                skipped: DropReason::MongodbMessageSkipped,
            },
            frame,
            |cx, t, msg, len| {
                let (Some(req_id), Some(resp_to), Some(op)) =
                    (le_i32(msg, 4), le_i32(msg, 8), le_i32(msg, 12))
                else {
                    return;
                };
                if resp_to == 0 && op != 1 && op != 2011 {
                    let (cmd, db, coll) = request_facts(op, msg);
                    let info = AppInfo::default()
                        .str("mongodb_opcode", opcode_name(op).unwrap_or(""))
                        .str("mongodb_command", cmd)
                        .str("mongodb_database", db)
                        .str("mongodb_collection", coll);
                    if pending.len() > 1024 {
                        pending.remove(0);
                        cx.stats.event(DropReason::MongodbPendingEvicted);
                    }
                    pending.push(Pending {
                        ts: t,
                        client: dir,
                        info,
                        size: len,
                        key: i64::from(req_id),
                    });
                    // Fire-and-forget legacy writes get no reply.
                    if matches!(op, 2001 | 2002 | 2006 | 2007) {
                        if let Some(p) = pending.pop() {
                            emit_app(cx, Protocol::Mongodb, p, None, 0, false, AppInfo::default());
                        }
                    }
                    return;
                }
                match pending.iter().position(|p| p.key == i64::from(resp_to)) {
                    Some(i) => {
                        let p = pending.remove(i);
                        let (ok, code, name, errmsg) = reply_facts(op, msg);
                        let extra = AppInfo::default()
                            .bool("mongodb_success", ok)
                            .int("mongodb_error_code", code)
                            .str("mongodb_error_code_name", name)
                            .str("mongodb_error_message", errmsg);
                        emit_app(cx, Protocol::Mongodb, p, Some((t, len)), code, !ok, extra);
                    }
                    None => cx.stats.event(DropReason::MongodbUnmatchedReply),
                }
            },
        );
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::MongodbGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        flush(cx, Protocol::Mongodb, std::mem::take(&mut self.pending));
    }
}
