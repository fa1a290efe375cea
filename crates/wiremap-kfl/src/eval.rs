//! Evaluation of a compiled filter on an entry, and constant folding.

use wiremap_model::{Entry, Timestamp};

use crate::ast::Op;
use crate::limits::guarded;
use crate::node::{Comp, Const, Conv, EvalError, Node, StrFn};
use crate::schema::read;
use crate::time::parse_duration;
use crate::value::{
    list_contains, list_items, list_len, map_get, map_items, map_len, num, ListV, MapV, Num, Val,
};

/// A value, or why there is none.
pub(crate) type R<'a> = Result<Val<'a>, EvalError>;

/// Evaluates constant subtrees now.
pub(crate) fn fold(n: Node) -> Node {
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
