//! Bounds on a filter, so that a hostile one (from a query string, an API body or a command
//! line) costs bounded time, memory and stack.
//!
//! Every pass over a filter — parsing, checking, folding, evaluating, rendering canonical text
//! or SQL, extracting pruning facts, dropping the trees — is linear in its size and recurses
//! at most [`MAX_HEIGHT`] levels (plus [`MAX_NESTING`] while parsing). The two depth limits
//! are sized so that the deepest accepted filter goes through all of those passes on a 256 KiB
//! stack in a debug build (a test holds it to that); a tokio worker has 2 MiB.

/// Longest filter, in bytes. A generated allow-list of 5,000 `src.ip == "10.0.0.1"`
/// alternatives (about 125 KB) fits; parsing it is linear.
pub const MAX_FILTER_BYTES: usize = 256 * 1024;

/// Most tokens in a filter (a bound on the number of syntax-tree nodes).
pub const MAX_TOKENS: usize = 65_536;

/// Highest syntax tree: a chain of `+`, `.field`, `.method()`, `[index]` or comparisons adds
/// one level per link, and `&&`/`||` chains are built balanced, so this bounds chains of the
/// former without limiting the latter.
pub const MAX_HEIGHT: usize = 128;

/// Deepest nesting of parentheses, brackets, calls, conditionals and unary operators, counted
/// as the parser recurses (each parenthesis costs a few levels).
pub const MAX_NESTING: usize = 4 * MAX_HEIGHT;

/// Stack a recursive pass wants left before it goes one level deeper; a debug build uses up
/// to ~30 KiB per level of the checker.
const RED_ZONE: usize = 64 * 1024;

/// Size of a stack segment added when less than [`RED_ZONE`] is left.
const SEGMENT: usize = 1024 * 1024;

/// Runs `f`, first moving to a fresh heap-allocated stack segment if the thread's stack is
/// nearly used up. The height limits bound the work; this bounds the stack whatever the
/// thread (a tokio worker has 2 MiB, a debug build's frames are large).
#[inline(always)]
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
