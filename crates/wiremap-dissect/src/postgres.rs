//! PostgreSQL frontend/backend protocol v3: startup (user, database), simple and extended
//! query (one entry per Query and per Execute), command tags, SQLSTATE errors, and
//! SSLRequest followed by TLS (handed back to detection).

use std::collections::{HashMap, VecDeque};

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, Events, Frame, Framer, Pending};
use crate::sql_redact::Dialect;
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3: i32 = 196_608;
const MAX_MESSAGE: i32 = 256 << 20;

fn be_i32(d: &[u8], i: usize) -> Option<i32> {
    Some(i32::from_be_bytes([
        *d.get(i)?,
        *d.get(i + 1)?,
        *d.get(i + 2)?,
        *d.get(i + 3)?,
    ]))
}

const FRONTEND: &[u8] = b"QPBEDCSHXpFdcf";
const BACKEND: &[u8] = b"RSKZTDCEN123nstIGHWAcdVv";

/// A typed message: type byte + length that counts itself.
fn typed(d: &[u8], types: &[u8]) -> Frame {
    let Some(&t) = d.first() else {
        return Frame::Need;
    };
    if !types.contains(&t) {
        return Frame::Bad;
    }
    match be_i32(d, 1) {
        None => Frame::Need,
        Some(n) if !(4..=MAX_MESSAGE).contains(&n) => Frame::Bad,
        Some(n) => Frame::Len(1 + n as usize),
    }
}

/// Untyped startup-phase message (StartupMessage, SSLRequest, CancelRequest).
fn untyped(d: &[u8]) -> Frame {
    match (be_i32(d, 0), be_i32(d, 4)) {
        (Some(n), Some(code))
            if (8..=10_000).contains(&n)
                && matches!(
                    code,
                    PROTOCOL_3 | SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST
                ) =>
        {
            Frame::Len(n as usize)
        }
        (Some(_), Some(_)) => Frame::Bad,
        _ => Frame::Need,
    }
}

/// The NUL-terminated text at `at`, or all that is there when a skipped message was cut.
fn text_at(d: &[u8], at: usize) -> String {
    match cstr(d, at) {
        Some((s, _)) => s,
        None => String::from_utf8_lossy(d.get(at..).unwrap_or(&[])).into_owned(),
    }
}

fn cstr(d: &[u8], at: usize) -> Option<(String, usize)> {
    let n = d.get(at..)?.iter().position(|&c| c == 0)?;
    Some((
        String::from_utf8_lossy(&d[at..at + n]).into_owned(),
        at + n + 1,
    ))
}

/// PostgreSQL: a startup or SSL request, or a well-formed Query/Parse message.
#[derive(Debug)]
pub struct PostgresProbe;

impl Probe for PostgresProbe {
    fn name(&self) -> &'static str {
        "postgresql"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.len() < 8 {
            return Verdict::NeedMore;
        }
        if let Frame::Len(n) = untyped(d) {
            let code = be_i32(d, 4).unwrap_or(0);
            if code != PROTOCOL_3 {
                return if n == 8 || code == CANCEL_REQUEST {
                    Verdict::Yes
                } else {
                    Verdict::No
                };
            }
            // A startup message: NUL-terminated parameter pairs, `user` among them.
            let Some(m) = d.get(..n) else {
                return if d.len() < 10_000 {
                    Verdict::NeedMore
                } else {
                    Verdict::No
                };
            };
            let mut p = 8;
            let mut user = false;
            while let Some((k, q)) = cstr(m, p) {
                if k.is_empty() {
                    return if user && q == n {
                        Verdict::Yes
                    } else {
                        Verdict::No
                    };
                }
                if !k.bytes().all(|c| c.is_ascii_graphic()) {
                    return Verdict::No;
                }
                user |= k == "user";
                match cstr(m, q) {
                    Some((_, r)) => p = r,
                    None => return Verdict::No,
                }
            }
            return Verdict::No;
        }
        if matches!(d[0], b'Q' | b'P') {
            if let Frame::Len(n) = typed(d, b"QP") {
                return match d.get(..n) {
                    Some(m)
                        if m.last() == Some(&0)
                            && m[5..].iter().take(64).all(|&c| c == 0 || c >= 0x09)
                            && n > 6 =>
                    {
                        Verdict::Yes
                    }
                    Some(_) => Verdict::No,
                    None if d.len() < 8192 => Verdict::NeedMore,
                    None => Verdict::No,
                };
            }
        }
        Verdict::No
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Postgres::default())
    }
}

