#!/usr/bin/env bash
# Real servers, real clients, real traffic: Redis, PostgreSQL and MariaDB run in one network
# namespace, their command-line clients in another, joined by a veth pair. tcpdump records
# the server side; wiremap's entries must show exactly the commands, queries and error
# replies the clients produced. Needs root (ip netns); the packages come from scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."
wiremap=${WIREMAP:-target/release/wiremap}
work=$(mktemp -d /tmp/wiremap-servers.XXXXXX)
chmod 755 "$work"
cli=wm-cli-$$
srv=wm-srv-$$
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null
  [ -d "$work/pg" ] && runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D "$work/pg" -m immediate stop >/dev/null 2>&1
  [ -f "$work/maria.pid" ] && kill "$(cat "$work/maria.pid")" 2>/dev/null
  sleep 0.5
  ip netns del "$cli" 2>/dev/null
  ip netns del "$srv" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$cli"
ip netns add "$srv"
ip link add "v$$c" type veth peer name "v$$s"
ip link set "v$$c" netns "$cli"
ip link set "v$$s" netns "$srv"
ip -n "$cli" addr add 10.77.0.1/24 dev "v$$c"
ip -n "$srv" addr add 10.77.0.2/24 dev "v$$s"
for ns in "$cli" "$srv"; do ip -n "$ns" link set lo up; done
ip -n "$cli" link set "v$$c" up
ip -n "$srv" link set "v$$s" up
in_cli() { ip netns exec "$cli" "$@"; }
in_srv() { ip netns exec "$srv" "$@"; }

# Servers.
in_srv redis-server --bind 10.77.0.2 --port 6379 --protected-mode no --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"

mkdir -p "$work/pg" && chown postgres "$work/pg"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
echo "host all all 10.77.0.0/24 trust" >> "$work/pg/pg_hba.conf"
in_srv runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
  -o "-c listen_addresses=10.77.0.2 -c port=5432 -c unix_socket_directories=$work/pg -c ssl=off" start >/dev/null

mkdir -p "$work/maria"
mariadb-install-db --no-defaults --datadir="$work/maria" --user=root --auth-root-authentication-method=normal >/dev/null 2>&1
in_srv mariadbd --no-defaults --datadir="$work/maria" --user=root --bind-address=10.77.0.2 --port=3306 \
  --socket="$work/maria.sock" --pid-file="$work/maria.pid" --skip-grant-tables --skip-ssl \
  > "$work/maria.log" 2>&1 &
pids+=($!)

wait_port() { for _ in $(seq 100); do in_cli bash -c "exec 3<>/dev/tcp/10.77.0.2/$1" 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
wait_port 6379; wait_port 5432; wait_port 3306

# Record the server side while the clients work.
in_srv tcpdump -i "v$$s" -s 0 -U -w "$work/capture.pcap" 'tcp port 6379 or tcp port 5432 or tcp port 3306' 2>/dev/null &
pids+=($!)
sleep 1

# Clients.
in_cli redis-cli -h 10.77.0.2 SET session:1 alice >/dev/null
in_cli redis-cli -h 10.77.0.2 GET session:1 >/dev/null
in_cli redis-cli -h 10.77.0.2 INCR session:1 >/dev/null || true
in_cli redis-cli -h 10.77.0.2 LPUSH jobs a b c >/dev/null
printf 'PING\r\nGET session:1\r\nDEL session:1\r\n' | in_cli redis-cli -h 10.77.0.2 >/dev/null

in_cli env PGSSLMODE=disable psql -h 10.77.0.2 -U postgres -d postgres -qAt -c 'SELECT 40 + 2' >/dev/null
in_cli env PGSSLMODE=disable psql -h 10.77.0.2 -U postgres -d postgres -qAt -c 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)' >/dev/null
in_cli env PGSSLMODE=disable psql -h 10.77.0.2 -U postgres -d postgres -qAt -c 'SELEC 1' >/dev/null 2>&1 || true

in_cli mariadb --skip-ssl -h 10.77.0.2 -P 3306 -u root -e 'SELECT 1 + 1' >/dev/null
in_cli mariadb --skip-ssl -h 10.77.0.2 -P 3306 -u root -e 'SELECT * FROM nope.missing' >/dev/null 2>&1 || true

sleep 1
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'

# What wiremap saw.
"$wiremap" entries "$work/capture.pcap" > "$work/entries.jsonl"
python3 - "$work/entries.jsonl" <<'PY'
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
def pick(proto): return [e for e in es if e["protocol"] == proto]
fail, passed = [], []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (passed if cond else fail).append(what)

r = pick("redis")
verbs = [e["redis_type"] for e in r]
for v in ["SET", "GET", "INCR", "LPUSH", "PING", "DEL"]:
    check(v in verbs, f"redis {v} seen")
incr = [e for e in r if e["redis_type"] == "INCR"]
check(len(incr) == 1 and incr[0]["error"] and incr[0]["redis_response_size"] > 0, "redis INCR on a string is an error reply")
check(all(e["redis_key"] == "session:1" for e in r if e["redis_type"] in ("SET", "INCR", "DEL")), "redis keys")
check(all(e["src"]["ip"] == "10.77.0.1" and e["dst"]["port"] == 6379 for e in r), "redis direction")

p = pick("postgresql")
queries = [e["postgresql_query"] for e in p]
check("SELECT 40 + 2" in queries, "postgresql SELECT")
check(any(q.startswith("CREATE TABLE t") for q in queries), "postgresql CREATE/INSERT batch")
bad = [e for e in p if e["postgresql_query"] == "SELEC 1"]
check(len(bad) == 1 and bad[0]["postgresql_success"] is False and bad[0]["postgresql_error_code"] == "42601" and bad[0]["error"], "postgresql syntax error 42601")
good = [e for e in p if e["postgresql_query"] == "SELECT 40 + 2"]
check(good and good[0]["postgresql_success"] and good[0]["postgresql_user"] == "postgres" and good[0]["postgresql_database"] == "postgres", "postgresql user and database")

m = pick("mysql")
mq = [e["mysql_query"] for e in m]
check("SELECT 1 + 1" in mq, "mysql SELECT")
err = [e for e in m if e["mysql_query"] == "SELECT * FROM nope.missing"]
check(len(err) == 1 and err[0]["mysql_success"] is False and err[0]["mysql_error_code"] in (1049, 1146) and err[0]["error"], "mysql error reply")
check(all(e["dst"]["port"] == 3306 for e in m), "mysql direction")

print("servers: %d passed, %d failed" % (len(passed), len(fail)))
sys.exit(1 if fail else 0)
PY
