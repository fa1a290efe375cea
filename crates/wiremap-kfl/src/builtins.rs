//! The builtin functions and methods: one table with their signatures, and their checking.

use crate::ast::{Expr, ExprKind};
use crate::check::{compatible, did_you_mean, path_of, shown, Checker};
use crate::error::{ErrorKind, KflError};
use crate::eval::fold;
use crate::node::{Comp, Const, Conv, Node, StrFn};
use crate::schema::Type;

/// What a builtin does, for the checker to dispatch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Now,
    Size,
    /// A conversion to the type of the same name.
    Convert(Conv),
    MapGet,
    Has,
    Matches,
    StrTest(StrFn),
    /// `lowerAscii`/`upperAscii`.
    Case(Conv),
    Comprehension(Comp),
}

/// The type a conversion makes.
fn converted(c: Conv) -> Type {
    match c {
        Conv::Int => Type::Int,
        Conv::Uint => Type::Uint,
        Conv::Double => Type::Double,
        Conv::Str | Conv::Lower | Conv::Upper => Type::Str,
        Conv::Bool => Type::Bool,
        Conv::Bytes => Type::Bytes,
        Conv::Timestamp => Type::Timestamp,
        Conv::Duration => Type::Duration,
        Conv::Dyn => Type::Dyn,
    }
}

/// One builtin.
pub(crate) struct Function {
    /// Its name.
    pub(crate) name: &'static str,
    /// Called on a receiver (`x.name(…)`) rather than alone.
    pub(crate) method: bool,
    /// What it does.
    pub(crate) builtin: Builtin,
    /// Its signature, for documentation and completion.
    pub(crate) signature: &'static str,
}

const fn f(name: &'static str, builtin: Builtin, signature: &'static str) -> Function {
    Function {
        name,
        method: false,
        builtin,
        signature,
    }
}

const fn m(name: &'static str, builtin: Builtin, signature: &'static str) -> Function {
    Function {
        name,
        method: true,
        builtin,
        signature,
    }
}

/// Every builtin function and method.
pub(crate) const FUNCTIONS: &[Function] = &[
    f("now", Builtin::Now, "now() -> timestamp"),
    f(
        "size",
        Builtin::Size,
        "size(string | bytes | list | map) -> int",
    ),
    f(
        "timestamp",
        Builtin::Convert(Conv::Timestamp),
        "timestamp(string | int) -> timestamp",
    ),
    f(
        "duration",
        Builtin::Convert(Conv::Duration),
        "duration(string) -> duration",
    ),
    f(
        "int",
        Builtin::Convert(Conv::Int),
        "int(uint | double | timestamp | string) -> int",
    ),
    f(
        "uint",
        Builtin::Convert(Conv::Uint),
        "uint(int | double | string) -> uint",
    ),
    f(
        "double",
        Builtin::Convert(Conv::Double),
        "double(int | uint | string) -> double",
    ),
    f(
        "string",
        Builtin::Convert(Conv::Str),
        "string(int | uint | double | bool | timestamp | bytes) -> string",
    ),
    f("bool", Builtin::Convert(Conv::Bool), "bool(string) -> bool"),
    f(
        "bytes",
        Builtin::Convert(Conv::Bytes),
        "bytes(string) -> bytes",
    ),
    f("dyn", Builtin::Convert(Conv::Dyn), "dyn(any) -> dyn"),
    f("map_get", Builtin::MapGet, "map_get(map(K, V), K, V) -> V"),
    f("has", Builtin::Has, "has(m.field) -> bool"),
    f(
        "matches",
        Builtin::Matches,
        "matches(string, string) -> bool",
    ),
    m(
        "contains",
        Builtin::StrTest(StrFn::Contains),
        "string.contains(string) -> bool",
    ),
    m(
        "startsWith",
        Builtin::StrTest(StrFn::StartsWith),
        "string.startsWith(string) -> bool",
    ),
    m(
        "endsWith",
        Builtin::StrTest(StrFn::EndsWith),
        "string.endsWith(string) -> bool",
    ),
    m(
        "matches",
        Builtin::Matches,
        "string.matches(string) -> bool",
    ),
    m(
        "size",
        Builtin::Size,
        "(string | bytes | list | map).size() -> int",
    ),
    m(
        "lowerAscii",
        Builtin::Case(Conv::Lower),
        "string.lowerAscii() -> string",
    ),
    m(
        "upperAscii",
        Builtin::Case(Conv::Upper),
        "string.upperAscii() -> string",
    ),
    m(
        "exists",
        Builtin::Comprehension(Comp::Exists),
        "(list | map).exists(x, bool) -> bool",
    ),
    m(
        "all",
        Builtin::Comprehension(Comp::All),
        "(list | map).all(x, bool) -> bool",
    ),
    m(
        "exists_one",
        Builtin::Comprehension(Comp::ExistsOne),
        "(list | map).exists_one(x, bool) -> bool",
    ),
    m(
        "filter",
        Builtin::Comprehension(Comp::Filter),
        "list(T).filter(x, bool) -> list(T)",
    ),
    m(
        "map",
        Builtin::Comprehension(Comp::Map),
        "(list | map).map(x, U) -> list(U)",
    ),
];

