//! Tokens with byte spans.

use crate::error::{ErrorKind, KflError};
use crate::limits::MAX_TOKENS;

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    True,
    False,
    Null,
    In,
    AndAnd,
    OrOr,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Question,
    Colon,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Uint(u) => format!("`{u}u`"),
            Tok::Double(d) => format!("`{d}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Bytes(_) => "bytes".into(),
            Tok::Eof => "the end of the filter".into(),
            other => format!("`{}`", punct(other)),
        }
    }
}

fn punct(t: &Tok) -> &'static str {
    match t {
        Tok::True => "true",
        Tok::False => "false",
        Tok::Null => "null",
        Tok::In => "in",
        Tok::AndAnd => "&&",
        Tok::OrOr => "||",
        Tok::Not => "!",
        Tok::Eq => "==",
        Tok::Ne => "!=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        Tok::Question => "?",
        Tok::Colon => ":",
        Tok::Dot => ".",
        Tok::Comma => ",",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        _ => "?",
    }
}

pub(crate) fn lex(src: &str) -> Result<Vec<(Tok, Span)>, KflError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out: Vec<(Tok, Span)> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        // One more token is coming: refuse it past the limit.
        if out.len() >= MAX_TOKENS {
            let at = out.last().map_or(Span::default(), |t| t.1);
            return Err(KflError::new(
                ErrorKind::Limit,
                src,
                at,
                format!("filter has more than {MAX_TOKENS} tokens; the limit is {MAX_TOKENS}"),
            ));
        }
        let start = i;
        let two = b.get(i..i + 2).unwrap_or(&[]);
        let tok = match two {
            b"&&" => Some(Tok::AndAnd),
            b"||" => Some(Tok::OrOr),
            b"==" => Some(Tok::Eq),
            b"!=" => Some(Tok::Ne),
            b"<=" => Some(Tok::Le),
            b">=" => Some(Tok::Ge),
            _ => None,
        };
        if let Some(t) = tok {
            i += 2;
            out.push((t, Span { start, end: i }));
            continue;
        }
        let single = match c {
            b'!' => Some(Tok::Not),
            b'<' => Some(Tok::Lt),
            b'>' => Some(Tok::Gt),
            b'+' => Some(Tok::Plus),
            b'-' => Some(Tok::Minus),
            b'*' => Some(Tok::Star),
            b'/' => Some(Tok::Slash),
            b'%' => Some(Tok::Percent),
            b'?' => Some(Tok::Question),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            _ => None,
        };
        if let Some(t) = single {
            i += 1;
            out.push((t, Span { start, end: i }));
            continue;
        }
        if c == b'.' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            out.push((Tok::Dot, Span { start, end: i }));
            continue;
        }
        // String and bytes literals, with optional r/b prefixes.
        let (raw, bytes, q) = match (c, b.get(i + 1), b.get(i + 2)) {
            (b'r' | b'R', Some(&q @ (b'"' | b'\'')), _) => (true, false, Some((i + 1, q))),
            (b'b' | b'B', Some(&q @ (b'"' | b'\'')), _) => (false, true, Some((i + 1, q))),
            (b'r' | b'R', Some(b'b' | b'B'), Some(&q @ (b'"' | b'\'')))
            | (b'b' | b'B', Some(b'r' | b'R'), Some(&q @ (b'"' | b'\''))) => {
                (true, true, Some((i + 2, q)))
            }
            (b'"' | b'\'', _, _) => (false, false, Some((i, c))),
            _ => (false, false, None),
        };
        if let Some((qpos, q)) = q {
            let (val, end) = string(src, qpos, q, raw).map_err(|(msg, at)| {
                KflError::syntax(
                    src,
                    Span {
                        start: at,
                        end: at + 1,
                    },
                    msg,
                )
            })?;
            i = end;
            let span = Span { start, end: i };
            if bytes {
                out.push((Tok::Bytes(val), span));
            } else {
                let s = String::from_utf8(val)
                    .map_err(|_| KflError::syntax(src, span, "invalid UTF-8 in string".into()))?;
                out.push((Tok::Str(s), span));
            }
            continue;
        }
        if c == b'=' {
            return Err(KflError::syntax(
                src,
                Span { start, end: i + 1 },
                "`=` is not an operator; compare with `==`".into(),
            ));
        }
        if c == b'&' || c == b'|' {
            let op = if c == b'&' { "&&" } else { "||" };
            return Err(KflError::syntax(
                src,
                Span { start, end: i + 1 },
                format!("`{}` is not an operator; use `{op}`", c as char),
            ));
        }
        if c.is_ascii_digit() || c == b'.' {
            let (t, end) = number(src, i)?;
            i = end;
            out.push((t, Span { start, end: i }));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            let t = match word {
                "true" => Tok::True,
                "false" => Tok::False,
                "null" => Tok::Null,
                "in" => Tok::In,
                "and" => Tok::AndAnd,
                "or" => Tok::OrOr,
                "not" => Tok::Not,
                _ => Tok::Ident(word.to_string()),
            };
            out.push((t, Span { start, end: i }));
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return Err(KflError::syntax(
            src,
            Span {
                start,
                end: i + ch.len_utf8(),
            },
            format!("unexpected character `{ch}`"),
        ));
    }
    out.push((
        Tok::Eof,
        Span {
            start: b.len(),
            end: b.len(),
        },
    ));
    Ok(out)
}

