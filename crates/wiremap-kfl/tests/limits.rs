//! Hostile filters: long flat chains, deep nesting, huge sources. Each is either accepted and
//! goes through every pass on a small stack, or refused with a `Limit` error naming the limit.

mod common;

use wiremap_kfl::{parse, ErrorKind, Filter, KflError, MAX_FILTER_BYTES, MAX_HEIGHT, MAX_NESTING};

const STACK: usize = 256 * 1024;

/// Runs `f` on a thread with a 256 KiB stack (a tokio worker has 2 MiB); an overflow aborts
/// the test process, so reaching the end is the assertion.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic");
}

fn compile(src: &str) -> Result<Filter, KflError> {
    Filter::compile(src, common::ts("2026-03-15T00:00:00Z"))
}

/// Every pass over the filter: check and compile (with pruning), evaluation on every sample
/// entry, canonical text (which must compile back to itself), SQL, `Debug`, clone, drop.
fn every_pass(src: &str) {
    let f = compile(src).unwrap_or_else(|e| panic!("{e}"));
    for e in common::sample() {
        let _ = f.eval(&e);
    }
    let canon = f.canonical();
    let again = compile(&canon).unwrap_or_else(|e| panic!("canonical text: {e}"));
    assert_eq!(again.canonical(), canon);
    let _ = f.to_sql();
    let shown = format!("{f:?} {:?}", f.ast());
    assert!(!shown.is_empty());
    let copy = f.ast().clone();
    assert_eq!(&copy, f.ast());
}

/// Filters of one shape, `n` links long.
type Shape = fn(usize) -> String;

const SHAPES: &[(&str, Shape)] = &[
    ("arithmetic", |n| {
        format!("status_code{} > 0", " + 1".repeat(n))
    }),
    ("concatenation", |n| {
        format!("url{} == 'x'", " + 'a'".repeat(n))
    }),
    ("fields", |n| {
        format!("dyn(request.headers){} == 'x'", ".a".repeat(n))
    }),
    ("indexes", |n| {
        format!("dyn(request.headers){} == 'x'", "['a']".repeat(n))
    }),
    ("methods", |n| {
        format!("url{} == 'x'", ".lowerAscii()".repeat(n))
    }),
    ("comparisons", |n| format!("http{}", " == true".repeat(n))),
    ("negations", |n| format!("{}http", "!".repeat(n))),
    ("minus signs", |n| {
        format!("{}status_code < 0", "-".repeat(n))
    }),
    ("parentheses", |n| {
        format!("{}http{}", "(".repeat(n), ")".repeat(n))
    }),
    ("parenthesized sums", |n| {
        format!("{}status_code{} > 0", "(".repeat(n), " + 1)".repeat(n))
    }),
    ("conditionals", |n| {
        format!("{}false", "http ? true : ".repeat(n))
    }),
    ("lists", |n| {
        format!("size({}1{}) == 1", "[".repeat(n), "]".repeat(n))
    }),
    ("comprehensions", |n| {
        let mut s = String::from("true");
        for i in 0..n {
            s = format!("tls_alpn.exists(v{i}, {s})");
        }
        s
    }),
];

/// The longest chain of `shape` that parses (parsing alone, on the test's stack).
fn deepest(shape: Shape) -> usize {
    let mut n = 1;
    while parse(&shape(n + 1)).is_ok() {
        n += 1;
        assert!(n < 10 * MAX_NESTING, "no limit reached");
    }
    n
}

#[test]
fn the_deepest_accepted_filters_pass_every_stage_on_a_small_stack() {
    for &(name, shape) in SHAPES {
        let n = deepest(shape);
        let over = parse(&shape(n + 1)).expect_err("over the limit");
        assert_eq!(over.kind, ErrorKind::Limit, "{name}: {over}");
        assert!(
            over.message.contains(&MAX_HEIGHT.to_string())
                || over.message.contains(&MAX_NESTING.to_string()),
            "{name}: {over}"
        );
        if name != "parentheses" {
            // Every other shape adds a level per link: the height limit is what stopped it.
            let h = parse(&shape(n)).expect("accepted").height();
            assert!(h > MAX_HEIGHT - 4 && h <= MAX_HEIGHT, "{name}: height {h}");
        }
        on_small_stack(move || every_pass(&shape(n)));
    }
}

#[test]
fn the_flat_chains_that_crashed_the_server_are_refused_cleanly() {
    on_small_stack(|| {
        let sum = format!("{} == 1388", vec!["1"; 1388].join(" + "));
        let calls = format!("url{} == 'x'", ".size()".repeat(945));
        let fields = format!("a{}", ".b".repeat(18_000)); // 36 KB
        let huge_sum = format!("{} > 0", vec!["1"; 10_000].join("+"));
        for src in [sum, calls, fields, huge_sum] {
            let e = compile(&src).expect_err("refused");
            assert_eq!(e.kind, ErrorKind::Limit, "{e}");
            assert!(
                e.message.starts_with(&format!(
                    "expression too deep: more than {MAX_HEIGHT} levels"
                )),
                "{e}"
            );
        }
    });
}

fn allow_list(n: usize, op: &str) -> String {
    (0..n)
        .map(|i| format!("src.ip == \"10.{}.{}.5\"", i / 256, i % 256))
        .collect::<Vec<_>>()
        .join(op)
}

