//! The store against a real ClickHouse server (`WIREMAP_CLICKHOUSE_URL`; skipped when
//! unset — `tests/clickhouse.sh` starts a throwaway one and sets it).

mod common;

use common::{capture_entries, open, raw, sample, server_url, ts};
use wiremap_clickhouse::{ClickHouse, Config, Error, MapSource, MAX_PAGE, SCHEMA_VERSION};
use wiremap_kfl::Filter;
use wiremap_map::{Level, MapBuilder, Stats};
use wiremap_model::{Entry, Timestamp};

const NEVER: &dyn Fn() -> bool = &|| false;

fn all(ch: &ClickHouse, filter: Option<&Filter>) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = ch.entries(filter, Timestamp(0), Timestamp(i64::MAX), after, 40, NEVER)?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.id;
        out.extend(page);
    }
}

/// A CEL string literal.
fn cel_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\0' => o.push_str("\\000"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn ids(es: &[Entry]) -> Vec<u64> {
    es.iter().map(|e| e.id).collect()
}

fn rust_map(
    es: &[Entry],
    level: Level,
    f: Option<&Filter>,
    from: Timestamp,
    to: Timestamp,
) -> String {
    let mut sorted: Vec<&Entry> = es
        .iter()
        .filter(|e| e.timestamp >= from && e.timestamp < to)
        .filter(|e| f.is_none_or(|f| f.matches(e)))
        .collect();
    sorted.sort_by_key(|e| (e.timestamp, e.id));
    let mut b = MapBuilder::new(level);
    for e in sorted {
        b.add(e);
    }
    b.build(Stats::default()).to_json()
}

#[test]
fn entries_round_trip_exactly() {
    let Some(url) = server_url("entries_round_trip_exactly") else {
        return;
    };
    let ch = open(&url, "roundtrip");
    assert_eq!(ch.max_id().expect("max id"), 0);
    let es = sample();
    ch.insert(&es).expect("insert");
    let back = all(&ch, None).expect("entries");
    assert_eq!(back.len(), es.len());
    for (a, b) in es.iter().zip(&back) {
        assert_eq!(a, b, "entry {} changed on the way", a.id);
    }
    assert_eq!(ch.get(17, NEVER).expect("get").as_ref(), Some(&es[16]));
    assert_eq!(ch.get(10_000, NEVER).expect("get"), None);
    assert_eq!(ch.max_id().expect("max id"), 150);
    // Pages: bounded, by id, within the window (half-open).
    let page = ch
        .entries(None, es[10].timestamp, es[20].timestamp, 0, 5, NEVER)
        .expect("page");
    assert_eq!(ids(&page), vec![11, 12, 13, 14, 15]);
    let page = ch
        .entries(None, es[10].timestamp, es[20].timestamp, 18, 50, NEVER)
        .expect("page");
    assert_eq!(ids(&page), vec![19, 20]);
    let huge = ch
        .entries(
            None,
            Timestamp(0),
            Timestamp(i64::MAX),
            0,
            usize::MAX,
            NEVER,
        )
        .expect("page");
    assert_eq!(huge.len(), es.len().min(MAX_PAGE));
    let s = ch.stats().expect("stats");
    assert_eq!(s.entries, 150);
    assert_eq!(s.entries_partitions, 4, "{s:?}");
    assert!(
        s.entries_bytes > 0
            && s.rollup_rows > 0
            && s.rollup_partitions == 4
            && s.hourly_rows > 0
            && s.hourly_partitions == 4,
        "{s:?}"
    );
}