#[derive(Debug, Default)]
struct Result {
    tag: String,
    code: String,
    message: String,
}

/// The PostgreSQL dissector of one connection.
#[derive(Debug, Default)]
pub struct Postgres {
    framer: Framer,
    client: Option<Direction>,
    /// The frontend has sent its startup message (or was joined mid-stream).
    started: [bool; 2],
    user: String,
    database: String,
    statements: HashMap<String, String>,
    portals: HashMap<String, String>,
    last_parse: String,
    pending: VecDeque<(Pending, bool, Result)>,
    ssl_asked: bool,
    /// Backend bytes since the last completed request: the response's size.
    acc: u64,
}

/// The query with its password literals replaced (see [`crate::sql_redact`]).
fn redact_sql(q: String) -> String {
    match crate::sql_redact::sql(&q, Dialect::Postgres) {
        std::borrow::Cow::Borrowed(_) => q,
        std::borrow::Cow::Owned(r) => r,
    }
}

fn command_of(query: &str) -> String {
    query
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches(';')
        .to_ascii_uppercase()
}

impl Postgres {
    /// A frontend message; `m` may be only the head of a longer one (`len` bytes in all).
    fn frontend(&mut self, cx: &mut Cx<'_>, dir: Direction, t: Timestamp, m: &[u8], len: u64) {
        if !self.started[dir.index()] {
            self.started[dir.index()] = true;
            if let Some(code) = be_i32(m, 4).filter(|_| m.first() == Some(&0)) {
                match code {
                    SSL_REQUEST | GSSENC_REQUEST => self.ssl_asked = true,
                    PROTOCOL_3 => {
                        let mut p = 8;
                        while let Some((k, q)) = cstr(m, p) {
                            if k.is_empty() {
                                break;
                            }
                            let Some((v, r)) = cstr(m, q) else { break };
                            match k.as_str() {
                                "user" => self.user = v,
                                "database" => self.database = v,
                                _ => {}
                            }
                            p = r;
                        }
                        if self.database.is_empty() {
                            self.database = self.user.clone();
                        }
                    }
                    _ => {}
                }
                // After an SSL request the next startup message follows.
                if code != PROTOCOL_3 {
                    self.started[dir.index()] = false;
                }
                return;
            }
        }
        let (query, extended) = match m[0] {
            b'Q' => (redact_sql(text_at(m, 5)), false),
            b'P' => {
                if let Some((name, q)) = cstr(m, 5) {
                    let query = redact_sql(text_at(m, q));
                    self.last_parse = query.clone();
                    self.statements.insert(name, query);
                }
                return;
            }
            b'B' => {
                if let Some((portal, q)) = cstr(m, 5) {
                    if let Some((stmt, _)) = cstr(m, q) {
                        let query = self
                            .statements
                            .get(&stmt)
                            .cloned()
                            .unwrap_or_else(|| self.last_parse.clone());
                        self.portals.insert(portal, query);
                    }
                }
                return;
            }
            b'E' => {
                let portal = cstr(m, 5).map(|(p, _)| p).unwrap_or_default();
                (
                    self.portals
                        .get(&portal)
                        .cloned()
                        .unwrap_or_else(|| self.last_parse.clone()),
                    true,
                )
            }
            _ => return,
        };
        let info = AppInfo::default()
            .str("postgresql_command", command_of(&query))
            .str("postgresql_query", query)
            .str("postgresql_database", self.database.clone())
            .str("postgresql_user", self.user.clone());
        if self.pending.len() > 1024 {
            self.pending.pop_front();
            cx.stats.event(DropReason::PostgresqlPendingEvicted);
        }
        self.pending.push_back((
            Pending {
                ts: t,
                client: dir,
                info,
                size: len,
                key: 0,
            },
            extended,
            Result::default(),
        ));
    }

