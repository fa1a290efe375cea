//! Type checking of the syntax tree and its compilation into a [`Node`] tree.

use std::collections::{HashMap, HashSet};

use wiremap_model::Timestamp;

use crate::ast::{Expr, ExprKind, Lit, Op};
use crate::error::{distance, ErrorKind, KflError};
use crate::eval::fold;
use crate::limits::guarded;
use crate::node::{Comp, Const, Conv, Node};
use crate::regexes::{self, RegexCache};
use crate::schema::{variables, Type, Var};
use crate::time::{self, DurationError, DURATION_RANGE, TIME_RANGE};

/// Checks a syntax tree against the variables and compiles it.
pub(crate) struct Checker<'s> {
    src: &'s str,
    pub(crate) vars: HashMap<&'static str, (Type, Var)>,
    prefixes: HashSet<String>,
    /// Length of the longest variable name: a longer path is no variable or prefix.
    pub(crate) longest: usize,
    locals: Vec<(String, Type)>,
    /// What `now()` means, in nanoseconds.
    pub(crate) now: i64,
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

pub(crate) fn did_you_mean(name: &str, known: &[&str]) -> String {
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
pub(crate) fn path_of(e: &Expr, max: usize) -> Option<String> {
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

pub(crate) fn compatible(a: &Type, b: &Type) -> bool {
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

    pub(crate) fn err(&self, kind: ErrorKind, e: &Expr, msg: String) -> KflError {
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
    pub(crate) fn conversion_error(
        &self,
        arg: &Expr,
        func: &str,
        conv: Conv,
        c: &Const,
    ) -> KflError {
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

    pub(crate) fn args(
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

    pub(crate) fn matches(
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

    pub(crate) fn comprehension(
        &mut self,
        e: &Expr,
        target: &Expr,
        func: &str,
        kind: Comp,
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
