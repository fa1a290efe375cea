//! Secrets are replaced by [`REDACTED`] inside the dissectors, before an entry exists, so no
//! store, API answer or export ever holds them.
//!
//! * Headers: a fixed list ([`ALWAYS_REDACTED`]), names whose words say token, secret,
//!   password, key or authorization, the user's `--redact` list, and the items of
//!   `Sec-WebSocket-Protocol` that are not plain subprotocol names.
//! * Request targets and URL-valued headers: the userinfo of an absolute URL and the values
//!   of query (and `;` path) parameters whose names look like secrets
//!   ([`DEFAULT_QUERY_PARAMS`], configurable).
//! * SQL text: see [`crate::sql_redact`]. Redis arguments: see `crate::redis`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::DissectConfig;

/// The value stored in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Headers whose values never leave the dissector, whatever the configuration.
pub const ALWAYS_REDACTED: [&str; 11] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-auth",
    "private-token",
    "x-amz-security-token",
];

/// Words of a header name (split at `-` and `_`) that make its value a secret: any header
/// named `…-token`, `…-secret`, `x-…-api-key`, `x-forwarded-authorization` and the like.
/// `key` alone counts too, except in `sec-websocket-key`, a public nonce.
const SECRET_HEADER_WORDS: [&str; 9] = [
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "key",
    "authorization",
    "cookie",
    "credential",
];

/// Query-parameter names (matched case-insensitively as substrings of the name; patterns of
/// three letters or fewer only at the start of a word) whose values are redacted by default.
pub const DEFAULT_QUERY_PARAMS: [&str; 17] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "access_token",
    "key",
    "api_key",
    "apikey",
    "secret",
    "auth",
    "sig",
    "signature",
    "session",
    "credential",
    "jwt",
    "code_verifier",
];

/// Headers whose values are URLs, redacted like the request target.
const URL_HEADERS: [&str; 4] = ["referer", "location", "content-location", "origin"];

/// Subprotocol names longer than this in `Sec-WebSocket-Protocol` are taken for tokens.
const MAX_SUBPROTOCOL: usize = 32;

/// Shared, lowercase names.
type Names = Arc<[String]>;

/// The redaction rules of one dissector, built once per flow from [`DissectConfig`].
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Extra header names (lowercase) from the configuration.
    headers: Names,
    /// Query-parameter name patterns (lowercase).
    params: Names,
}

impl Default for Redactor {
    /// The default rules (as for [`DissectConfig::default`]).
    fn default() -> Self {
        Redactor::new(&DissectConfig::default())
    }
}

impl Redactor {
    /// The rules of `cfg`. Built per flow: the usual configuration (no extra headers, the
    /// default parameters) shares one copy instead of allocating.
    pub fn new(cfg: &DissectConfig) -> Self {
        static USUAL: OnceLock<(Names, Names)> = OnceLock::new();
        let usual = USUAL.get_or_init(|| {
            let params = DEFAULT_QUERY_PARAMS.iter().map(|p| p.to_string()).collect();
            (Arc::from(Vec::new()), params)
        });
        let headers = if cfg.redact_headers.is_empty() {
            usual.0.clone()
        } else {
            cfg.redact_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect()
        };
        let params = if cfg
            .redact_query_params
            .iter()
            .eq(DEFAULT_QUERY_PARAMS.iter())
        {
            usual.1.clone()
        } else {
            cfg.redact_query_params
                .iter()
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect()
        };
        Redactor { headers, params }
    }

    /// Whether the whole value of header `name` (lowercase) is a secret.
    pub fn secret_header(&self, name: &str) -> bool {
        if ALWAYS_REDACTED.contains(&name) || self.headers.iter().any(|h| h == name) {
            return true;
        }
        if name == "sec-websocket-key" {
            return false;
        }
        let words: Vec<&str> = name.split(['-', '_']).collect();
        words.iter().any(|w| SECRET_HEADER_WORDS.contains(w))
    }

