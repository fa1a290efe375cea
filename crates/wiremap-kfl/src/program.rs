//! Type checking and compilation of the syntax tree into an evaluable program.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use wiremap_model::{Entry, Timestamp};

use crate::ast::{Expr, ExprKind, Lit, Op};
use crate::error::{distance, ErrorKind, KflError};
use crate::limits::guarded;
use crate::regexes::{self, RegexCache};
use crate::schema::{read, variables, Type, Var};
use crate::time::{self, parse_duration, DurationError, DURATION_RANGE, TIME_RANGE};
use crate::value::{
    list_contains, list_items, list_len, map_get, map_items, map_len, num, ListV, MapV, Num, Val,
};

/// A constant folded at compile time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Timestamp(i64),
    Duration(i64),
    Null,
}

impl Const {
    pub(crate) fn val(&self) -> Val<'_> {
        match self {
            Const::Bool(b) => Val::Bool(*b),
            Const::Int(i) => Val::Int(*i),
            Const::Uint(u) => Val::Uint(*u),
            Const::Double(d) => Val::Double(*d),
            Const::Str(s) => Val::Str(s),
            Const::Bytes(b) => Val::Bytes(b),
            Const::Timestamp(t) => Val::Timestamp(*t),
            Const::Duration(d) => Val::Duration(*d),
            Const::Null => Val::Null,
        }
    }

    fn from_val(v: &Val<'_>) -> Option<Const> {
        Some(match v {
            Val::Bool(b) => Const::Bool(*b),
            Val::Int(i) => Const::Int(*i),
            Val::Uint(u) => Const::Uint(*u),
            Val::Double(d) => Const::Double(*d),
            Val::Str(s) => Const::Str(s.to_string()),
            Val::Owned(s) => Const::Str(s.clone()),
            Val::Bytes(b) => Const::Bytes(b.to_vec()),
            Val::OwnedBytes(b) => Const::Bytes(b.clone()),
            Val::Timestamp(t) => Const::Timestamp(*t),
            Val::Duration(d) => Const::Duration(*d),
            Val::Null => Const::Null,
            _ => return None,
        })
    }
}

/// String predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrFn {
    Contains,
    StartsWith,
    EndsWith,
}

/// Conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    Int,
    Uint,
    Double,
    Str,
    Bool,
    Bytes,
    Timestamp,
    Duration,
    Lower,
    Upper,
    Dyn,
}

/// Comprehension macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comp {
    All,
    Exists,
    ExistsOne,
    Filter,
    Map,
}

/// A compiled expression.
#[derive(Debug)]
pub(crate) enum Node {
    Const(Const),
    Var(Var, Type, &'static str),
    Local(usize),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Cmp(Op, Box<Node>, Box<Node>),
    Arith(Op, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    InSet(Box<Node>, HashSet<String>),
    Index(Box<Node>, Box<Node>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Str(StrFn, Box<Node>, Box<Node>),
    Matches(Box<Node>, Regex),
    MatchesDyn(Box<Node>, Box<Node>, RegexCache),
    Size(Box<Node>),
    MapGet(Box<Node>, Box<Node>, Box<Node>),
    HasVar(Box<Node>),
    HasKey(Box<Node>, String),
    Convert(Conv, Box<Node>),
    Comp {
        kind: Comp,
        range: Box<Node>,
        slot: usize,
        body: Box<Node>,
    },
}

/// Why an evaluation failed (the entry is then not selected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalError {
    /// Operand types do not fit (possible only through `dyn` values).
    NoOverload,
    /// A map has no such key, or a list no such index.
    NoSuchKey,
    /// Integer overflow, division by zero, or a time out of range.
    Arithmetic,
    /// A value cannot be converted.
    Conversion,
    /// A regular expression built at run time does not compile, or is over the size budget
    /// ([`REGEX_SIZE_LIMIT`](crate::REGEX_SIZE_LIMIT)).
    Regex,
}

type R<'a> = Result<Val<'a>, EvalError>;

pub(crate) struct Checker<'s> {
    src: &'s str,
    vars: HashMap<&'static str, (Type, Var)>,
    prefixes: HashSet<String>,
    /// Length of the longest variable name: a longer path is no variable or prefix.
    longest: usize,
    locals: Vec<(String, Type)>,
    now: i64,
}

/// ` (did you mean `x`?)` for the closest of `known` within `limit` edits, or nothing.
///
/// Names whose lengths differ by more than `limit` are skipped without computing a distance,
/// so a hostile 100 KB name costs one length comparison per candidate.
pub(crate) fn closest<'k>(
    name: &str,
    known: impl Iterator<Item = &'k str>,
    limit: usize,
) -> String {
    let n = name.chars().count();
    known
        .filter(|k| k.chars().count().abs_diff(n) <= limit)
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn did_you_mean(name: &str, known: &[&str]) -> String {
    closest(name, known.iter().copied(), 2)
}

/// A name for an error message: long ones are cut, so that an error stays small.
pub(crate) fn shown(name: &str) -> String {
    const MAX: usize = 80;
    match name.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_string(),
    }
}

/// The dotted name of a chain of field selections on an identifier (`src.pod.name`), if `e` is
/// one and the name is at most `max` bytes (longer ones are no variable). Iterative, and
/// linear in the part it reads.
fn path_of(e: &Expr, max: usize) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    let mut len = 0usize;
    let mut cur = e;
    loop {
        let (part, next) = match &cur.kind {
            ExprKind::Select(inner, f) => (f.as_str(), Some(inner.as_ref())),
            ExprKind::Ident(n) => (n.as_str(), None),
            _ => return None,
        };
        len += part.len() + usize::from(!parts.is_empty());
        if len > max {
            return None;
        }
        parts.push(part);
        match next {
            Some(inner) => cur = inner,
            None => break,
        }
    }
    parts.reverse();
    Some(parts.join("."))
}

/// The identifier at the root of a chain of field selections, if the chain has one.
fn root_ident(e: &Expr) -> Option<&str> {
    let mut cur = e;
    loop {
        match &cur.kind {
            ExprKind::Select(inner, _) => cur = inner,
            ExprKind::Ident(n) => return Some(n),
            _ => return None,
        }
    }
}

fn lit_const(l: &Lit) -> (Const, Type) {
    match l {
        Lit::Bool(b) => (Const::Bool(*b), Type::Bool),
        Lit::Int(i) => (Const::Int(*i), Type::Int),
        Lit::Uint(u) => (Const::Uint(*u), Type::Uint),
        Lit::Double(d) => (Const::Double(*d), Type::Double),
        Lit::Str(s) => (Const::Str(s.clone()), Type::Str),
        Lit::Bytes(b) => (Const::Bytes(b.clone()), Type::Bytes),
        Lit::Null => (Const::Null, Type::Null),
    }
}

