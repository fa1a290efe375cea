#!/usr/bin/env bash
# Cluster mode end to end: three "nodes" (network namespaces, each with its own bridge of pods
# and an uplink to a fabric bridge, routed to each other), one `wiremap agent
# --all-interfaces` in each node, and one `wiremap hub` on the fabric storing into a real
# ClickHouse (Debian's clickhouse-server, a throwaway instance from scripts/clickhouse). Real clients and
# servers (curl → python http.server, redis-cli → redis-server, dig → dnsmasq) make a known
# number of requests within nodes and across them; one pod is created after its node's agent
# started. Through the hub's API: every edge with its exact count, an exchange seen by two
# nodes counted once (and listing both), `node_name` scoping, paging, a pcapng export that
# tshark reads with each request once, the agents in /api/stats, maps and entries answered by
# ClickHouse. Then faults: an agent killed and restarted, the hub killed and restarted while
# agents buffer, ClickHouse stopped for 10 s (nothing lost), and stopped with a small buffer
# (what is lost beyond it is counted). Needs root (ip netns).
set -euo pipefail
cd "$(dirname "$0")/.."
wiremap=$(realpath "${WIREMAP:-target/release/wiremap}")
work=$(mktemp -d /tmp/wiremap-cluster.XXXXXX)
chmod 755 "$work"
fab=wm-cfab-$$
token=cluster-t0ken
hubaddr=10.90.0.100:8899
bg=()
hub_pid=""
declare -A agent_pid=()
# pod -> node, address
declare -A pod_node=([web1]=1 [client1]=1 [cache2]=2 [client2]=2 [dns3]=3 [late3]=3)
declare -A pod_ip=([web1]=10.91.1.10 [client1]=10.91.1.20 [cache2]=10.91.2.10 [client2]=10.91.2.20 [dns3]=10.91.3.10 [late3]=10.91.3.20)

