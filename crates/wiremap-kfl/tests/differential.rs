//! Differential test: well-typed random filters evaluated by wiremap and by the `cel` crate
//! (an independent CEL implementation) on sample entries agree on the subset both support.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map, Value};
use cel::{Context, Program};
use proptest::prelude::*;
use wiremap_kfl::Filter;
use wiremap_model::{Detail, Entry, Protocol};

fn s(v: &str) -> Value {
    Value::String(Arc::new(v.to_string()))
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let m: HashMap<Key, Value> = pairs.into_iter().map(|(k, v)| (Key::from(k), v)).collect();
    Value::Map(Map { map: Arc::new(m) })
}

fn list(items: &[String]) -> Value {
    Value::List(Arc::new(items.iter().map(|i| s(i)).collect()))
}

/// The entry as CEL variables, built from the entry's fields directly (not through KFL).
fn context(e: &Entry) -> Context<'static> {
    let mut c = Context::default();
    let (method, url, path, headers) = match &e.detail {
        Detail::Http(h) => (
            h.method.clone(),
            h.url.clone(),
            h.path.clone(),
            h.request_headers.clone(),
        ),
        _ => Default::default(),
    };
    let (questions, dns_size) = match &e.detail {
        Detail::Dns(d) => (
            d.questions.clone(),
            (d.request_length + d.response_length) as i64,
        ),
        _ => (Vec::new(), 0),
    };
    let (sni, alpn) = match &e.detail {
        Detail::Tls(t) => (t.sni.clone(), t.alpn.clone()),
        _ => (String::new(), Vec::new()),
    };
    c.add_variable_from_value("status_code", Value::Int(e.status_code));
    c.add_variable_from_value("elapsed_time", Value::Int(e.elapsed_time));
    c.add_variable_from_value("dns_total_size", Value::Int(dns_size));
    c.add_variable_from_value("protocol", s(e.protocol.as_str()));
    c.add_variable_from_value("method", s(&method));
    c.add_variable_from_value("url", s(&url));
    c.add_variable_from_value("path", s(&path));
    c.add_variable_from_value("tls_sni", s(&sni));
    c.add_variable_from_value("http", Value::Bool(e.protocol == Protocol::Http));
    c.add_variable_from_value("dns", Value::Bool(e.protocol == Protocol::Dns));
    c.add_variable_from_value("tls", Value::Bool(e.protocol == Protocol::Tls));
    c.add_variable_from_value("tcp", Value::Bool(e.protocol == Protocol::Tcp));
    c.add_variable_from_value("dns_questions", list(&questions));
    c.add_variable_from_value("tls_alpn", list(&alpn));
    let side = |ep: &wiremap_model::Endpoint| {
        map(vec![
            ("ip", s(&ep.ip.to_string())),
            ("port", Value::Int(i64::from(ep.port))),
            ("name", s(&ep.identity().name)),
        ])
    };
    c.add_variable_from_value("src", side(&e.src));
    c.add_variable_from_value("dst", side(&e.dst));
    let hdrs = map(headers.iter().map(|(k, v)| (k.as_str(), s(v))).collect());
    c.add_variable_from_value("request", map(vec![("headers", hdrs)]));
    c
}

const INTS: [&str; 5] = [
    "status_code",
    "elapsed_time",
    "src.port",
    "dst.port",
    "dns_total_size",
];
const STRS: [&str; 8] = [
    "protocol", "method", "url", "path", "src.ip", "dst.ip", "tls_sni", "dst.name",
];
const BOOLS: [&str; 4] = ["http", "dns", "tls", "tcp"];
const LISTS: [&str; 2] = ["dns_questions", "tls_alpn"];
const WORDS: [&str; 10] = [
    "",
    "GET",
    "http",
    "dns",
    "/api",
    "google.com",
    "h2",
    "10.1.0.5",
    "carts-5f4",
    "api.stripe.com",
];

fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(&INTS[..]).prop_map(str::to_string),
        (-1000i64..100_000).prop_map(|i| i.to_string()),
        prop::sample::select(&STRS[..]).prop_map(|v| format!("size({v})")),
        prop::sample::select(&LISTS[..]).prop_map(|v| format!("{v}.size()")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        (inner.clone(), prop::sample::select(&["+", "-"][..]), inner)
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn str_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&STRS[..]).prop_map(str::to_string),
        prop::sample::select(&WORDS[..]).prop_map(|w| format!("{w:?}")),
        (
            prop::sample::select(&STRS[..]),
            prop::sample::select(&WORDS[..])
        )
            .prop_map(|(v, w)| format!("({v} + {w:?})")),
    ]
}

fn bool_expr() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(&["==", "!=", "<", "<=", ">", ">="][..]);
    let leaf = prop_oneof![
        prop::sample::select(&BOOLS[..]).prop_map(str::to_string),
        (int_expr(), cmp.clone(), int_expr()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (
            str_expr(),
            prop::sample::select(&["==", "!="][..]),
            str_expr()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (
            str_expr(),
            prop::sample::select(&["contains", "startsWith", "endsWith"][..]),
            str_expr()
        )
            .prop_map(|(a, m, b)| format!("{a}.{m}({b})")),
        (str_expr(), prop::sample::select(&LISTS[..])).prop_map(|(a, l)| format!("{a} in {l}")),
        (
            str_expr(),
            prop::collection::vec(prop::sample::select(&WORDS[..]), 0..3)
        )
            .prop_map(|(a, ws)| {
                let items: Vec<String> = ws.iter().map(|w| format!("{w:?}")).collect();
                format!("{a} in [{}]", items.join(", "))
            }),
        (
            prop::sample::select(&LISTS[..]),
            prop::sample::select(&WORDS[..])
        )
            .prop_map(|(l, w)| format!("{l}.exists(x, x == {w:?})")),
        (
            prop::sample::select(&LISTS[..]),
            prop::sample::select(&WORDS[..])
        )
            .prop_map(|(l, w)| format!("{l}.all(x, x != {w:?})")),
        (prop::sample::select(&WORDS[..])).prop_map(|w| format!("{w:?} in request.headers")),
        (
            str_expr(),
            prop::sample::select(&["^/api", "^[0-9.]+$", "o+", "^$"][..])
        )
            .prop_map(|(a, r)| format!("{a}.matches({r:?})")),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn wiremap_agrees_with_the_cel_crate(src in bool_expr()) {
        let ours = Filter::compile(&src, common::ts("2026-03-14T23:00:00Z"));
        prop_assert!(ours.is_ok(), "well-typed filter rejected: {} -> {:?}", src, ours.err());
        let ours = ours.unwrap_or_else(|_| unreachable!());
        let theirs = Program::compile(&src);
        prop_assume!(theirs.is_ok());
        let theirs = theirs.unwrap_or_else(|_| unreachable!());
        let mut compared = 0;
        for e in common::sample() {
            let a = ours.eval(&e);
            let b = theirs.execute(&context(&e));
            if let (Ok(a), Ok(Value::Bool(b))) = (a, b) {
                prop_assert_eq!(a, b, "{} on entry {}", src, e.id);
                compared += 1;
            }
        }
        prop_assert!(compared > 0, "no entry comparable for {}", src);
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_filter(src in bool_expr()) {
        let f = Filter::compile(&src, common::ts("2026-03-14T23:00:00Z")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let canon = f.canonical();
        let g = Filter::compile(&canon, common::ts("2026-03-14T23:00:00Z")).map_err(|e| TestCaseError::fail(format!("{canon}: {e}")))?;
        prop_assert_eq!(g.canonical(), canon.clone());
        for e in common::sample() {
            prop_assert_eq!(f.eval(&e), g.eval(&e), "{} vs {}", src, canon);
        }
    }
}