fn compatible(a: &Type, b: &Type) -> bool {
    a == b
        || matches!(a, Type::Dyn | Type::Null)
        || matches!(b, Type::Dyn | Type::Null)
        || (a.is_numeric() && b.is_numeric())
        || matches!((a, b), (Type::List(x), Type::List(y)) | (Type::Map(_, x), Type::Map(_, y)) if compatible(x, y))
}

fn orderable(a: &Type, b: &Type) -> bool {
    matches!(a, Type::Dyn)
        || matches!(b, Type::Dyn)
        || (a.is_numeric() && b.is_numeric())
        || (a == b
            && matches!(
                a,
                Type::Str | Type::Bytes | Type::Bool | Type::Timestamp | Type::Duration
            ))
}

fn arith_type(op: Op, a: &Type, b: &Type) -> Option<Type> {
    use Type as T;
    if matches!(a, T::Dyn) || matches!(b, T::Dyn) {
        return Some(T::Dyn);
    }
    Some(match (op, a, b) {
        (Op::Add | Op::Sub | Op::Mul | Op::Div, x, y) if x == y && x.is_numeric() => x.clone(),
        (Op::Rem, x, y) if x == y && matches!(x, T::Int | T::Uint) => x.clone(),
        (Op::Add, T::Str, T::Str) => T::Str,
        (Op::Add, T::Bytes, T::Bytes) => T::Bytes,
        (Op::Add, T::List(x), T::List(_)) => T::List(x.clone()),
        (Op::Add, T::Timestamp, T::Duration) | (Op::Add, T::Duration, T::Timestamp) => T::Timestamp,
        (Op::Add | Op::Sub, T::Duration, T::Duration) => T::Duration,
        (Op::Sub, T::Timestamp, T::Duration) => T::Timestamp,
        (Op::Sub, T::Timestamp, T::Timestamp) => T::Duration,
        _ => return None,
    })
}

impl<'s> Checker<'s> {
    pub(crate) fn new(src: &'s str, now: Timestamp) -> Self {
        let mut vars = HashMap::new();
        let mut prefixes = HashSet::new();
        for (name, t, v) in variables() {
            let mut p = name;
            while let Some((head, _)) = p.rsplit_once('.') {
                prefixes.insert(head.to_string());
                p = head;
            }
            vars.insert(name, (t, v));
        }
        let longest = vars.keys().map(|k| k.len()).max().unwrap_or(0);
        Checker {
            src,
            vars,
            prefixes,
            longest,
            locals: Vec::new(),
            now: now.nanos(),
        }
    }

    fn err(&self, kind: ErrorKind, e: &Expr, msg: String) -> KflError {
        KflError::new(kind, self.src, e.span, msg)
    }

    fn suggest(&self, name: &str) -> String {
        let limit = (name.len() / 3).clamp(1, 3);
        let known = self
            .vars
            .keys()
            .copied()
            .chain(self.prefixes.iter().map(String::as_str))
            .chain(self.locals.iter().map(|(n, _)| n.as_str()));
        closest(name, known, limit)
    }

    pub(crate) fn check(&mut self, e: &Expr) -> Result<(Node, Type), KflError> {
        guarded(|| self.check_here(e))
    }

    fn check_here(&mut self, e: &Expr) -> Result<(Node, Type), KflError> {
        match &e.kind {
            ExprKind::Lit(l) => {
                let (c, t) = lit_const(l);
                Ok((Node::Const(c), t))
            }
            ExprKind::Ident(_) | ExprKind::Select(..) => self.name(e),
            ExprKind::Index(target, idx) => {
                let (tn, tt) = self.check(target)?;
                let (inn, it) = self.check(idx)?;
                let t = match &tt {
                    Type::List(el) if matches!(it, Type::Int | Type::Uint | Type::Dyn) => {
                        (**el).clone()
                    }
                    Type::Map(k, v) if compatible(k, &it) => (**v).clone(),
                    Type::Dyn => Type::Dyn,
                    _ => {
                        return Err(self.err(
                            ErrorKind::Type,
                            e,
                            format!("cannot index {} with {}", tt.name(), it.name()),
                        ))
                    }
                };
                Ok((Node::Index(Box::new(tn), Box::new(inn)), t))
            }
            ExprKind::Not(x) => {
                let (n, t) = self.check(x)?;
                if !matches!(t, Type::Bool | Type::Dyn) {
                    return Err(self.err(
                        ErrorKind::Type,
                        x,
                        format!("`!` needs a bool, found {}", t.name()),
                    ));
                }
                Ok((fold(Node::Not(Box::new(n))), Type::Bool))
            }
            ExprKind::Neg(x) => {
                let (n, t) = self.check(x)?;
                if !matches!(t, Type::Int | Type::Double | Type::Duration | Type::Dyn) {
                    return Err(self.err(
                        ErrorKind::Type,
                        x,
                        format!("`-` needs a number, found {}", t.name()),
                    ));
                }
                Ok((fold(Node::Neg(Box::new(n))), t))
            }
            ExprKind::Binary(op, a, b) => self.binary(e, *op, a, b),
            ExprKind::Cond(c, a, b) => {
                let (cn, ct) = self.check(c)?;
                if !matches!(ct, Type::Bool | Type::Dyn) {
                    return Err(self.err(
                        ErrorKind::Type,
                        c,
                        format!("the condition of `?:` must be a bool, found {}", ct.name()),
                    ));
                }
                let (an, at) = self.check(a)?;
                let (bn, bt) = self.check(b)?;
                if !compatible(&at, &bt) {
                    return Err(self.err(
                        ErrorKind::Type,
                        e,
                        format!(
                            "the branches of `?:` differ: {} and {}",
                            at.name(),
                            bt.name()
                        ),
                    ));
                }
                let t = if at == bt { at } else { Type::Dyn };
                Ok((Node::Cond(Box::new(cn), Box::new(an), Box::new(bn)), t))
            }
            ExprKind::List(items) => {
                let mut nodes = Vec::new();
                let mut el: Option<Type> = None;
                for i in items {
                    let (n, t) = self.check(i)?;
                    el = Some(match el {
                        None => t,
                        Some(p) if p == t => p,
                        Some(_) => Type::Dyn,
                    });
                    nodes.push(n);
                }
                Ok((
                    Node::List(nodes),
                    Type::List(Box::new(el.unwrap_or(Type::Dyn))),
                ))
            }
            ExprKind::Map(entries) => {
                let mut nodes = Vec::new();
                let (mut kt, mut vt): (Option<Type>, Option<Type>) = (None, None);
                for (k, v) in entries {
                    let (kn, k_t) = self.check(k)?;
                    if !matches!(
                        k_t,
                        Type::Str | Type::Int | Type::Uint | Type::Bool | Type::Dyn
                    ) {
                        return Err(self.err(
                            ErrorKind::Type,
                            k,
                            format!("a map key cannot be {}", k_t.name()),
                        ));
                    }
                    let (vn, v_t) = self.check(v)?;
                    kt = Some(if kt.as_ref().is_none_or(|p| *p == k_t) {
                        k_t
                    } else {
                        Type::Dyn
                    });
                    vt = Some(if vt.as_ref().is_none_or(|p| *p == v_t) {
                        v_t
                    } else {
                        Type::Dyn
                    });
                    nodes.push((kn, vn));
                }
                Ok((
                    Node::Map(nodes),
                    Type::Map(
                        Box::new(kt.unwrap_or(Type::Dyn)),
                        Box::new(vt.unwrap_or(Type::Dyn)),
                    ),
                ))
            }
            ExprKind::Call { target, func, args } => self.call(e, target.as_deref(), func, args),
        }
    }

