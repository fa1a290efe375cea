//! The real `kube` client against an in-repo Kubernetes API double that speaks list+watch
//! as the API server does: lists with a resourceVersion, watch streams of newline-delimited
//! events from a resourceVersion, bookmarks, `410 Gone` (as an in-stream ERROR Status) for a
//! compacted version, and, on demand, slow streams, dropped connections and failing requests.

mod double;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use double::Double;
use serde_json::{json, Value};
use wiremap_identity::{Holding, IdentityIndex};
use wiremap_kube::{WatchStats, KINDS};
use wiremap_model::Timestamp;

fn pod(name: &str, ns: &str, ip: &str, owner: (&str, &str), app: &str, created: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "creationTimestamp": created,
            "labels": {"app": app, "pod-template-hash": "5f4"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": "x", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": app, "image": format!("registry.example/{app}:1.0")}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.1.10"}
    })
}

fn resolve(h: &[Holding], ip: &str, at: &str) -> (String, String, String) {
    let mut idx = IdentityIndex::new(Default::default());
    idx.set_live_k8s(h.to_vec());
    let ip: IpAddr = ip.parse().expect("ip");
    let t = Timestamp::parse_rfc3339(at).expect("time");
    match idx.resolve(ip, t) {
        Some(i) => (i.namespace.clone(), i.workload_name.clone(), i.name.clone()),
        None => Default::default(),
    }
}