#[test]
fn long_and_or_chains_are_balanced() {
    on_small_stack(|| {
        let src = allow_list(5_000, " || ");
        assert!(src.len() > 100_000);
        let f = compile(&src).expect("a 5,000-address allow-list compiles");
        // log2(5000) < 13 levels of `||` over comparisons of height 3.
        assert!(f.ast().height() <= 16, "height {}", f.ast().height());
        let listed: Vec<String> = (0..5_000)
            .map(|i| format!("10.{}.{}.5", i / 256, i % 256))
            .collect();
        let (got, want): (Vec<u64>, Vec<u64>) = (
            common::sample()
                .iter()
                .filter(|e| f.matches(e))
                .map(|e| e.id)
                .collect(),
            common::sample()
                .iter()
                .filter(|e| listed.contains(&e.src.ip.to_string()))
                .map(|e| e.id)
                .collect(),
        );
        assert!(!want.is_empty());
        assert_eq!(got, want);
        // No parentheses added: the canonical text is the chain, and it round-trips.
        let canon = f.canonical();
        assert!(!canon.contains('('));
        assert_eq!(canon, src);
        assert!(f.to_sql().expect("sql").contains("OR"));
        let and = compile(&allow_list(3_000, " && ")).expect("&& chain compiles");
        assert!(and.ast().height() <= 16);
        assert!(!and.canonical().contains('('));
    });
}

#[test]
fn size_limits_name_the_limit() {
    let src = format!("url == '{}'", "a".repeat(MAX_FILTER_BYTES));
    let e = compile(&src).expect_err("too long");
    assert_eq!(e.kind, ErrorKind::Limit);
    assert_eq!(
        e.message,
        format!(
            "filter is {} bytes; the limit is {MAX_FILTER_BYTES}",
            src.len()
        )
    );
    assert!(
        e.source_line.is_empty(),
        "the oversized source is not copied"
    );
    // 40,000 list items are 80,000 tokens in 80 KB.
    let src = format!("size([{}]) > 0", vec!["1"; 40_000].join(","));
    let e = compile(&src).expect_err("too many tokens");
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.message.contains("the limit is 65536"), "{e}");
    // Just under both limits: a 30,000-item list is fine.
    let src = format!("size([{}]) > 0", vec!["1"; 30_000].join(","));
    assert!(compile(&src).is_ok());
}

#[test]
fn deep_nesting_names_the_limit() {
    for src in [
        format!("{}true{}", "(".repeat(5000), ")".repeat(5000)),
        format!("{}true", "!".repeat(5000)),
        format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
    ] {
        let e = compile(&src).expect_err("too deep");
        assert_eq!(e.kind, ErrorKind::Limit);
        assert_eq!(
            e.message,
            format!("filter nested too deeply (more than {MAX_NESTING} levels)")
        );
    }
}

#[test]
fn a_huge_unknown_name_is_reported_short() {
    // A long name is compared with no variable (their lengths differ), and the message
    // shows its start only.
    let name = "x".repeat(100_000);
    let e = compile(&format!("{name}.y == 1")).expect_err("unknown");
    assert_eq!(e.kind, ErrorKind::Unknown);
    assert!(
        e.message.starts_with("unknown variable `xxxx"),
        "{}",
        e.message
    );
    assert!(e.message.len() < 200, "{}", e.message.len());
    assert!(!e.message.contains("did you mean"));
    let e = compile(&format!("{name}() == 1")).expect_err("unknown");
    assert!(e.message.len() < 200, "{}", e.message.len());
}

#[test]
fn the_most_negative_integer_is_a_literal_and_nothing_wraps() {
    let f = compile("-9223372036854775808 < 0").expect("i64::MIN");
    assert_eq!(f.canonical(), "-9223372036854775808 < 0");
    let e = compile("9223372036854775808 > 0").expect_err("2^63 is out of range");
    assert!(e.message.contains("integer out of range"), "{e}");
    // Negating i64::MIN is an evaluation error, not i64::MIN again.
    let f = compile("-(-9223372036854775808) > 0").expect("compiles");
    assert!(f.eval(&common::sample()[0]).is_err());
}

#[test]
fn a_regex_over_budget_is_a_check_error_when_constant() {
    let e = compile(r#"url.matches("\\w{100}")"#).expect_err("too big");
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(
        e.message
            .contains(&format!("exceeds {} bytes", wiremap_kfl::REGEX_SIZE_LIMIT)),
        "{e}"
    );
    assert!(compile(r#"url.matches("(?-u:\\w){100}")"#).is_ok());
}

#[test]
fn a_run_time_regex_over_budget_selects_nothing() {
    // The pattern is built per entry: over the budget, evaluation fails and the entry is not
    // selected; a valid one still works.
    let f = compile(r#"url.matches(path + "\\w{100}")"#).expect("compiles");
    for e in common::sample() {
        if matches!(e.detail, wiremap_model::Detail::Http(_)) {
            assert_eq!(f.eval(&e), Err(wiremap_kfl::EvalError::Regex));
        }
        assert!(!f.matches(&e));
    }
    let f = compile(r#"http && url.matches("^" + path)"#).expect("compiles");
    let http = common::sample()
        .iter()
        .filter(
            |e| matches!(&e.detail, wiremap_model::Detail::Http(h) if h.url.starts_with(&h.path)),
        )
        .count();
    assert!(http > 0);
    assert_eq!(
        common::sample().iter().filter(|e| f.matches(e)).count(),
        http
    );
}

#[test]
fn a_filter_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let f = compile(r#"url.matches(path + ".*")"#).expect("compiles");
    shareable(&f);
    let f = std::sync::Arc::new(f);
    let counts: Vec<usize> = (0..4)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || common::sample().iter().filter(|e| f.matches(e)).count())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    assert!(counts.iter().all(|c| *c == counts[0]));
}