    /// A name or a field selection: a local, a variable (`src.pod.name`), or a key of a
    /// map value (`request.headers.host`). Each level reads at most the longest variable
    /// name's worth of the chain, so a long chain is checked in linear time.
    fn name(&mut self, e: &Expr) -> Result<(Node, Type), KflError> {
        if let ExprKind::Ident(n) = &e.kind {
            if let Some(slot) = self.locals.iter().rposition(|(l, _)| l == n) {
                return Ok((Node::Local(slot), self.locals[slot].1.clone()));
            }
        }
        if let Some(p) = path_of(e, self.longest) {
            if let Some((name, (t, v))) = self.vars.get_key_value(p.as_str()) {
                return Ok((Node::Var(*v, t.clone(), name), t.clone()));
            }
            if self.prefixes.contains(&p) {
                let mut fields: Vec<&str> = self
                    .vars
                    .keys()
                    .filter(|k| {
                        k.strip_prefix(p.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                    })
                    .copied()
                    .collect();
                fields.sort_unstable();
                fields.truncate(4);
                return Err(self.err(
                    ErrorKind::Unknown,
                    e,
                    format!(
                        "`{p}` is not a value; use one of its fields, e.g. `{}`",
                        fields.join("`, `")
                    ),
                ));
            }
        }
        let Some(root) = root_ident(e) else {
            // Fields of a computed value (`dyn(x).a`): map selection.
            return self.map_select(e);
        };
        if self.locals.iter().any(|(l, _)| l == root) {
            return self.map_select(e);
        }
        if let ExprKind::Select(inner, _) = &e.kind {
            // A field of a variable that is not a namespace: map selection.
            let inner_is_var =
                path_of(inner, self.longest).is_some_and(|ip| self.vars.contains_key(ip.as_str()));
            if inner_is_var {
                return self.map_select(e);
            }
        }
        let p = path_of(e, usize::MAX).unwrap_or_default();
        Err(self.err(
            ErrorKind::Unknown,
            e,
            format!("unknown variable `{}`{}", shown(&p), self.suggest(&p)),
        ))
    }

    /// `m.key` on a map value is `m["key"]`.
    fn map_select(&mut self, e: &Expr) -> Result<(Node, Type), KflError> {
        let ExprKind::Select(inner, field) = &e.kind else {
            return Err(self.err(ErrorKind::Unknown, e, "not a value".into()));
        };
        let (n, t) = self.check(inner)?;
        match t {
            Type::Map(_, v) => Ok((
                Node::Index(
                    Box::new(n),
                    Box::new(Node::Const(Const::Str(field.clone()))),
                ),
                *v,
            )),
            Type::Dyn => Ok((
                Node::Index(
                    Box::new(n),
                    Box::new(Node::Const(Const::Str(field.clone()))),
                ),
                Type::Dyn,
            )),
            other => Err(self.err(
                ErrorKind::Unknown,
                e,
                format!("{} has no field `{}`", other.name(), shown(field)),
            )),
        }
    }

    fn binary(&mut self, e: &Expr, op: Op, a: &Expr, b: &Expr) -> Result<(Node, Type), KflError> {
        let (an, at) = self.check(a)?;
        let (bn, bt) = self.check(b)?;
        let bad = |s: &Self, what: &str| {
            s.err(
                ErrorKind::Type,
                e,
                format!(
                    "`{}` cannot {what} {} with {}",
                    op.as_str(),
                    at.name(),
                    bt.name()
                ),
            )
        };
        match op {
            Op::And | Op::Or => {
                for (x, t) in [(a, &at), (b, &bt)] {
                    if !matches!(t, Type::Bool | Type::Dyn) {
                        return Err(self.err(
                            ErrorKind::Type,
                            x,
                            format!("`{}` needs bools, found {}", op.as_str(), t.name()),
                        ));
                    }
                }
                let n = if op == Op::And {
                    Node::And(Box::new(an), Box::new(bn))
                } else {
                    Node::Or(Box::new(an), Box::new(bn))
                };
                Ok((fold(n), Type::Bool))
            }
            Op::Eq | Op::Ne => {
                if !compatible(&at, &bt) {
                    return Err(bad(self, "compare"));
                }
                Ok((fold(Node::Cmp(op, Box::new(an), Box::new(bn))), Type::Bool))
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                if !orderable(&at, &bt) {
                    return Err(bad(self, "compare"));
                }
                Ok((fold(Node::Cmp(op, Box::new(an), Box::new(bn))), Type::Bool))
            }
            Op::In => {
                let ok = match &bt {
                    Type::List(el) => compatible(&at, el),
                    Type::Map(k, _) => compatible(&at, k),
                    Type::Dyn => true,
                    _ => false,
                };
                if !ok {
                    return Err(self.err(
                        ErrorKind::Type,
                        e,
                        format!(
                            "`in` needs a list or map of {} on its right, found {}",
                            at.name(),
                            bt.name()
                        ),
                    ));
                }
                // A constant list of strings becomes a set: one hash lookup per entry.
                if let Node::List(items) = &bn {
                    if items
                        .iter()
                        .all(|i| matches!(i, Node::Const(Const::Str(_))))
                    {
                        let set = items
                            .iter()
                            .filter_map(|i| match i {
                                Node::Const(Const::Str(s)) => Some(s.clone()),
                                _ => None,
                            })
                            .collect();
                        return Ok((Node::InSet(Box::new(an), set), Type::Bool));
                    }
                }
                Ok((fold(Node::In(Box::new(an), Box::new(bn))), Type::Bool))
            }
            _ => match arith_type(op, &at, &bt) {
                Some(t) => {
                    let n = fold(Node::Arith(op, Box::new(an), Box::new(bn)));
                    // Constant times that did not fold overflowed: say so now rather than
                    // fail on every entry.
                    if let Node::Arith(_, a, b) = &n {
                        let consts = matches!((&**a, &**b), (Node::Const(_), Node::Const(_)));
                        if consts && matches!(t, Type::Timestamp | Type::Duration) {
                            return Err(self.err(
                                ErrorKind::Limit,
                                e,
                                format!(
                                    "`{}` takes the time out of range: timestamps are within \
                                     {TIME_RANGE}, durations within {DURATION_RANGE}",
                                    op.as_str()
                                ),
                            ));
                        }
                    }
                    Ok((n, t))
                }
                None => Err(bad(self, "combine")),
            },
        }
    }

    /// Why the constant `c` does not convert: out of the time range, or not convertible.
    fn conversion_error(&self, arg: &Expr, func: &str, conv: Conv, c: &Const) -> KflError {
        let (kind, msg) = match (conv, c) {
            (Conv::Timestamp, Const::Str(s)) if time::timestamp_out_of_range(s) => (
                ErrorKind::Limit,
                format!(
                    "`timestamp` out of range: {:?} is not within {TIME_RANGE}",
                    shown(s)
                ),
            ),
            (Conv::Timestamp, Const::Int(i)) => (
                ErrorKind::Limit,
                format!("`timestamp` out of range: {i} seconds is not within {TIME_RANGE}"),
            ),
            (Conv::Duration, Const::Str(s)) if time::duration(s) == Err(DurationError::Range) => (
                ErrorKind::Limit,
                format!(
                    "`duration` out of range: {:?} is not within {DURATION_RANGE}",
                    shown(s)
                ),
            ),
            (_, Const::Str(s)) => (
                ErrorKind::Type,
                format!("`{func}` cannot convert {:?}", shown(s)),
            ),
            (_, other) => (
                ErrorKind::Type,
                format!("`{func}` cannot convert this {}", other.val().type_name()),
            ),
        };
        self.err(kind, arg, msg)
    }

    fn args(
        &mut self,
        e: &Expr,
        func: &str,
        args: &[Expr],
        n: usize,
    ) -> Result<Vec<(Node, Type)>, KflError> {
        if args.len() != n {
            return Err(self.err(
                ErrorKind::Type,
                e,
                format!(
                    "`{func}` takes {n} argument{}, found {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        args.iter().map(|a| self.check(a)).collect()
    }

    fn call(
        &mut self,
        e: &Expr,
        target: Option<&Expr>,
        func: &str,
        args: &[Expr],
    ) -> Result<(Node, Type), KflError> {
        let type_err = |s: &Self, msg: String| s.err(ErrorKind::Type, e, msg);
        match target {
            None => match func {
                "now" => {
                    self.args(e, func, args, 0)?;
                    Ok((Node::Const(Const::Timestamp(self.now)), Type::Timestamp))
                }
                "size" => {
                    let mut a = self.args(e, func, args, 1)?;
                    let (n, t) = a.remove(0);
                    if !matches!(
                        t,
                        Type::Str | Type::Bytes | Type::List(_) | Type::Map(..) | Type::Dyn
                    ) {
                        return Err(type_err(
                            self,
                            format!(
                                "`size` needs a string, bytes, list or map, found {}",
                                t.name()
                            ),
                        ));
                    }
                    Ok((fold(Node::Size(Box::new(n))), Type::Int))
                }
                "timestamp" | "duration" | "int" | "uint" | "double" | "string" | "bool"
                | "bytes" | "dyn" => {
                    let mut a = self.args(e, func, args, 1)?;
                    let (n, t) = a.remove(0);
                    let (conv, out) = match func {
                        "timestamp" => (Conv::Timestamp, Type::Timestamp),
                        "duration" => (Conv::Duration, Type::Duration),
                        "int" => (Conv::Int, Type::Int),
                        "uint" => (Conv::Uint, Type::Uint),
                        "double" => (Conv::Double, Type::Double),
                        "string" => (Conv::Str, Type::Str),
                        "bool" => (Conv::Bool, Type::Bool),
                        "bytes" => (Conv::Bytes, Type::Bytes),
                        _ => (Conv::Dyn, Type::Dyn),
                    };
                    if matches!(conv, Conv::Timestamp | Conv::Duration)
                        && !matches!(t, Type::Str | Type::Dyn | Type::Int)
                        && t != out
                    {
                        return Err(type_err(
                            self,
                            format!("`{func}` needs a string, found {}", t.name()),
                        ));
                    }
                    let node = fold(Node::Convert(conv, Box::new(n)));
                    if let Node::Convert(_, inner) = &node {
                        if let Node::Const(c) = inner.as_ref() {
                            return Err(self.conversion_error(&args[0], func, conv, c));
                        }
                    }
                    Ok((node, out))
                }
                "map_get" => {
                    let a = self.args(e, func, args, 3)?;
                    let mut it = a.into_iter();
                    let (mn, mt) = it.next().ok_or_else(|| type_err(self, "map_get".into()))?;
                    let (kn, kt) = it.next().ok_or_else(|| type_err(self, "map_get".into()))?;
                    let (dn, dt) = it.next().ok_or_else(|| type_err(self, "map_get".into()))?;
                    let vt = match &mt {
                        Type::Map(k, v) if compatible(k, &kt) && compatible(v, &dt) => {
                            (**v).clone()
                        }
                        Type::Dyn => dt.clone(),
                        _ => {
                            return Err(type_err(
                                self,
                                format!(
                                    "`map_get` needs (map, key, default), found ({}, {}, {})",
                                    mt.name(),
                                    kt.name(),
                                    dt.name()
                                ),
                            ))
                        }
                    };
                    Ok((Node::MapGet(Box::new(mn), Box::new(kn), Box::new(dn)), vt))
                }
                "has" => {
                    if args.len() != 1 {
                        return Err(type_err(self, "`has` takes one field selection".into()));
                    }
                    let arg = &args[0];
                    if let Some(p) = path_of(arg, self.longest) {
                        if self.vars.contains_key(p.as_str()) {
                            let (n, _) = self.check(arg)?;
                            return Ok((Node::HasVar(Box::new(n)), Type::Bool));
                        }
                    }
                    match &arg.kind {
                        ExprKind::Select(inner, field) => {
                            let (n, t) = self.check(inner)?;
                            if !matches!(t, Type::Map(..) | Type::Dyn) {
                                return Err(self.err(
                                    ErrorKind::Type,
                                    arg,
                                    format!("`has` needs a field of a map, found {}", t.name()),
                                ));
                            }
                            Ok((Node::HasKey(Box::new(n), field.clone()), Type::Bool))
                        }
                        _ => Err(self.err(
                            ErrorKind::Type,
                            arg,
                            "`has` takes a field selection like `has(m.key)`".into(),
                        )),
                    }
                }
                "matches" => {
                    let a = self.args(e, func, args, 2)?;
                    let mut it = a.into_iter();
                    let (s, st) = it.next().ok_or_else(|| type_err(self, "matches".into()))?;
                    let (p, pt) = it.next().ok_or_else(|| type_err(self, "matches".into()))?;
                    self.matches(e, &args[1], s, st, p, pt)
                }
                other => {
                    let known = [
                        "now",
                        "size",
                        "timestamp",
                        "duration",
                        "int",
                        "uint",
                        "double",
                        "string",
                        "bool",
                        "bytes",
                        "dyn",
                        "map_get",
                        "has",
                        "matches",
                    ];
                    let hint = did_you_mean(other, &known);
                    Err(self.err(
                        ErrorKind::Unknown,
                        e,
                        format!("unknown function `{}`{hint}", shown(other)),
                    ))
                }
            },
            Some(t) => {
                if matches!(func, "exists" | "all" | "exists_one" | "filter" | "map") {
                    return self.comprehension(e, t, func, args);
                }
                let (tn, tt) = self.check(t)?;
                match func {
                    "contains" | "startsWith" | "endsWith" => {
                        let mut a = self.args(e, func, args, 1)?;
                        let (an, at) = a.remove(0);
                        if !matches!(tt, Type::Str | Type::Dyn)
                            || !matches!(at, Type::Str | Type::Dyn)
                        {
                            return Err(type_err(
                                self,
                                format!(
                                    "`{func}` works on strings: found {}.{func}({})",
                                    tt.name(),
                                    at.name()
                                ),
                            ));
                        }
                        let f = match func {
                            "contains" => StrFn::Contains,
                            "startsWith" => StrFn::StartsWith,
                            _ => StrFn::EndsWith,
                        };
                        Ok((fold(Node::Str(f, Box::new(tn), Box::new(an))), Type::Bool))
                    }
                    "matches" => {
                        let mut a = self.args(e, func, args, 1)?;
                        let (p, pt) = a.remove(0);
                        self.matches(e, &args[0], tn, tt, p, pt)
                    }
                    "size" => {
                        self.args(e, func, args, 0)?;
                        if !matches!(
                            tt,
                            Type::Str | Type::Bytes | Type::List(_) | Type::Map(..) | Type::Dyn
                        ) {
                            return Err(type_err(
                                self,
                                format!(
                                    "`size` needs a string, bytes, list or map, found {}",
                                    tt.name()
                                ),
                            ));
                        }
                        Ok((fold(Node::Size(Box::new(tn))), Type::Int))
                    }
                    "lowerAscii" | "upperAscii" => {
                        self.args(e, func, args, 0)?;
                        if !matches!(tt, Type::Str | Type::Dyn) {
                            return Err(type_err(
                                self,
                                format!("`{func}` works on strings, found {}", tt.name()),
                            ));
                        }
                        let c = if func == "lowerAscii" {
                            Conv::Lower
                        } else {
                            Conv::Upper
                        };
                        Ok((fold(Node::Convert(c, Box::new(tn))), Type::Str))
                    }
                    other => {
                        let known = [
                            "contains",
                            "startsWith",
                            "endsWith",
                            "matches",
                            "size",
                            "lowerAscii",
                            "upperAscii",
                            "exists",
                            "all",
                            "exists_one",
                            "filter",
                            "map",
                        ];
                        let hint = did_you_mean(other, &known);
                        Err(self.err(
                            ErrorKind::Unknown,
                            e,
                            format!("unknown method `{}` on {}{hint}", shown(other), tt.name()),
                        ))
                    }
                }
            }
        }
    }

    fn matches(
        &mut self,
        e: &Expr,
        pat: &Expr,
        s: Node,
        st: Type,
        p: Node,
        pt: Type,
    ) -> Result<(Node, Type), KflError> {
        if !matches!(st, Type::Str | Type::Dyn) || !matches!(pt, Type::Str | Type::Dyn) {
            return Err(self.err(
                ErrorKind::Type,
                e,
                format!(
                    "`matches` works on strings: found {} and {}",
                    st.name(),
                    pt.name()
                ),
            ));
        }
        if let Node::Const(Const::Str(re)) = &p {
            let r = regexes::compile(re).map_err(|err| match err {
                regex::Error::CompiledTooBig(limit) => self.err(
                    ErrorKind::Limit,
                    pat,
                    format!(
                        "regular expression too big: compiled, it exceeds {limit} bytes \
                         (Unicode classes such as `\\w` are large; `(?-u:\\w)` is ASCII only)"
                    ),
                ),
                other => self.err(
                    ErrorKind::Type,
                    pat,
                    format!(
                        "bad regular expression: {}",
                        other.to_string().lines().last().unwrap_or("invalid")
                    ),
                ),
            })?;
            return Ok((Node::Matches(Box::new(s), r), Type::Bool));
        }
        Ok((
            Node::MatchesDyn(Box::new(s), Box::new(p), RegexCache::default()),
            Type::Bool,
        ))
    }

    fn comprehension(
        &mut self,
        e: &Expr,
        target: &Expr,
        func: &str,
        args: &[Expr],
    ) -> Result<(Node, Type), KflError> {
        if args.len() != 2 {
            return Err(self.err(
                ErrorKind::Type,
                e,
                format!("`{func}` takes a variable name and an expression"),
            ));
        }
        let ExprKind::Ident(var) = &args[0].kind else {
            return Err(self.err(
                ErrorKind::Type,
                &args[0],
                format!("the first argument of `{func}` must be a variable name"),
            ));
        };
        let (rn, rt) = self.check(target)?;
        let el = match &rt {
            Type::List(t) => (**t).clone(),
            Type::Map(k, _) => (**k).clone(),
            Type::Dyn => Type::Dyn,
            other => {
                return Err(self.err(
                    ErrorKind::Type,
                    target,
                    format!("`{func}` needs a list or map, found {}", other.name()),
                ))
            }
        };
        let slot = self.locals.len();
        self.locals.push((var.clone(), el));
        let body = self.check(&args[1]);
        self.locals.pop();
        let (bn, bt) = body?;
        let kind = match func {
            "all" => Comp::All,
            "exists" => Comp::Exists,
            "exists_one" => Comp::ExistsOne,
            "filter" => Comp::Filter,
            _ => Comp::Map,
        };
        if kind != Comp::Map && !matches!(bt, Type::Bool | Type::Dyn) {
            return Err(self.err(
                ErrorKind::Type,
                &args[1],
                format!(
                    "the predicate of `{func}` must be a bool, found {}",
                    bt.name()
                ),
            ));
        }
        let t = match kind {
            Comp::Filter => rt.clone(),
            Comp::Map => Type::List(Box::new(bt)),
            _ => Type::Bool,
        };
        Ok((
            Node::Comp {
                kind,
                range: Box::new(rn),
                slot,
                body: Box::new(bn),
            },
            t,
        ))
    }
}

/// Evaluates constant subtrees now.
fn fold(n: Node) -> Node {
    let all_const = match &n {
        Node::Not(a) | Node::Neg(a) | Node::Size(a) | Node::Convert(_, a) => {
            matches!(**a, Node::Const(_))
        }
        Node::And(a, b)
        | Node::Or(a, b)
        | Node::Cmp(_, a, b)
        | Node::Arith(_, a, b)
        | Node::Str(_, a, b) => matches!(**a, Node::Const(_)) && matches!(**b, Node::Const(_)),
        _ => false,
    };
    if !all_const {
        return n;
    }
    let mut locals = Vec::new();
    let folded = match eval_node(&n, None, &mut locals) {
        Ok(v) => Const::from_val(&v),
        Err(_) => None,
    };
    match folded {
        Some(c) => Node::Const(c),
        None => n,
    }
}

fn bool_of(v: R<'_>) -> Result<bool, EvalError> {
    match v? {
        Val::Bool(b) => Ok(b),
        _ => Err(EvalError::NoOverload),
    }
}

fn arith<'a>(op: Op, a: Val<'a>, b: Val<'a>) -> R<'a> {
    use Val as V;
    let ovf = EvalError::Arithmetic;
    Ok(match (op, a, b) {
        (Op::Add, V::Int(x), V::Int(y)) => V::Int(x.checked_add(y).ok_or(ovf)?),
        (Op::Sub, V::Int(x), V::Int(y)) => V::Int(x.checked_sub(y).ok_or(ovf)?),
        (Op::Mul, V::Int(x), V::Int(y)) => V::Int(x.checked_mul(y).ok_or(ovf)?),
        (Op::Div, V::Int(x), V::Int(y)) => V::Int(x.checked_div(y).ok_or(ovf)?),
        (Op::Rem, V::Int(x), V::Int(y)) => V::Int(x.checked_rem(y).ok_or(ovf)?),
        (Op::Add, V::Uint(x), V::Uint(y)) => V::Uint(x.checked_add(y).ok_or(ovf)?),
        (Op::Sub, V::Uint(x), V::Uint(y)) => V::Uint(x.checked_sub(y).ok_or(ovf)?),
        (Op::Mul, V::Uint(x), V::Uint(y)) => V::Uint(x.checked_mul(y).ok_or(ovf)?),
        (Op::Div, V::Uint(x), V::Uint(y)) => V::Uint(x.checked_div(y).ok_or(ovf)?),
        (Op::Rem, V::Uint(x), V::Uint(y)) => V::Uint(x.checked_rem(y).ok_or(ovf)?),
        (Op::Add, V::Double(x), V::Double(y)) => V::Double(x + y),
        (Op::Sub, V::Double(x), V::Double(y)) => V::Double(x - y),
        (Op::Mul, V::Double(x), V::Double(y)) => V::Double(x * y),
        (Op::Div, V::Double(x), V::Double(y)) => V::Double(x / y),
        (Op::Add, V::Timestamp(t), V::Duration(d)) | (Op::Add, V::Duration(d), V::Timestamp(t)) => {
            V::Timestamp(t.checked_add(d).ok_or(ovf)?)
        }
        (Op::Sub, V::Timestamp(t), V::Duration(d)) => V::Timestamp(t.checked_sub(d).ok_or(ovf)?),
        (Op::Sub, V::Timestamp(a), V::Timestamp(b)) => V::Duration(a.checked_sub(b).ok_or(ovf)?),
        (Op::Add, V::Duration(a), V::Duration(b)) => V::Duration(a.checked_add(b).ok_or(ovf)?),
        (Op::Sub, V::Duration(a), V::Duration(b)) => V::Duration(a.checked_sub(b).ok_or(ovf)?),
        (Op::Add, a, b) if a.is_str() && b.is_str() => {
            let mut s = a.with_str(str::to_string).unwrap_or_default();
            b.with_str(|y| s.push_str(y));
            V::Owned(s)
        }
        (Op::Add, a, b) if a.bytes().is_some() && b.bytes().is_some() => {
            let mut v = a.bytes().unwrap_or(&[]).to_vec();
            v.extend_from_slice(b.bytes().unwrap_or(&[]));
            V::OwnedBytes(v)
        }
        (Op::Add, V::List(x), V::List(y)) => {
            let mut v = list_items(&x);
            v.extend(list_items(&y));
            V::List(ListV::Vals(v))
        }
        _ => return Err(EvalError::NoOverload),
    })
}

fn convert<'a>(c: Conv, v: Val<'a>) -> R<'a> {
    use Val as V;
    let bad = EvalError::Conversion;
    Ok(match (c, v) {
        (Conv::Dyn, v) => v,
        (Conv::Int, V::Int(i)) => V::Int(i),
        (Conv::Int, V::Uint(u)) => V::Int(i64::try_from(u).map_err(|_| bad)?),
        (Conv::Int, V::Double(d)) if d.is_finite() && d > -9.3e18 && d < 9.3e18 => V::Int(d as i64),
        (Conv::Int, V::Timestamp(t)) => V::Int(t.div_euclid(1_000_000_000)),
        (Conv::Int, v) if v.is_str() => {
            V::Int(v.with_str(|s| s.parse::<i64>().ok()).flatten().ok_or(bad)?)
        }
        (Conv::Uint, V::Uint(u)) => V::Uint(u),
        (Conv::Uint, V::Int(i)) => V::Uint(u64::try_from(i).map_err(|_| bad)?),
        (Conv::Uint, V::Double(d)) if (0.0..1.8e19).contains(&d) => V::Uint(d as u64),
        (Conv::Uint, v) if v.is_str() => {
            V::Uint(v.with_str(|s| s.parse::<u64>().ok()).flatten().ok_or(bad)?)
        }
        (Conv::Double, V::Double(d)) => V::Double(d),
        (Conv::Double, V::Int(i)) => V::Double(i as f64),
        (Conv::Double, V::Uint(u)) => V::Double(u as f64),
        (Conv::Double, v) if v.is_str() => {
            V::Double(v.with_str(|s| s.parse::<f64>().ok()).flatten().ok_or(bad)?)
        }
        (Conv::Str, v) if v.is_str() => v,
        (Conv::Str, V::Int(i)) => V::Owned(i.to_string()),
        (Conv::Str, V::Uint(u)) => V::Owned(u.to_string()),
        (Conv::Str, V::Double(d)) => V::Owned(d.to_string()),
        (Conv::Str, V::Bool(b)) => V::Owned(b.to_string()),
        (Conv::Str, V::Timestamp(t)) => V::Owned(Timestamp(t).to_string()),
        (Conv::Str, v) if v.bytes().is_some() => {
            V::Owned(String::from_utf8(v.bytes().unwrap_or(&[]).to_vec()).map_err(|_| bad)?)
        }
        (Conv::Bool, V::Bool(b)) => V::Bool(b),
        (Conv::Bool, v) if v.is_str() => V::Bool(
            match v.with_str(str::to_string).unwrap_or_default().as_str() {
                "true" | "True" | "TRUE" | "t" | "1" => true,
                "false" | "False" | "FALSE" | "f" | "0" => false,
                _ => return Err(bad),
            },
        ),
        (Conv::Bytes, v) if v.bytes().is_some() => v,
        (Conv::Bytes, v) if v.is_str() => {
            V::OwnedBytes(v.with_str(|s| s.as_bytes().to_vec()).unwrap_or_default())
        }
        (Conv::Timestamp, V::Timestamp(t)) => V::Timestamp(t),
        (Conv::Timestamp, V::Int(i)) => V::Timestamp(i.checked_mul(1_000_000_000).ok_or(bad)?),
        (Conv::Timestamp, v) if v.is_str() => V::Timestamp(
            v.with_str(Timestamp::parse_rfc3339)
                .flatten()
                .ok_or(bad)?
                .nanos(),
        ),
        (Conv::Duration, V::Duration(d)) => V::Duration(d),
        (Conv::Duration, v) if v.is_str() => {
            V::Duration(v.with_str(parse_duration).flatten().ok_or(bad)?)
        }
        (Conv::Lower, v) if v.is_str() => {
            V::Owned(v.with_str(str::to_ascii_lowercase).unwrap_or_default())
        }
        (Conv::Upper, v) if v.is_str() => {
            V::Owned(v.with_str(str::to_ascii_uppercase).unwrap_or_default())
        }
        _ => return Err(EvalError::NoOverload),
    })
}

fn is_default(v: &Val<'_>) -> bool {
    match v {
        Val::Bool(b) => !b,
        Val::Int(i) => *i == 0,
        Val::Uint(u) => *u == 0,
        Val::Double(d) => *d == 0.0,
        Val::Str(s) => s.is_empty(),
        Val::Owned(s) => s.is_empty(),
        Val::IpStr(_) => false,
        Val::Bytes(b) => b.is_empty(),
        Val::OwnedBytes(b) => b.is_empty(),
        Val::Timestamp(t) | Val::Duration(t) => *t == 0,
        Val::Null => true,
        Val::List(l) => list_len(l) == 0,
        Val::Map(m) => map_len(m) == 0,
    }
}

/// Evaluates a condition: the logical nodes and comparisons answer a bool directly, without
/// building values for the intermediate results.
pub(crate) fn test<'a>(
    n: &'a Node,
    e: Option<&'a Entry>,
    locals: &mut Vec<Val<'a>>,
) -> Result<bool, EvalError> {
    guarded(|| test_here(n, e, locals))
}

fn test_here<'a>(
    n: &'a Node,
    e: Option<&'a Entry>,
    locals: &mut Vec<Val<'a>>,
) -> Result<bool, EvalError> {
    match n {
        Node::And(a, b) => match test(a, e, locals) {
            Ok(false) => Ok(false),
            first => match test(b, e, locals) {
                Ok(false) => Ok(false),
                Ok(true) => first,
                Err(err) => Err(err),
            },
        },
        Node::Or(a, b) => match test(a, e, locals) {
            Ok(true) => Ok(true),
            first => match test(b, e, locals) {
                Ok(true) => Ok(true),
                Ok(false) => first,
                Err(err) => Err(err),
            },
        },
        Node::Not(a) => Ok(!test(a, e, locals)?),
        Node::Const(Const::Bool(b)) => Ok(*b),
        Node::Var(v, t, _) => match e.map(|e| read(*v, t, e)) {
            Some(Val::Bool(b)) => Ok(b),
            _ => Err(EvalError::NoOverload),
        },
        Node::Cmp(op, a, b) => {
            let x = eval_node(a, e, locals)?;
            let y = eval_node(b, e, locals)?;
            Ok(match op {
                Op::Eq => x.equals(&y),
                Op::Ne => !x.equals(&y),
                _ => {
                    let o = x.compare(&y).ok_or(EvalError::NoOverload)?;
                    match op {
                        Op::Lt => o.is_lt(),
                        Op::Le => o.is_le(),
                        Op::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }
                }
            })
        }
        _ => bool_of(eval_node(n, e, locals)),
    }
}

/// Evaluates `n` against `e` (`None` only while folding constants).
pub(crate) fn eval_node<'a>(n: &'a Node, e: Option<&'a Entry>, locals: &mut Vec<Val<'a>>) -> R<'a> {
    guarded(|| eval_here(n, e, locals))
}