    /// The value of header `name` (lowercase) as it may be stored.
    pub fn header_value<'v>(&self, name: &str, value: &'v str) -> Cow<'v, str> {
        if self.secret_header(name) {
            return Cow::Borrowed(REDACTED);
        }
        if name == "sec-websocket-protocol" {
            return websocket_protocols(value);
        }
        if URL_HEADERS.contains(&name) {
            return self.target(value);
        }
        Cow::Borrowed(value)
    }

    /// [`Redactor::header_value`] for an owned value: no copy when nothing changes.
    pub fn header_owned(&self, name: &str, value: String) -> String {
        let changed = match self.header_value(name, &value) {
            Cow::Borrowed(b) if std::ptr::eq(b, value.as_str()) => None,
            c => Some(c.into_owned()),
        };
        changed.unwrap_or(value)
    }

    /// Whether a URL parameter named `name` holds a secret.
    pub fn secret_param(&self, name: &str) -> bool {
        let decoded;
        let name = if name.contains('%') {
            decoded = percent_decode(name);
            decoded.as_str()
        } else {
            name
        };
        let lower = name.to_ascii_lowercase();
        self.params
            .iter()
            .any(|p| pattern_matches(name.as_bytes(), &lower, p))
    }

    /// A request target or URL with its userinfo and secret parameters redacted.
    pub fn target<'t>(&self, t: &'t str) -> Cow<'t, str> {
        // Most targets carry neither: no copy.
        if !t.bytes().any(|c| matches!(c, b'?' | b';' | b'@' | b'#')) {
            return Cow::Borrowed(t);
        }
        let mut out = String::with_capacity(t.len());
        let (authority_end, userinfo) = userinfo_span(t);
        match userinfo {
            Some((s, e)) => {
                out.push_str(&t[..s]);
                out.push_str(&redact_userinfo(&t[s..e]));
                out.push_str(&t[e..authority_end]);
            }
            None => out.push_str(&t[..authority_end]),
        }
        self.params_into(&t[authority_end..], &mut out);
        if out == t {
            Cow::Borrowed(t)
        } else {
            Cow::Owned(out)
        }
    }

    /// An `:authority` (or `Host`) value with any userinfo redacted.
    pub fn authority<'a>(&self, a: &'a str) -> Cow<'a, str> {
        match a.rfind('@') {
            Some(at) => Cow::Owned(format!("{}{}", redact_userinfo(&a[..at]), &a[at..])),
            None => Cow::Borrowed(a),
        }
    }

    /// Copies the path-and-query `rest` into `out`, redacting secret parameter values. In
    /// the path, `;name=value` parameters end at `/`; in the query, at `&`, `;` or `#`.
    fn params_into(&self, rest: &str, out: &mut String) {
        let b = rest.as_bytes();
        let mut in_query = false;
        let mut i = 0;
        // Copy the path up to the first parameter delimiter.
        while i < b.len() && !matches!(b[i], b'?' | b';' | b'#') {
            i += 1;
        }
        out.push_str(&rest[..i]);
        while i < b.len() {
            // b[i] is a delimiter.
            let d = b[i];
            in_query |= matches!(d, b'?' | b'#');
            out.push(char::from(d));
            i += 1;
            let start = i;
            let is_end = |c: u8| {
                if in_query {
                    matches!(c, b'&' | b';' | b'#')
                } else {
                    matches!(c, b'/' | b';' | b'?' | b'#')
                }
            };
            while i < b.len() && !is_end(b[i]) {
                i += 1;
            }
            let piece = &rest[start..i];
            match piece.split_once('=') {
                Some((k, v)) if !v.is_empty() && self.secret_param(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(piece),
            }
            // A `/` after a path parameter continues the path verbatim.
            if !in_query && i < b.len() && b[i] == b'/' {
                let s = i;
                while i < b.len() && !matches!(b[i], b'?' | b';' | b'#') {
                    i += 1;
                }
                out.push_str(&rest[s..i]);
            }
        }
    }
}

