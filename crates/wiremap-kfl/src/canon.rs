//! Canonical KFL text: `&&`/`||`/`!`, double-quoted strings, parentheses only where needed.

use std::fmt::Write;

use crate::ast::{Expr, ExprKind, Lit, Op};
use crate::limits::guarded;

fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn lit(l: &Lit) -> String {
    match l {
        Lit::Bool(b) => b.to_string(),
        Lit::Int(i) => i.to_string(),
        Lit::Uint(u) => format!("{u}u"),
        Lit::Double(d) => {
            let s = format!("{d:?}");
            if s.contains(['.', 'e', 'E', 'N', 'i']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Lit::Str(s) => quote(s),
        Lit::Bytes(b) => {
            let mut o = String::from("b\"");
            for &c in b {
                if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                    o.push(c as char);
                } else {
                    let _ = write!(o, "\\x{c:02x}");
                }
            }
            o.push('"');
            o
        }
        Lit::Null => "null".into(),
    }
}

/// Precedence of an expression as an operand (higher binds tighter).
fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Cond(..) => 0,
        ExprKind::Binary(op, ..) => op.precedence(),
        ExprKind::Not(_) | ExprKind::Neg(_) => 6,
        // A negative literal reads as a negation: `(-1).f` is not `-1.f`, which is `-(1.f)`.
        ExprKind::Lit(Lit::Int(i)) if *i < 0 => 6,
        ExprKind::Lit(Lit::Double(d)) if d.is_sign_negative() => 6,
        _ => 7,
    }
}

fn wrap(e: &Expr, min: u8) -> String {
    let s = render(e);
    if prec(e) < min {
        format!("({s})")
    } else {
        s
    }
}

/// Renders an expression.
pub fn render(e: &Expr) -> String {
    guarded(|| render_here(e))
}

fn render_here(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Lit(l) => lit(l),
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Select(t, f) => format!("{}.{f}", wrap(t, 7)),
        ExprKind::Index(t, i) => format!("{}[{}]", wrap(t, 7), render(i)),
        ExprKind::Call { target, func, args } => {
            let a: Vec<String> = args.iter().map(render).collect();
            match target {
                Some(t) => format!("{}.{func}({})", wrap(t, 7), a.join(", ")),
                None => format!("{func}({})", a.join(", ")),
            }
        }
        ExprKind::Not(x) => format!("!{}", wrap(x, 6)),
        ExprKind::Neg(x) => format!("-{}", wrap(x, 6)),
        ExprKind::Binary(op, a, b) => {
            let p = op.precedence();
            // Left-associative: the right operand needs parentheses at equal precedence,
            // except for the associative `&&` and `||`.
            let right_min = if matches!(op, Op::And | Op::Or) {
                p
            } else {
                p + 1
            };
            let left_min = if matches!(
                op,
                Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In
            ) {
                p + 1
            } else {
                p
            };
            format!(
                "{} {} {}",
                wrap(a, left_min),
                op.as_str(),
                wrap(b, right_min)
            )
        }
        ExprKind::Cond(c, a, b) => format!("{} ? {} : {}", wrap(c, 1), wrap(a, 1), wrap(b, 0)),
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Map(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
