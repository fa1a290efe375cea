#!/usr/bin/env bash
# A small cluster's worth of pods without a cluster: network namespaces on a bridge play the
# pods (real HTTP servers, a real Redis, real curl and redis-cli), tcpdump records the
# bridge, and a snapshot in `kubectl get -o json` form describes Deployments, a StatefulSet,
# Services and their EndpointSlices. The map built with `--k8s` must name workloads,
# namespaces and labels, group by service and namespace, and tell apart two pods that held
# the same address one after the other. Needs root (ip netns).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/pods.sh
POD_PREFIX=wm- POD_VETH=w
wiremap=${WIREMAP:-target/release/wiremap}
work=$(mktemp -d /tmp/wiremap-cluster.XXXXXX)
node=wm-node-$$
pods=(front cart catalogue cache)
declare -A addr=([front]=10.78.0.11 [cart]=10.78.0.12 [catalogue]=10.78.0.13 [cache]=10.78.0.20)
bg=()

cleanup() {
  set +e
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null
  sleep 0.3
  pods_down "$node"
  rm -rf "$work"
}
trap cleanup EXIT

pods_up "$node"

mkdir -p "$work/www" && echo '{"items": []}' > "$work/www/items.json"
(cd "$work/www" && in_pod cart python3 -m http.server 8080 --bind "${addr[cart]}" >/dev/null 2>&1) &
bg+=($!)
(cd "$work/www" && in_pod catalogue python3 -m http.server 8080 --bind "${addr[catalogue]}" >/dev/null 2>&1) &
bg+=($!)
in_pod cache redis-server --bind "${addr[cache]}" --port 6379 --protected-mode no --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
for target in cart:8080 catalogue:8080 cache:6379; do
  p=${target%%:*}; port=${target##*:}
  for _ in $(seq 100); do in_pod front bash -c "exec 3<>/dev/tcp/${addr[$p]}/$port" 2>/dev/null && break; sleep 0.1; done
done

ip netns exec "$node" tcpdump -i br0 -s 0 -U -w "$work/capture.pcap" tcp 2>/dev/null &
bg+=($!)
sleep 1
t0=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)

# Phase 1: the cart pod answers.
for _ in 1 2 3; do in_pod front curl -s -o /dev/null "http://${addr[cart]}:8080/items.json"; done
for _ in 1 2; do in_pod front curl -s -o /dev/null "http://${addr[catalogue]}:8080/"; done
in_pod front redis-cli -h "${addr[cache]}" SET cart:1 x >/dev/null
in_pod front redis-cli -h "${addr[cache]}" GET cart:1 >/dev/null
sleep 1
# The cart pod is replaced; a checkout pod gets the same address.
reuse=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
sleep 1
for _ in 1 2; do in_pod front curl -s -o /dev/null "http://${addr[cart]}:8080/items.json"; done
sleep 1
kill "${bg[-1]}"; wait "${bg[-1]}" 2>/dev/null || true
unset 'bg[-1]'

python3 - "$work/snapshot.json" "$t0" "$reuse" <<'PY'
import json, sys
out, t0, reuse = sys.argv[1], sys.argv[2], sys.argv[3]
old = "2026-01-01T00:00:00Z"
def pod(name, ns, ip, owner_kind, owner, app, created=old, deleted=None):
    meta = {"name": name, "namespace": ns, "labels": {"app": app}, "creationTimestamp": created,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "controller": True}]}
    if deleted:
        meta["deletionTimestamp"] = deleted
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": "node-a"},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
def rs(name, ns, deploy):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": ns,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy, "controller": True}]}}
def svc(name, ns, ip):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "creationTimestamp": old},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": {"app": name}}}
def slice_(svc_name, ns, pods):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc_name + "-x1", "namespace": ns, "labels": {"kubernetes.io/service-name": svc_name}},
            "endpoints": [{"addresses": [ip], "targetRef": {"kind": "Pod", "name": p, "namespace": ns}} for p, ip in pods]}
