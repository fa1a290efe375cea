//! Maps from rollups equal maps from entries. A real store is built from the shared
//! captures (dissected by the engine, named from DNS and Kubernetes holdings, spread over
//! hours by shifting each copy's packet times) with small segments, so most are closed, one
//! is open, and some close mid-minute. Then, for random windows, endpoint-only filters and
//! levels, the map answered from rollups (`EntryStore::rollups`) must equal the map from
//! scanning entries (`EntryStore::scan` + the filter), which must equal the map of the
//! entries that were appended. Damaged and missing rollup files must change nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use wiremap_kfl::Filter;
use wiremap_map::{Level, ServiceMap};
use wiremap_model::{Entry, IdentityKind, Timestamp};
use wiremap_store::{SegmentMeta, Segments, Store, StoreConfig};

#[path = "rollups/fixture.rs"]
mod fixture;

use fixture::*;

/// Filters that read only endpoints, protocol and node; names from the holdings and the
/// DNS names the data has most and least often.
fn endpoint_filters(entries: &[Entry]) -> Vec<String> {
    let mut v: Vec<String> = [
        "dns",
        "redis",
        "mysql",
        "http",
        "tls",
        "tcp",
        "conn",
        "!dns",
        "redis || mysql",
        "http && !tls",
        "protocol in [\"redis\", \"mysql\"]",
        "protocol == \"http\"",
        "protocol != \"dns\" && protocol != \"http\"",
        "src.ip.startsWith(\"10.\")",
        "dst.ip.startsWith(\"192.168.\") || src.ip.startsWith(\"172.\")",
        "dst.ip == \"127.0.0.1\" || dst.ip == \"::1\"",
        "node_name == \"\"",
        "node_name == \"node-a\"",
        "node_name != \"node-b\" && mysql",
        "(redis || mysql) && node_name == \"node-a\"",
        "dst.namespace == \"db\"",
        "src.namespace == \"shop\" || dst.namespace == \"kube-system\"",
        "!(src.pod.namespace == \"shop\")",
        "dst.service.name == \"kube-dns\"",
        "dst.workload.name == \"mysql\" || (redis && !(src.ip == \"127.0.0.1\"))",
        "src.labels[\"app\"] == \"api\"",
        "dst.name == \"mysql-0\" || dst.name == \"legacy-db\"",
        "src.name.startsWith(\"web\") && dns",
        "dns || dst.namespace == \"db\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries {
        if let Some(id) = &e.dst.identity {
            if id.kind == IdentityKind::Dns && !id.name.is_empty() {
                *names.entry(&id.name).or_default() += 1;
            }
        }
    }
    let mut by_count: Vec<(&str, usize)> = names.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    assert!(by_count.len() >= 4, "DNS names in the data: {by_count:?}");
    for (n, _) in by_count.iter().take(3) {
        v.push(format!("dst.name == \"{n}\""));
        v.push(format!("dst.name == \"{n}\" && node_name != \"node-a\""));
    }
    for (n, _) in by_count.iter().rev().take(2) {
        v.push(format!("dst.name == \"{n}\""));
    }
    v.push(format!(
        "dst.name == \"{}\" || src.namespace == \"shop\"",
        by_count[1].0
    ));
    v
}

/// Window ends: at, near or between entries (nanoseconds apart), on and next to minute
/// boundaries and segment ends, far outside the data, or open.
fn time_strategy(times: &[i64], segments: &[SegmentMeta]) -> BoxedStrategy<Option<i64>> {
    let ends: Vec<i64> = segments
        .iter()
        .flat_map(|m| [m.from, m.to])
        .flatten()
        .collect();
    let (lo, hi) = (times[0], times[times.len() - 1]);
    let t = times.to_vec();
    prop_oneof![
        2 => Just(None),
        4 => (select(t.clone()), -90 * SEC..90 * SEC).prop_map(|(t, d)| Some(t + d)),
        2 => (select(t.clone()), -1i64..=1).prop_map(|(t, d)| Some(t + d)),
        3 => (select(t.clone()), -3i64..=3, -1i64..=1)
            .prop_map(|(t, k, d)| Some((t.div_euclid(MINUTE) + k) * MINUTE + d)),
        3 => (select(ends), -1i64..=1).prop_map(|(t, d)| Some(t + d)),
        1 => (lo - 3600 * SEC..hi + 3600 * SEC).prop_map(Some),
        1 => select(vec![i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX]).prop_map(Some),
    ]
    .boxed()
}