    fn finish(&mut self, cx: &mut Cx<'_>, t: Timestamp, _last: u64) {
        let size = std::mem::take(&mut self.acc);
        if let Some((p, _, r)) = self.pending.pop_front() {
            let ok = r.code.is_empty();
            let mut extra = AppInfo::default()
                .bool("postgresql_success", ok)
                .str("postgresql_error_code", r.code)
                .str("postgresql_error_message", r.message);
            if !r.tag.is_empty() {
                extra = extra.str("postgresql_command_tag", r.tag);
            }
            emit_app(cx, Protocol::Postgresql, p, Some((t, size)), 0, !ok, extra);
        }
    }

    fn backend(&mut self, cx: &mut Cx<'_>, t: Timestamp, m: &[u8], len: u64) {
        let size = len;
        self.acc += size;
        match m[0] {
            b'C' => {
                let tag = cstr(m, 5).map(|(s, _)| s).unwrap_or_default();
                match self.pending.front_mut() {
                    Some((_, true, r)) => {
                        r.tag = tag;
                        self.finish(cx, t, size);
                    }
                    Some((_, false, r)) => r.tag = tag,
                    None => {}
                }
            }
            b'I' | b's' => {
                if matches!(self.pending.front(), Some((_, true, _))) {
                    self.finish(cx, t, size);
                }
            }
            b'E' => {
                let mut p = 5;
                let mut r = Result::default();
                while let Some(&f) = m.get(p) {
                    if f == 0 {
                        break;
                    }
                    let Some((v, q)) = cstr(m, p + 1) else { break };
                    match f {
                        b'C' => r.code = v,
                        b'M' => r.message = v,
                        _ => {}
                    }
                    p = q;
                }
                match self.pending.front_mut() {
                    Some((_, extended, slot)) => {
                        slot.code = r.code;
                        slot.message = r.message;
                        if *extended {
                            self.finish(cx, t, size);
                            // The rest of the extended batch is skipped until Sync.
                            while matches!(self.pending.front(), Some((_, true, _))) {
                                self.finish(cx, t, 0);
                            }
                        }
                    }
                    None => cx.stats.event(DropReason::PostgresqlUnmatchedError),
                }
            }
            b'Z' => {
                while matches!(self.pending.front(), Some((_, false, _))) {
                    self.finish(cx, t, size);
                }
            }
            _ => {}
        }
    }
}

impl Dissector for Postgres {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        if self.client.is_none() {
            // The frontend speaks first, with an untyped startup message or a query.
            self.client = Some(dir);
        }
        let client = self.client == Some(dir);
        if !client && self.ssl_asked {
            self.ssl_asked = false;
            // 'S': TLS follows; 'N': plain text goes on.
            match data.first() {
                Some(b'S') => {
                    let mut left = [Vec::new(), Vec::new()];
                    left[dir.index()] = data[1..].to_vec();
                    return Next::Handoff(left);
                }
                Some(b'N') | Some(b'G') => {
                    if data.len() == 1 {
                        return Next::Continue;
                    }
                    return self.data(cx, dir, ts, &data[1..]);
                }
                _ => {}
            }
        }
        let mut me = std::mem::take(&mut self.framer);
        let started = self.started[dir.index()];
        me.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::PostgresqlDesync,
                skipped: DropReason::PostgresqlMessageSkipped,
            },
            |d| {
                if client {
                    if !started && d.first() == Some(&0) {
                        untyped(d)
                    } else {
                        typed(d, FRONTEND)
                    }
                } else {
                    typed(d, BACKEND)
                }
            },
            |cx, t, m, len| {
                if client {
                    self.frontend(cx, dir, t, m, len);
                } else {
                    self.backend(cx, t, m, len);
                }
            },
        );
        self.framer = me;
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer
            .gap(cx, dir, len, DropReason::PostgresqlGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        while let Some((p, _, r)) = self.pending.pop_front() {
            let extra = AppInfo::default().str("postgresql_command_tag", r.tag);
            emit_app(cx, Protocol::Postgresql, p, None, 0, false, extra);
        }
    }
}