/// The reference's examples and more: ClickHouse selects exactly what the evaluator does.
const FILTERS: &[&str] = &[
    "!dns",
    "dns == false",
    r#"dst.name == "carts" || dst.name == "catalogue" || src.name == "front-end""#,
    r#"node_name == "worker-1""#,
    r#"http && method == "GET" && status_code >= 400"#,
    r#"dst.pod.namespace == "production""#,
    r#"dns && "google.com" in dns_questions"#,
    "grpc && grpc_status != 0",
    "http && elapsed_time > 5000000",
    r#"timestamp > now() - duration("60m")"#,
    r#"timestamp >= timestamp("2026-03-14T22:00:00Z") && timestamp <= timestamp("2026-03-14T23:00:00Z")"#,
    r#"!(src.pod.namespace == "kube-system")"#,
    r#"map_get(local_labels, "app", "") == "checkout""#,
    r#""production" in namespaces"#,
    "src.service.namespace != dst.service.namespace",
    r#"dst.dns != "" && !dst.dns.endsWith(".internal")"#,
    r#"http && url.matches(".*/api/v[0-9]+/.*")"#,
    r#"http && status_code >= 500 || (tcp && tcp_error_type != "")"#,
    r#"redis && redis_type == "GET" && redis_key.startsWith("session:")"#,
    r#"http and method == "POST" and not (status_code < 400)"#,
    // Beyond the examples: every kind of column and construct.
    r#"src.ip == "10.1.0.5" || dst.ip == "2001:DB8::34""#,
    r#"dst.ip != "not an address""#,
    r#"src.ip.startsWith("10.9.")"#,
    "dst.port == 6379 || src.port > 40005",
    r#"dst.pod.name == "graph" && dst.service.name == "graph""#,
    r#"dst.workload.kind == "deployment" && src.workload.name in ["front-end", "checkout"]"#,
    r#"dst.resolution_status == "stale" || src.resolution_status == "unresolved""#,
    r#"local_node_name == "worker-1" && remote_node_name == """#,
    r#"dst.zone == "corp-db" || dst.node == "worker-2" || src.node == "worker-2""#,
    r#"node["name"] == "worker-2""#,
    r#"map_get(node, "name", "") == "worker-2""#,
    r#""x-dup" in request.headers && map_get(request.headers, "x-dup", "") == "first""#,
    r#"map_get(query_string, "id", "") == "7" && "flag" in query_string && size(query_string) == 3"#,
    r#"map_get(response.headers, "content-type", "") == "application/json""#,
    r#"request.headers.exists(k, k.startsWith("user"))"#,
    r#"dns_questions.exists(q, q.endsWith(".example")) && size(dns_answers) == 1"#,
    r#"dns_question_types.all(t, t.size() == 1 || t == "AAAA")"#,
    "dns_response && dns_total_size == 72",
    r#"tls_sni == "api.stripe.com" && "h2" in tls_alpn && tls_summary == "TLS 1.3 api.stripe.com""#,
    r#"tls_info == "TLS 1.3" && tls_total_size > 1100"#,
    r#"conn_state == "closed" && conn_local_pkts == 3 && conn_remote_bytes > 0"#,
    r#"flow_state == "open" && flow_local_pkts == 2"#,
    "kafka_api_key == 3 && kafka_request",
    r#"kafka_api_key_name == "Metadata" && kafka_client_id == """#,
    "postgresql_success || mysql_query != \"\"",
    r#"mongodb_command == "find" || amqp_method.contains("publish")"#,
    r#"grpc_method == "List""#,
    r#"gql && http_version == "HTTP/1.1""#,
    "request_body_size == 3 && response_body_size == 4096 && request_headers_size > 100",
    "id > 100 && index == 2 || stream == \"105\"",
    "conn_id == 120 || flow_id == 121",
    "!dns_response && dns",
    "status_code % 100 == 3 || status_code / 100 == 4",
    r#"src.labels["app"] == "checkout""#,
    r#"has(src.labels.app) && src.labels.tier.contains("\"quoted\"")"#,
    r#"size(src.name) > 9 && src.name.lowerAscii() == src.name"#,
    r#"size(pods) == 2 && "redis-0" in pods && services == [] "#,
    r#""db.corp.internal" in dns_resolutions"#,
    r#"protocol in ["kafka", "mysql", "ws"]"#,
    r#"ws_opcode == """#,
    r#"src.name + "/" + dst.name == "checkout-1/redis-0""#,
    "conn_remote_bytes - conn_local_bytes < 0 || dns_response_length - dns_request_length == 16",
    "elapsed_time == 0 ? dns_response : elapsed_time > 1000",
    r#"url.contains("'; DROP TABLE entries; --") || method == "\\'""#,
];