fn case_strategy(
    times: &[i64],
    segments: &[SegmentMeta],
    filters: Vec<Option<String>>,
) -> impl Strategy<Value = Case> {
    let t = time_strategy(times, segments);
    let levels = vec![
        Level::Ip,
        Level::Workload,
        Level::Namespace,
        Level::Pod,
        Level::Service,
    ];
    (t.clone(), t, any::<u8>(), select(filters), select(levels)).prop_map(
        |(a, b, swap, filter, level)| {
            // Mostly an ordered window; now and then an empty, inverted one.
            let (from, to) = match (a, b) {
                (Some(x), Some(y)) if (x > y) != (swap < 16) => (b, a),
                _ => (a, b),
            };
            Case {
                from,
                to,
                filter,
                level,
            }
        },
    )
}

fn failure(e: TestError<Case>) -> String {
    match e {
        TestError::Fail(why, case) => format!("{why}\nminimal case: {case:?}"),
        TestError::Abort(why) => format!("aborted: {why}"),
    }
}

#[test]
fn rollup_maps_equal_entry_scan_maps() {
    let t0 = std::time::Instant::now();
    let Some(mut built) = build("prop", 3) else {
        return;
    };
    eprintln!("built in {:?}", t0.elapsed());
    let segs = built.segments();
    // The data holds what every count of an edge is about, HTTP 4xx included.
    for (what, n) in [
        ("errors", built.entries.iter().filter(|e| e.error).count()),
        (
            "client errors",
            built.entries.iter().filter(|e| e.client_error()).count(),
        ),
        (
            "unanswered",
            built.entries.iter().filter(|e| !e.has_response).count(),
        ),
    ] {
        assert!(n > 0, "no {what} in the data");
    }
    let closed = segs.segments.iter().filter(|m| m.closed).count();
    assert!(closed >= 20, "{closed} closed segments: too few to cut");
    assert!(
        segs.segments
            .last()
            .is_some_and(|m| !m.closed && m.entries > 0),
        "the last segment is open and holds entries"
    );
    // Some minutes are split between segments (closed by bytes in the middle of a minute).
    let minute = |t: Option<i64>| t.map(|t| t.div_euclid(MINUTE));
    let split = segs
        .segments
        .windows(2)
        .any(|w| w[0].closed && w[1].closed && minute(w[0].to) == minute(w[1].from));
    assert!(split, "no minute spans two segments");
    let now = Timestamp(built.times[built.times.len() - 1]);
    let sources = endpoint_filters(&built.entries);
    let compiled: BTreeMap<String, Filter> = sources
        .iter()
        .map(|s| (s.clone(), compile(s, now)))
        .collect();
    for (s, f) in &compiled {
        assert!(f.endpoint_only(), "`{s}` reads only endpoints");
    }
    // Each filter selects something over all data, and none selects everything.
    for (s, f) in &compiled {
        let n = built.entries.iter().filter(|e| f.matches(e)).count();
        assert!(
            n > 0 && n < built.entries.len(),
            "`{s}` selects {n} of {} entries",
            built.entries.len()
        );
    }
    let mut choices: Vec<Option<String>> = vec![None, None];
    choices.extend(sources.into_iter().map(Some));

    let strategy = case_strategy(&built.times, &segs.segments, choices);
    // Modest by default (a scan in a debug build is slow); PROPTEST_CASES asks for more.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let reached = std::cell::Cell::new((0usize, 0usize, 0usize, 0usize));
    let entries = &built.entries;
    let result = runner.run(&strategy, |c| {
        let filter = c.filter.as_ref().map(|s| &compiled[s]);
        let Some(from_rollups) = rollup_map(&segs, &c, filter) else {
            return Err(TestCaseError::fail(
                "rollups declined an endpoint-only filter",
            ));
        };
        let from_scan = scan_map(&segs, &c, filter);
        let from_entries = reference_map(entries, &c, filter);
        if let Some(d) = difference("scan", &from_scan, "appended", &from_entries) {
            return Err(TestCaseError::fail(format!(
                "scan map != appended entries' map: {d}"
            )));
        }
        if let Some(d) = difference("rollups", &from_rollups, "scan", &from_scan) {
            return Err(TestCaseError::fail(format!("rollup map != scan map: {d}")));
        }
        let (w, m, r) = coverage(&segs.segments, &c);
        let mut n = reached.get();
        n.0 += usize::from(w > 0);
        n.1 += usize::from(m > 0);
        n.2 += usize::from(r > 0);
        n.3 += usize::from(!from_scan.edges.is_empty());
        reached.set(n);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}", failure(e));
    }
    let reached = reached.get();
    eprintln!(
        "{} entries, {} segments ({closed} closed); cases with segments covered whole: {}, \
         cut with whole minutes: {}, cut at ragged ends only: {}, non-empty maps: {}",
        built.entries.len(),
        segs.segments.len(),
        reached.0,
        reached.1,
        reached.2,
        reached.3
    );
    // The cases reach every path (shrinking runs more cases, never fewer).
    assert!(
        reached.0 >= 8 && reached.1 >= 8 && reached.2 >= 4 && reached.3 >= 16,
        "{reached:?}"
    );

    // A filter that reads more than rollups keep is declined, with nothing visited.
    for s in [
        "src.port > 1000",
        "mysql && src.port > 1000",
        "status_code >= 400",
        "elapsed_time > 1000 || dns",
    ] {
        let f = compile(s, now);
        assert!(!f.endpoint_only(), "`{s}`");
        let c = Case {
            from: None,
            to: None,
            filter: Some(s.to_string()),
            level: Level::Ip,
        };
        assert!(rollup_map(&segs, &c, Some(&f)).is_none(), "`{s}` declined");
    }
}

