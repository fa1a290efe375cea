#!/usr/bin/env bash
# The ClickHouse store against a real server: a throwaway clickhouse-server (Debian's
# package, installed when missing) on a free loopback port, the store's integration tests
# against it, and the start/stop script's idempotence. The server is stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d /tmp/wiremap-clickhouse.XXXXXX)
cleanup() {
    scripts/clickhouse stop "$dir" || true
    rm -rf "$dir"
}
trap cleanup EXIT

# A free port whose successor (the native protocol's port) is free too.
port=$(python3 - <<'PY'
import socket
for _ in range(50):
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    finally:
        a.close()
        b.close()
    print(p)
    break
PY
)
[[ -n $port ]] || { echo "tests/clickhouse.sh: no free port pair" >&2; exit 1; }

pid=$(scripts/clickhouse start "$dir" "$port")
again=$(scripts/clickhouse start "$dir" "$port")
[[ $pid == "$again" ]] || { echo "a second start made another server ($pid, $again)" >&2; exit 1; }
version=$(curl -s "http://127.0.0.1:$port/?query=SELECT%20version()")
echo "clickhouse-server $version (pid $pid) on 127.0.0.1:$port"

WIREMAP_CLICKHOUSE_URL="http://127.0.0.1:$port" \
    cargo test -p wiremap-clickhouse --test server -- --test-threads=2

scripts/clickhouse stop "$dir"
if kill -0 "$pid" 2>/dev/null; then
    echo "tests/clickhouse.sh: the server outlived stop" >&2
    exit 1
fi
scripts/clickhouse stop "$dir"
echo "tests/clickhouse.sh: ok"
