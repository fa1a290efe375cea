#!/usr/bin/env bash
# The web UI: its modules type-checked (tsc --noEmit over the JSDoc types) and unit-tested
# (node --test: map data and deltas, layout seeding and persistence); then in headless Chromium
# (Debian's chromium, driven by playwright-core from npm) against `wiremap serve --pcap` on a
# shared capture (first view, fit, labels, saved and repeatable layout, graph = API map, KFL
# bar, hide DNS, level, time window, legend, edge → entries → entry detail, node panel,
# themes, the offline HTML export) and a performance run with 2,000 nodes and 10,000 edges.
# The live half runs in tests/live.sh. Screenshots go to target/ui-shots (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
wiremap=$(realpath "${WIREMAP:-target/release/wiremap}")
pcaps=${WIREMAP_PCAPS:-../shared/pcaps}
shots=$(realpath -m target/ui-shots)
command -v chromium >/dev/null || {
  echo "ui: installing chromium (a minute or two on a fresh machine)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
if [ ! -d tests/ui/node_modules/playwright-core ]; then echo "ui: installing playwright-core from npm"; fi
(cd tests/ui && npm ci --no-audit --no-fund --silent >/dev/null)
rc=0
tests/ui/node_modules/.bin/tsc -p crates/wiremap-server/ui/tsconfig.json && echo "ok   tsc --noEmit: UI modules type-check" || { echo "FAIL tsc --noEmit"; rc=1; }
node --test crates/wiremap-server/ui/test/ || rc=1
capture="$pcaps/mixed_suricata_browsing-tls-dns-http.pcap"
if [ ! -f "$capture" ]; then echo "ui: skipped the browser tests ($capture absent)"; exit $rc; fi
work=$(mktemp -d /tmp/wiremap-ui.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$wiremap" map "$capture" --format html -o "$work/offline.html"
port=$((20000 + $$ % 20000))
"$wiremap" serve --pcap "$capture" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/stats" | grep -q '"capturing":false' && break; sleep 0.1; done
node tests/ui/e2e.mjs historic "http://127.0.0.1:$port" "$shots" "$work/offline.html" || rc=1
node tests/ui/e2e.mjs perf "$shots" "$work/offline.html" || rc=1
echo "ui: screenshots in $shots"
exit $rc
