//! Identity from Kubernetes objects as `kubectl get … -o json` prints them.

use std::net::IpAddr;

use wiremap_identity::{holdings, IdentityIndex, IdentityLimits};
use wiremap_model::{IdentityKind, Timestamp};

const LIST: &str = r#"{
  "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
  "items": [
    {"apiVersion": "apps/v1", "kind": "ReplicaSet",
     "metadata": {"name": "cart-5f4", "namespace": "shop", "uid": "rs1",
       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "uid": "d1", "controller": true}]}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "cart-5f4-old", "namespace": "shop", "labels": {"app": "cart", "version": "v1"},
       "creationTimestamp": "2026-03-14T21:00:00Z", "deletionTimestamp": "2026-03-14T22:00:00Z",
       "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-5f4", "controller": true}]},
     "spec": {"nodeName": "worker-1"}, "status": {"podIP": "10.1.0.9", "podIPs": [{"ip": "10.1.0.9"}]}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "debug-shell", "namespace": "ops", "labels": {"run": "debug"},
       "creationTimestamp": "2026-03-14T22:00:05Z"},
     "spec": {"nodeName": "worker-2"}, "status": {"podIPs": [{"ip": "10.1.0.9"}, {"ip": "fd00::9"}]}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "cache-0", "namespace": "payments", "labels": {"app": "cache"},
       "creationTimestamp": "2026-03-01T00:00:00Z",
       "ownerReferences": [{"kind": "StatefulSet", "name": "cache", "controller": true}]},
     "spec": {"nodeName": "worker-1"}, "status": {"podIP": "10.1.0.20"}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "node-exporter-x", "namespace": "monitoring", "creationTimestamp": "2026-03-01T00:00:00Z",
       "ownerReferences": [{"kind": "DaemonSet", "name": "node-exporter", "controller": true}]},
     "spec": {"nodeName": "worker-1", "hostNetwork": true}, "status": {"podIP": "192.168.0.11"}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "cache", "namespace": "payments", "creationTimestamp": "2026-03-01T00:00:00Z"},
     "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"]}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "cache-abc", "namespace": "payments", "labels": {"kubernetes.io/service-name": "cache"}},
     "endpoints": [{"addresses": ["10.1.0.20"], "targetRef": {"kind": "Pod", "name": "cache-0", "namespace": "payments"}}]},
    {"apiVersion": "v1", "kind": "Node",
     "metadata": {"name": "worker-1", "labels": {"kubernetes.io/hostname": "worker-1"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.11"}, {"type": "Hostname", "address": "worker-1"}]}}
  ]
}"#;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("ts")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn index() -> IdentityIndex {
    let mut x = IdentityIndex::new(IdentityLimits::default());
    x.add_k8s(holdings(&[("snap.json".into(), LIST.into())]).expect("parses"));
    x
}

#[test]
fn pods_are_named_by_their_workload_and_services() {
    let mut x = index();
    let cart = x
        .resolve(ip("10.1.0.9"), ts("2026-03-14T21:30:00Z"))
        .expect("cart");
    assert_eq!(
        (cart.kind, cart.pod.as_str(), cart.namespace.as_str()),
        (IdentityKind::Pod, "cart-5f4-old", "shop")
    );
    assert_eq!(
        (cart.workload_kind.as_str(), cart.workload_name.as_str()),
        ("deployment", "cart")
    );
    assert_eq!(cart.labels.get("app").map(String::as_str), Some("cart"));
    assert_eq!(cart.node, "worker-1");
    let cache = x
        .resolve(ip("10.1.0.20"), ts("2026-03-14T21:30:00Z"))
        .expect("cache");
    assert_eq!(
        (
            cache.workload_kind.as_str(),
            cache.workload_name.as_str(),
            cache.service.as_str()
        ),
        ("statefulset", "cache", "cache")
    );
    let svc = x
        .resolve(ip("10.96.0.20"), ts("2026-03-14T21:30:00Z"))
        .expect("service");
    assert_eq!(
        (svc.kind, svc.name.as_str(), svc.namespace.as_str()),
        (IdentityKind::Service, "cache", "payments")
    );
    let node = x
        .resolve(ip("192.168.0.11"), ts("2026-03-14T21:30:00Z"))
        .expect("node");
    assert_eq!(
        (node.kind, node.name.as_str()),
        (IdentityKind::Node, "worker-1")
    );
}

#[test]
fn a_reused_pod_ip_means_the_pod_that_held_it_then() {
    let mut x = index();
    assert_eq!(
        x.resolve(ip("10.1.0.9"), ts("2026-03-14T21:59:59Z"))
            .expect("old")
            .pod,
        "cart-5f4-old"
    );
    // Between the deletion and the next pod's creation the address is nobody's.
    assert!(x
        .resolve(ip("10.1.0.9"), ts("2026-03-14T22:00:02Z"))
        .is_none());
    let new = x
        .resolve(ip("10.1.0.9"), ts("2026-03-14T22:00:06Z"))
        .expect("new");
    assert_eq!(
        (
            new.pod.as_str(),
            new.namespace.as_str(),
            new.workload_kind.as_str(),
            new.workload_name.as_str()
        ),
        ("debug-shell", "ops", "pod", "debug-shell")
    );
    // Dual-stack: the second address names the same pod.
    assert_eq!(
        x.resolve(ip("fd00::9"), ts("2026-03-14T22:10:00Z"))
            .expect("v6")
            .pod,
        "debug-shell"
    );
    // Before any creation, nothing.
    assert!(x
        .resolve(ip("10.1.0.9"), ts("2026-03-14T20:00:00Z"))
        .is_none());
}

#[test]
fn bad_snapshots_name_the_file() {
    let e = holdings(&[("broken.json".into(), "{\"items\": [".into())]).expect_err("broken");
    assert!(
        e.to_string()
            .starts_with("broken.json: not Kubernetes JSON"),
        "{e}"
    );
    let e = holdings(&[("empty.json".into(), "".into())]).expect_err("empty");
    assert_eq!(e.to_string(), "empty.json: no objects");
}
