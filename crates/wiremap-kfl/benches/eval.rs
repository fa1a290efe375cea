//! Filter evaluation throughput over a realistic mix of entries (HTTP, DNS, TLS, TCP).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wiremap_kfl::Filter;

#[path = "../tests/common/mod.rs"]
mod common;

fn bench(c: &mut Criterion) {
    // 600 entries: the sample mix repeated.
    let entries: Vec<_> = (0..100).flat_map(|_| common::sample()).collect();
    let now = common::ts("2026-03-15T00:00:00Z");
    let mut g = c.benchmark_group("kfl_eval");
    g.throughput(Throughput::Elements(entries.len() as u64));
    for (name, src) in [
        ("simple", r#"http && method == "GET" && status_code >= 400"#),
        ("not_dns", "!dns"),
        (
            "namespace",
            r#""production" in namespaces || dst.pod.namespace == "shop""#,
        ),
        (
            "time_window",
            r#"timestamp >= timestamp("2026-03-14T22:00:00Z") && timestamp <= timestamp("2026-03-14T23:00:00Z")"#,
        ),
        ("regex", r#"http && url.matches(".*/api/v[0-9]+/.*")"#),
        (
            "labels",
            r#"map_get(local_labels, "app", "") == "checkout""#,
        ),
    ] {
        let f = Filter::compile(src, now).expect("compiles");
        g.bench_function(name, |b| {
            b.iter(|| entries.iter().filter(|e| f.matches(e)).count())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
