//! Times outside the `i64` nanosecond range are errors naming the range, never wrapped values.

mod common;

use wiremap_kfl::{ErrorKind, EvalError, Filter, KflError};

const RANGE: &str = "1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z";

fn compile(src: &str) -> Result<Filter, KflError> {
    Filter::compile(src, common::ts("2026-03-15T00:00:00Z"))
}

#[test]
fn out_of_range_constants_are_check_errors_naming_the_range() {
    for src in [
        r#"timestamp < timestamp("9999-12-31T23:59:59Z")"#,
        r#"timestamp > timestamp("1000-01-01T00:00:00Z")"#,
        r#"timestamp < timestamp("2262-04-11T23:47:17Z")"#,
        "timestamp < timestamp(9999999999999)",
    ] {
        let e = compile(src).expect_err(src);
        assert_eq!(e.kind, ErrorKind::Limit, "{src}: {e}");
        assert!(
            e.message.starts_with("`timestamp` out of range: ") && e.message.contains(RANGE),
            "{src}: {e}"
        );
    }
    let e = compile(r#"elapsed_time > duration("2562048h")"#).expect_err("too long");
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.message.contains("`duration` out of range"), "{e}");
    assert!(e.message.contains("2562047h47m16s"), "{e}");
    let e = compile(r#"timestamp < timestamp("2262-04-11T23:00:00Z") + duration("1h")"#)
        .expect_err("sum out of range");
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.message.contains("takes the time out of range"), "{e}");
    // Garbage stays a conversion error.
    let e = compile(r#"timestamp > timestamp("yesterday")"#).expect_err("garbage");
    assert_eq!(e.kind, ErrorKind::Type);
    assert!(e.message.contains("cannot convert"), "{e}");
}

#[test]
fn the_ends_of_the_range_are_accepted() {
    let f = compile(r#"timestamp < timestamp("2262-04-11T23:47:16Z")"#).expect("in range");
    assert!(common::sample().iter().all(|e| f.matches(e)));
    let f = compile(r#"timestamp > timestamp("1677-09-21T00:12:44Z")"#).expect("in range");
    assert!(common::sample().iter().all(|e| f.matches(e)));
    assert!(compile(r#"duration("2562047h") > duration("1s")"#).is_ok());
}

#[test]
fn an_overflow_at_evaluation_selects_nothing() {
    // Every entry's time plus 292 years is past 2262: an error, not a time in 1970.
    let f = compile(r#"timestamp + duration("2562047h") > timestamp("2026-01-01T00:00:00Z")"#)
        .expect("compiles");
    for e in common::sample() {
        assert_eq!(f.eval(&e), Err(EvalError::Arithmetic));
    }
    // 292 years back is 1734, in range; twice is not.
    let back = r#"timestamp - duration("2562047h") - duration("2562047h") < timestamp("2026-01-01T00:00:00Z")"#;
    let f = compile(back).expect("compiles");
    for e in common::sample() {
        assert_eq!(f.eval(&e), Err(EvalError::Arithmetic));
    }
}