/// Windows over the segment `cut` that take every path: the segment whole, cut inside its
/// first and last minutes, cut across a minute boundary in its middle, from its middle on,
/// and up to its middle; each with a filter and level of its own.
fn cases_over(cut: &SegmentMeta) -> Vec<Case> {
    let (cf, ct) = (cut.from.expect("from"), cut.to.expect("to"));
    let mid = cf + (ct - cf) / 2;
    let windows = [
        (Some(cf - 1), Some(ct + 1)),
        (Some(cf + 1), Some(ct - 1)),
        (Some(mid - MINUTE - 17), Some(mid + MINUTE + 3)),
        (Some(mid), None),
        (None, Some(mid)),
    ];
    let looks = [
        (None, Level::Ip),
        (Some("redis || mysql || dns || http"), Level::Workload),
        (Some("node_name != \"node-b\""), Level::Service),
    ];
    windows
        .iter()
        .zip(looks.iter().cycle())
        .map(|(&(from, to), &(filter, level))| Case {
            from,
            to,
            filter: filter.map(str::to_string),
            level,
        })
        .collect()
}

fn rollup_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:010}.rollup"))
}

#[test]
fn damaged_or_missing_rollup_files_give_the_same_map() {
    let Some(mut built) = build("damage", 1) else {
        return;
    };
    let segs = built.segments();
    let now = Timestamp(built.times[built.times.len() - 1]);
    // The three closed segments with the most entries (each with whole minutes to cut).
    let mut closed: Vec<&SegmentMeta> = segs.segments.iter().filter(|m| m.closed).collect();
    closed.sort_by_key(|m| std::cmp::Reverse(m.entries));
    let (a, b, c) = (closed[0].clone(), closed[1].clone(), closed[2].clone());
    let mut cases = vec![Case {
        from: None,
        to: None,
        filter: None,
        level: Level::Namespace,
    }];
    for m in [&a, &b, &c] {
        assert!(
            rollup_path(&built.dir, m.seq).exists(),
            "seg {} has rollups",
            m.seq
        );
        cases.extend(cases_over(m));
    }
    // What every answer must be: the map of the entries (scanned once; the entries files
    // are not touched).
    let filters: Vec<Option<Filter>> = cases
        .iter()
        .map(|c| c.filter.as_deref().map(|s| compile(s, now)))
        .collect();
    let expected: Vec<ServiceMap> = cases
        .iter()
        .zip(&filters)
        .map(|(c, f)| {
            let s = scan_map(&segs, c, f.as_ref());
            let e = reference_map(&built.entries, c, f.as_ref());
            if let Some(d) = difference("scan", &s, "appended", &e) {
                panic!("{c:?}: scan map != appended entries' map: {d}");
            }
            s
        })
        .collect();
    let check = |what: &str| {
        for ((c, f), want) in cases.iter().zip(&filters).zip(&expected) {
            let r = rollup_map(&segs, c, f.as_ref()).expect("answered from rollups");
            if let Some(d) = difference("rollups", &r, "scan", want) {
                panic!("{what}: {c:?}: rollup map != scan map: {d}");
            }
        }
    };
    check("intact");

    // A few bytes overwritten in the segment totals of one file and in the minute rows of
    // another (its end), and a third file deleted.
    let damage = |seq: u64, at: fn(usize) -> usize| {
        let p = rollup_path(&built.dir, seq);
        let mut bytes = std::fs::read(&p).expect("rollup file");
        let i = at(bytes.len());
        for x in &mut bytes[i..i + 4] {
            *x ^= 0x5a;
        }
        std::fs::write(&p, &bytes).expect("damage");
    };
    damage(a.seq, |n| 20.min(n - 4));
    damage(b.seq, |n| n - 6);
    std::fs::remove_file(rollup_path(&built.dir, c.seq)).expect("delete");
    check("damaged or missing");
    // A file cut short, and one emptied.
    let p = rollup_path(&built.dir, a.seq);
    let len = std::fs::metadata(&p).expect("rollup file").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_len(len / 2))
        .expect("cut");
    std::fs::write(rollup_path(&built.dir, b.seq), b"").expect("empty");
    check("cut short or empty");
}