cleanup() {
  set +e
  [ -n "$hub_pid" ] && kill -9 "$hub_pid" 2>/dev/null
  ip netns exec "$fab" scripts/clickhouse stop "$work/ch" >/dev/null 2>&1
  for p in "${agent_pid[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null
  sleep 0.3
  for p in "${!pod_node[@]}"; do ip netns del "wm-c$p-$$" 2>/dev/null; done
  for n in 1 2 3; do ip netns del "wm-cn$n-$$" 2>/dev/null; done
  ip netns del "$fab" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

node_ns() { echo "wm-cn$1-$$"; }
in_pod() { local p=$1; shift; ip netns exec "wm-c$p-$$" "$@"; }
in_fab() { ip netns exec "$fab" "$@"; }

# The fabric: a bridge joining the nodes' uplinks; the hub lives here.
ip netns add "$fab"
ip -n "$fab" link set lo up
ip -n "$fab" link add fab0 type bridge
ip -n "$fab" addr add 10.90.0.100/24 dev fab0
ip -n "$fab" link set fab0 up
for n in 1 2 3; do
  ns=$(node_ns "$n")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  ip link add "cu$n-$$" type veth peer name "cf$n-$$"
  ip link set "cu$n-$$" netns "$ns"
  ip link set "cf$n-$$" netns "$fab"
  ip -n "$fab" link set "cf$n-$$" master fab0
  ip -n "$fab" link set "cf$n-$$" up
  ip -n "$ns" addr add "10.90.0.$n/24" dev "cu$n-$$"
  ip -n "$ns" link set "cu$n-$$" up
  ip -n "$ns" link add br0 type bridge
  ip -n "$ns" addr add "10.91.$n.1/24" dev br0
  ip -n "$ns" link set br0 up
  for m in 1 2 3; do
    [ "$m" = "$n" ] || ip -n "$ns" route add "10.91.$m.0/24" via "10.90.0.$m"
  done
done
for m in 1 2 3; do ip -n "$fab" route add "10.91.$m.0/24" via "10.90.0.$m"; done
chport=18123
ip netns exec "$fab" scripts/clickhouse start "$work/ch" "$chport" >/dev/null
ch_sql() { ip netns exec "$fab" curl -sf --data-binary "$1" "http://127.0.0.1:$chport/"; }

pod_up() { # POD
  local p=$1 n=${pod_node[$1]} ns="wm-c$1-$$" i
  i=$(echo "$1" | tr -dc 'a-z' | head -c 3)
  ip netns add "$ns"
  ip link add "cp$i$n-$$" type veth peer name "cb$i$n-$$"
  ip link set "cp$i$n-$$" netns "$ns"
  ip link set "cb$i$n-$$" netns "$(node_ns "$n")"
  ip -n "$(node_ns "$n")" link set "cb$i$n-$$" master br0
  ip -n "$(node_ns "$n")" link set "cb$i$n-$$" up
  ip -n "$ns" addr add "${pod_ip[$p]}/24" dev "cp$i$n-$$"
  ip -n "$ns" link set "cp$i$n-$$" up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "10.91.$n.1"
}
for p in web1 client1 cache2 client2 dns3; do pod_up "$p"; done

mkdir -p "$work/www"
echo '{"items": []}' > "$work/www/items.json"
(cd "$work/www" && in_pod web1 python3 -m http.server 8080 --bind "${pod_ip[web1]}" >/dev/null 2>&1) &
bg+=($!)
in_pod dns3 dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address="${pod_ip[dns3]}" --address=/api.shop.test/"${pod_ip[web1]}" \
  --pid-file="$work/dnsmasq.pid" --user=root 2>/dev/null &
bg+=($!)
in_pod cache2 redis-server --bind "${pod_ip[cache2]}" --port 6379 --protected-mode no --save '' \
  --appendonly no --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
for t in web1:8080 cache2:6379; do
  p=${t%%:*}; port=${t##*:}
  for _ in $(seq 100); do in_pod client1 bash -c "exec 3<>/dev/tcp/${pod_ip[$p]}/$port" 2>/dev/null && break; sleep 0.1; done
done

# The cluster as the hub's identity index knows it: pods with their nodes.
python3 - "$work/cluster.json" <<PY
import json, sys
t = "2020-01-01T00:00:00Z"
pods = {"web1": ("${pod_ip[web1]}", "node1", "web"), "client1": ("${pod_ip[client1]}", "node1", "front"),
        "cache2": ("${pod_ip[cache2]}", "node2", "cache"), "client2": ("${pod_ip[client2]}", "node2", "front"),
        "dns3": ("${pod_ip[dns3]}", "node3", "dns"), "late3": ("${pod_ip[late3]}", "node3", "batch")}
items = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": n, "namespace": "shop", "creationTimestamp": t,
          "labels": {"app": app}}, "spec": {"nodeName": node}, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}
         for n, (ip, node, app) in pods.items()]
json.dump({"kind": "List", "apiVersion": "v1", "items": items}, open(sys.argv[1], "w"))
PY

