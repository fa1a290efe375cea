//! Memory of the watch state for N pods (default 10,000), as the pipeline holds it: trimmed
//! objects plus the holdings rebuilt from them.
//!
//!     cargo run --release -p wiremap-kube --example memory [PODS]
use kube::runtime::watcher::Event;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let before = rss_kib();
    let mut state = wiremap_kube::ClusterState::default();
    state.apply(0, Event::Init);
    for i in 0..n {
        // A pod as the API serves it, managed fields, annotations and container spec included.
        let p = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-7f9c6d5b8-{i:05}"), "namespace": format!("team-{}", i % 50),
                "uid": format!("0b8f2a3c-{i:08}"), "resourceVersion": format!("{}", 1000 + i),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "7f9c6d5b8", "team": format!("team-{}", i % 50)},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", "prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7f9c6d5b8", "uid": "r", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:pod-template-hash": {}}}}}]},
            "spec": {"nodeName": format!("node-{}", i % 100), "containers": [{"name": "web", "image": "registry.example/web:1.4.2",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", 2 + i / 65536, (i / 256) % 256, i % 256),
                "podIPs": [{"ip": format!("10.{}.{}.{}", 2 + i / 65536, (i / 256) % 256, i % 256)}], "hostIP": "192.168.1.10",
                "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let o: kube::api::DynamicObject = serde_json::from_value(p).expect("object");
        state.apply(0, Event::InitApply(o));
    }
    state.apply(0, Event::InitDone);
    let held = rss_kib();
    let h = state.holdings();
    let mut idx = wiremap_identity::IdentityIndex::new(Default::default());
    idx.set_live_k8s(h);
    let indexed = rss_kib();
    println!(
        "{n} pods: watch state +{:.1} MiB, identity index +{:.1} MiB, total +{:.1} MiB ({:.2} KiB per pod)",
        (held - before) as f64 / 1024.0,
        (indexed - held) as f64 / 1024.0,
        (indexed - before) as f64 / 1024.0,
        (indexed - before) as f64 / f64::from(n)
    );
}
