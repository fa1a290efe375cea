#!/usr/bin/env bash
# Live capture end to end. "Pods" in network namespaces on a bridge: a real HTTP server, a
# real DNS server (dnsmasq), a real Redis, and a client namespace running curl, dig and
# redis-cli. `wiremap capture` runs on the bridge and on both veth ends of the client and the
# web server (so every packet is seen two or three times and must count once), and the
# checks go through the API: map edges and entry counts equal what the clients did, zero
# kernel drops, secrets redacted, the live stream (tests/wsprobe.py) and the live UI in
# headless Chromium (tests/ui/e2e.mjs), a pcapng export that
# tshark opens and that maps back to the same edges and names, `kill -9` during load with
# nothing flushed lost, retention under a small --max-size, and names from the Kubernetes
# API (the kube client watching the in-repo API double). Needs root (ip netns).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/pods.sh
POD_PREFIX=wm-l POD_VETH=l
wiremap=$(realpath "${WIREMAP:-target/release/wiremap}")
# The Kubernetes API double: `cargo test` builds the crate's examples (debug) on the way.
apidouble=$(realpath "${APIDOUBLE:-target/debug/examples/apidouble}")
work=$(mktemp -d /tmp/wiremap-live.XXXXXX)
chmod 755 "$work"
node=wm-lnode-$$
pods=(client web dns cache)
declare -A addr=([client]=10.79.0.10 [web]=10.79.0.12 [dns]=10.79.0.53 [cache]=10.79.0.13)
bg=()
wm=""

cleanup() {
  set +e
  [ -n "$wm" ] && kill -9 "$wm" 2>/dev/null
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null
  sleep 0.3
  pods_down "$node"
  ip netns del "${POD_PREFIX}late-$$" 2>/dev/null
  rm -rf "/etc/netns/wm-lclient-$$" "$work"
}
trap cleanup EXIT

pods_up "$node"
in_node() { ip netns exec "$node" "$@"; }
# The client resolves through the DNS pod.
mkdir -p "/etc/netns/wm-lclient-$$"
echo "nameserver ${addr[dns]}" > "/etc/netns/wm-lclient-$$/resolv.conf"

mkdir -p "$work/www"
echo '{"items": []}' > "$work/www/items.json"
head -c 30000 /dev/urandom | base64 > "$work/www/big.txt"
(cd "$work/www" && in_pod web python3 -m http.server 8080 --bind "${addr[web]}" >/dev/null 2>&1) &
bg+=($!)
in_pod dns dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address="${addr[dns]}" --address=/api.shop.test/"${addr[web]}" \
  --address=/cache.shop.test/"${addr[cache]}" --pid-file="$work/dnsmasq.pid" --user=root 2>/dev/null &
