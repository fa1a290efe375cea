//! What a filter says about time, protocols and namespaces, so a store can skip whole
//! segments without evaluating the filter on their entries.

use std::collections::BTreeSet;

use wiremap_model::{Protocol, Timestamp};

use crate::ast::Op;
use crate::limits::guarded;
use crate::node::{Const, Node};
use crate::schema::{Flag, IdField, Var};

/// Necessary conditions of a filter: every entry it selects satisfies all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// Earliest timestamp a selected entry can have (inclusive).
    pub from: Option<Timestamp>,
    /// Latest timestamp a selected entry can have (inclusive).
    pub to: Option<Timestamp>,
    /// Protocols a selected entry can have (`None`: any).
    pub protocols: Option<BTreeSet<Protocol>>,
    /// A selected entry involves one of these namespaces (`None`: any).
    pub namespaces: Option<BTreeSet<String>>,
}

impl Prune {
    /// Nothing known but a time window (either end open).
    pub fn window(from: Option<Timestamp>, to: Option<Timestamp>) -> Prune {
        Prune {
            from,
            to,
            ..Prune::default()
        }
    }

    /// Both sets of conditions at once (what an entry satisfying both must satisfy).
    pub fn and(self, other: Prune) -> Prune {
        and(self, other)
    }

    /// Whether a time lies in the window (both ends inclusive).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|x| t <= x)
    }
}

fn and(a: Prune, b: Prune) -> Prune {
    Prune {
        from: match (a.from, b.from) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        to: match (a.to, b.to) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        protocols: match (a.protocols, b.protocols) {
            (Some(x), Some(y)) => Some(x.intersection(&y).copied().collect()),
            (x, y) => x.or(y),
        },
        namespaces: match (a.namespaces, b.namespaces) {
            (Some(x), Some(y)) => Some(if x.len() <= y.len() { x } else { y }),
            (x, y) => x.or(y),
        },
    }
}

fn or(a: Prune, b: Prune) -> Prune {
    Prune {
        from: a.from.zip(b.from).map(|(x, y)| x.min(y)),
        to: a.to.zip(b.to).map(|(x, y)| x.max(y)),
        protocols: a
            .protocols
            .zip(b.protocols)
            .map(|(x, y)| x.union(&y).copied().collect()),
        namespaces: a
            .namespaces
            .zip(b.namespaces)
            .map(|(x, y)| x.union(&y).cloned().collect()),
    }
}

fn flag_protocols(f: Flag) -> BTreeSet<Protocol> {
    match f {
        Flag::Is(p) => [p].into(),
        Flag::Http => [Protocol::Http, Protocol::Grpc, Protocol::Gql].into(),
        Flag::Conn => [Protocol::Tcp, Protocol::Udp].into(),
    }
}

fn is_namespace_var(n: &Node) -> bool {
    matches!(
        n,
        Node::Var(
            Var::Side(
                _,
                IdField::Namespace | IdField::PodNamespace | IdField::ServiceNamespace
            ),
            ..
        )
    )
}

fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        o => o,
    }
}

/// Extracts the necessary conditions of `n`.
pub(crate) fn extract(n: &Node) -> Prune {
    guarded(|| extract_here(n))
}