#[test]
fn older_rollup_files_count_as_missing_and_are_rebuilt() {
    let Some(mut built) = build("older", 1) else {
        return;
    };
    let segs = built.segments();
    let now = Timestamp(built.times[built.times.len() - 1]);
    let mut closed: Vec<&SegmentMeta> = segs.segments.iter().filter(|m| m.closed).collect();
    closed.sort_by_key(|m| std::cmp::Reverse(m.entries));
    let m = closed[0].clone();
    let path = rollup_path(&built.dir, m.seq);
    // A file of the previous format: its magic (what a reader looks at first) is 001.
    let mut bytes = std::fs::read(&path).expect("rollup file");
    assert_eq!(&bytes[..8], wiremap_store::ROLLUP_MAGIC);
    bytes[..8].copy_from_slice(b"WMRLP001");
    std::fs::write(&path, &bytes).expect("older");
    let damaged = built.store.stats().damaged_records;
    let entries = built.entries.clone();
    let check = |segs: &Segments, what: &str| {
        for c in cases_over(&m) {
            let f = c.filter.as_deref().map(|s| compile(s, now));
            let want = reference_map(&entries, &c, f.as_ref());
            let got = rollup_map(segs, &c, f.as_ref()).expect("answered");
            if let Some(d) = difference("rollups", &got, "appended", &want) {
                panic!("{what}: {c:?}: {d}");
            }
        }
    };
    check(&segs, "older file");
    assert_eq!(
        built.store.stats().damaged_records,
        damaged,
        "an older format is no damage"
    );
    // The writer makes it again at start-up, in the current format.
    let spare = tmpdir("older-spare");
    let placeholder = Store::open(StoreConfig::new(&spare)).expect("opens");
    drop(std::mem::replace(&mut built.store, placeholder));
    built.store = Store::open(StoreConfig::new(&built.dir)).expect("reopens");
    let _ = std::fs::remove_dir_all(&spare);
    let bytes = std::fs::read(&path).expect("rebuilt");
    assert_eq!(&bytes[..8], wiremap_store::ROLLUP_MAGIC);
    let segs = built.segments();
    check(&segs, "rebuilt file");
}
