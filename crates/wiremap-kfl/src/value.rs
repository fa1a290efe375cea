//! Runtime values. Strings, lists and maps borrow from the entry or the compiled filter, so
//! evaluating the common shapes allocates nothing.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

/// A list value.
#[derive(Debug, Clone, PartialEq)]
pub enum ListV<'a> {
    /// Borrowed strings.
    Strs(&'a [String]),
    /// Up to two strings (`namespaces`: both sides), the first `n` of those not empty.
    Up2([&'a str; 2], usize),
    /// Computed values.
    Vals(Vec<Val<'a>>),
}

/// A map value.
#[derive(Debug, Clone, PartialEq)]
pub enum MapV<'a> {
    /// Header pairs (names lowercase).
    Pairs(&'a [(String, String)]),
    /// Labels.
    Labels(&'a BTreeMap<String, String>),
    /// A URL query string, read on demand.
    Query(&'a str),
    /// `node`: `name` (and `ip`, empty for now).
    Node(&'a str),
    /// Computed entries.
    Vals(Vec<(Val<'a>, Val<'a>)>),
    /// `{}`.
    Empty,
}

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// bool
    Bool(bool),
    /// int
    Int(i64),
    /// uint
    Uint(u64),
    /// double
    Double(f64),
    /// Borrowed string.
    Str(&'a str),
    /// Computed string.
    Owned(String),
    /// An address, compared as text.
    IpStr(IpAddr),
    /// bytes
    Bytes(&'a [u8]),
    /// Computed bytes.
    OwnedBytes(Vec<u8>),
    /// Nanoseconds since the epoch.
    Timestamp(i64),
    /// Nanoseconds.
    Duration(i64),
    /// null
    Null,
    /// list
    List(ListV<'a>),
    /// map
    Map(MapV<'a>),
}

/// Text of an address without allocating.
pub(crate) struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub(crate) fn new(ip: &IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        let _ = write!(t, "{ip}");
        t
    }
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<'a> Val<'a> {
    /// Calls `f` with the value as a string slice, if it is a string.
    pub(crate) fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        match self {
            Val::Str(s) => Some(f(s)),
            Val::Owned(s) => Some(f(s)),
            Val::IpStr(ip) => {
                let t = IpText::new(ip);
                Some(f(t.as_str()))
            }
            _ => None,
        }
    }

    pub(crate) fn is_str(&self) -> bool {
        matches!(self, Val::Str(_) | Val::Owned(_) | Val::IpStr(_))
    }

    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Val::Bytes(b) => Some(b),
            Val::OwnedBytes(b) => Some(b),
            _ => None,
        }
    }

    /// CEL type name, for runtime errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Uint(_) => "uint",
            Val::Double(_) => "double",
            Val::Str(_) | Val::Owned(_) | Val::IpStr(_) => "string",
            Val::Bytes(_) | Val::OwnedBytes(_) => "bytes",
            Val::Timestamp(_) => "timestamp",
            Val::Duration(_) => "duration",
            Val::Null => "null",
            Val::List(_) => "list",
            Val::Map(_) => "map",
        }
    }

    /// Equality as CEL defines it (numbers compare across int/uint/double).
    pub fn equals(&self, other: &Val<'_>) -> bool {
        match (self, other) {
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Int(a), Val::Int(b)) => a == b,
            (Val::IpStr(a), Val::IpStr(b)) => a == b,
            (Val::IpStr(a), o) | (o, Val::IpStr(a)) if o.is_str() => {
                match o.with_str(|s| s.parse::<IpAddr>().ok()) {
                    Some(Some(b)) => *a == b,
                    _ => false,
                }
            }
            (a, b) if a.is_str() && b.is_str() => a
                .with_str(|x| b.with_str(|y| x == y).unwrap_or(false))
                .unwrap_or(false),
            (a, b) if a.bytes().is_some() && b.bytes().is_some() => a.bytes() == b.bytes(),
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Timestamp(a), Val::Timestamp(b)) | (Val::Duration(a), Val::Duration(b)) => a == b,
            (Val::Null, Val::Null) => true,
            (Val::List(a), Val::List(b)) => {
                let (a, b) = (list_items(a), list_items(b));
                a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.equals(y))
            }
            (Val::Map(a), Val::Map(b)) => {
                let (a, b) = (map_items(a), map_items(b));
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k.equals(k2) && v.equals(v2)))
            }
            (a, b) => match (num(a), num(b)) {
                (Some(x), Some(y)) => num_cmp(x, y) == Some(Ordering::Equal),
                _ => false,
            },
        }
    }

    /// Ordering for `< <= > >=`; `None` when the types do not order.
    pub fn compare(&self, other: &Val<'_>) -> Option<Ordering> {
        match (self, other) {
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            (Val::Timestamp(a), Val::Timestamp(b)) => Some(a.cmp(b)),
            (a, b) if a.is_str() && b.is_str() => {
                a.with_str(|x| b.with_str(|y| x.cmp(y))).flatten()
            }
            (a, b) if a.bytes().is_some() && b.bytes().is_some() => Some(a.bytes().cmp(&b.bytes())),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Duration(a), Val::Duration(b)) => Some(a.cmp(b)),
            (a, b) => num_cmp(num(a)?, num(b)?),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    U(u64),
    D(f64),
}

