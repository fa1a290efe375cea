//! `GET /api/map/diff` over a store with two windows of designed traffic: each edge gets the
//! mark its traffic was made for, in JSON, DOT and Mermaid; bad questions are JSON 400s.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use wiremap_model::Timestamp;
use wiremap_server::{Access, Limits, Shared};
use wiremap_store::{Store, StoreConfig};

mod common;

use common::{get, http_entry, json};

/// Seconds of the base window's traffic; the current window's is 1,000 s later.
const T0: i64 = 1_700_000_000;
const BASE: &str = "base_from=2023-11-14T22:13:00Z&base_to=2023-11-14T22:14:00Z";
const CURRENT: &str = "from=2023-11-14T22:29:00Z&to=2023-11-14T22:31:00Z";

/// `n` exchanges `client → server` at `t0` + i ms, the first `errors` of them failed.
fn traffic(store: &mut Store, t0: i64, client: u8, server: u8, n: u32, errors: u32) {
    for i in 0..n {
        let ts = Timestamp::from_parts(t0, i * 1_000_000);
        let src = Ipv4Addr::new(10, 0, 0, client);
        let dst = format!("10.255.0.{server}");
        let mut e = http_entry(u64::from(i), ts, src.into(), &dst);
        if i < errors {
            e.status_code = 500;
            e.error = true;
        }
        store.append_entry(&mut e).expect("append");
    }
}

fn serve(dir: &std::path::Path) -> (tokio::runtime::Runtime, SocketAddr) {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = Store::open(StoreConfig::new(dir)).expect("store");
    // Base window.
    traffic(&mut store, T0, 1, 1, 20, 0); // will start failing
    traffic(&mut store, T0 + 1, 2, 2, 5, 0); // will go away
    traffic(&mut store, T0 + 2, 3, 1, 10, 0); // will stay as it is
                                              // Current window.
    traffic(&mut store, T0 + 1000, 1, 1, 20, 5);
    traffic(&mut store, T0 + 1001, 3, 1, 10, 0);
    traffic(&mut store, T0 + 1002, 4, 3, 7, 0); // new
    store.flush().expect("flush");
    common::serve(Shared::new(store), Access::default(), Limits::default())
}

fn marks(
    v: &serde_json::Value,
    what: &str,
    key: &dyn Fn(&serde_json::Value) -> String,
) -> BTreeMap<String, String> {
    v[what]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| (key(x), x["change"].as_str().unwrap_or("?").to_string()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn two_windows_of_a_store_are_marked_as_their_traffic_changed() {
    let dir = std::env::temp_dir().join(format!("wiremap-diff-api-{}", std::process::id()));
    let (_rt, addr) = serve(&dir);
    let (st, body) = get(
        addr,
        &format!("/api/map/diff?level=ip&{BASE}&{CURRENT}"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    let edge_key = |e: &serde_json::Value| {
        format!(
            "{}>{}",
            e["source"].as_str().unwrap_or(""),
            e["target"].as_str().unwrap_or("")
        )
    };
    assert_eq!(
        marks(&v, "edges", &edge_key),
        owned(&[
            ("ip:10.0.0.1>ip:10.255.0.1", "changed"),
            ("ip:10.0.0.2>ip:10.255.0.2", "removed"),
            ("ip:10.0.0.3>ip:10.255.0.1", "unchanged"),
            ("ip:10.0.0.4>ip:10.255.0.3", "added"),
        ])
    );
    let id = |n: &serde_json::Value| n["id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        marks(&v, "nodes", &id),
        owned(&[
            ("ip:10.0.0.1", "changed"),
            ("ip:10.0.0.2", "removed"),
            ("ip:10.0.0.3", "unchanged"),
            ("ip:10.0.0.4", "added"),
            ("ip:10.255.0.1", "changed"),
            ("ip:10.255.0.2", "removed"),
            ("ip:10.255.0.3", "added"),
        ])
    );
    let failing = v["edges"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["change"] == "changed"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(failing["why"], serde_json::json!(["error_rate"]));
    assert_eq!(
        (
            failing["base"]["errors"].as_u64(),
            failing["errors"].as_u64()
        ),
        (Some(0), Some(5))
    );
    assert_eq!(failing["delta"]["error_rate"].as_f64(), Some(0.25));
    assert_eq!(v["base_window"]["from"], "2023-11-14T22:13:00.000000Z");
    assert_eq!(v["window"]["to"], "2023-11-14T22:31:00.000000Z");
    assert_eq!(
        v["diff"]["edges"],
        serde_json::json!({"added": 1, "removed": 1, "changed": 1, "unchanged": 1})
    );

    // A filter applies to both windows; relative times count back from the newest data.
    let (st, body) = get(
        addr,
        &format!("/api/map/diff?level=ip&q=src.ip%20%3D%3D%20%2210.0.0.3%22&{BASE}&from=-1m"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        marks(&v, "edges", &edge_key),
        owned(&[("ip:10.0.0.3>ip:10.255.0.1", "unchanged")])
    );

    // The same marks drawn.
    let (st, dot) = get(
        addr,
        &format!("/api/map/diff?level=ip&format=dot&{BASE}&{CURRENT}"),
        None,
    );
    assert_eq!(st, 200);
    let line = |needle: &str| {
        dot.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("\"ip:10.0.0.2\" -> ").contains("style=dashed"),
        "{dot}"
    );
    assert!(line("\"ip:10.0.0.1\" -> ").contains("err +25.0pp"), "{dot}");
    let (st, mm) = get(
        addr,
        &format!("/api/map/diff?level=ip&format=mermaid&{BASE}&{CURRENT}"),
        None,
    );
    assert!(
        st == 200 && mm.starts_with("flowchart LR") && mm.contains("(new)"),
        "{mm}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_diff_questions_are_json_400s() {
    let dir = std::env::temp_dir().join(format!("wiremap-diff-bad-{}", std::process::id()));
    let (_rt, addr) = serve(&dir);
    for (query, says) in [
        ("", "base_from"),
        ("base_from=-1h", "`base_to` is missing"),
        ("base_to=now", "`base_from` is missing"),
        ("base_from=now&base_to=-1h", "inverted"),
        ("base_from=-1h&base_to=now&from=now&to=-5m", "inverted"),
        ("base_from=yesterday&base_to=now", "base_from"),
        ("base_from=-1h&base_to=9999-01-01T00:00:00Z", "base_to"),
        ("base_from=-1h&base_to=now&to=soon", "`to`"),
        ("base_from=-1h&base_to=now&level=galaxy", "unknown level"),
        ("base_from=-1h&base_to=now&q=http%20%26%26", "kfl"),
        ("base_from=-1h&base_to=now&format=xml", "format"),
        ("base_from=-1h&base_to=now&limit=x", "query string"),
    ] {
        let (st, body) = get(addr, &format!("/api/map/diff?{query}"), None);
        let v = json(&body);
        assert_eq!(st, 400, "{query}: {body}");
        let text = v.to_string();
        assert!(
            v["error"].is_string() && text.contains(says),
            "{query}: {body}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