items = [
    rs("front-7d9", "shop", "front"), rs("cart-5f4", "shop", "cart"), rs("catalogue-6c8", "shop", "catalogue"),
    rs("checkout-9b1", "shop", "checkout"),
    pod("front-7d9-a", "shop", "10.78.0.11", "ReplicaSet", "front-7d9", "front"),
    pod("cart-5f4-b", "shop", "10.78.0.12", "ReplicaSet", "cart-5f4", "cart", deleted=reuse),
    pod("checkout-9b1-c", "shop", "10.78.0.12", "ReplicaSet", "checkout-9b1", "checkout", created=reuse),
    pod("catalogue-6c8-d", "shop", "10.78.0.13", "ReplicaSet", "catalogue-6c8", "catalogue"),
    pod("cache-0", "payments", "10.78.0.20", "StatefulSet", "cache", "cache"),
    svc("catalogue", "shop", "10.96.0.13"), svc("cache", "payments", "10.96.0.20"),
    slice_("catalogue", "shop", [("catalogue-6c8-d", "10.78.0.13")]), slice_("cache", "payments", [("cache-0", "10.78.0.20")]),
]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(out, "w"))
PY

"$wiremap" map "$work/capture.pcap" --k8s "$work/snapshot.json" > "$work/workload.json"
"$wiremap" map "$work/capture.pcap" --k8s "$work/snapshot.json" --level service > "$work/service.json"
"$wiremap" map "$work/capture.pcap" --k8s "$work/snapshot.json" --level namespace > "$work/namespace.json"
"$wiremap" map "$work/capture.pcap" --k8s "$work/snapshot.json" --level pod > "$work/pod.json"
"$wiremap" entries "$work/capture.pcap" --k8s "$work/snapshot.json" --filter 'src.workload.name == "front" && dst.namespace == "payments"' > "$work/kfl.jsonl"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
load = lambda n: json.load(open(f"{w}/{n}.json"))
fail, passed = [], []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (passed if cond else fail).append(what)
def edges(m): return {(e["source"], e["target"], e["protocol"]): e["requests"] for e in m["edges"]}

wl = load("workload")
e = edges(wl)
nodes = {n["id"]: n for n in wl["nodes"]}
front = "workload:shop/deployment/front"
check(e.get((front, "workload:shop/deployment/cart", "http")) == 3, "front -> cart: 3 HTTP requests (before the address moved)")
check(e.get((front, "workload:shop/deployment/checkout", "http")) == 2, "front -> checkout: 2 HTTP requests (same address, after)")
check(e.get((front, "workload:shop/deployment/catalogue", "http")) == 2, "front -> catalogue: 2 HTTP requests")
check(e.get((front, "workload:payments/statefulset/cache", "redis")) == 2, "front -> cache (StatefulSet): 2 Redis commands")
n = nodes.get("workload:payments/statefulset/cache", {})
check(n.get("name") == "cache" and n.get("namespace") == "payments" and n.get("labels", {}).get("app") == "cache" and n.get("kind") == "workload", "workload node name, namespace, labels")
check(nodes.get(front, {}).get("addresses") == ["10.78.0.11"] and not nodes.get(front, {}).get("external"), "workload node addresses, internal")
check(not any(k.startswith("ip:10.78.") for k in nodes), "no bare pod addresses left")

sv = edges(load("service"))
check(sv.get((front, "service:shop/catalogue", "http")) == 2, "service level: catalogue pods grouped under their service")
check(sv.get((front, "service:payments/cache", "redis")) == 2, "service level: cache service")

ns = edges(load("namespace"))
check(ns.get(("namespace:shop", "namespace:shop", "http")) == 7, "namespace level: shop -> shop, 7 HTTP requests")
check(ns.get(("namespace:shop", "namespace:payments", "redis")) == 2, "namespace level: shop -> payments Redis")

pd = edges(load("pod"))
check(pd.get(("pod:shop/front-7d9-a", "pod:shop/cart-5f4-b", "http")) == 3 and pd.get(("pod:shop/front-7d9-a", "pod:shop/checkout-9b1-c", "http")) == 2, "pod level: the two pods behind one address told apart")

k = [json.loads(l) for l in open(f"{w}/kfl.jsonl")]
check(len(k) == 2 and all(x["protocol"] == "redis" and x["src"]["pod"]["name"] == "front-7d9-a" and x["dst"]["workload"]["kind"] == "statefulset" for x in k), "KFL on identity: src.workload.name / dst.namespace")
print("cluster: %d passed, %d failed" % (len(passed), len(fail)))
sys.exit(1 if fail else 0)
PY