#[test]
fn filters_select_what_the_evaluator_selects() {
    let Some(url) = server_url("filters_select_what_the_evaluator_selects") else {
        return;
    };
    let ch = open(&url, "filters");
    let es = sample();
    ch.insert(&es).expect("insert");
    let now = ts("2026-03-15T00:30:00Z");
    let mut unsupported = Vec::new();
    for src in FILTERS {
        let f = Filter::compile(src, now).unwrap_or_else(|e| panic!("{src}: {e}"));
        let want: Vec<u64> = es.iter().filter(|e| f.matches(e)).map(|e| e.id).collect();
        match all(&ch, Some(&f)) {
            Ok(got) => assert_eq!(
                ids(&got),
                want,
                "{src}\nSQL: {}",
                f.to_sql().unwrap_or_default()
            ),
            Err(Error::Filter(e)) => unsupported.push(format!("{src}: {e}")),
            Err(e) => panic!("{src}: {e}\nSQL: {}", f.to_sql().unwrap_or_default()),
        }
    }
    // Only `[]` and `.field` on maps that may lack the key have no exact SQL form (the
    // caller filters those in Rust); `node["name"]` has one and ran above.
    assert_eq!(unsupported.len(), 2, "{unsupported:#?}");
    assert!(
        unsupported.iter().all(|u| u.contains("indexing")),
        "{unsupported:#?}"
    );
}