fn number(src: &str, start: usize) -> Result<(Tok, usize), KflError> {
    let b = src.as_bytes();
    let mut i = start;
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        let ds = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let span = Span { start, end: i };
        let v = u64::from_str_radix(&src[ds..i], 16)
            .map_err(|_| KflError::syntax(src, span, "bad hex number".into()))?;
        if matches!(b.get(i), Some(b'u' | b'U')) {
            return Ok((Tok::Uint(v), i + 1));
        }
        let v = i64::try_from(v)
            .map_err(|_| KflError::syntax(src, span, "integer out of range".into()))?;
        return Ok((Tok::Int(v), i));
    }
    let mut float = false;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        float = true;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            float = true;
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text = &src[start..i];
    let span = Span { start, end: i };
    if float {
        let v: f64 = text
            .parse()
            .map_err(|_| KflError::syntax(src, span, "bad number".into()))?;
        // `1e400` would be infinity, which has no literal to render back to.
        if !v.is_finite() {
            return Err(KflError::syntax(src, span, "number out of range".into()));
        }
        return Ok((Tok::Double(v), i));
    }
    if matches!(b.get(i), Some(b'u' | b'U')) {
        let v: u64 = text
            .parse()
            .map_err(|_| KflError::syntax(src, span, "unsigned integer out of range".into()))?;
        return Ok((Tok::Uint(v), i + 1));
    }
    let v: u64 = text
        .parse()
        .map_err(|_| KflError::syntax(src, span, "integer out of range".into()))?;
    // 2^63 only exists negated; the parser folds the minus sign into it.
    let v = if v == 1 << 63 {
        i64::MIN
    } else {
        i64::try_from(v).map_err(|_| KflError::syntax(src, span, "integer out of range".into()))?
    };
    Ok((Tok::Int(v), i))
}

/// Reads a quoted literal whose opening quote is at `qpos`; returns bytes and the end.
fn string(src: &str, qpos: usize, q: u8, raw: bool) -> Result<(Vec<u8>, usize), (String, usize)> {
    let b = src.as_bytes();
    let triple = b.get(qpos..qpos + 3) == Some(&[q, q, q][..]);
    let mut i = qpos + if triple { 3 } else { 1 };
    let mut out = Vec::new();
    loop {
        let Some(&c) = b.get(i) else {
            return Err(("unterminated string".into(), qpos));
        };
        if triple {
            if b.get(i..i + 3) == Some(&[q, q, q][..]) {
                return Ok((out, i + 3));
            }
        } else if c == q {
            return Ok((out, i + 1));
        } else if c == b'\n' {
            return Err(("newline in string".into(), i));
        }
        if c == b'\\' && !raw {
            let e = *b.get(i + 1).ok_or(("unterminated escape".to_string(), i))?;
            i += 2;
            match e {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'\\' | b'\'' | b'"' | b'`' | b'?' => out.push(e),
                b'x' | b'X' => {
                    let h = src
                        .get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or(("bad \\x escape".to_string(), i))?;
                    out.push(h);
                    i += 2;
                }
                b'u' | b'U' => {
                    let n = if e == b'u' { 4 } else { 8 };
                    let cp = src
                        .get(i..i + n)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or(("bad unicode escape".to_string(), i))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(cp.encode_utf8(&mut buf).as_bytes());
                    i += n;
                }
                b'0'..=b'7' => {
                    let o = src
                        .get(i - 1..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 8).ok())
                        .ok_or(("bad octal escape".to_string(), i))?;
                    out.push(o);
                    i += 2;
                }
                _ => return Err((format!("unknown escape `\\{}`", e as char), i - 2)),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
}
