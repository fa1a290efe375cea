//! Passwords inside SQL text, replaced before a query is stored.
//!
//! One linear pass over the text that knows quoting (`'…'` with `''`, backslash escapes
//! where the dialect has them, PostgreSQL `E'…'` and `$tag$…$tag$`, MySQL `"…"`, comments).
//! The string literal that follows one of these is redacted:
//!
//! * a word ending in `PASSWORD` (`PASSWORD`, `ENCRYPTED PASSWORD`, `MASTER_PASSWORD`,
//!   `SOURCE_PASSWORD`, a `password` column compared with `=`), skipping `=` and `(`
//!   (`SET PASSWORD = PASSWORD('…')`), and after `FOR user@host =`;
//! * `BY` or `AS` within a few words after `IDENTIFIED` (`IDENTIFIED BY`,
//!   `IDENTIFIED WITH plugin BY`, `IDENTIFIED WITH plugin AS 'hash'`);
//! * `REPLACE` directly followed by a literal (`ALTER USER … REPLACE 'old'`).
//!
//! Inside any literal, a connection-string `password=…` value is redacted too
//! (`CREATE SUBSCRIPTION … CONNECTION 'host=… password=…'`, `dblink_connect`). A literal cut
//! by the end of the text is redacted to the end.

use std::borrow::Cow;

use crate::redact::REDACTED;

/// Quoting rules of the server the text is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Mysql,
}

/// Words an `IDENTIFIED` clause may span before its `BY`/`AS`.
const IDENTIFIED_REACH: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Off,
    /// The next literal is a secret; `paren`: `=` and `(` may come first.
    Next {
        paren: bool,
    },
    /// `PASSWORD FOR account`: the secret follows the next `=`.
    WaitEq,
}

fn ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The end of a quoted run starting after the opening quote at `from`: (content end, next).
fn quoted(b: &[u8], from: usize, q: u8, backslash: bool) -> (usize, usize) {
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if backslash && c == b'\\' {
            i += 2;
            continue;
        }
        if c == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return (i, i + 1);
        }
        i += 1;
    }
    (b.len(), b.len())
}

/// The span of a connection-string `password=` value inside literal content `[s, e)`.
fn conn_string_password(b: &[u8], s: usize, e: usize, spans: &mut Vec<(usize, usize)>) {
    const KEY: &[u8] = b"password=";
    let lit = &b[s..e];
    let mut i = 0;
    while i + KEY.len() <= lit.len() {
        if lit[i..i + KEY.len()].eq_ignore_ascii_case(KEY)
            && (i == 0 || !lit[i - 1].is_ascii_alphanumeric())
        {
            let vs = i + KEY.len();
            let ve = lit[vs..]
                .iter()
                .position(|c| c.is_ascii_whitespace() || *c == b';' || *c == b'\'')
                .map_or(lit.len(), |n| vs + n);
            if ve > vs {
                spans.push((s + vs, s + ve));
            }
            i = ve;
        } else {
            i += 1;
        }
    }
}

