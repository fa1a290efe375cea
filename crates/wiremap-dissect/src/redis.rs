//! Redis RESP2/RESP3: one entry per command (pipelining keeps order), server pushes
//! (pub/sub messages, RESP3 `>`) counted but not paired.

use std::collections::VecDeque;

use wiremap_model::{AppInfo, Direction, DropReason, Protocol, Timestamp, Transport};

use crate::framing::{emit_app, flush, Events, Frame, Framer, Pending};
use crate::redact::REDACTED;
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const MAX_DEPTH: usize = 32;

fn line(d: &[u8], at: usize) -> Option<(usize, usize)> {
    let rest = d.get(at..)?;
    let i = rest.windows(2).take(64 * 1024).position(|w| w == b"\r\n")?;
    Some((at, at + i))
}

fn int(d: &[u8]) -> Option<i64> {
    std::str::from_utf8(d).ok()?.parse().ok()
}

/// Length of the RESP value at `at`, or why not.
fn value_end(d: &[u8], at: usize, depth: usize) -> Result<usize, Frame> {
    if depth > MAX_DEPTH {
        return Err(Frame::Bad);
    }
    let Some(&t) = d.get(at) else {
        return Err(Frame::Need);
    };
    let (s, e) = line(d, at + 1).ok_or(if d.len() - at > 64 * 1024 {
        Frame::Bad
    } else {
        Frame::Need
    })?;
    let head = &d[s..e];
    match t {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(e + 2),
        b'$' | b'!' | b'=' => {
            let n = int(head).ok_or(Frame::Bad)?;
            if n < 0 {
                return Ok(e + 2);
            }
            let end = e + 2 + n as usize + 2;
            if d.len() < end {
                return Err(Frame::Need);
            }
            if &d[end - 2..end] != b"\r\n" {
                return Err(Frame::Bad);
            }
            Ok(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(head).ok_or(Frame::Bad)?;
            if n < 0 {
                return Ok(e + 2);
            }
            if n > 1 << 20 {
                return Err(Frame::Bad);
            }
            let items = if matches!(t, b'%' | b'|') { n * 2 } else { n };
            let mut p = e + 2;
            for _ in 0..items {
                p = value_end(d, p, depth + 1)?;
            }
            // An attribute precedes the value it describes.
            if t == b'|' {
                p = value_end(d, p, depth + 1)?;
            }
            Ok(p)
        }
        _ => Err(Frame::Bad),
    }
}

fn frame(d: &[u8]) -> Frame {
    match d.first() {
        // Inline commands: one text line.
        Some(c) if c.is_ascii_alphabetic() => match line(d, 0) {
            Some((_, e)) => Frame::Len(e + 2),
            None if d.len() > 64 * 1024 => Frame::Bad,
            None => Frame::Need,
        },
        _ => match value_end(d, 0, 0) {
            Ok(n) => Frame::Len(n),
            Err(Frame::Need) => known_len(d).map_or(Frame::Need, Frame::Len),
            Err(f) => f,
        },
    }
}

/// Bulk strings from this size on frame their message by the declared length.
const LARGE_BULK: usize = 1 << 20;

/// The length of an incomplete message when its header already tells it: a bulk string
/// (`GET` of a large value), or a command whose last argument is the large bulk (`SET k
/// <value>`). Such a message over the framer's buffer is then skipped by length.
fn known_len(d: &[u8]) -> Option<usize> {
    let bulk_end = |at: usize| -> Option<usize> {
        if d.get(at) != Some(&b'$') {
            return None;
        }
        let (s, e) = line(d, at + 1)?;
        let n = usize::try_from(int(&d[s..e])?).ok()?;
        // Small values are simply waited for, as any incomplete message.
        if n < LARGE_BULK {
            return None;
        }
        (e + 2).checked_add(n)?.checked_add(2)
    };
    match d.first()? {
        b'$' => bulk_end(0),
        b'*' => {
            let (s, e) = line(d, 1)?;
            let items = usize::try_from(int(&d[s..e])?).ok()?;
            let mut p = e + 2;
            for _ in 0..items.checked_sub(1)? {
                p = value_end(d, p, 1).ok()?;
            }
            bulk_end(p)
        }
        _ => None,
    }
}

/// The words of an inline command; a quoted argument (`AUTH "my pass"`) is one word, quotes
/// included, so a password with spaces is replaced whole.
fn inline_words(d: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let c = d[i];
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
            continue;
        }
        let s = i;
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < d.len() && d[i] != c && d[i] != b'\n' {
                i += if d[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(d.len());
        } else {
            while i < d.len() && !matches!(d[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
        }
        out.push(&d[s..i]);
    }
    out
}

/// The bulk strings of a command array.
fn words(d: &[u8]) -> Vec<&[u8]> {
    if d.first() != Some(&b'*') {
        return inline_words(d);
    }
    let mut out = Vec::new();
    let Some((_, e)) = line(d, 1) else { return out };
    let mut p = e + 2;
    while p < d.len() && d[p] == b'$' {
        let Some((s, e)) = line(d, p + 1) else { break };
        let Some(n) = int(&d[s..e]) else { break };
        let start = e + 2;
        let end = start + n.max(0) as usize;
        let Some(w) = d.get(start..end) else { break };
        out.push(w);
        p = end + 2;
    }
    out
}

fn is(w: &[u8], name: &str) -> bool {
    w.eq_ignore_ascii_case(name.as_bytes())
}

/// Indexes of the arguments of a command that are credentials: `AUTH [user] pw`,
/// `HELLO v AUTH user pw`, `MIGRATE … AUTH pw | AUTH2 user pw`, `CONFIG SET` and
/// `SENTINEL SET`/`SENTINEL CONFIG SET` values of `*pass*`/`*auth*` parameters
/// (`requirepass`, `masterauth`, `auth-pass`), and the `>pw`, `<pw`, `#hash`, `!hash` rules
/// of `ACL SETUSER`.
fn secret_args(w: &[&[u8]]) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(verb) = w.first() else {
        return out;
    };
    let secret_param = |p: &[u8]| {
        let l = p.to_ascii_lowercase();
        [&b"pass"[..], b"auth", b"secret"]
            .iter()
            .any(|k| l.windows(k.len()).any(|x| x == *k))
    };
    if is(verb, "AUTH") {
        // The last argument is the password (the one before it, if any, is the user).
        if w.len() >= 2 {
            out.push(w.len() - 1);
        }
    } else if is(verb, "HELLO") || is(verb, "MIGRATE") {
        let mut i = 1;
        while i < w.len() {
            if is(w[i], "AUTH") {
                // HELLO's AUTH takes a user and a password; MIGRATE's only a password.
                let at = if is(verb, "HELLO") { i + 2 } else { i + 1 };
                out.push(at);
                i = at;
            } else if is(w[i], "AUTH2") {
                out.push(i + 2);
                i += 2;
            }
            i += 1;
        }
    } else if (is(verb, "CONFIG") && w.get(1).is_some_and(|s| is(s, "SET")))
        || (is(verb, "SENTINEL") && w.get(1).is_some_and(|s| is(s, "CONFIG")))
    {
        let from = if is(verb, "CONFIG") { 2 } else { 3 };
        let mut i = from;
        while i + 1 < w.len() {
            if secret_param(w[i]) {
                out.push(i + 1);
            }
            i += 2;
        }
    } else if is(verb, "SENTINEL") && w.get(1).is_some_and(|s| is(s, "SET")) {
        let mut i = 3;
        while i + 1 < w.len() {
            if secret_param(w[i]) {
                out.push(i + 1);
            }
            i += 2;
        }
    } else if is(verb, "ACL") && w.get(1).is_some_and(|s| is(s, "SETUSER")) {
        for (i, a) in w.iter().enumerate().skip(3) {
            if matches!(a.first(), Some(b'>' | b'<' | b'#' | b'!')) {
                out.push(i);
            }
        }
    }
    out.retain(|&i| i < w.len());
    out
}

const INLINE: [&[u8]; 8] = [
    b"PING", b"AUTH ", b"HELLO", b"INFO", b"QUIT", b"SELECT ", b"COMMAND", b"MONITOR",
];

/// RESP commands: an array of bulk strings (`*N\r\n$`), or a few inline commands.
#[derive(Debug)]
pub struct RedisProbe;

impl Probe for RedisProbe {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, d: &[u8]) -> Verdict {
        if d.first() == Some(&b'*') {
            let digits = d[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            return match (digits, d.get(1 + digits..1 + digits + 3)) {
                (1..=7, Some(b"\r\n$")) => Verdict::Yes,
                (0..=7, None) if d.len() < 12 => Verdict::NeedMore,
                _ => Verdict::No,
            };
        }
        if INLINE
            .iter()
            .any(|c| d.len() >= c.len() && d[..c.len()].eq_ignore_ascii_case(c))
        {
            return match line(d, 0) {
                Some(_) => Verdict::Yes,
                None if d.len() < 512 => Verdict::NeedMore,
                None => Verdict::No,
            };
        }
        Verdict::No
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Redis::default())
    }
}