api() { in_fab curl -sf -H "Authorization: Bearer $token" "http://$hubaddr$1"; }
start_hub() { # [extra args…]
  ip netns exec "$fab" "$wiremap" hub --listen "$hubaddr" --token "$token" --data "$work/hub" \
    --k8s "$work/cluster.json" --clickhouse "http://127.0.0.1:$chport" "$@" >> "$work/hub.log" 2>&1 &
  hub_pid=$!
  for _ in $(seq 100); do api /api/stats >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$work/hub.log" >&2; return 1
}
start_agent() { # NODE
  ip netns exec "$(node_ns "$1")" env WIREMAP_TOKEN="$token" NODE_NAME="node$1" \
    "$wiremap" agent --hub "http://$hubaddr" --all-interfaces >> "$work/agent$1.log" 2>&1 &
  agent_pid[$1]=$!
}
connected() { # N: waits until N agents are connected
  for _ in $(seq 100); do
    [ "$(api /api/stats | python3 -c 'import json,sys; print(sum(a["connected"] for a in json.load(sys.stdin)["agents"]))')" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
settle() { sleep 4; } # batches (250 ms) + the merge window (2 s) + a flush
http() { in_pod "$1" curl -s -o /dev/null "http://${pod_ip[web1]}:8080/items.json?from=$1"; }
snap() { api "/api/map?level=ip" > "$work/$1.json"; }

start_hub
for n in 1 2 3; do start_agent "$n"; done
connected 3 || { echo "agents did not connect" >&2; cat "$work"/agent*.log >&2; }
sleep 0.5
# A pod made after its node's agent started.
pod_up late3
sleep 1.5

# Phase 1: known traffic.
for _ in 1 2 3; do http client1; done                                        # within node 1
for _ in 1 2 3 4; do http client2; done                                      # node 2 → node 1
in_pod client1 redis-cli -h "${pod_ip[cache2]}" SET stock:1 5 >/dev/null     # node 1 → node 2
in_pod client1 redis-cli -h "${pod_ip[cache2]}" GET stock:1 >/dev/null
in_pod client2 redis-cli -h "${pod_ip[cache2]}" PING >/dev/null              # within node 2
for _ in 1 2 3; do in_pod client2 dig +short +tries=1 @"${pod_ip[dns3]}" api.shop.test A >/dev/null; done  # node 2 → node 3
for _ in 1 2; do http late3; done                                            # late pod, node 3 → node 1
settle
snap map1
api "/api/map?level=ip&q=node_name%20%3D%3D%20%22node2%22" > "$work/node2.json"
api "/api/stats" > "$work/stats1.json"
ch_sql "SELECT count() FROM wiremap.entries WHERE protocol = 'http'" > "$work/ch-http.txt"
python3 - "$work" "$token" "$hubaddr" "$fab" <<'PY' > "$work/paging.txt"
import json, subprocess, sys
work, token, hub, fab = sys.argv[1:]
seen, cursor, pages = [], None, 0
while pages < 100:
    q = "/api/entries?limit=4&q=http%20%7C%7C%20redis%20%7C%7C%20dns" + (f"&cursor={cursor}" if cursor else "")
    out = subprocess.run(["ip", "netns", "exec", fab, "curl", "-sf", "-H", f"Authorization: Bearer {token}", f"http://{hub}{q}"],
                         capture_output=True, text=True, check=True).stdout
    page = json.loads(out)
    seen += [e["id"] for e in page["entries"]]
    pages += 1
    cursor = page.get("next_cursor")
    if not cursor:
        break
print(json.dumps({"ids": len(seen), "unique": len(set(seen)), "pages": pages}))
PY
in_fab curl -sf -H "Authorization: Bearer $token" -o "$work/export.pcapng" "http://$hubaddr/api/export.pcapng?q=http"

# Phase 2: an agent killed mid-traffic. Node 1 ↔ node 2 traffic keeps flowing; node 3's own
# traffic while its agent is down is lost, and after the restart counts once.
(for _ in $(seq 30); do http client2; sleep 0.1; done) &
load=$!
bg+=($load)
sleep 0.5
kill -9 "${agent_pid[3]}"; wait "${agent_pid[3]}" 2>/dev/null || true
api "/api/map?level=ip" > "$work/during-kill-a.json"
for _ in 1 2; do in_pod late3 dig +short +tries=1 @"${pod_ip[dns3]}" api.shop.test A >/dev/null; done
sleep 1.5
wait "$load" 2>/dev/null || true
settle
api "/api/map?level=ip" > "$work/during-kill-b.json"
start_agent 3
connected 3 || true
sleep 1
for _ in 1 2 3; do in_pod late3 dig +short +tries=1 @"${pod_ip[dns3]}" api.shop.test A >/dev/null; done
settle
snap map2

# Phase 3: the hub killed while agents run; what they buffer meanwhile arrives once.
kill -9 "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; hub_pid=""
for _ in 1 2 3 4 5; do http client1; done
for _ in 1 2; do in_pod client2 dig +short +tries=1 @"${pod_ip[dns3]}" api.shop.test A >/dev/null; done
sleep 3
start_hub
connected 3 || true
settle
sleep 2
snap map3
api "/api/stats" > "$work/stats3.json"

# Phase 4: ClickHouse stopped for 10 s: the hub keeps the entries and writes them once it is
# back; nothing is lost within the buffer.
ip netns exec "$fab" scripts/clickhouse stop "$work/ch"
for _ in 1 2 3 4 5 6; do http client1; done
sleep 9
api "/api/stats" > "$work/stats-ch-down.json"
ip netns exec "$fab" scripts/clickhouse start "$work/ch" "$chport" >/dev/null
settle; sleep 4
snap map4
api "/api/stats" > "$work/stats4.json"

# Phase 5: ClickHouse stopped with room for 5 entries: 12 requests, 7 dropped and counted.
kill -TERM "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; hub_pid=""
start_hub --clickhouse-buffer 5
connected 3 || true
sleep 1
ip netns exec "$fab" scripts/clickhouse stop "$work/ch"
for _ in $(seq 12); do http client1; done
settle
api "/api/stats" > "$work/stats-small.json"
ip netns exec "$fab" scripts/clickhouse start "$work/ch" "$chport" >/dev/null
settle; sleep 4
snap map5
api "/api/stats" > "$work/stats5.json"

for n in 1 2 3; do kill -TERM "${agent_pid[$n]}" 2>/dev/null || true; done
for n in 1 2 3; do wait "${agent_pid[$n]}" 2>/dev/null || true; done
agent_pid=()
kill -TERM "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; hub_pid=""

python3 - "$work" <<'PY'
import json, subprocess, sys
work = sys.argv[1]
ok = fail = 0
def check(cond, what):
    global ok, fail
    print(("pass " if cond else "FAIL ") + what)
    if cond: ok += 1
    else: fail += 1
def edges(name, protos=("http", "redis", "dns")):
    m = json.load(open(f"{work}/{name}.json"))
    return {(e["source"], e["target"], e["protocol"]): e for e in m["edges"] if e["protocol"] in protos}
def counts(name):
    return {k: e["requests"] for k, e in edges(name).items()}
W, C1, K2, C2, D3, L3 = "10.91.1.10", "10.91.1.20", "10.91.2.10", "10.91.2.20", "10.91.3.10", "10.91.3.20"
ip = lambda a: f"ip:{a}"
want = {(ip(C1), ip(W), "http"): 3, (ip(C2), ip(W), "http"): 4, (ip(C1), ip(K2), "redis"): 2,
        (ip(C2), ip(K2), "redis"): 1, (ip(C2), ip(D3), "dns"): 3, (ip(L3), ip(W), "http"): 2}
got = counts("map1")
check(got == want, f"every edge with its exact count, cross-node exchanges once: {got}")
e1 = edges("map1")
def nodes(k): return sorted(e1.get(k, {}).get("nodes", []))
check(nodes((ip(C2), ip(W), "http")) == ["node1", "node2"], f"a cross-node edge lists both nodes: {nodes((ip(C2), ip(W), 'http'))}")
check(nodes((ip(C1), ip(W), "http")) == ["node1"], f"a node-local edge lists its node: {nodes((ip(C1), ip(W), 'http'))}")
check(nodes((ip(C2), ip(D3), "dns")) == ["node2", "node3"], f"DNS across nodes lists both: {nodes((ip(C2), ip(D3), 'dns'))}")
check(counts("node2") == {(ip(C1), ip(K2), "redis"): 2, (ip(C2), ip(K2), "redis"): 1},
      f"node_name == node2: only the exchanges kept on node 2 (its server side): {counts('node2')}")
check(got.get((ip(L3), ip(W), "http")) == 2, "a pod created after its agent started is mapped")
s1 = json.load(open(f"{work}/stats1.json"))
ag = {a["node"]: a for a in s1["agents"]}
check(sorted(ag) == ["node1", "node2", "node3"] and all(a["connected"] for a in ag.values()),
      f"/api/stats lists the three agents, connected: {sorted(ag)}")
check(all(a["kernel_drops"] == 0 and a["buffer_drops"] == 0 for a in ag.values()), "no kernel or buffer drops")
check(all("entries_per_sec" in a and a["last_seen"] for a in ag.values()), "agents show last seen and entries/s")
check(s1["cluster"]["merged"] >= 4 + 2 + 3 + 2, f"the hub merged the twins: {s1['cluster']}")
pg = json.load(open(f"{work}/paging.txt"))
check(pg["ids"] == pg["unique"] == sum(want.values()) and pg["pages"] > 3, f"/api/entries pages every entry once: {pg}")
r = subprocess.run(["tshark", "-r", f"{work}/export.pcapng", "-Y", "http.request"], capture_output=True, text=True)
reqs = len([l for l in r.stdout.splitlines() if l.strip()])
check(r.returncode == 0 and reqs == 3 + 4 + 2, f"the export opens in tshark with each HTTP request once: {reqs} (rc {r.returncode})")
a, b = counts("during-kill-a"), counts("during-kill-b")
k = (ip(C2), ip(W), "http")
check(b.get(k, 0) >= a.get(k, 0) + 10, f"with node 3's agent dead, nodes 1-2 keep counting: {a.get(k)} -> {b.get(k)}")
m2 = counts("map2")
check(m2.get((ip(L3), ip(D3), "dns")) == 3, f"after its restart, node 3's own traffic counts once (the 2 made while it was dead are lost): {m2.get((ip(L3), ip(D3), 'dns'))}")
m3 = counts("map3")
check(m3.get((ip(C1), ip(W), "http")) == 3 + 5, f"what agents buffered while the hub was down arrives once (node-local): {m3.get((ip(C1), ip(W), 'http'))}")
check(m3.get((ip(C2), ip(D3), "dns")) == 3 + 2, f"... and cross-node, once: {m3.get((ip(C2), ip(D3), 'dns'))}")
check(m3.get((ip(C2), ip(W), "http")) == m2.get((ip(C2), ip(W), "http")), "nothing sent again counts twice after the hub restart")
s3 = json.load(open(f"{work}/stats3.json"))
check(sum(a["resent"] for a in s3["agents"]) > 0,
      f"agents sent unacknowledged batches again after the hub came back: {[a['resent'] for a in s3['agents']]}")
ch = s1.get("clickhouse") or {}
cc = ch.get("counters", {})
check(cc.get("connected") == 1 and cc.get("inserted", 0) >= 15 and cc.get("dropped") == 0,
      f"entries stored in ClickHouse too: {ch}")
check(open(f"{work}/ch-http.txt").read().strip() == str(3 + 4 + 2), "ClickHouse holds each HTTP exchange once")
m4 = counts("map4")
down = json.load(open(f"{work}/stats-ch-down.json")).get("clickhouse", {})
check(down.get("counters", {}).get("failures", 0) > 0 and down.get("last_error"), f"ClickHouse away is reported: {down}")
s4 = json.load(open(f"{work}/stats4.json"))["clickhouse"]["counters"]
check(m4.get((ip(C1), ip(W), "http")) == 8 + 6 and s4["dropped"] == 0 and s4["queued"] == 0,
      f"ClickHouse stopped for 10 s: nothing lost within the buffer: {m4.get((ip(C1), ip(W), 'http'))} {s4}")
small = json.load(open(f"{work}/stats-small.json"))
sd = small["clickhouse"]["counters"]
check(sd["dropped"] == 7 and small["dropped"].get("sink_buffer_entries") == 7,
      f"beyond a 5-entry buffer the drop counter says what was lost: {sd} {small['dropped'].get('sink_buffer_entries')}")
m5 = counts("map5")
check(m5.get((ip(C1), ip(W), "http")) == 8 + 6 + 5, f"... and the 5 it kept arrive: {m5.get((ip(C1), ip(W), 'http'))}")
print(f"cluster-mode: {ok} passed, {fail} failed")
sys.exit(1 if fail else 0)
PY