/// Whether `pattern` occurs in the lowercase name `lower` (`raw` is the original, for word
/// boundaries); short patterns must start a word (`sig` in `X-Amz-Signature`, not in
/// `design`).
fn pattern_matches(raw: &[u8], lower: &str, pattern: &str) -> bool {
    if pattern.len() > 3 {
        return lower.contains(pattern);
    }
    lower.match_indices(pattern).any(|(at, _)| {
        at == 0 || {
            let prev = raw[at - 1];
            let cur = raw[at];
            !prev.is_ascii_alphanumeric() || (prev.is_ascii_lowercase() && cur.is_ascii_uppercase())
        }
    })
}

/// `(end of the authority, userinfo span)` of an absolute URL; `(0, None)` for anything else.
fn userinfo_span(t: &str) -> (usize, Option<(usize, usize)>) {
    let b = t.as_bytes();
    let scheme_len = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        .count();
    let start = if scheme_len > 0 && t[scheme_len..].starts_with("://") {
        scheme_len + 3
    } else if t.starts_with("//") {
        2
    } else {
        return (0, None);
    };
    let end = b[start..]
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .map_or(b.len(), |n| start + n);
    match t[start..end].rfind('@') {
        Some(at) => (end, Some((start, start + at))),
        None => (end, None),
    }
}

/// `user:password` keeps the user; a lone name may itself be a token (`https://TOKEN@host`).
fn redact_userinfo(u: &str) -> String {
    match u.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_string(),
    }
}

/// `Sec-WebSocket-Protocol` carries subprotocol names, and some clients smuggle a bearer
/// token among them (Kubernetes `base64url.bearer.authorization.k8s.io.…`). Items that look
/// like plain names (short, `[a-z0-9._+-]`, no `bearer`/`token`/`auth`) are kept, any other
/// item is replaced.
fn websocket_protocols(v: &str) -> Cow<'_, str> {
    let plain = |item: &str| {
        let l = item.to_ascii_lowercase();
        item.len() <= MAX_SUBPROTOCOL
            && item
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'))
            && !["bearer", "token", "auth"].iter().any(|w| l.contains(w))
    };
    if v.split(',').map(str::trim).all(plain) {
        return Cow::Borrowed(v);
    }
    let items: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .map(|i| if plain(i) { i } else { REDACTED })
        .collect();
    Cow::Owned(items.join(", "))
}

