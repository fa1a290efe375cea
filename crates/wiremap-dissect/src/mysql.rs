//! MySQL/MariaDB client/server protocol: the server greeting, COM_* commands (one entry
//! each) with OK/ERR/result-set replies, and the switch to TLS after an SSL request.

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, flush, Events, Frame, Framer, Pending};
use crate::sql_redact::Dialect;
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const CLIENT_SSL: u32 = 0x0800;

fn frame(d: &[u8]) -> Frame {
    if d.len() < 4 {
        return Frame::Need;
    }
    let len = usize::from(d[0]) | usize::from(d[1]) << 8 | usize::from(d[2]) << 16;
    Frame::Len(4 + len)
}

/// Name of a command byte.
pub fn command_name(c: u8) -> Option<&'static str> {
    Some(match c {
        0x00 => "COM_SLEEP",
        0x01 => "COM_QUIT",
        0x02 => "COM_INIT_DB",
        0x03 => "COM_QUERY",
        0x04 => "COM_FIELD_LIST",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x09 => "COM_STATISTICS",
        0x0a => "COM_PROCESS_INFO",
        0x0b => "COM_CONNECT",
        0x0c => "COM_PROCESS_KILL",
        0x0d => "COM_DEBUG",
        0x0e => "COM_PING",
        0x0f => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x13 => "COM_TABLE_DUMP",
        0x14 => "COM_CONNECT_OUT",
        0x15 => "COM_REGISTER_SLAVE",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x19 => "COM_STMT_CLOSE",
        0x1a => "COM_STMT_RESET",
        0x1b => "COM_SET_OPTION",
        0x1c => "COM_STMT_FETCH",
        0x1d => "COM_DAEMON",
        0x1e => "COM_BINLOG_DUMP_GTID",
        0x1f => "COM_RESET_CONNECTION",
        _ => return None,
    })
}

fn is_greeting(d: &[u8]) -> bool {
    // Length, sequence 0, protocol 10, a printable NUL-terminated server version.
    matches!(frame(d), Frame::Len(n) if n > 40 && n < 1024)
        && d[3] == 0
        && d.get(4) == Some(&10)
        && d.get(5..)
            .and_then(|v| v.iter().position(|&c| c == 0))
            .is_some_and(|n| {
                n >= 3
                    && d[5..5 + n]
                        .iter()
                        .all(|c| c.is_ascii_graphic() || *c == b' ')
            })
}

fn is_text_command(d: &[u8]) -> bool {
    matches!(frame(d), Frame::Len(n) if n > 5 && n == d.len().min(n))
        && d[3] == 0
        && matches!(d.get(4), Some(0x03 | 0x16))
        && d[5..d.len().min(69)]
            .iter()
            .all(|&c| c >= 0x09 && c != 0x7f)
}

/// MySQL: a server greeting, or a COM_QUERY / COM_STMT_PREPARE with readable SQL.
#[derive(Debug)]
pub struct MysqlProbe;

impl Probe for MysqlProbe {
    fn name(&self) -> &'static str {
        "mysql"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        // A pooled connection joined mid-stream: the keep-alive COM_PING (or QUIT, STATISTICS).
        if d.len() == 5 && d[..4] == [1, 0, 0, 0] && matches!(d[4], 0x0e | 0x01 | 0x09) {
            return Verdict::Yes;
        }
        if d.len() < 6 {
            return Verdict::NeedMore;
        }
        if is_greeting(d) || is_text_command(d) {
            return Verdict::Yes;
        }

        if d[3] == 0 && d[4] == 10 && d.len() < 64 {
            return Verdict::NeedMore;
        }
        Verdict::No
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Mysql::default())
    }
}

/// The MySQL dissector of one connection.
#[derive(Debug, Default)]
pub struct Mysql {
    framer: Framer,
    server: Option<Direction>,
    /// Still in the connection phase (greeting, handshake response, auth exchange).
    handshake: bool,
    pending: Option<Pending>,
    database: String,
    tls: bool,
    /// The answered command, kept until its whole response (result set rows) has passed:
    /// (request, first-reply time, success, error code, message, response bytes).
    answered: Option<(Pending, Timestamp, bool, i64, String, u64)>,
}

impl Mysql {
    /// Emits the answered command with all the bytes of its response.
    fn flush_answered(&mut self, cx: &mut Cx<'_>) {
        if let Some((p, t, ok, code, msg, size)) = self.answered.take() {
            let extra = AppInfo::default()
                .bool("mysql_success", ok)
                .int("mysql_error_code", code)
                .str("mysql_error_message", msg);
            emit_app(cx, Protocol::Mysql, p, Some((t, size)), code, !ok, extra);
        }
    }