bg+=($!)
in_pod cache redis-server --bind "${addr[cache]}" --port 6379 --protected-mode no --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
for target in web:8080 cache:6379; do
  p=${target%%:*}; port=${target##*:}
  for _ in $(seq 100); do in_pod client bash -c "exec 3<>/dev/tcp/${addr[$p]}/$port" 2>/dev/null && break; sleep 0.1; done
done
sleep 0.5

api=127.0.0.1:8899
get() { in_node curl -sf "http://$api$1"; }
start_capture() { # DATA-DIR [extra args…]
  start_capture_on "br0,lb1-$$,lb2-$$" "$@"
}
start_capture_on() { # IFACES DATA-DIR [extra args…]
  local ifaces=$1 data=$2; shift 2
  ip netns exec "$node" "$wiremap" capture -i "$ifaces" --data "$data" --listen "$api" "$@" \
    > "$work/capture.log" 2>&1 &
  wm=$!
  for _ in $(seq 100); do get /api/stats >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$work/capture.log" >&2; return 1
}
stop_capture() { kill -TERM "$wm"; wait "$wm" 2>/dev/null || true; wm=""; }
now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

# Phase 1: known traffic, checked through the API, with two dissecting workers sharing the
# interfaces by flow (kernel fanout); the later phases run the single-thread path.
start_capture "$work/data" --redact x-api-key --redact-param ticket --workers 2
sleep 0.5
t0=$(now)
for _ in 1 2 3 4 5; do in_pod client dig +short +tries=1 @"${addr[dns]}" api.shop.test A >/dev/null; done
for _ in 1 2 3 4 5 6; do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/items.json"; done
in_pod client curl -s -o /dev/null -H "Authorization: Bearer s3cr3t-token" -H "Cookie: session=c00kie" \
  -H "X-Api-Key: k3y-value" "http://${addr[web]}:8080/items.json?mark=1&ticket=t1ck3t-val&token=t0k3n-val"
in_pod client redis-cli -h "${addr[cache]}" SET stock:1 5 >/dev/null
in_pod client redis-cli -h "${addr[cache]}" GET stock:1 >/dev/null
in_pod client redis-cli -h "${addr[cache]}" LPUSH queue a >/dev/null
in_pod client redis-cli -h "${addr[cache]}" INCR queue >/dev/null || true
sleep 1.5
t1=$(now)
get "/api/map?level=workload" > "$work/map.json"
get "/api/entries?limit=1000" > "$work/entries.json"
get "/api/stats" > "$work/stats.json"
get "/metrics" > "$work/metrics.txt"
get "/api/map?from=$t0&to=$t1" > "$work/window.json"
in_node curl -sf -o "$work/export.pcapng" "http://$api/api/export.pcapng?from=$t0&to=$t1&q=!dns"
in_node curl -s -o /dev/null -w '%{http_code}' "http://$api/api/map?q=http%20%26%26" > "$work/badq.txt"

# Phase 2: the live stream and the UI while traffic flows (bounded: at most 40 s of requests).
(for _ in $(seq 400); do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/items.json?n=$RANDOM"; sleep 0.1; done) &
load=$!
bg+=($load)
sleep 0.6
in_node python3 tests/wsprobe.py "$api" "$wm" > "$work/ws.txt" 2>&1 || true
if [ -d tests/ui/node_modules ] && command -v chromium >/dev/null; then
  in_node node tests/ui/e2e.mjs live "http://$api" "$(realpath -m target/ui-shots)" > "$work/ui.txt" 2>&1 || true
else
  echo "FAIL ui: tests/ui not installed (run tests/ui.sh first)" > "$work/ui.txt"
fi
kill "$load" 2>/dev/null || true
stop_capture

# Phase 3: kill -9 during load, then serve the same directory.
start_capture "$work/crash"
(for _ in $(seq 60); do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/items.json?c=$RANDOM"; sleep 0.05; done) &
load=$!
bg+=($load)
sleep 2
get /api/stats > "$work/before-kill.json"
sleep 1.2
kill -9 "$wm"; wait "$wm" 2>/dev/null || true; wm=""
kill "$load" 2>/dev/null || true
ip netns exec "$node" "$wiremap" serve --data "$work/crash" --listen "$api" > "$work/serve.log" 2>&1 &
wm=$!
for _ in $(seq 100); do get /api/stats >/dev/null 2>&1 && break; sleep 0.1; done
get /api/stats > "$work/after-kill.json"
get "/api/entries?limit=10000" > "$work/after-entries.json"
in_node curl -sf -o "$work/crash-export.pcapng" "http://$api/api/export.pcapng"
stop_capture

# Phase 4: retention under a small size cap.
start_capture "$work/small" --max-size 256KiB
for _ in $(seq 120); do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/big.txt"; done
sleep 1
get /api/stats > "$work/small-stats.json"
stop_capture
du -sb "$work/small" | cut -f1 > "$work/small-du.txt"

# Phase 5: names from the cluster's API: the real kube client of `wiremap capture --kube-url`
# watching the in-repo API double, which serves these pods, services and owners.
python3 - "$work/cluster.json" "${addr[client]}" "${addr[web]}" "${addr[cache]}" <<'PYJ'
import json, sys
out, client, web, cache = sys.argv[1:]
t = "2020-01-01T00:00:00Z"
def pod(name, ns, ip, kind, owner, app):
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns, "creationTimestamp": t,
        "labels": {"app": app}, "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "controller": True}]},
        "spec": {"nodeName": "node-1"}, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}
def rs(name, ns, deploy):
    return {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": name, "namespace": ns, "creationTimestamp": t,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy, "controller": True}]}}
items = [pod("front-7d9-a", "shop", client, "ReplicaSet", "front-7d9", "front"), rs("front-7d9", "shop", "front"),
         pod("web-5f4-b", "shop", web, "ReplicaSet", "web-5f4", "web"), rs("web-5f4", "shop", "web"),
         pod("cache-0", "payments", cache, "StatefulSet", "cache", "cache"),
         {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": t}, "spec": {"clusterIP": "10.96.0.20"}},
         {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": {"name": "web-x", "namespace": "shop", "creationTimestamp": t,
          "labels": {"kubernetes.io/service-name": "web"}}, "endpoints": [{"addresses": [web], "targetRef": {"kind": "Pod", "name": "web-5f4-b", "namespace": "shop"}}]}]
json.dump({"kind": "List", "apiVersion": "v1", "items": items}, open(out, "w"))
PYJ
ip netns exec "$node" "$apidouble" 127.0.0.1:18443 "$work/cluster.json" > "$work/apidouble.log" 2>&1 &
bg+=($!)
sleep 0.5
start_capture "$work/kube" --kube-url http://127.0.0.1:18443
sleep 1.5
for _ in 1 2 3; do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/items.json"; done
in_pod client redis-cli -h "${addr[cache]}" PING >/dev/null
sleep 1.2
get "/api/map?level=workload" > "$work/kube-workload.json"
get "/api/map?level=service" > "$work/kube-service.json"
get "/api/map?level=namespace" > "$work/kube-namespace.json"
get "/api/stats" > "$work/kube-stats.json"
stop_capture

# Phase 6: the node as it is. The bridge alone (promiscuous while captured, so it shows what
# it forwards between pods), then every interface followed: a pod made after the start.
start_capture_on br0 "$work/bridge"
sleep 0.5
for _ in 1 2 3 4; do in_pod client curl -s -o /dev/null "http://${addr[web]}:8080/items.json"; done
sleep 1.2
get "/api/map?level=ip&q=http" > "$work/bridge-map.json"
stop_capture
start_capture_on any "$work/all" --node node-a
sleep 0.5
late="${POD_PREFIX}late-$$"
ip netns add "$late"
ip link add "lp9-$$" type veth peer name "lb9-$$"
ip link set "lp9-$$" netns "$late"
ip link set "lb9-$$" netns "$node"
ip -n "$node" link set "lb9-$$" master br0
ip -n "$node" link set "lb9-$$" up
ip -n "$late" addr add 10.79.0.30/24 dev "lp9-$$"
ip -n "$late" link set "lp9-$$" up
ip -n "$late" link set lo up
sleep 1.5
for _ in 1 2 3; do ip netns exec "$late" curl -s -o /dev/null "http://${addr[web]}:8080/items.json"; done
sleep 1.2
get "/api/map?level=ip&q=http" > "$work/all-map.json"
get "/api/map?level=ip&q=node_name%20%3D%3D%20%22node-b%22" > "$work/all-other-node.json"
get "/api/stats" > "$work/all-stats.json"
stop_capture

"$wiremap" map "$work/export.pcapng" > "$work/export-map.json"
tshark -r "$work/export.pcapng" 2>/dev/null | wc -l > "$work/export-tshark.txt"
tshark -r "$work/crash-export.pcapng" 2>/dev/null | wc -l > "$work/crash-tshark.txt"
ip netns exec "$node" "$wiremap" serve --data "$work/data" --listen "$api" > /dev/null 2>&1 &
wm=$!
for _ in $(seq 100); do get /api/stats >/dev/null 2>&1 && break; sleep 0.1; done
get "/api/map?from=$t0&to=$t1&q=!dns" > "$work/window-nodns.json"
stop_capture

python3 - "$work" "${addr[client]}" "${addr[web]}" "${addr[dns]}" "${addr[cache]}" <<'PY'
import json, sys
w, client, web, dns, cache = sys.argv[1:]
passed, fail = [], []
def check(cond, what):
    (passed if cond else fail).append(what)
    print(("ok   " if cond else "FAIL ") + what)
load = lambda f: json.load(open(f"{w}/{f}"))
def edges(m): return {(e["source"], e["target"], e["protocol"]): e["requests"] for e in m["edges"]}

m = load("map.json")
e = edges(m)
c = f"ip:{client}"
check(e.get((c, f"ip:{dns}", "dns")) == 5, f"client -> dns server: 5 DNS queries ({e.get((c, f'ip:{dns}', 'dns'))})")
check(e.get((c, "dns:api.shop.test", "http")) == 7, f"client -> api.shop.test (named by the DNS answers): 7 HTTP requests ({e.get((c, 'dns:api.shop.test', 'http'))})")
check(e.get((c, f"ip:{cache}", "redis")) == 4, f"client -> cache: 4 Redis commands ({e.get((c, f'ip:{cache}', 'redis'))})")
ents = load("entries.json")["entries"]
r = [x for x in ents if x["protocol"] == "redis"]
check(sorted(x["redis_type"] for x in r) == ["GET", "INCR", "LPUSH", "SET"], "redis commands as sent")
check([x["error"] for x in r if x["redis_type"] == "INCR"] == [True], "INCR on a list is an error reply")
check(not any("127.0.0.1" in n["id"] for n in m["nodes"]), "nothing from interfaces not captured (the API's own loopback traffic)")
h = [x for x in ents if x["protocol"] == "http"]
check(len(h) == 7 and all(x["status_code"] == 200 for x in h), "7 HTTP entries, all 200")
auth = [x for x in h if "mark=1" in x["url"]]
hd = auth[0]["request"]["headers"] if auth else {}
check(hd.get("authorization") == "[REDACTED]" and hd.get("cookie") == "[REDACTED]" and hd.get("x-api-key") == "[REDACTED]", "Authorization, Cookie and --redact headers redacted")
import glob
stored = b"".join(open(f, "rb").read() for f in glob.glob(f"{w}/data/*.entries"))
check(bool(auth) and "ticket=[REDACTED]" in auth[0]["url"] and "token=[REDACTED]" in auth[0]["url"], "secret-named and --redact-param query parameters redacted")
check(all(x not in stored for x in (b"s3cr3t-token", b"c00kie", b"k3y-value", b"t1ck3t-val", b"t0k3n-val")), "no secret reaches the stored entries")
s = load("stats.json")
check(s["kernel_drops"] == 0 and not any(k in s["dropped"] for k in ("flows_evicted", "tcp_gaps")), f"zero drops (kernel {s['kernel_drops']}, pipeline {s['dropped']})")
check(s["duplicates"] > 0, f"copies from the second and third interface dropped ({s['duplicates']})")
met = open(f"{w}/metrics.txt").read()
check(f'wiremap_edge_requests_total{{client="{client}",server="api.shop.test",protocol="http"}} 7' in met, "per-edge Prometheus series")
check('wiremap_edge_latency_seconds_count{' in met and 'wiremap_kernel_drops_total{interface="br0"} 0' in met, "latency histogram and kernel drop series")
check(open(f"{w}/badq.txt").read() == "400", "invalid KFL answered with 400")

for line in open(f"{w}/ws.txt"):
    line = line.rstrip()
    if line.startswith("ok   "): check(True, "stream: " + line[5:])
    elif line.startswith("FAIL "): check(False, "stream: " + line[5:])
    else: print("     " + line)

for line in open(f"{w}/ui.txt"):
    line = line.rstrip()
    if line.startswith("ok   "): check(True, "ui live: " + line[5:])
    elif line.startswith("FAIL "): check(False, "ui live: " + line[5:])

em, wm = load("export-map.json"), load("window-nodns.json")
check(int(open(f"{w}/export-tshark.txt").read()) > 20, "export opens in tshark")
check(edges(em) == edges(wm) and edges(em), f"map of the export == /api/map of the window ({len(edges(em))} edges)")
names = lambda m: sorted((n["id"], n["name"], n["kind"]) for n in m["nodes"])
check(names(em) == names(wm) and ("dns:api.shop.test", "api.shop.test", "dns") in names(em), "same identities, the DNS name from the history (no DNS packets in the export)")

b, a = load("before-kill.json"), load("after-kill.json")
after = load("after-entries.json")["entries"]
check(a["store"]["entries"] >= b["store"]["entries"] > 0, f"kill -9: entries stored before the kill all there ({b['store']['entries']} -> {a['store']['entries']})")
check(len(after) == a["store"]["entries"] and [x["id"] for x in after] == sorted(x["id"] for x in after), "restarted store reads back whole and in order")
check(int(open(f"{w}/crash-tshark.txt").read()) > 0, "packets of the crashed store export and open in tshark")

kw, ks, kn = edges(load("kube-workload.json")), edges(load("kube-service.json")), edges(load("kube-namespace.json"))
front = "workload:shop/deployment/front"
check(kw.get((front, "workload:shop/deployment/web", "http")) == 3, f"live watches: front -> web by Deployment (3 HTTP) {kw}")
check(kw.get((front, "workload:payments/statefulset/cache", "redis")) == 1, "live watches: StatefulSet cache across namespaces")
check(ks.get((front, "service:shop/web", "http")) == 3 and kn.get(("namespace:shop", "namespace:payments", "redis")) == 1, "live watches: service and namespace levels")
kst = load("kube-stats.json")["kubernetes"]
check(kst.get("lists", 0) >= 8 and kst.get("objects", 0) == 7 and kst.get("errors", -1) == 0, f"watch counters in /api/stats {kst}")
wn = {n["id"]: n for n in load("kube-workload.json")["nodes"]}
check(wn.get(front, {}).get("labels", {}).get("app") == "front" and wn.get(front, {}).get("namespace") == "shop", "live watches: workload node labels and namespace")

be = edges(load("bridge-map.json"))
check(be.get((c, f"ip:{web}", "http")) == 4, f"the bridge alone shows the pod-to-pod traffic it forwards (4 HTTP) {be}")
ae, ast = edges(load("all-map.json")), load("all-stats.json")
check(ae.get(("ip:10.79.0.30", f"ip:{web}", "http")) == 3, f"--all-interfaces: a pod made after the start is captured (3 HTTP, once each) {ae}")
check(ast["interfaces"]["added"] >= 1, f"interfaces followed: {ast['interfaces']}")
am = load("all-map.json")
check(all(e.get("nodes") == ["node-a"] for e in am["edges"]) and am["edges"], "edges say which node saw them (--node)")
check(load("all-other-node.json")["edges"] == [], "node_name == another node selects nothing")

ss = load("small-stats.json")["store"]
du = int(open(f"{w}/small-du.txt").read())
check(ss["segments_dropped"] > 0 and ss["bytes"] <= 256 * 1024, f"retention: oldest segments dropped, store {ss['bytes']} B <= 256 KiB")
check(du <= 256 * 1024 + 64 * 1024, f"retention: directory {du} B on disk")
print("live: %d passed, %d failed" % (len(passed), len(fail)))
sys.exit(1 if fail else 0)
PY