fn extract_here(n: &Node) -> Prune {
    match n {
        Node::And(a, b) => and(extract(a), extract(b)),
        Node::Or(a, b) => or(extract(a), extract(b)),
        Node::Var(Var::Flag(f), ..) => Prune {
            protocols: Some(flag_protocols(*f)),
            ..Prune::default()
        },
        Node::Const(Const::Bool(false)) => Prune {
            protocols: Some(BTreeSet::new()),
            namespaces: Some(BTreeSet::new()),
            ..Prune::default()
        },
        Node::Cmp(op, a, b) => {
            let (op, var, c) = match (a.as_ref(), b.as_ref()) {
                (v @ Node::Var(..), Node::Const(c)) => (*op, v, c),
                (Node::Const(c), v @ Node::Var(..)) => (flip(*op), v, c),
                _ => return Prune::default(),
            };
            match (var, op, c) {
                (Node::Var(Var::Timestamp, ..), Op::Gt | Op::Ge, Const::Timestamp(t)) => Prune {
                    from: Some(Timestamp(*t)),
                    ..Prune::default()
                },
                (Node::Var(Var::Timestamp, ..), Op::Lt | Op::Le, Const::Timestamp(t)) => Prune {
                    to: Some(Timestamp(*t)),
                    ..Prune::default()
                },
                (Node::Var(Var::Timestamp, ..), Op::Eq, Const::Timestamp(t)) => Prune {
                    from: Some(Timestamp(*t)),
                    to: Some(Timestamp(*t)),
                    ..Prune::default()
                },
                (Node::Var(Var::Flag(f), ..), Op::Eq, Const::Bool(true))
                | (Node::Var(Var::Flag(f), ..), Op::Ne, Const::Bool(false)) => Prune {
                    protocols: Some(flag_protocols(*f)),
                    ..Prune::default()
                },
                (Node::Var(Var::Protocol, ..), Op::Eq, Const::Str(s)) => Prune {
                    protocols: Some(Protocol::parse(s).into_iter().collect()),
                    ..Prune::default()
                },
                (v, Op::Eq, Const::Str(s)) if is_namespace_var(v) && !s.is_empty() => Prune {
                    namespaces: Some([s.clone()].into()),
                    ..Prune::default()
                },
                _ => Prune::default(),
            }
        }
        Node::InSet(a, set) => match a.as_ref() {
            Node::Var(Var::Protocol, ..) => Prune {
                protocols: Some(set.iter().filter_map(|s| Protocol::parse(s)).collect()),
                ..Prune::default()
            },
            v if is_namespace_var(v) && !set.contains("") => Prune {
                namespaces: Some(set.iter().cloned().collect()),
                ..Prune::default()
            },
            _ => Prune::default(),
        },
        Node::In(a, b) => match (a.as_ref(), b.as_ref()) {
            (Node::Const(Const::Str(s)), Node::Var(Var::Namespaces, ..)) if !s.is_empty() => {
                Prune {
                    namespaces: Some([s.clone()].into()),
                    ..Prune::default()
                }
            }
            _ => Prune::default(),
        },
        _ => Prune::default(),
    }
}

/// Whether every variable `n` reads satisfies `ok`.
pub(crate) fn reads_only(n: &Node, ok: &dyn Fn(&Var) -> bool) -> bool {
    guarded(|| match n {
        Node::Var(v, ..) => ok(v),
        Node::Const(_) | Node::Local(_) => true,
        Node::Not(a)
        | Node::Neg(a)
        | Node::Size(a)
        | Node::HasVar(a)
        | Node::Convert(_, a)
        | Node::Matches(a, _)
        | Node::HasKey(a, _)
        | Node::InSet(a, _) => reads_only(a, ok),
        Node::And(a, b)
        | Node::Or(a, b)
        | Node::Cmp(_, a, b)
        | Node::Arith(_, a, b)
        | Node::In(a, b)
        | Node::Index(a, b)
        | Node::Str(_, a, b)
        | Node::MatchesDyn(a, b, _) => reads_only(a, ok) && reads_only(b, ok),
        Node::Cond(a, b, c) | Node::MapGet(a, b, c) => {
            reads_only(a, ok) && reads_only(b, ok) && reads_only(c, ok)
        }
        Node::List(v) => v.iter().all(|x| reads_only(x, ok)),
        Node::Map(v) => v
            .iter()
            .all(|(k, x)| reads_only(k, ok) && reads_only(x, ok)),
        Node::Comp { range, body, .. } => reads_only(range, ok) && reads_only(body, ok),
    })
}

/// Variables kept by a store's edge rollups: the endpoints (addresses and identities, not
/// ports), the protocol and the capture node.
pub(crate) fn endpoint_var(v: &Var) -> bool {
    match v {
        Var::Side(_, f) => *f != IdField::Port,
        Var::Protocol | Var::NodeName | Var::NodeMap | Var::Flag(_) => true,
        _ => false,
    }
}

/// Variables read from an entry's own fields, never from its protocol details.
pub(crate) fn entry_var(v: &Var) -> bool {
    endpoint_var(v)
        || matches!(
            v,
            Var::Side(_, IdField::Port)
                | Var::Id
                | Var::Index
                | Var::Stream
                | Var::StreamId
                | Var::Timestamp
                | Var::ElapsedTime
                | Var::StatusCode
                | Var::GrpcStatus
                | Var::Default
        )
}