fn lookup(name: &str, method: bool) -> Option<&'static Function> {
    FUNCTIONS
        .iter()
        .find(|f| f.name == name && f.method == method)
}

/// ` (did you mean `x`?)` among the functions (or methods).
fn hint(name: &str, method: bool) -> String {
    let known: Vec<&str> = FUNCTIONS
        .iter()
        .filter(|f| f.method == method)
        .map(|f| f.name)
        .collect();
    did_you_mean(name, &known)
}

fn sized(t: &Type) -> bool {
    matches!(
        t,
        Type::Str | Type::Bytes | Type::List(_) | Type::Map(..) | Type::Dyn
    )
}

impl Checker<'_> {
    /// `func(args)` or `target.func(args)`.
    pub(crate) fn call(
        &mut self,
        e: &Expr,
        target: Option<&Expr>,
        func: &str,
        args: &[Expr],
    ) -> Result<(Node, Type), KflError> {
        match target {
            None => match lookup(func, false) {
                Some(f) => self.function(e, f.builtin, func, args),
                None => Err(self.err(
                    ErrorKind::Unknown,
                    e,
                    format!("unknown function `{}`{}", shown(func), hint(func, false)),
                )),
            },
            Some(t) => {
                let f = lookup(func, true);
                // A comprehension binds a variable for its body: not an ordinary receiver.
                if let Some(Builtin::Comprehension(kind)) = f.map(|f| f.builtin) {
                    return self.comprehension(e, t, func, kind, args);
                }
                let (tn, tt) = self.check(t)?;
                match f {
                    Some(f) => self.method(e, f.builtin, func, tn, tt, args),
                    None => Err(self.err(
                        ErrorKind::Unknown,
                        e,
                        format!(
                            "unknown method `{}` on {}{}",
                            shown(func),
                            tt.name(),
                            hint(func, true)
                        ),
                    )),
                }
            }
        }
    }

    fn type_err(&self, e: &Expr, msg: String) -> KflError {
        self.err(ErrorKind::Type, e, msg)
    }

    fn function(
        &mut self,
        e: &Expr,
        b: Builtin,
        func: &str,
        args: &[Expr],
    ) -> Result<(Node, Type), KflError> {
        match b {
            Builtin::Now => {
                self.args(e, func, args, 0)?;
                Ok((Node::Const(Const::Timestamp(self.now)), Type::Timestamp))
            }
            Builtin::Size => {
                let mut a = self.args(e, func, args, 1)?;
                let (n, t) = a.remove(0);
                if !sized(&t) {
                    return Err(self.type_err(
                        e,
                        format!(
                            "`size` needs a string, bytes, list or map, found {}",
                            t.name()
                        ),
                    ));
                }
                Ok((fold(Node::Size(Box::new(n))), Type::Int))
            }
            Builtin::Convert(conv) => {
                let out = converted(conv);
                let mut a = self.args(e, func, args, 1)?;
                let (n, t) = a.remove(0);
                if matches!(conv, Conv::Timestamp | Conv::Duration)
                    && !matches!(t, Type::Str | Type::Dyn | Type::Int)
                    && t != out
                {
                    return Err(
                        self.type_err(e, format!("`{func}` needs a string, found {}", t.name()))
                    );
                }
                let node = fold(Node::Convert(conv, Box::new(n)));
                if let Node::Convert(_, inner) = &node {
                    if let Node::Const(c) = inner.as_ref() {
                        return Err(self.conversion_error(&args[0], func, conv, c));
                    }
                }
                Ok((node, out))
            }
            Builtin::MapGet => {
                let a = self.args(e, func, args, 3)?;
                let [(mn, mt), (kn, kt), (dn, dt)]: [(Node, Type); 3] = a
                    .try_into()
                    .map_err(|_| self.type_err(e, "map_get".into()))?;
                let vt = match &mt {
                    Type::Map(k, v) if compatible(k, &kt) && compatible(v, &dt) => (**v).clone(),
                    Type::Dyn => dt.clone(),
                    _ => {
                        return Err(self.type_err(
                            e,
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
            Builtin::Has => self.has(e, args),
            Builtin::Matches => {
                let a = self.args(e, func, args, 2)?;
                let [(s, st), (p, pt)]: [(Node, Type); 2] = a
                    .try_into()
                    .map_err(|_| self.type_err(e, "matches".into()))?;
                self.matches(e, &args[1], s, st, p, pt)
            }
            // Methods only: `lookup` found them with `method: false`, which the table has not.
            Builtin::StrTest(_) | Builtin::Case(_) | Builtin::Comprehension(_) => Err(self.err(
                ErrorKind::Unknown,
                e,
                format!("`{func}` is a method: call it as `x.{func}(…)`"),
            )),
        }
    }

    fn has(&mut self, e: &Expr, args: &[Expr]) -> Result<(Node, Type), KflError> {
        let [arg] = args else {
            return Err(self.type_err(e, "`has` takes one field selection".into()));
        };
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
                    return Err(self.type_err(
                        arg,
                        format!("`has` needs a field of a map, found {}", t.name()),
                    ));
                }
                Ok((Node::HasKey(Box::new(n), field.clone()), Type::Bool))
            }
            _ => Err(self.type_err(
                arg,
                "`has` takes a field selection like `has(m.key)`".into(),
            )),
        }
    }

    fn method(
        &mut self,
        e: &Expr,
        b: Builtin,
        func: &str,
        tn: Node,
        tt: Type,
        args: &[Expr],
    ) -> Result<(Node, Type), KflError> {
        match b {
            Builtin::StrTest(f) => {
                let mut a = self.args(e, func, args, 1)?;
                let (an, at) = a.remove(0);
                if !matches!(tt, Type::Str | Type::Dyn) || !matches!(at, Type::Str | Type::Dyn) {
                    return Err(self.type_err(
                        e,
                        format!(
                            "`{func}` works on strings: found {}.{func}({})",
                            tt.name(),
                            at.name()
                        ),
                    ));
                }
                Ok((fold(Node::Str(f, Box::new(tn), Box::new(an))), Type::Bool))
            }
            Builtin::Matches => {
                let mut a = self.args(e, func, args, 1)?;
                let (p, pt) = a.remove(0);
                self.matches(e, &args[0], tn, tt, p, pt)
            }
            Builtin::Size => {
                self.args(e, func, args, 0)?;
                if !sized(&tt) {
                    return Err(self.type_err(
                        e,
                        format!(
                            "`size` needs a string, bytes, list or map, found {}",
                            tt.name()
                        ),
                    ));
                }
                Ok((fold(Node::Size(Box::new(tn))), Type::Int))
            }
            Builtin::Case(c) => {
                self.args(e, func, args, 0)?;
                if !matches!(tt, Type::Str | Type::Dyn) {
                    return Err(
                        self.type_err(e, format!("`{func}` works on strings, found {}", tt.name()))
                    );
                }
                Ok((fold(Node::Convert(c, Box::new(tn))), Type::Str))
            }
            // Functions only, and comprehensions (handled before the receiver is checked).
            Builtin::Now
            | Builtin::Convert(..)
            | Builtin::MapGet
            | Builtin::Has
            | Builtin::Comprehension(_) => Err(self.err(
                ErrorKind::Unknown,
                e,
                format!("unknown method `{}` on {}", shown(func), tt.name()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_once_per_call_style_with_a_signature() {
        for (i, a) in FUNCTIONS.iter().enumerate() {
            assert!(
                a.signature.contains(&format!("{}(", a.name)),
                "{}",
                a.signature
            );
            assert_eq!(
                a.method,
                a.signature.contains(&format!(".{}(", a.name)),
                "{}",
                a.signature
            );
            for b in &FUNCTIONS[i + 1..] {
                assert!(a.name != b.name || a.method != b.method, "{}", a.name);
            }
        }
    }
}
