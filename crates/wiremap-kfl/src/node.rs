//! The compiled form of a filter: constants, the node tree, and evaluation errors.

use regex::Regex;
use std::collections::HashSet;

use crate::ast::Op;
use crate::regexes::RegexCache;
use crate::schema::{Type, Var};
use crate::value::Val;

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

    pub(crate) fn from_val(v: &Val<'_>) -> Option<Const> {
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
