//! Regular expressions with a size budget, and a per-filter cache for patterns built at run
//! time (`url.matches(path + "$")`), so a distinct pattern is compiled once, not once per
//! entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use regex::{Regex, RegexBuilder};

/// Most bytes a compiled pattern may take. Compile time grows with it: at this size the
/// worst pattern compiles in a few milliseconds (the default, 10 MiB, allows ~50 ms ones such
/// as `\w{100}`). Typical filters' patterns take a few KiB; Unicode classes are the big ones.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Most bytes of the lazy DFA's cache of one pattern (per evaluating thread).
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// Distinct run-time patterns one filter keeps compiled; the cache is emptied when full.
pub const REGEX_CACHE_ENTRIES: usize = 64;

/// Compiles `pattern` within the budget.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// The run-time patterns of one `matches` call site, compiled (or failed: `None`) once each.
///
/// A `Mutex` keeps the filter `Sync` (the server evaluates one filter from several threads);
/// it is held only to look up and insert, never while compiling.
#[derive(Debug, Default)]
pub(crate) struct RegexCache {
    compiled: Mutex<HashMap<String, Option<Arc<Regex>>>>,
}

impl RegexCache {
    /// The compiled `pattern`, or `None` if it does not compile within the budget.
    pub(crate) fn get(&self, pattern: &str) -> Option<Arc<Regex>> {
        if let Some(hit) = self.lock().get(pattern) {
            return hit.clone();
        }
        let re = compile(pattern).ok().map(Arc::new);
        let mut map = self.lock();
        // Emptying beats tracking recency here: a filter with more distinct patterns than this
        // recompiles either way.
        if map.len() >= REGEX_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(pattern.to_owned(), re.clone());
        re
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Option<Arc<Regex>>>> {
        // A panic elsewhere cannot leave the map inconsistent: each operation is one call.
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_compiled_once() {
        let c = RegexCache::default();
        let a = c.get("^/api/v[0-9]+").expect("compiles");
        let b = c.get("^/api/v[0-9]+").expect("compiles");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second lookup is the same compiled regex"
        );
        assert!(a.is_match("/api/v2/x"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn failures_are_remembered_too() {
        let c = RegexCache::default();
        assert!(c.get("(").is_none());
        assert!(c.get(r"\w{100}").is_none(), "over the size budget");
        assert_eq!(c.len(), 2);
        assert!(c.get("(").is_none());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = RegexCache::default();
        for i in 0..3 * REGEX_CACHE_ENTRIES {
            assert!(c.get(&format!("^x{i}$")).is_some());
            assert!(c.len() <= REGEX_CACHE_ENTRIES);
        }
    }

    #[test]
    fn the_budget_admits_ordinary_patterns_and_refuses_huge_ones() {
        for ok in [r".*/api/v[0-9]+/.*", r"^[0-9.]+$", r"\w+", r"[a-z]{1000}"] {
            assert!(compile(ok).is_ok(), "{ok}");
        }
        for big in [r"\w{100}", r"(((a{10}){10}){10}){10}"] {
            assert!(
                matches!(compile(big), Err(regex::Error::CompiledTooBig(_))),
                "{big}"
            );
        }
    }
}
