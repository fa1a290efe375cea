//! KFL: the filter language that scopes wiremap's map, entries and exports.
//!
//! KFL is [CEL](https://github.com/google/cel-spec) over the variables of an entry, named as in
//! Kubeshark's KFL2 so that a Kubeshark user's filter works unchanged; `and`, `or` and `not`
//! are accepted as words for KFL v1 habits. A filter is parsed with byte spans, type-checked
//! against the variable schema (an unknown name or a type mismatch is an error with line,
//! column, caret and a "did you mean" hint — never a silent false), constant-folded, and
//! compiled to a tree that borrows strings, lists and maps from the entry, so the common
//! shapes allocate nothing per entry. Regular expressions (RE2 semantics, the `regex` crate)
//! are compiled once, within a size budget; patterns built at run time are compiled once per
//! distinct pattern (a small cache in the filter). The same checked filter renders back to
//! canonical KFL, to a ClickHouse `WHERE` clause with every literal escaped, and yields the
//! time range, protocol set and namespaces a store can prune by. Size, depth and regex limits
//! (see [`limits`]) keep a hostile filter's cost bounded.
//!
//! Absent values take their type's default, so `!dns` and `dns == false` both mean "every
//! entry but DNS". `now()` is fixed when the filter is compiled: the caller passes the time.
#![deny(clippy::unwrap_used)]

mod ast;
mod builtins;
mod canon;
mod check;
mod error;
mod eval;
mod lexer;
pub mod limits;
mod node;
mod prune;
mod regexes;
mod schema;
mod sql;
mod time;
mod value;

pub use ast::{parse, Expr, ExprKind, Lit, Op};
pub use error::{ErrorKind, KflError};
pub use lexer::Span;
pub use limits::{MAX_FILTER_BYTES, MAX_HEIGHT, MAX_NESTING, MAX_TOKENS};
pub use node::EvalError;
pub use prune::Prune;
pub use regexes::{REGEX_CACHE_ENTRIES, REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT};
pub use schema::Type;
pub use sql::{quote as sql_quote, SqlError};
use wiremap_model::{Entry, Timestamp};

/// A compiled filter.
pub struct Filter {
    ast: Expr,
    node: node::Node,
    prune: Prune,
}

impl Filter {
    /// Parses, checks and compiles `src`; `now` is what `now()` means.
    pub fn compile(src: &str, now: Timestamp) -> Result<Filter, KflError> {
        let ast = parse(src)?;
        let mut checker = check::Checker::new(src, now);
        let (node, t) = checker.check(&ast)?;
        if !matches!(t, Type::Bool | Type::Dyn) {
            return Err(KflError::new(
                ErrorKind::Type,
                src,
                ast.span,
                format!("a filter must be a condition (bool), this is {}", t.name()),
            ));
        }
        let prune = prune::extract(&node);
        Ok(Filter { ast, node, prune })
    }

    /// Whether the filter selects `e` (an evaluation error selects nothing).
    pub fn matches(&self, e: &Entry) -> bool {
        matches!(self.eval(e), Ok(true))
    }

    /// Evaluates the filter on `e`.
    pub fn eval(&self, e: &Entry) -> Result<bool, EvalError> {
        let mut locals = Vec::new();
        eval::test(&self.node, Some(e), &mut locals)
    }

    /// Canonical KFL text of the filter.
    pub fn canonical(&self) -> String {
        canon::render(&self.ast)
    }

    /// The filter as a ClickHouse `WHERE` condition.
    pub fn to_sql(&self) -> Result<String, SqlError> {
        sql::render(&self.node, &mut Vec::new())
    }

    /// What any selected entry must satisfy (for pruning stored segments).
    pub fn prune(&self) -> &Prune {
        &self.prune
    }

    /// Whether the filter reads only what a store's edge rollups keep: the endpoints'
    /// addresses and identities (not their ports), the protocol and the capture node. Such
    /// a filter selects whole rollups, evaluated on an entry built from one.
    pub fn endpoint_only(&self) -> bool {
        prune::reads_only(&self.node, &prune::endpoint_var)
    }

    /// Whether the filter reads an entry's protocol details (HTTP, DNS, TLS, connection or
    /// application fields) rather than only its own fields: a store may leave details out
    /// of entries it hands to a map when this is `false`.
    pub fn reads_details(&self) -> bool {
        !prune::reads_only(&self.node, &prune::entry_var)
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Expr {
        &self.ast
    }
}

impl std::fmt::Debug for Filter {
    /// The canonical text, not the trees: a derived `Debug` would recurse as deep as the
    /// filter with large frames.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.canonical())
            .field("prune", &self.prune)
            .finish()
    }
}

/// Every variable name with its type, for documentation and completion.
pub fn variables() -> Vec<(&'static str, Type)> {
    let mut v: Vec<(&'static str, Type)> = schema::variables()
        .into_iter()
        .map(|(n, t, _)| (n, t))
        .collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Every builtin function and method with its signature (`string.contains(string) -> bool`),
/// for documentation and completion.
pub fn functions() -> Vec<(&'static str, &'static str)> {
    builtins::FUNCTIONS
        .iter()
        .map(|f| (f.name, f.signature))
        .collect()
}

/// Renders an expression as canonical KFL.
pub fn render(e: &Expr) -> String {
    canon::render(e)
}