pub(crate) fn num(v: &Val<'_>) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(*i)),
        Val::Uint(u) => Some(Num::U(*u)),
        Val::Double(d) => Some(Num::D(*d)),
        _ => None,
    }
}

pub(crate) fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::U(x), Num::U(y)) => Some(x.cmp(&y)),
        (Num::I(x), Num::U(y)) => Some(if x < 0 {
            Ordering::Less
        } else {
            (x as u64).cmp(&y)
        }),
        (Num::U(x), Num::I(y)) => Some(if y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(y as u64))
        }),
        (x, y) => {
            let f = |n: Num| match n {
                Num::I(i) => i as f64,
                Num::U(u) => u as f64,
                Num::D(d) => d,
            };
            f(x).partial_cmp(&f(y))
        }
    }
}

/// The items of a list (borrowed strings become values).
pub(crate) fn list_items<'a>(l: &ListV<'a>) -> Vec<Val<'a>> {
    match l {
        ListV::Strs(s) => s.iter().map(|x| Val::Str(x.as_str())).collect(),
        ListV::Up2(s, _) => s
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| Val::Str(x))
            .collect(),
        ListV::Vals(v) => v.clone(),
    }
}

pub(crate) fn list_len(l: &ListV<'_>) -> usize {
    match l {
        ListV::Strs(s) => s.len(),
        ListV::Up2(_, n) => *n,
        ListV::Vals(v) => v.len(),
    }
}

/// Whether a list holds `x`, without building the list.
pub(crate) fn list_contains(l: &ListV<'_>, x: &Val<'_>) -> bool {
    match l {
        ListV::Strs(s) => x.with_str(|x| s.iter().any(|i| i == x)).unwrap_or(false),
        ListV::Up2(s, _) => x
            .with_str(|x| !x.is_empty() && s.contains(&x))
            .unwrap_or(false),
        ListV::Vals(v) => v.iter().any(|i| i.equals(x)),
    }
}

fn query_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

pub(crate) fn map_items<'a>(m: &MapV<'a>) -> Vec<(Val<'a>, Val<'a>)> {
    match m {
        MapV::Pairs(p) => p
            .iter()
            .map(|(k, v)| (Val::Str(k.as_str()), Val::Str(v.as_str())))
            .collect(),
        MapV::Labels(l) => l
            .iter()
            .map(|(k, v)| (Val::Str(k.as_str()), Val::Str(v.as_str())))
            .collect(),
        MapV::Query(q) => query_pairs(q)
            .map(|(k, v)| (Val::Str(k), Val::Str(v)))
            .collect(),
        MapV::Node(n) => vec![
            (Val::Str("name"), Val::Str(n)),
            (Val::Str("ip"), Val::Str("")),
        ],
        MapV::Vals(v) => v.clone(),
        MapV::Empty => Vec::new(),
    }
}

/// Looks a key up without building the map.
pub(crate) fn map_get<'a>(m: &MapV<'a>, key: &Val<'_>) -> Option<Val<'a>> {
    match m {
        MapV::Pairs(p) => key
            .with_str(|k| {
                p.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| Val::Str(v.as_str()))
            })
            .flatten(),
        MapV::Labels(l) => key
            .with_str(|k| l.get(k).map(|v| Val::Str(v.as_str())))
            .flatten(),
        MapV::Query(q) => key
            .with_str(|k| {
                query_pairs(q)
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| Val::Str(v))
            })
            .flatten(),
        MapV::Node(n) => key
            .with_str(|k| match k {
                "name" => Some(Val::Str(n)),
                "ip" => Some(Val::Str("")),
                _ => None,
            })
            .flatten(),
        MapV::Vals(v) => v
            .iter()
            .find(|(k, _)| k.equals(key))
            .map(|(_, v)| v.clone()),
        MapV::Empty => None,
    }
}

pub(crate) fn map_len(m: &MapV<'_>) -> usize {
    match m {
        MapV::Pairs(p) => p.len(),
        MapV::Labels(l) => l.len(),
        MapV::Query(q) => query_pairs(q).count(),
        MapV::Node(_) => 2,
        MapV::Vals(v) => v.len(),
        MapV::Empty => 0,
    }
}