fn eval_here<'a>(n: &'a Node, e: Option<&'a Entry>, locals: &mut Vec<Val<'a>>) -> R<'a> {
    match n {
        Node::Const(c) => Ok(c.val()),
        Node::Var(v, t, _) => match e {
            Some(e) => Ok(read(*v, t, e)),
            None => Err(EvalError::NoOverload),
        },
        Node::Local(i) => locals.get(*i).cloned().ok_or(EvalError::NoOverload),
        Node::Not(_) | Node::And(..) | Node::Or(..) | Node::Cmp(..) => {
            test(n, e, locals).map(Val::Bool)
        }
        Node::Neg(a) => match eval_node(a, e, locals)? {
            Val::Int(i) => Ok(Val::Int(i.checked_neg().ok_or(EvalError::Arithmetic)?)),
            Val::Double(d) => Ok(Val::Double(-d)),
            Val::Duration(d) => Ok(Val::Duration(d.checked_neg().ok_or(EvalError::Arithmetic)?)),
            _ => Err(EvalError::NoOverload),
        },
        // CEL's commutative logic (a definite false or true wins over an error) is in `test`.
        Node::Cond(c, a, b) => {
            if bool_of(eval_node(c, e, locals))? {
                eval_node(a, e, locals)
            } else {
                eval_node(b, e, locals)
            }
        }
        Node::Arith(op, a, b) => {
            let x = eval_node(a, e, locals)?;
            let y = eval_node(b, e, locals)?;
            arith(*op, x, y)
        }
        Node::In(a, b) => {
            let x = eval_node(a, e, locals)?;
            match eval_node(b, e, locals)? {
                Val::List(l) => Ok(Val::Bool(list_contains(&l, &x))),
                Val::Map(m) => Ok(Val::Bool(map_get(&m, &x).is_some())),
                _ => Err(EvalError::NoOverload),
            }
        }
        Node::InSet(a, set) => {
            let x = eval_node(a, e, locals)?;
            x.with_str(|s| Val::Bool(set.contains(s)))
                .ok_or(EvalError::NoOverload)
        }
        Node::Index(a, i) => {
            let x = eval_node(a, e, locals)?;
            let k = eval_node(i, e, locals)?;
            match x {
                Val::Map(m) => map_get(&m, &k).ok_or(EvalError::NoSuchKey),
                Val::List(l) => {
                    let idx = match num(&k) {
                        Some(Num::I(i)) => usize::try_from(i).map_err(|_| EvalError::NoSuchKey)?,
                        Some(Num::U(u)) => usize::try_from(u).map_err(|_| EvalError::NoSuchKey)?,
                        _ => return Err(EvalError::NoOverload),
                    };
                    match &l {
                        ListV::Strs(s) => s
                            .get(idx)
                            .map(|x| Val::Str(x.as_str()))
                            .ok_or(EvalError::NoSuchKey),
                        _ => list_items(&l)
                            .into_iter()
                            .nth(idx)
                            .ok_or(EvalError::NoSuchKey),
                    }
                }
                _ => Err(EvalError::NoOverload),
            }
        }
        Node::List(items) => {
            let mut v = Vec::with_capacity(items.len());
            for i in items {
                v.push(eval_node(i, e, locals)?);
            }
            Ok(Val::List(ListV::Vals(v)))
        }
        Node::Map(items) => {
            let mut v = Vec::with_capacity(items.len());
            for (k, x) in items {
                v.push((eval_node(k, e, locals)?, eval_node(x, e, locals)?));
            }
            Ok(Val::Map(MapV::Vals(v)))
        }
        Node::Str(f, a, b) => {
            let x = eval_node(a, e, locals)?;
            let y = eval_node(b, e, locals)?;
            x.with_str(|s| {
                y.with_str(|p| match f {
                    StrFn::Contains => s.contains(p),
                    StrFn::StartsWith => s.starts_with(p),
                    StrFn::EndsWith => s.ends_with(p),
                })
            })
            .flatten()
            .map(Val::Bool)
            .ok_or(EvalError::NoOverload)
        }
        Node::Matches(a, re) => {
            let x = eval_node(a, e, locals)?;
            x.with_str(|s| Val::Bool(re.is_match(s)))
                .ok_or(EvalError::NoOverload)
        }
        Node::MatchesDyn(a, p, cache) => {
            let x = eval_node(a, e, locals)?;
            let pat = eval_node(p, e, locals)?;
            let re = pat
                .with_str(|p| cache.get(p))
                .ok_or(EvalError::NoOverload)?
                .ok_or(EvalError::Regex)?;
            x.with_str(|s| Val::Bool(re.is_match(s)))
                .ok_or(EvalError::NoOverload)
        }
        Node::Size(a) => {
            let x = eval_node(a, e, locals)?;
            let n = match &x {
                Val::List(l) => list_len(l),
                Val::Map(m) => map_len(m),
                v if v.is_str() => v.with_str(|s| s.chars().count()).unwrap_or(0),
                v if v.bytes().is_some() => v.bytes().map_or(0, <[u8]>::len),
                _ => return Err(EvalError::NoOverload),
            };
            Ok(Val::Int(i64::try_from(n).unwrap_or(i64::MAX)))
        }
        Node::MapGet(m, k, d) => {
            let mv = eval_node(m, e, locals)?;
            let kv = eval_node(k, e, locals)?;
            match mv {
                Val::Map(m) => match map_get(&m, &kv) {
                    Some(v) => Ok(v),
                    None => eval_node(d, e, locals),
                },
                _ => Err(EvalError::NoOverload),
            }
        }
        Node::HasVar(a) => Ok(Val::Bool(!is_default(&eval_node(a, e, locals)?))),
        Node::HasKey(m, k) => match eval_node(m, e, locals)? {
            Val::Map(m) => Ok(Val::Bool(map_get(&m, &Val::Str(k)).is_some())),
            _ => Err(EvalError::NoOverload),
        },
        Node::Convert(c, a) => convert(*c, eval_node(a, e, locals)?),
        Node::Comp {
            kind,
            range,
            slot,
            body,
        } => {
            let items = match eval_node(range, e, locals)? {
                Val::List(l) => list_items(&l),
                Val::Map(m) => map_items(&m).into_iter().map(|(k, _)| k).collect(),
                _ => return Err(EvalError::NoOverload),
            };
            let mut count = 0usize;
            let mut out = Vec::new();
            let mut err = None;
            for it in items {
                locals.truncate(*slot);
                locals.push(it.clone());
                let r = eval_node(body, e, locals);
                match kind {
                    Comp::Map => out.push(r?),
                    _ => match bool_of(r) {
                        Ok(true) => {
                            count += 1;
                            match kind {
                                Comp::Exists => {
                                    locals.truncate(*slot);
                                    return Ok(Val::Bool(true));
                                }
                                Comp::Filter => out.push(it),
                                _ => {}
                            }
                        }
                        Ok(false) => {
                            if *kind == Comp::All {
                                locals.truncate(*slot);
                                return Ok(Val::Bool(false));
                            }
                        }
                        Err(x) => err = Some(x),
                    },
                }
            }
            locals.truncate(*slot);
            if let Some(x) = err {
                return Err(x);
            }
            Ok(match kind {
                Comp::All => Val::Bool(true),
                Comp::Exists => Val::Bool(false),
                Comp::ExistsOne => Val::Bool(count == 1),
                _ => Val::List(ListV::Vals(out)),
            })
        }
    }
}
