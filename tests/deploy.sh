#!/usr/bin/env bash
# The cluster manifests in deploy/: render the base and the ClickHouse overlay with
# `kubectl kustomize`, validate every object offline against the Kubernetes JSON schemas
# (strict: an unknown field fails), check least privilege and that names, ports and args
# agree, and prove with broken copies that each kind of check can fail. Needs kubectl and the
# validator that scripts/setup installs; no cluster, no network.
#   KUBECTL=/path/to/kubectl tests/deploy.sh     another kubectl (e.g. Debian's 1.20)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL=${KUBECTL:-kubectl}
VENV=${WIREMAP_DEPLOY_VENV:-/opt/wiremap-test/deploy-venv}
K8S_VERSION=1.30
PY="$VENV/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "pass $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# The validator reads only its bundled schemas; run it without a network to be sure.
offline=()
if unshare --net true 2>/dev/null; then
  offline=(unshare --net)
fi

# Runs deploy_check.py and counts the pass/FAIL lines it prints; a crash without a FAIL line
# is a failure too.
checks() {
  local label=$1 out rc=0
  shift
  out=$("${offline[@]}" "$PY" tests/deploy_check.py "$@" 2>&1) || rc=$?
  local line
  while IFS= read -r line; do
    case $line in
      "pass "* | "FAIL "*) echo "${line%% *} [$label] ${line#* }" ;;
      *) echo "$line" ;;
    esac
  done <<<"$out"
  local p f
  p=$(grep -c '^pass ' <<<"$out" || true)
  f=$(grep -c '^FAIL ' <<<"$out" || true)
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    fail "deploy_check.py $*: exited $rc without naming a failed check"
  fi
}

# A negative control: the checker must reject the broken copy, for the reason expected.
expect_failure() {
  local name=$1 expected=$2 out rc=0
  shift 2
  out=$("${offline[@]}" "$PY" tests/deploy_check.py "$@" 2>&1) || rc=$?
  if [ "$rc" -eq 1 ] && grep -q -- "^FAIL .*$expected" <<<"$out"; then
    pass "negative control: $name is caught ($(grep -m1 -- "^FAIL .*$expected" <<<"$out" | cut -c1-150))"
  else
    fail "negative control: $name not caught (exit $rc, expected a FAIL line matching '$expected')"
    printf '%s\n' "$out" | tail -5
  fi
}

if ! command -v "$KUBECTL" >/dev/null; then
  fail "kubectl: '$KUBECTL' not found (scripts/setup installs it)"
elif ! [ -x "$PY" ] || ! "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
  fail "validator: no kubernetes-validate in $VENV (scripts/setup installs it)"
else
  echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -1 | cut -c1-100)"
  echo "validator: kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), Kubernetes $K8S_VERSION, strict"
  [ ${#offline[@]} -gt 0 ] && echo "validator and checks run without a network (unshare --net)"

  for target in base:deploy clickhouse:deploy/overlays/clickhouse; do
    kind=${target%%:*}
    dir=${target#*:}
    if "$KUBECTL" kustomize "$dir" >"$tmp/$kind.yaml" 2>"$tmp/$kind.err"; then
      pass "kubectl kustomize $dir renders ($(grep -c '^kind: ' "$tmp/$kind.yaml") objects)"
    else
      fail "kubectl kustomize $dir: $(tail -3 "$tmp/$kind.err")"
      continue
    fi
    checks "$kind" validate "$K8S_VERSION" "$tmp/$kind.yaml"
    checks "$kind" "$kind" "$tmp/$kind.yaml"
  done

  if [ -s "$tmp/base.yaml" ]; then
    for m in misspelled-field wrong-type bind-agent read-secrets agent-caps; do
      "$PY" tests/deploy_check.py mutate "$m" "$tmp/base.yaml" "$tmp/$m.yaml"
    done
    expect_failure "a misspelled field (imagePulPolicy)" "Deployment/wiremap/wiremap-hub.*imagePulPolicy" \
      validate "$K8S_VERSION" "$tmp/misspelled-field.yaml"
    expect_failure "replicas: \"one\"" "Deployment/wiremap/wiremap-hub.*not of type" \
      validate "$K8S_VERSION" "$tmp/wrong-type.yaml"
    expect_failure "a binding for the agent's service account" "agent service account bound to nothing" \
      base "$tmp/bind-agent.yaml"
    expect_failure "a rule that reads Secrets" "no Secret/ConfigMap access" \
      base "$tmp/read-secrets.yaml"
    expect_failure "SYS_ADMIN on the agent" "agent adds only NET_RAW and NET_ADMIN" \
      base "$tmp/agent-caps.yaml"
  fi
fi

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
