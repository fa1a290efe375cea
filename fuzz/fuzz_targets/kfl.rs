//! KFL filters: any text is parsed and checked; a filter that compiles is evaluated on sample
//! entries, rendered as SQL, and rendered as canonical text, which must compile back to
//! itself and give the same answers. Limits (length, height, nesting, regex size) keep every
//! input cheap.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wiremap_kfl::Filter;
use wiremap_model::Entry;

#[path = "../../crates/wiremap-kfl/tests/common/mod.rs"]
mod sample;

fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(sample::sample)
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let now = sample::ts("2026-03-15T00:00:00Z");
    let Ok(f) = Filter::compile(src, now) else {
        return;
    };
    for e in entries() {
        let _ = f.eval(e);
    }
    let _ = f.to_sql();
    let _ = f.prune();
    let canon = f.canonical();
    let g = Filter::compile(&canon, now).unwrap_or_else(|e| {
        panic!("the canonical text {canon:?} of {src:?} does not compile: {e}")
    });
    assert_eq!(g.canonical(), canon, "canonical text of {src:?}");
    // The same answers (which error, when both fail, may differ: `&&` and `||` regroup).
    for e in entries() {
        assert_eq!(f.eval(e).ok(), g.eval(e).ok(), "{src:?} and {canon:?}");
    }
});