/// `%XX` decoding (invalid escapes kept as they are), for matching parameter names.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Redacts the string values of JSON-looking `"name": "value"` pairs whose names look like
/// secrets, in text that may be cut anywhere (a value cut by the end is redacted to the end).
/// For the first bytes of WebSocket messages (`connection_init` payloads carry tokens).
pub(crate) fn json_text<'t>(r: &Redactor, text: &'t str) -> Cow<'t, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        // A string: find its end.
        let s = i + 1;
        let mut j = s;
        while j < b.len() && b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        let name_end = j.min(b.len());
        i = (j + 1).min(b.len());
        // A name is followed by `:` and a string value.
        let mut k = i;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        if k >= b.len() || b[k] != b':' || !r.secret_param(&text[s..name_end]) {
            continue;
        }
        k += 1;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        if k >= b.len() || b[k] != b'"' {
            continue;
        }
        let vs = k + 1;
        let mut ve = vs;
        while ve < b.len() && b[ve] != b'"' {
            ve += if b[ve] == b'\\' { 2 } else { 1 };
        }
        let ve = ve.min(b.len());
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        o.push_str(&text[copied..vs]);
        o.push_str(REDACTED);
        copied = ve;
        i = (ve + 1).min(b.len());
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::default()
    }

    #[test]
    fn query_parameters_named_like_secrets() {
        let r = r();
        assert_eq!(
            r.target("/login?user=bob&password=hunter2&next=/home"),
            "/login?user=bob&password=[REDACTED]&next=/home"
        );
        assert_eq!(
            r.target("/o?X-Amz-Signature=abc&X-Amz-Date=1&client_secret=s&apiKey=k"),
            "/o?X-Amz-Signature=[REDACTED]&X-Amz-Date=1&client_secret=[REDACTED]&apiKey=[REDACTED]"
        );
        // Short patterns only at word starts: `design` and `monkey` stay.
        assert_eq!(r.target("/x?design=1&monkey=2"), "/x?design=1&monkey=2");
        assert_eq!(r.target("/x?pass%77ord=p"), "/x?pass%77ord=[REDACTED]");
        assert_eq!(
            r.target("/a;jsessionid=ABC/b?x=1#access_token=t"),
            "/a;jsessionid=[REDACTED]/b?x=1#access_token=[REDACTED]"
        );
        assert!(matches!(r.target("/plain/path"), Cow::Borrowed(_)));
        assert!(matches!(r.target("/p?a=1&b=2"), Cow::Borrowed(_)));
    }

    #[test]
    fn userinfo_of_absolute_urls() {
        let r = r();
        assert_eq!(
            r.target("http://alice:pw@example.com/x?q=1"),
            "http://alice:[REDACTED]@example.com/x?q=1"
        );
        assert_eq!(
            r.target("https://ghp_tok@github.com/repo"),
            "https://[REDACTED]@github.com/repo"
        );
        assert_eq!(r.target("/a@b"), "/a@b");
        assert_eq!(r.authority("u:p@h:80"), "u:[REDACTED]@h:80");
    }

    #[test]
    fn configured_parameter_list_replaces_the_default() {
        let cfg = DissectConfig {
            redact_query_params: vec!["Ticket".into()],
            ..DissectConfig::default()
        };
        let r = Redactor::new(&cfg);
        assert_eq!(
            r.target("/?ticket=1&token=2"),
            "/?ticket=[REDACTED]&token=2"
        );
    }

    #[test]
    fn headers() {
        let cfg = DissectConfig {
            redact_headers: vec!["X-Tenant".into()],
            ..DissectConfig::default()
        };
        let r = Redactor::new(&cfg);
        for h in [
            "authorization",
            "x-api-key",
            "api-key",
            "x-auth-token",
            "x-csrf-token",
            "x-goog-api-key",
            "x-client-secret",
            "x-forwarded-authorization",
            "x-tenant",
        ] {
            assert!(r.secret_header(h), "{h}");
        }
        for h in [
            "sec-websocket-key",
            "content-type",
            "www-authenticate",
            "host",
        ] {
            assert!(!r.secret_header(h), "{h}");
        }
        assert_eq!(
            r.header_value("sec-websocket-protocol", "graphql-ws, v12.stomp"),
            "graphql-ws, v12.stomp"
        );
        assert_eq!(
            r.header_value(
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkltWnZieUo5, base64.binary.k8s.io"
            ),
            "[REDACTED], base64.binary.k8s.io"
        );
        assert_eq!(
            r.header_value("referer", "https://a/cb?code=1&state=2&token=x"),
            "https://a/cb?code=1&state=2&token=[REDACTED]"
        );
    }

    #[test]
    fn json_values() {
        let r = r();
        assert_eq!(
            json_text(
                &r,
                r#"{"type":"connection_init","payload":{"authToken":"abc\"d","x":"y"}}"#
            ),
            r#"{"type":"connection_init","payload":{"authToken":"[REDACTED]","x":"y"}}"#
        );
        assert_eq!(
            json_text(&r, r#"{"password": "cut-of"#),
            r#"{"password": "[REDACTED]"#
        );
        assert_eq!(json_text(&r, r#"{"a":"b"}"#), r#"{"a":"b"}"#);
    }
}