/// The Redis dissector of one connection.
#[derive(Debug, Default)]
pub struct Redis {
    framer: Framer,
    client: Option<Direction>,
    pending: VecDeque<Pending>,
}

fn printable(w: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&w[..w.len().min(max)]).into_owned();
    if w.len() > max {
        format!("{s}…")
    } else {
        s
    }
}

impl Dissector for Redis {
    fn held(&self) -> usize {
        self.framer.held()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        let client = &mut self.client;
        let pending = &mut self.pending;
        self.framer.feed(
            cx,
            dir,
            ts,
            data,
            Events {
                desync: DropReason::RedisDesync,
                skipped: DropReason::RedisMessageSkipped,
            },
            frame,
            |cx, t, msg, len| {
                // The side that sends commands (arrays of bulk strings, inline verbs) is the client.
                if client.is_none() {
                    let command = RedisProbe.probe(dir, msg) == Verdict::Yes;
                    *client = Some(if command { dir } else { dir.flip() });
                }
                if Some(dir) == *client {
                    let mut w = words(msg);
                    // Credentials are replaced before any field is made of the arguments.
                    for i in secret_args(&w) {
                        w[i] = REDACTED.as_bytes();
                    }
                    let verb = w
                        .first()
                        .map(|v| String::from_utf8_lossy(v).to_ascii_uppercase())
                        .unwrap_or_default();
                    let key = w.get(1).map(|k| printable(k, 256)).unwrap_or_default();
                    let command = w
                        .iter()
                        .take(8)
                        .map(|x| printable(x, 64))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let info = AppInfo::default()
                        .str("redis_type", verb)
                        .str("redis_command", command)
                        .str("redis_key", key);
                    pending.push_back(Pending {
                        ts: t,
                        client: dir,
                        info,
                        size: len,
                        key: 0,
                    });
                    return;
                }
                if msg.first() == Some(&b'>') {
                    cx.stats.event(DropReason::RedisPush);
                    return;
                }
                match pending.pop_front() {
                    Some(p) => {
                        let error = matches!(msg.first(), Some(b'-' | b'!'));
                        let extra = if error {
                            AppInfo::default().str(
                                "redis_error",
                                printable(&msg[1..], 256).trim_end().to_string(),
                            )
                        } else {
                            AppInfo::default()
                        };
                        emit_app(cx, Protocol::Redis, p, Some((t, len)), 0, error, extra);
                    }
                    // Pub/sub messages arrive without a command.
                    None => cx.stats.event(DropReason::RedisPush),
                }
            },
        );
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, len: u64) {
        self.framer.gap(cx, dir, len, DropReason::RedisGapDesync);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        flush(cx, Protocol::Redis, std::mem::take(&mut self.pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_resp_values_and_every_prefix_needs_more() {
        let msg = b"*3\r\n$3\r\nSET\r\n$5\r\nmykey\r\n$7\r\nmyvalue\r\n";
        assert_eq!(frame(msg), Frame::Len(msg.len()));
        for n in 0..msg.len() {
            assert_eq!(frame(&msg[..n]), Frame::Need, "prefix {n}");
        }
        assert_eq!(words(msg), vec![&b"SET"[..], b"mykey", b"myvalue"]);
        let resp3 = b"%2\r\n+a\r\n:1\r\n+b\r\n#t\r\n";
        assert_eq!(frame(resp3), Frame::Len(resp3.len()));
        assert_eq!(frame(b"?x\r\n"), Frame::Bad);
        // A large last argument: the length is known from its header.
        let big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20000000\r\nvvvv";
        assert_eq!(frame(big), Frame::Len(big.len() - 4 + 20_000_000 + 2));
        assert_eq!(frame(b"$20000000\r\nxx"), Frame::Len(11 + 20_000_000 + 2));
    }
}