/// Waits for a holdings set satisfying `pred`; returns the latest one.
fn wait_for(
    rx: &std::sync::mpsc::Receiver<Vec<Holding>>,
    last: &mut Vec<Holding>,
    what: &str,
    pred: impl Fn(&[Holding]) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if pred(last) {
            return;
        }
        if let Ok(h) = rx.recv_timeout(Duration::from_millis(100)) {
            *last = h;
        }
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn watches_follow_the_api_through_gone_drops_and_failures() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let d = Double::default();
    // A deployment's pod behind a service, a statefulset's pod, a node.
    d.put("replicasets", json!({"metadata": {"name": "cart-5f4", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "uid": "d", "controller": true}]}}));
    d.put(
        "pods",
        pod(
            "cart-5f4-a",
            "shop",
            "10.1.0.5",
            ("ReplicaSet", "cart-5f4"),
            "cart",
            "2026-01-01T00:00:00Z",
        ),
    );
    d.put(
        "pods",
        pod(
            "db-0",
            "payments",
            "10.1.0.7",
            ("StatefulSet", "db"),
            "db",
            "2026-01-01T00:00:00Z",
        ),
    );
    d.put("statefulsets", json!({"metadata": {"name": "db", "namespace": "payments", "creationTimestamp": "2026-01-01T00:00:00Z"}}));
    d.put("services", json!({"metadata": {"name": "cart", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "cart"}},
        "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}}));
    d.put("endpointslices", json!({"metadata": {"name": "cart-abc", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"kubernetes.io/service-name": "cart"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.5"], "targetRef": {"kind": "Pod", "name": "cart-5f4-a", "namespace": "shop"}}]}));
    d.put("nodes", json!({"metadata": {"name": "node-1", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"kubernetes.io/hostname": "node-1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "node-1"}]}}));

    let app = d.router();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app).await });

    let client = rt
        .block_on(async { wiremap_kube::client_for_url(&format!("http://{addr}")) })
        .expect("client");
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = Arc::new(WatchStats::default());
    rt.spawn(wiremap_kube::watch(client, tx, stats.clone()));

    // 1. The initial lists name everything.
    let mut h = Vec::new();
    let t0 = "2026-01-01T00:30:00Z";
    // Every kind lists on its own, so wait until each one the assertions read has arrived.
    wait_for(&rx, &mut h, "initial lists", |h| {
        resolve(h, "192.168.1.10", t0).2 == "node-1"
            && resolve(h, "10.1.0.5", t0).1 == "cart"
            && resolve(h, "10.1.0.7", t0).1 == "db"
            && resolve(h, "10.96.0.10", t0).2 == "cart"
    });
    assert_eq!(
        resolve(&h, "10.1.0.5", t0),
        ("shop".into(), "cart".into(), "cart-5f4-a".into())
    );
    assert_eq!(
        resolve(&h, "10.1.0.7", t0),
        ("payments".into(), "db".into(), "db-0".into())
    );
    assert_eq!(resolve(&h, "10.96.0.10", t0).2, "cart");
    // Every kind lists once and then watches with bookmarks (the kinds start independently).
    let end = Instant::now() + Duration::from_secs(15);
    while (d.count("lists") < KINDS.len() as u64 || d.count("bookmarks") < KINDS.len() as u64)
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.count("lists"), KINDS.len() as u64, "one list per kind");
    assert!(
        d.count("bookmarks") >= KINDS.len() as u64,
        "watches ask for bookmarks"
    );

    // 2. Watch events: the cart pod goes, a checkout pod gets its address later.
    d.delete("pods", "shop", "cart-5f4-a", "2026-01-01T01:00:00Z");
    d.put(
        "pods",
        pod(
            "checkout-9b1-c",
            "shop",
            "10.1.0.5",
            ("ReplicaSet", "checkout-9b1"),
            "checkout",
            "2026-01-01T01:00:05Z",
        ),
    );
    wait_for(&rx, &mut h, "reused address", |h| {
        resolve(h, "10.1.0.5", "2026-01-01T01:30:00Z").2 == "checkout-9b1-c"
    });
    assert_eq!(
        resolve(&h, "10.1.0.5", t0).2,
        "cart-5f4-a",
        "traffic from before the deletion keeps the old pod"
    );
    let lists_before = d.count("lists");

    // 3. History compacted while the watches are cut: reconnects get 410 Gone and re-list,
    //    once per kind, and pick up what changed meanwhile.
    d.compact_and_cut(Some((
        "pods",
        pod(
            "front-1",
            "shop",
            "10.1.0.9",
            ("ReplicaSet", "front-77"),
            "front",
            "2026-01-01T02:00:00Z",
        ),
    )));
    wait_for(&rx, &mut h, "change made during the outage", |h| {
        resolve(h, "10.1.0.9", "2026-01-01T02:10:00Z").2 == "front-1"
    });
    std::thread::sleep(Duration::from_millis(1500));
    let relists = d.count("lists") - lists_before;
    assert!(
        relists >= 1 && relists <= KINDS.len() as u64,
        "one re-list per kind at most, got {relists}"
    );

    // 4. Dropped connections (cut after every event) and slow streams: nothing is missed.
    {
        let mut st = d.lock();
        st.drop_after = Some(1);
        st.slow = Duration::from_millis(150);
    }
    for i in 0..5 {
        d.put(
            "pods",
            pod(
                &format!("batch-{i}"),
                "jobs",
                &format!("10.1.1.{i}"),
                ("Job", "nightly"),
                "batch",
                "2026-01-01T03:00:00Z",
            ),
        );
    }
    wait_for(&rx, &mut h, "events over dropped connections", |h| {
        (0..5).all(|i| {
            resolve(h, &format!("10.1.1.{i}"), "2026-01-01T03:10:00Z").2 == format!("batch-{i}")
        })
    });
    {
        let mut st = d.lock();
        st.drop_after = None;
        st.slow = Duration::ZERO;
    }

    // 5. A failing API server: the watchers back off instead of hammering it.
    d.compact_and_cut(None);
    d.lock().fail = true;
    let before = d.count("requests");
    std::thread::sleep(Duration::from_secs(3));
    let during = d.count("requests") - before;
    d.lock().fail = false;
    assert!(
        during <= 8 * KINDS.len() as u64,
        "{during} requests in 3 s of failures: no backoff"
    );
    assert!(stats.errors.load(Ordering::Relaxed) > 0);
    d.put(
        "pods",
        pod(
            "late-1",
            "shop",
            "10.1.2.1",
            ("ReplicaSet", "late-1a"),
            "late",
            "2026-01-01T04:00:00Z",
        ),
    );
    wait_for(&rx, &mut h, "recovery after failures", |h| {
        resolve(h, "10.1.2.1", "2026-01-01T04:10:00Z").2 == "late-1"
    });
    eprintln!(
        "watch: {} lists, {} watch requests, {} requests in all, {} events, {} errors, {} rebuilds; {} requests during 3 s of failures",
        d.count("lists"),
        d.count("watches"),
        d.count("requests"),
        stats.events.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.rebuilds.load(Ordering::Relaxed),
        during
    );
    drop(rx);
    drop(rt);
}

#[test]
fn objects_are_trimmed_to_what_identity_reads() {
    let mut p = pod(
        "cart-5f4-a",
        "shop",
        "10.1.0.5",
        ("ReplicaSet", "cart-5f4"),
        "cart",
        "2026-01-01T00:00:00Z",
    );
    p["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
    let t = wiremap_kube::trim("Pod", &p);
    assert!(
        t["metadata"].get("managedFields").is_none() && t["metadata"].get("annotations").is_none()
    );
    assert!(t.get("spec").and_then(|s| s.get("containers")).is_none());
    assert_eq!(t["status"]["podIP"], "10.1.0.5");
    assert_eq!(t["metadata"]["labels"]["app"], "cart");
    assert_eq!(t["kind"], "Pod");
}

/// Memory for 10,000 pods held (trimmed), as reported in the notes.
#[test]
fn ten_thousand_pods_fit() {
    use kube::runtime::watcher::Event;
    let mut state = wiremap_kube::ClusterState::default();
    state.apply(0, Event::Init);
    for i in 0..10_000u32 {
        let p = pod(
            &format!("web-{i}"),
            &format!("ns{}", i % 50),
            &format!("10.{}.{}.{}", 2 + i / 65536, (i / 256) % 256, i % 256),
            ("ReplicaSet", "web-7f"),
            "web",
            "2026-01-01T00:00:00Z",
        );
        let o: kube::api::DynamicObject = serde_json::from_value(p).expect("object");
        state.apply(0, Event::InitApply(o));
    }
    state.apply(0, Event::InitDone);
    assert_eq!(state.len(), 10_000);
    let h = state.holdings();
    assert_eq!(h.len(), 10_000);
}
