//! Rendering a compiled filter as a ClickHouse `WHERE` clause over the entries table.
//!
//! Columns are the variable names with dots as underscores (`src.pod.name` →
//! `src_pod_name`); every literal is escaped; the timestamp column is `DateTime64(9)`.

use std::fmt::Write;

use crate::ast::Op;
use crate::limits::guarded;
use crate::node::{Comp, Const, Conv, Node, StrFn};
use crate::schema::{Type, Var};

/// A construct the SQL backend does not express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot express in SQL: {0}")]
pub struct SqlError(pub String);

/// A ClickHouse string literal.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        match c {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\0' => o.push_str("\\0"),
            c => o.push(c),
        }
    }
    o.push('\'');
    o
}

fn column(name: &str) -> String {
    format!("`{}`", name.replace('.', "_"))
}

fn ts_literal(ns: i64) -> String {
    format!("fromUnixTimestamp64Nano(toInt64({ns}))")
}

fn konst(c: &Const) -> String {
    match c {
        Const::Bool(b) => if *b { "true" } else { "false" }.into(),
        Const::Int(i) => format!("toInt64({i})"),
        Const::Uint(u) => format!("toUInt64({u})"),
        Const::Double(d) if d.is_finite() => format!("{d:?}"),
        Const::Double(d) => {
            if d.is_nan() {
                "nan".into()
            } else if *d > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        Const::Str(s) => quote(s),
        Const::Bytes(b) => {
            let mut o = String::from("unhex('");
            for x in b {
                let _ = write!(o, "{x:02X}");
            }
            o.push_str("')");
            o
        }
        Const::Timestamp(t) => ts_literal(*t),
        Const::Duration(d) => format!("toInt64({d})"),
        Const::Null => "NULL".into(),
    }
}

/// Renders `n`; `locals` names the comprehension variables in scope.
pub(crate) fn render(n: &Node, locals: &mut Vec<String>) -> Result<String, SqlError> {
    guarded(|| render_here(n, locals))
}

fn render_here(n: &Node, locals: &mut Vec<String>) -> Result<String, SqlError> {
    let r = |x: &Node, l: &mut Vec<String>| render(x, l);
    Ok(match n {
        Node::Const(c) => konst(c),
        Node::Var(v, _, name) => match v {
            Var::Timestamp => "`timestamp`".into(),
            _ => column(name),
        },
        Node::Local(i) => locals
            .get(*i)
            .cloned()
            .ok_or_else(|| SqlError("unbound variable".into()))?,
        Node::Not(a) => format!("(NOT {})", r(a, locals)?),
        Node::Neg(a) => format!("(-{})", r(a, locals)?),
        Node::And(a, b) => format!("({} AND {})", r(a, locals)?, r(b, locals)?),
        Node::Or(a, b) => format!("({} OR {})", r(a, locals)?, r(b, locals)?),
        Node::Cond(c, a, b) => format!(
            "if({}, {}, {})",
            r(c, locals)?,
            r(a, locals)?,
            r(b, locals)?
        ),
        Node::Cmp(op, a, b) => {
            let o = match op {
                Op::Eq => "=",
                Op::Ne => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                _ => ">=",
            };
            format!("({} {o} {})", r(a, locals)?, r(b, locals)?)
        }
        Node::Arith(op, a, b) => {
            let (x, y) = (r(a, locals)?, r(b, locals)?);
            match op {
                Op::Add => format!("({x} + {y})"),
                Op::Sub => format!("({x} - {y})"),
                Op::Mul => format!("({x} * {y})"),
                Op::Div => format!("intDivOrZero({x}, {y})"),
                _ => format!("moduloOrZero({x}, {y})"),
            }
        }
        Node::In(a, b) => {
            let x = r(a, locals)?;
            match b.as_ref() {
                Node::List(items) => {
                    let v: Result<Vec<String>, SqlError> =
                        items.iter().map(|i| r(i, locals)).collect();
                    format!("({x} IN ({}))", v?.join(", "))
                }
                other @ Node::Var(_, Type::Map(..), _) => {
                    format!("mapContains({}, {x})", r(other, locals)?)
                }
                other => format!("has({}, {x})", r(other, locals)?),
            }
        }
        Node::InSet(a, set) => {
            let mut v: Vec<&String> = set.iter().collect();
            v.sort();
            let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
            format!("({} IN ({}))", r(a, locals)?, items.join(", "))
        }
        Node::Index(a, i) => format!("{}[{}]", r(a, locals)?, r(i, locals)?),
        Node::List(items) => {
            let v: Result<Vec<String>, SqlError> = items.iter().map(|i| r(i, locals)).collect();
            format!("[{}]", v?.join(", "))
        }
        Node::Map(items) => {
            let mut v = Vec::new();
            for (k, x) in items {
                v.push(r(k, locals)?);
                v.push(r(x, locals)?);
            }
            format!("map({})", v.join(", "))
        }
        Node::Str(f, a, b) => {
            let (x, y) = (r(a, locals)?, r(b, locals)?);
            match f {
                StrFn::Contains => format!("(position({x}, {y}) > 0)"),
                StrFn::StartsWith => format!("startsWith({x}, {y})"),
                StrFn::EndsWith => format!("endsWith({x}, {y})"),
            }
        }
        Node::Matches(a, re) => format!("match({}, {})", r(a, locals)?, quote(re.as_str())),
        Node::MatchesDyn(a, p, _) => format!("match({}, {})", r(a, locals)?, r(p, locals)?),
        Node::Size(a) => format!("length({})", r(a, locals)?),
        Node::MapGet(m, k, d) => {
            let (m, k, d) = (r(m, locals)?, r(k, locals)?, r(d, locals)?);
            format!("if(mapContains({m}, {k}), {m}[{k}], {d})")
        }
        Node::HasVar(a) => format!("notEmpty(toString({}))", r(a, locals)?),
        Node::HasKey(m, k) => format!("mapContains({}, {})", r(m, locals)?, quote(k)),
        Node::Convert(c, a) => {
            let x = r(a, locals)?;
            match c {
                Conv::Int => format!("toInt64({x})"),
                Conv::Uint => format!("toUInt64({x})"),
                Conv::Double => format!("toFloat64({x})"),
                Conv::Str => format!("toString({x})"),
                Conv::Bool => format!("toBool({x})"),
                Conv::Bytes => x,
                Conv::Timestamp => format!("parseDateTime64BestEffort({x}, 9)"),
                Conv::Duration => return Err(SqlError("duration() of a non-constant".into())),
                Conv::Lower => format!("lower({x})"),
                Conv::Upper => format!("upper({x})"),
                Conv::Dyn => x,
            }
        }
        Node::Comp {
            kind,
            range,
            slot,
            body,
        } => {
            let list = r(range, locals)?;
            let var = format!("x{slot}");
            locals.truncate(*slot);
            locals.push(var.clone());
            let b = r(body, locals)?;
            locals.truncate(*slot);
            match kind {
                Comp::All => format!("arrayAll({var} -> {b}, {list})"),
                Comp::Exists => format!("arrayExists({var} -> {b}, {list})"),
                Comp::ExistsOne => format!("(arrayCount({var} -> {b}, {list}) = 1)"),
                Comp::Filter => format!("arrayFilter({var} -> {b}, {list})"),
                Comp::Map => format!("arrayMap({var} -> {b}, {list})"),
            }
        }
    })
}