/// `text` with its password literals replaced by `[REDACTED]`.
pub(crate) fn sql(text: &str, dialect: Dialect) -> Cow<'_, str> {
    let b = text.as_bytes();
    let my = dialect == Dialect::Mysql;
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut arm = Arm::Off;
    let mut identified: u8 = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Comments do not change what comes next.
        if (c == b'-' && b.get(i + 1) == Some(&b'-')) || (my && c == b'#') {
            i = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |n| i + n + 1);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            continue;
        }
        // A literal: its content span and where scanning resumes.
        let literal = match c {
            b'\'' => {
                let e_string =
                    !my && i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !ident(b[i - 2]));
                let (e, next) = quoted(b, i + 1, b'\'', my || e_string);
                Some((i + 1, e, next))
            }
            b'"' if my => {
                let (e, next) = quoted(b, i + 1, b'"', true);
                Some((i + 1, e, next))
            }
            b'$' if !my => {
                let tag_len = b[i + 1..]
                    .iter()
                    .take_while(|&&x| ident(x) && x != b'$')
                    .count();
                let tag_end = i + 1 + tag_len;
                if b.get(tag_end) == Some(&b'$') && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let tag = &text[i..=tag_end];
                    let s = tag_end + 1;
                    match text[s..].find(tag) {
                        Some(n) => Some((s, s + n, s + n + tag.len())),
                        None => Some((s, b.len(), b.len())),
                    }
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((s, e, next)) = literal {
            match arm {
                Arm::Next { .. } => {
                    spans.push((s, e));
                    arm = Arm::Off;
                }
                Arm::WaitEq => {}
                Arm::Off => conn_string_password(b, s, e, &mut spans),
            }
            identified = identified.saturating_sub(1);
            i = next;
            continue;
        }
        if c == b'"' || (my && c == b'`') {
            // A quoted identifier: a word.
            let (_, next) = quoted(b, i + 1, c, false);
            if arm != Arm::WaitEq {
                arm = Arm::Off;
            }
            identified = identified.saturating_sub(1);
            i = next;
            continue;
        }
        if ident(c) {
            let s = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let w = &b[s..i];
            // A prefix glued to a literal (`E'…'`, `N'…'`, `_utf8mb4'…'`) is part of it.
            if b.get(i) == Some(&b'\'') {
                continue;
            }
            let ends_password = w.len() >= 8 && w[w.len() - 8..].eq_ignore_ascii_case(b"PASSWORD");
            if ends_password {
                arm = Arm::Next { paren: true };
            } else if identified > 0
                && (w.eq_ignore_ascii_case(b"BY") || w.eq_ignore_ascii_case(b"AS"))
            {
                arm = Arm::Next { paren: false };
                identified = 0;
            } else if w.eq_ignore_ascii_case(b"IDENTIFIED") {
                identified = IDENTIFIED_REACH + 1;
                arm = Arm::Off;
            } else if w.eq_ignore_ascii_case(b"REPLACE") {
                arm = Arm::Next { paren: false };
            } else if w.eq_ignore_ascii_case(b"FOR") && arm == (Arm::Next { paren: true }) {
                arm = Arm::WaitEq;
            } else if arm != Arm::WaitEq {
                arm = Arm::Off;
            }
            identified = identified.saturating_sub(1);
            continue;
        }
        // Punctuation.
        arm = match (arm, c) {
            (_, b';') => {
                identified = 0;
                Arm::Off
            }
            (Arm::WaitEq, b'=') => Arm::Next { paren: true },
            (Arm::WaitEq, _) => Arm::WaitEq,
            (Arm::Next { paren: true }, b'=' | b'(') => arm,
            (Arm::Next { paren: false }, b'=') => arm,
            _ => Arm::Off,
        };
        i += 1;
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e) in spans {
        if s < at {
            continue;
        }
        out.push_str(&text[at..s]);
        out.push_str(REDACTED);
        at = e;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(t: &str) -> String {
        sql(t, Dialect::Postgres).into_owned()
    }
    fn my(t: &str) -> String {
        sql(t, Dialect::Mysql).into_owned()
    }

    #[test]
    fn postgres_statements() {
        assert_eq!(
            pg("CREATE ROLE app WITH LOGIN PASSWORD 'hunter2' VALID UNTIL '2030-01-01'"),
            "CREATE ROLE app WITH LOGIN PASSWORD '[REDACTED]' VALID UNTIL '2030-01-01'"
        );
        assert_eq!(
            pg("alter user app encrypted password 'it''s'; select 'x'"),
            "alter user app encrypted password '[REDACTED]'; select 'x'"
        );
        assert_eq!(
            pg("ALTER ROLE a PASSWORD $pw$s3cr$t$pw$"),
            "ALTER ROLE a PASSWORD $pw$[REDACTED]$pw$"
        );
        assert_eq!(
            pg("ALTER ROLE a PASSWORD /* c */ E'a\\'b'"),
            "ALTER ROLE a PASSWORD /* c */ E'[REDACTED]'"
        );
        assert_eq!(
            pg("CREATE SUBSCRIPTION s CONNECTION 'host=db password=pw1 dbname=x' PUBLICATION p"),
            "CREATE SUBSCRIPTION s CONNECTION 'host=db password=[REDACTED] dbname=x' PUBLICATION p"
        );
        // Standard strings: a backslash does not escape the quote.
        assert_eq!(
            pg("SELECT 'a\\', PASSWORD 'x'"),
            "SELECT 'a\\', PASSWORD '[REDACTED]'"
        );
        assert_eq!(pg("SELECT $1, 'x' FROM t"), "SELECT $1, 'x' FROM t");
        assert_eq!(
            pg("ALTER ROLE a PASSWORD 'cut"),
            "ALTER ROLE a PASSWORD '[REDACTED]"
        );
        assert!(matches!(
            sql("SELECT 1", Dialect::Postgres),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn mysql_statements() {
        assert_eq!(
            my("CREATE USER 'u'@'%' IDENTIFIED BY 'pw'"),
            "CREATE USER 'u'@'%' IDENTIFIED BY '[REDACTED]'"
        );
        assert_eq!(
            my("ALTER USER u IDENTIFIED WITH caching_sha2_password BY \"p\\\"w\" REPLACE 'old'"),
            "ALTER USER u IDENTIFIED WITH caching_sha2_password BY \"[REDACTED]\" REPLACE '[REDACTED]'"
        );
        assert_eq!(
            my("CREATE USER u IDENTIFIED WITH mysql_native_password AS '*ABC'"),
            "CREATE USER u IDENTIFIED WITH mysql_native_password AS '[REDACTED]'"
        );
        assert_eq!(
            my("SET PASSWORD FOR 'u'@'localhost' = PASSWORD('p')"),
            "SET PASSWORD FOR 'u'@'localhost' = PASSWORD('[REDACTED]')"
        );
        assert_eq!(my("SET PASSWORD = 'p'"), "SET PASSWORD = '[REDACTED]'");
        assert_eq!(
            my("CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='p'"),
            "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='[REDACTED]'"
        );
        assert_eq!(
            my("REPLACE INTO t VALUES ('a'); SELECT REPLACE('a','b','c') # x 'y'"),
            "REPLACE INTO t VALUES ('a'); SELECT REPLACE('a','b','c') # x 'y'"
        );
        assert_eq!(
            my("CREATE USER u IDENTIFIED BY RANDOM PASSWORD"),
            "CREATE USER u IDENTIFIED BY RANDOM PASSWORD"
        );
    }
}
