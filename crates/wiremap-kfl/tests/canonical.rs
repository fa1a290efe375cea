//! Canonical text of edge cases: whatever compiles renders to text that compiles back to the
//! same text and the same results.

mod common;

use wiremap_kfl::Filter;

#[test]
fn edge_cases_round_trip() {
    let now = common::ts("2026-03-15T00:00:00Z");
    for src in [
        "1e300 * 10.0 > 0.0",
        "-0.0 == 0.0",
        "-9223372036854775808 < -9223372036854775807",
        "3 - -5 == 8",
        "--5 == 5",
        "- -status_code == status_code",
        "-(1 + 2) == -3",
        "(1 - 2) - 3 == 1 - 2 - 3",
        "1 - (2 - 3) == 2",
        "'a' == \"a\"",
        "'\\u0000\\x7f\\t' != ''",
        "b'\\x00\\xff' != b''",
        "'\\U0001F600' + \"\\\"\" != ''",
        "(http ? 1 : 2) == 1 ? true : false",
        "http ? (dns ? 1 : 2) == 1 : false",
        "!(!http)",
        "[[1], [2]][1][0] == 2",
        "{'a': {'b': 1}}.a.b == 1",
        "dyn({'a': 1}).a == 1",
        "1u + 2u == 3u && 1.5e-7 > 0.0",
        "tls_alpn.all(x, tls_alpn.exists(y, x == y))",
        "(1 < 2) == (2 > 1)",
        "(true == false) == false",
        "1 in [1] == true",
    ] {
        let Ok(f) = Filter::compile(src, now) else {
            continue;
        };
        let canon = f.canonical();
        let g = Filter::compile(&canon, now)
            .unwrap_or_else(|e| panic!("{src}: canonical {canon:?} does not compile: {e}"));
        assert_eq!(g.canonical(), canon, "{src}");
        for e in common::sample() {
            assert_eq!(f.eval(&e), g.eval(&e), "{src} vs {canon}");
        }
    }
}

#[test]
fn literals_out_of_range_are_errors() {
    let now = common::ts("2026-03-15T00:00:00Z");
    for src in ["1e400 > 0.0", "-1e400 < 0.0", "18446744073709551616u > 0u"] {
        let e = Filter::compile(src, now).expect_err(src);
        assert!(e.message.contains("out of range"), "{src}: {e}");
    }
}

#[test]
fn an_error_inside_a_multibyte_character_is_reported() {
    // Found by fuzzing: a bad `\u` escape followed by a two-byte character put the caret in
    // the middle of the character, and building the error panicked.
    let now = common::ts("2026-03-15T00:00:00Z");
    for src in [
        "'\\u\u{3ff}e9' == ''",
        "'\\x\u{e9}' == ''",
        "'\\U\u{1F600}' == ''",
    ] {
        let e = Filter::compile(src, now).expect_err(src);
        assert!(e.message.contains("escape"), "{src}: {e}");
        assert!(!e.caret().is_empty());
    }
}