    fn reply(&mut self, _cx: &mut Cx<'_>, t: Timestamp, m: &[u8], len: u64) {
        if let Some(a) = self.answered.as_mut() {
            a.5 += len;
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let (ok, code, msg) = match m.get(4) {
            Some(0xff) => {
                let code = m
                    .get(5..7)
                    .map_or(0, |c| i64::from(u16::from_le_bytes([c[0], c[1]])));
                // `#` + five-character SQLSTATE, then the message.
                let at = if m.get(7) == Some(&b'#') { 13 } else { 7 };
                (
                    false,
                    code,
                    String::from_utf8_lossy(m.get(at..).unwrap_or(&[])).into_owned(),
                )
            }
            _ => (true, 0, String::new()),
        };
        self.answered = Some((p, t, ok, code, msg, len));
    }
}

impl Dissector for Mysql {
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
                desync: DropReason::MysqlDesync,
                skipped: DropReason::MysqlMessageSkipped,
            },
            frame,
            |cx, t, m, len| {
                if m.len() < 5 {
                    return;
                }
                // Roles from the first whole packet: the greeting is the server's; a packet that
                // starts a command exchange (sequence 0) is the client's; anything else answers.
                if self.server.is_none() {
                    if is_greeting(m) {
                        self.server = Some(dir);
                        self.handshake = true;
                    } else if m[3] == 0 {
                        self.server = Some(dir.flip());
                    } else {
                        self.server = Some(dir);
                    }
                }
                let from_server = self.server == Some(dir);
                if from_server {
                    if self.handshake {
                        // OK after authentication ends the connection phase.
                        if m[4] == 0x00 && m[3] >= 2 {
                            self.handshake = false;
                        }
                        return;
                    }
                    self.reply(cx, t, m, len);
                    return;
                }
                if self.handshake {
                    // The handshake response: an SSL request is 32 bytes with CLIENT_SSL set.
                    let caps = u32::from_le_bytes([
                        m[4],
                        m.get(5).copied().unwrap_or(0),
                        m.get(6).copied().unwrap_or(0),
                        m.get(7).copied().unwrap_or(0),
                    ]);
                    if m[3] == 1 && caps & CLIENT_SSL != 0 && m.len() == 36 {
                        self.tls = true;
                    } else if m[3] == 1 && m.len() > 36 {
                        // username at 36, then auth data; the database follows when flagged.
                        if caps & 0x08 != 0 {
                            let user_end = m[36..].iter().position(|&c| c == 0).map(|n| 36 + n + 1);
                            if let Some(u) = user_end {
                                let auth_len = usize::from(*m.get(u).unwrap_or(&0));
                                let db_at = u + 1 + auth_len;
                                if let Some(n) =
                                    m.get(db_at..).and_then(|r| r.iter().position(|&c| c == 0))
                                {
                                    self.database =
                                        String::from_utf8_lossy(&m[db_at..db_at + n]).into_owned();
                                }
                            }
                        }
                    }
                    return;
                }
                if m[3] != 0 {
                    return;
                }
                let Some(name) = command_name(m[4]) else {
                    cx.stats.event(DropReason::MysqlUnknownCommand);
                    return;
                };
                self.flush_answered(cx);
                flush(cx, Protocol::Mysql, self.pending.take());
                let body = &m[5..];
                let query = match m[4] {
                    0x03 | 0x16 | 0x02 => {
                        let q = String::from_utf8_lossy(&body[..body.len().min(4096)]);
                        // Password literals never leave (a literal cut at 4096 bytes included).
                        crate::sql_redact::sql(&q, Dialect::Mysql).into_owned()
                    }
                    _ => String::new(),
                };
                if m[4] == 0x02 {
                    self.database = query.clone();
                }
                let stmt = if matches!(m[4], 0x17 | 0x19 | 0x1a | 0x1c) && body.len() >= 4 {
                    i64::from(u32::from_le_bytes([body[0], body[1], body[2], body[3]]))
                } else {
                    0
                };
                let info = AppInfo::default()
                    .str("mysql_command", name)
                    .str("mysql_query", query)
                    .str("mysql_database", self.database.clone())
                    .int("mysql_statement_id", stmt);
                let p = Pending {
                    ts: t,
                    client: dir,
                    info,
                    size: len,
                    key: 0,
                };
                // Commands without a reply.
                if matches!(m[4], 0x01 | 0x18 | 0x19) {
                    flush(cx, Protocol::Mysql, [p]);
                } else {
                    self.pending = Some(p);
                }
            },
        );
        self.framer = framer;
        if self.tls {
            self.tls = false;
            return Next::Handoff([Vec::new(), Vec::new()]);
        }
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::MysqlGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        self.flush_answered(cx);
        flush(cx, Protocol::Mysql, self.pending.take());
    }
}