#[test]
fn maps_equal_the_maps_built_in_rust() {
    let Some(url) = server_url("maps_equal_the_maps_built_in_rust") else {
        return;
    };
    let ch = open(&url, "maps");
    let es = sample();
    ch.insert(&es).expect("insert");
    let now = ts("2026-03-15T00:30:00Z");
    let whole = (ts("2026-03-14T21:00:00Z"), ts("2026-03-15T01:00:00Z"));
    let minutes = (ts("2026-03-14T22:05:00Z"), ts("2026-03-14T23:17:00Z"));
    let ragged = (ts("2026-03-14T22:05:13Z"), ts("2026-03-14T23:17:01.5Z"));
    // Whole hours with ragged minutes at both ends: 23 minutes, two hours, 23 minutes.
    let spans = (ts("2026-03-14T21:37:00Z"), ts("2026-03-15T00:23:00Z"));
    let hours = (ts("2026-03-14T22:00:00Z"), ts("2026-03-15T00:00:00Z"));
    let one_end = (ts("2026-03-14T22:00:00Z"), ts("2026-03-14T23:59:00Z"));
    let cases: &[(Option<&str>, (Timestamp, Timestamp), MapSource)] = &[
        (None, whole, MapSource::Rollups),
        (None, minutes, MapSource::Rollups),
        (None, ragged, MapSource::Entries),
        (None, spans, MapSource::Rollups),
        (None, hours, MapSource::Rollups),
        (None, one_end, MapSource::Rollups),
        (Some("!dns"), minutes, MapSource::Rollups),
        (Some("!dns"), spans, MapSource::Rollups),
        (
            Some(r#"node_name == "worker-1" || dst.namespace == "production""#),
            spans,
            MapSource::Rollups,
        ),
        (
            Some(r#"node_name == "worker-1" && src.namespace == "shop""#),
            whole,
            MapSource::Rollups,
        ),
        (
            Some(r#"dst.pod.name == "graph" || "production" in namespaces"#),
            whole,
            MapSource::Rollups,
        ),
        (
            Some("http && status_code >= 500"),
            whole,
            MapSource::Entries,
        ),
        (
            Some(r#"map_get(local_labels, "app", "") == "checkout""#),
            minutes,
            MapSource::Entries,
        ),
        (Some("elapsed_time > 1000"), ragged, MapSource::Entries),
    ];
    for (src, (from, to), source) in cases {
        let f = src.map(|s| Filter::compile(s, now).expect("filter"));
        assert_eq!(
            ch.map_source(f.as_ref(), *from, *to).expect("source"),
            *source,
            "{src:?}"
        );
        for level in [Level::Ip, Level::Pod, Level::Workload, Level::Namespace] {
            let want = rust_map(&es, level, f.as_ref(), *from, *to);
            let got = ch
                .map(level, f.as_ref(), *from, *to, NEVER)
                .expect("map")
                .to_json();
            assert!(want.contains("\"requests\""), "{src:?}: empty map");
            assert_eq!(got, want, "{src:?} at {level:?}");
        }
    }
    // A filter with no SQL form is the caller's to run.
    let f = Filter::compile(r#"request.headers["x"] == "y""#, now).expect("filter");
    assert!(matches!(
        ch.map(Level::Ip, Some(&f), whole.0, whole.1, NEVER),
        Err(Error::Filter(_))
    ));
}

#[test]
fn retention_drops_whole_hours_of_both_tables() {
    let Some(url) = server_url("retention_drops_whole_hours_of_both_tables") else {
        return;
    };
    let ch = open(&url, "retention");
    let es = sample();
    ch.insert(&es).expect("insert");
    // Nothing ends before the first hour's end.
    assert!(ch
        .drop_before(ts("2026-03-14T21:59:59Z"))
        .expect("drop")
        .is_empty());
    let dropped = ch.drop_before(ts("2026-03-14T23:00:00Z")).expect("drop");
    let mut tables: Vec<(&str, Timestamp)> =
        dropped.iter().map(|d| (d.table.as_str(), d.hour)).collect();
    tables.sort();
    let h21 = ts("2026-03-14T21:00:00Z");
    let h22 = ts("2026-03-14T22:00:00Z");
    assert_eq!(
        tables,
        vec![
            ("edges_1h", h21),
            ("edges_1h", h22),
            ("edges_1m", h21),
            ("edges_1m", h22),
            ("entries", h21),
            ("entries", h22)
        ]
    );
    let gone: u64 = dropped
        .iter()
        .filter(|d| d.table == "entries")
        .map(|d| d.rows)
        .sum();
    let kept: Vec<&Entry> = es
        .iter()
        .filter(|e| e.timestamp >= ts("2026-03-14T23:00:00Z"))
        .collect();
    assert_eq!(gone as usize, es.len() - kept.len());
    assert_eq!(all(&ch, None).expect("entries").len(), kept.len());
    let s = ch.stats().expect("stats");
    assert_eq!(
        (
            s.entries_partitions,
            s.rollup_partitions,
            s.hourly_partitions
        ),
        (2, 2, 2),
        "{s:?}"
    );
    // The rollups of what is left still make its map.
    let (from, to) = (ts("2026-03-14T23:00:00Z"), ts("2026-03-15T02:00:00Z"));
    assert_eq!(
        ch.map(Level::Workload, None, from, to, NEVER)
            .expect("map")
            .to_json(),
        rust_map(&es, Level::Workload, None, from, to)
    );
}

#[test]
fn schema_is_migrated_once_and_a_newer_one_refused() {
    let Some(url) = server_url("schema_is_migrated_once_and_a_newer_one_refused") else {
        return;
    };
    let ch = open(&url, "schema");
    let db = ch.config().database.clone();
    // Opening again finds the schema current and changes nothing.
    let again = ClickHouse::open(ch.config().clone()).expect("reopen");
    let (_, versions) = raw(
        &url,
        &format!("SELECT count(), max(version) FROM {db}.schema_version"),
    );
    assert_eq!(
        versions.trim(),
        format!("{SCHEMA_VERSION}\t{SCHEMA_VERSION}")
    );
    drop(again);
    let (status, _) = raw(
        &url,
        &format!(
            "INSERT INTO {db}.schema_version VALUES ({}, now())",
            SCHEMA_VERSION + 1
        ),
    );
    assert_eq!(status, 200);
    match ClickHouse::open(ch.config().clone()) {
        Err(e @ Error::SchemaTooNew { .. }) => {
            assert!(
                e.to_string().contains("newer than this wiremap knows"),
                "{e}"
            )
        }
        other => panic!("a newer schema was accepted: {other:?}"),
    }
}

/// Maps over whole hours come from the hourly rollups: with the per-minute ones of an hour
/// gone, its map is still whole.
#[test]
fn whole_hours_come_from_the_hourly_rollups() {
    let Some(url) = server_url("whole_hours_come_from_the_hourly_rollups") else {
        return;
    };
    let ch = open(&url, "hourly");
    let db = ch.config().database.clone();
    let es = sample();
    ch.insert(&es).expect("insert");
    let h22 = ts("2026-03-14T22:00:00Z");
    let (status, text) = raw(
        &url,
        &format!(
            "ALTER TABLE {db}.edges_1m DROP PARTITION ID '{}'",
            h22.nanos() / 1_000_000_000
        ),
    );
    assert_eq!(status, 200, "{text}");
    let hour = (h22, ts("2026-03-14T23:00:00Z"));
    for level in [Level::Ip, Level::Workload] {
        let want = rust_map(&es, level, None, hour.0, hour.1);
        assert!(want.contains("\"requests\""), "empty map");
        let got = ch.map(level, None, hour.0, hour.1, NEVER).expect("map");
        assert_eq!(got.to_json(), want, "{level:?}");
    }
    // A window that needs the dropped minutes misses them (so the hour above did not come
    // from them).
    let (from, to) = (ts("2026-03-14T22:10:00Z"), ts("2026-03-14T23:00:00Z"));
    let got = ch.map(Level::Ip, None, from, to, NEVER).expect("map");
    assert!(got.edges.is_empty(), "{:?}", got.edges.len());
}

/// A database written at schema 1 (no hourly rollups) gets them filled from its per-minute
/// ones; a migration that died half-way is redone without counting anything twice.
#[test]
fn schema_1_databases_get_hourly_rollups() {
    let Some(url) = server_url("schema_1_databases_get_hourly_rollups") else {
        return;
    };
    let ch = open(&url, "migrate");
    let db = ch.config().database.clone();
    let es = sample();
    // Half through the hourly view: what a backfill that died half-way leaves behind.
    ch.insert(&es[..75]).expect("insert");
    for sql in [
        format!("DROP TABLE {db}.edges_1h_mv"),
        format!("DROP TABLE {db}.schema_version"),
        format!("CREATE TABLE {db}.schema_version (version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version"),
        format!("INSERT INTO {db}.schema_version VALUES (1, now())"),
    ] {
        let (status, text) = raw(&url, &sql);
        assert_eq!(status, 200, "{sql}: {text}");
    }
    // The rest as schema 1 stored it: per minute only.
    ch.insert(&es[75..]).expect("insert");
    let (_, hourly) = raw(
        &url,
        &format!("SELECT countMerge(requests) FROM {db}.edges_1h"),
    );
    assert_eq!(hourly.trim(), "75");
    let again = ClickHouse::open(ch.config().clone()).expect("migrate");
    let (_, versions) = raw(
        &url,
        &format!("SELECT max(version) FROM {db}.schema_version"),
    );
    assert_eq!(versions.trim(), SCHEMA_VERSION.to_string());
    let (_, hourly) = raw(
        &url,
        &format!("SELECT countMerge(requests) FROM {db}.edges_1h"),
    );
    assert_eq!(hourly.trim(), es.len().to_string());
    // Exact from the hours, and the view keeps them from now on.
    let hours = (ts("2026-03-14T21:00:00Z"), ts("2026-03-15T02:00:00Z"));
    let more: Vec<Entry> = sample()
        .into_iter()
        .map(|mut e| {
            e.id += 1000;
            e
        })
        .collect();
    again.insert(&more).expect("insert");
    let both: Vec<Entry> = es.iter().chain(&more).cloned().collect();
    let (status, text) = raw(
        &url,
        &format!(
            "ALTER TABLE {db}.edges_1m DROP PARTITION ID '{}'",
            ts("2026-03-14T22:00:00Z").nanos() / 1_000_000_000
        ),
    );
    assert_eq!(status, 200, "{text}");
    for level in [Level::Ip, Level::Pod, Level::Workload] {
        assert_eq!(
            again
                .map(level, None, hours.0, hours.1, NEVER)
                .expect("map")
                .to_json(),
            rust_map(&both, level, None, hours.0, hours.1),
            "{level:?}"
        );
    }
}

/// A database of schema 2 (rollups without `client_errors`, views that do not fill it) gets
/// the column and new views at start-up: older rows count no 4xx, rows from then on do,
/// and every other count is exact.
#[test]
fn schema_2_databases_get_client_errors() {
    let Some(url) = server_url("schema_2_databases_get_client_errors") else {
        return;
    };
    let ch = open(&url, "schema2");
    let db = ch.config().database.clone();
    let es = sample();
    // Answered 404s on both sides of the migration.
    const SPLIT: usize = 45;
    assert!([&es[..SPLIT], &es[SPLIT..]]
        .iter()
        .all(|part| part.iter().any(|e| e.client_error())));
    // Schema 2's layout: no column, no view feeding it (rows then go in by hand through
    // views made without the column: here, by dropping the column under the stored rows).
    ch.insert(&es[..SPLIT]).expect("insert");
    for sql in [
        format!("DROP TABLE {db}.edges_1m_mv"),
        format!("DROP TABLE {db}.edges_1h_mv"),
        format!("ALTER TABLE {db}.edges_1m DROP COLUMN client_errors"),
        format!("ALTER TABLE {db}.edges_1h DROP COLUMN client_errors"),
        format!("DROP TABLE {db}.schema_version"),
        format!("CREATE TABLE {db}.schema_version (version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version"),
        format!("INSERT INTO {db}.schema_version VALUES (1, now()), (2, now())"),
    ] {
        let (status, text) = raw(&url, &sql);
        assert_eq!(status, 200, "{sql}: {text}");
    }
    let again = ClickHouse::open(ch.config().clone()).expect("migrate");
    let (_, versions) = raw(
        &url,
        &format!("SELECT max(version) FROM {db}.schema_version"),
    );
    assert_eq!(versions.trim(), SCHEMA_VERSION.to_string());
    again.insert(&es[SPLIT..]).expect("insert");
    let whole = (ts("2026-03-14T21:00:00Z"), ts("2026-03-15T02:00:00Z"));
    for level in [Level::Ip, Level::Workload] {
        let got = again
            .map(level, None, whole.0, whole.1, NEVER)
            .expect("map");
        let mut later = MapBuilder::new(level);
        es[SPLIT..].iter().for_each(|e| later.add(e));
        let later = later.build(Stats::default());
        let mut want = MapBuilder::new(level);
        es.iter().for_each(|e| want.add(e));
        let want = want.build(Stats::default());
        assert_eq!(got.edges.len(), want.edges.len());
        for (g, w) in got.edges.iter().zip(&want.edges) {
            let key = (&w.source, &w.target, w.protocol);
            assert_eq!((&g.source, &g.target, g.protocol), key);
            assert_eq!(
                (g.requests, g.responses, g.errors, g.latency_us),
                (w.requests, w.responses, w.errors, w.latency_us),
                "{key:?}"
            );
            // Only the entries stored after the migration count their 4xx.
            let after = later
                .edges
                .iter()
                .find(|l| (&l.source, &l.target, l.protocol) == key)
                .map_or(0, |l| l.client_errors);
            assert_eq!(g.client_errors, after, "{key:?}");
        }
        assert!(got.edges.iter().any(|e| e.client_errors > 0));
        assert!(got
            .edges
            .iter()
            .zip(&want.edges)
            .any(|(g, w)| g.client_errors < w.client_errors));
    }
}

#[test]
fn hostile_input_and_stops() {
    let Some(url) = server_url("hostile_input_and_stops") else {
        return;
    };
    let ch = open(&url, "hostile");
    let mut es = sample();
    // Text that would break naive quoting, in every kind of string column.
    let nasty = "x'); DROP TABLE entries; --\\'\0\n\t`\u{1F600}";
    es[0].node_name = nasty.into();
    es[0].seen_by = vec![nasty.into()];
    ch.insert(&es).expect("insert");
    assert_eq!(ch.get(1, NEVER).expect("get").as_ref(), Some(&es[0]));
    let f = Filter::compile(&format!("node_name == {}", cel_quote(nasty)), Timestamp(0))
        .expect("filter");
    assert_eq!(ids(&all(&ch, Some(&f)).expect("entries")), vec![1]);
    // A stop before the query: nothing is asked of the server.
    let stop: &dyn Fn() -> bool = &|| true;
    assert!(matches!(
        ch.map(Level::Ip, None, Timestamp(0), Timestamp(i64::MAX), stop),
        Err(Error::Stopped)
    ));
    // A reply past the cap is an error, not an allocation.
    let small = ClickHouse::open(Config {
        max_reply_bytes: 200,
        ..ch.config().clone()
    })
    .expect("open");
    assert!(matches!(
        small.get(1, NEVER),
        Err(Error::ReplyTooLarge(200))
    ));
    // A map over more endpoint pairs than allowed says so.
    let few = ClickHouse::open(Config {
        max_map_rows: 3,
        ..ch.config().clone()
    })
    .expect("open");
    assert!(matches!(
        few.map(Level::Ip, None, Timestamp(0), Timestamp(i64::MAX), NEVER),
        Err(Error::TooManyRows(3))
    ));
    // A server that is not there is a connection error.
    let gone = ClickHouse::open(Config {
        url: "http://127.0.0.1:9".into(),
        ..Config::default()
    });
    assert!(matches!(gone, Err(Error::Io(_))), "{gone:?}");
}

#[test]
fn captured_entries_round_trip_filter_and_map() {
    let Some(url) = server_url("captured_entries_round_trip_filter_and_map") else {
        return;
    };
    let captures = capture_entries(&[
        "mixed_suricata_browsing-tls-dns-http.pcap",
        "grpc-k8s_deepflow_currencyservice.pcap",
        "redis_beats_session.pcap",
        "pgsql_beats_extended-query.pcap",
        "kafka_arkime_kafka.pcap",
        "dns_zeek_edns-ecs-a-aaaa-cname-udp-tcp.pcap",
    ]);
    for (i, (name, es)) in captures.iter().enumerate() {
        assert!(!es.is_empty(), "{name}: no entries");
        let ch = open(&url, &format!("capture{i}"));
        ch.insert(es).expect("insert");
        let mut want: Vec<&Entry> = es.iter().collect();
        want.sort_by_key(|e| e.id);
        let back = all(&ch, None).expect("entries");
        assert_eq!(back.len(), es.len(), "{name}");
        for (a, b) in want.iter().zip(&back) {
            assert_eq!(*a, b, "{name}: entry {}", a.id);
        }
        let from = Timestamp(
            es.iter()
                .map(|e| e.timestamp.nanos())
                .min()
                .unwrap_or(0)
                .div_euclid(60_000_000_000)
                * 60_000_000_000,
        );
        let to = Timestamp(
            es.iter()
                .map(|e| e.timestamp.nanos())
                .max()
                .unwrap_or(0)
                .div_euclid(60_000_000_000)
                * 60_000_000_000
                + 60_000_000_000,
        );
        for src in [
            None,
            Some("!dns"),
            Some("http && status_code < 400"),
            Some(r#"dst.dns != """#),
        ] {
            let f = src.map(|s| Filter::compile(s, Timestamp(0)).expect("filter"));
            if let Some(f) = &f {
                let want: Vec<u64> = want.iter().filter(|e| f.matches(e)).map(|e| e.id).collect();
                assert_eq!(
                    ids(&all(&ch, Some(f)).expect("entries")),
                    want,
                    "{name}: {src:?}"
                );
            }
            for level in [Level::Ip, Level::Workload] {
                assert_eq!(
                    ch.map(level, f.as_ref(), from, to, NEVER)
                        .expect("map")
                        .to_json(),
                    rust_map(es, level, f.as_ref(), from, to),
                    "{name}: {src:?} at {level:?}"
                );
            }
        }
    }
}
