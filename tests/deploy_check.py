"""Checks of the rendered deploy/ manifests, for tests/deploy.sh.

    deploy_check.py validate K8S_VERSION FILE    each object against the strict JSON schemas
    deploy_check.py base FILE                    least privilege + wiring of the base install
    deploy_check.py clickhouse FILE              the same, plus the ClickHouse option
    deploy_check.py mutate WHAT IN OUT           a broken copy, for the negative controls

Prints one `pass NAME` or `FAIL NAME: why` line per check; exits 1 if any check failed.
Everything is read from the files given: no network, no cluster.
"""

import sys

import yaml

HUB_SA = "wiremap-hub"
AGENT_SA = "wiremap-agent"
READ_VERBS = {"get", "list", "watch"}
AGENT_CAPS = {"NET_RAW", "NET_ADMIN"}
IMAGE = "ghcr.io/wiremap/wiremap:0.1.0"
NAMESPACE = "wiremap"

failed = 0


def check(name, ok, why=""):
    global failed
    if ok:
        print(f"pass {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {why}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def label(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def validate(version, path):
    # Imported here so the privilege checks need only PyYAML.
    import kubernetes_validate

    objects = load(path)
    check("rendered objects to validate", len(objects) > 0, "nothing rendered")
    for obj in objects:
        name = f"schema {version} strict: {label(obj)}"
        try:
            used = kubernetes_validate.validate(obj, version, strict=True)
            # The validator falls back to an older bundled schema when it lacks the one asked
            # for; the check is only worth its name against the version named.
            check(name, used == version, f"validated against {used}, not {version}")
        except Exception as e:  # every validator error is a failed check, with its message
            msg = getattr(e, "message", None) or str(e)
            path_ = "/".join(str(p) for p in getattr(e, "absolute_path", []) or [])
            check(name, False, f"{type(e).__name__}: {msg} at /{path_}")


def find(objects, kind, name):
    for o in objects:
        if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name:
            return o
    return None


def pod_spec(obj):
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def workloads(objects):
    kinds = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Pod"}
    return [o for o in objects if o.get("kind") in kinds]


def container(obj, name):
    for c in pod_spec(obj).get("containers") or []:
        if c.get("name") == name:
            return c
    return {}


def env_value(c, name):
    for e in c.get("env") or []:
        if e.get("name") == name:
            return e
    return None


def privilege(objects):
    """Least privilege: only the hub reads the API, read-only; the agent has two capabilities."""
    sas = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ServiceAccount"}
    agent_sa = sas.get(AGENT_SA)
    check("agent service account exists", agent_sa is not None, f"no ServiceAccount {AGENT_SA}")
    check(
        "agent service account: token not mounted",
        agent_sa is not None and agent_sa.get("automountServiceAccountToken") is False,
        "automountServiceAccountToken is not false",
    )

    bindings = [o for o in objects if o.get("kind") in ("RoleBinding", "ClusterRoleBinding")]
    subjects = [
        (b, s) for b in bindings for s in (b.get("subjects") or [])
    ]
    bound_to_agent = [label(b) for b, s in subjects if s.get("name") == AGENT_SA]
    check("agent service account bound to nothing", not bound_to_agent, f"bound by {bound_to_agent}")
    others = [
        f"{label(b)} -> {s.get('kind')}/{s.get('namespace')}/{s.get('name')}"
        for b, s in subjects
        if not (s.get("kind") == "ServiceAccount" and s.get("name") == HUB_SA
                and s.get("namespace") == NAMESPACE)
    ]
    check("only the hub's service account is bound", bool(subjects) and not others,
          f"other subjects: {others}" if others else "no binding at all")

    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects
             if o.get("kind") in ("Role", "ClusterRole")}
    for b in bindings:
        ref = b.get("roleRef") or {}
        role = roles.get((ref.get("kind"), ref.get("name")))
        check(f"{label(b)}: its role is in the manifests", role is not None, f"roleRef {ref}")
        if role is None:
            continue
        rules = role.get("rules") or []
        verbs = {v for r in rules for v in r.get("verbs") or []}
        check(f"{label(role)}: only get/list/watch", bool(rules) and verbs <= READ_VERBS,
              f"verbs {sorted(verbs)}")
        resources = {x for r in rules for x in r.get("resources") or []}
        groups = {x for r in rules for x in r.get("apiGroups") or []}
        secret_like = resources & {"secrets", "configmaps", "*"}
        check(f"{label(role)}: no Secret/ConfigMap access", not secret_like and "*" not in groups,
              f"grants {sorted(secret_like)} groups {sorted(groups)}")
        check(f"{label(role)}: no aggregation, no non-resource URLs",
              "aggregationRule" not in role
              and not any(r.get("nonResourceURLs") or r.get("resourceNames") for r in rules),
              "aggregationRule/nonResourceURLs present")

    agent = find(objects, "DaemonSet", "wiremap-agent")
    check("agent DaemonSet exists", agent is not None, "no DaemonSet wiremap-agent")
    if agent is not None:
        spec = pod_spec(agent)
        check("agent pod: its own service account, token not mounted",
              spec.get("serviceAccountName") == AGENT_SA
              and spec.get("automountServiceAccountToken") is False,
              f"serviceAccountName {spec.get('serviceAccountName')}, "
              f"automount {spec.get('automountServiceAccountToken')}")
        c = container(agent, "agent")
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        check("agent adds only NET_RAW and NET_ADMIN",
              set(caps.get("add") or []) == AGENT_CAPS, f"adds {caps.get('add')}")
        check("agent drops ALL other capabilities", caps.get("drop") == ["ALL"],
              f"drops {caps.get('drop')}")
        check("agent: no privilege escalation, not privileged",
              sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"),
              f"allowPrivilegeEscalation {sc.get('allowPrivilegeEscalation')}, "
              f"privileged {sc.get('privileged')}")

    for w in workloads(objects):
        spec = pod_spec(w)
        is_agent = label(w) == f"DaemonSet/{NAMESPACE}/wiremap-agent"
        check(f"{label(w)}: host network only for the agent",
              bool(spec.get("hostNetwork")) == is_agent, f"hostNetwork {spec.get('hostNetwork')}")
        host_paths = [v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v]
        check(f"{label(w)}: no host PID/IPC, no hostPath volume",
              not spec.get("hostPID") and not spec.get("hostIPC") and not host_paths,
              f"hostPID {spec.get('hostPID')} hostIPC {spec.get('hostIPC')} hostPath {host_paths}")
        seccomp = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        check(f"{label(w)}: seccomp RuntimeDefault", seccomp == "RuntimeDefault", f"{seccomp}")
        # A pod that reads no API gets no token; the hub is the one that does.
        if spec.get("serviceAccountName") != HUB_SA:
            check(f"{label(w)}: no API token mounted", spec.get("automountServiceAccountToken") is False,
                  "automountServiceAccountToken is not false")
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            sc = c.get("securityContext") or {}
            caps = sc.get("capabilities") or {}
            if not is_agent:
                check(f"{label(w)}/{c.get('name')}: no capabilities, non-root",
                      caps.get("drop") == ["ALL"] and not caps.get("add")
                      and sc.get("allowPrivilegeEscalation") is False
                      and (spec.get("securityContext") or {}).get("runAsNonRoot") is True,
                      f"capabilities {caps}, allowPrivilegeEscalation "
                      f"{sc.get('allowPrivilegeEscalation')}")
            res = c.get("resources") or {}
            check(f"{label(w)}/{c.get('name')}: requests and memory limit",
                  bool(res.get("requests")) and "memory" in (res.get("limits") or {}),
                  f"resources {res}")


def mebibytes(quantity):
    """A Kubernetes memory quantity in MiB (0 when it is not one of the usual forms)."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20,
             "G": 1e9 / 2**20}
    for suffix, scale in units.items():
        if str(quantity).endswith(suffix) and str(quantity)[: -len(suffix)].isdigit():
            return int(str(quantity)[: -len(suffix)]) * scale
    return int(quantity) / 2**20 if str(quantity).isdigit() else 0


def wiring(objects, store):
    """What makes the install work: names, ports, args and the token agree with each other."""
    check(f"namespace {NAMESPACE} is created", find(objects, "Namespace", NAMESPACE) is not None,
          "no Namespace object")
    outside = [label(o) for o in objects
               if o.get("kind") not in ("Namespace", "ClusterRole", "ClusterRoleBinding")
               and (o.get("metadata") or {}).get("namespace") != NAMESPACE]
    check(f"every namespaced object is in {NAMESPACE}", not outside, f"{outside}")
    secrets = [label(o) for o in objects if o.get("kind") == "Secret"]
    check("no Secret in the manifests (the token is the user's)", not secrets, f"{secrets}")

    hub = find(objects, "Deployment", "wiremap-hub")
    svc = find(objects, "Service", "wiremap-hub")
    check("hub Deployment and Service exist", hub is not None and svc is not None, "missing")
    if hub is None or svc is None:
        return
    hub_spec = hub["spec"]
    check("hub: 1 replica, Recreate",
          hub_spec.get("replicas") == 1 and (hub_spec.get("strategy") or {}).get("type") == "Recreate",
          f"replicas {hub_spec.get('replicas')} strategy {hub_spec.get('strategy')}")
    pod_labels = hub_spec["template"]["metadata"].get("labels") or {}
    selector = svc["spec"].get("selector") or {}
    check("hub Service selects the hub pod (and only it)",
          bool(selector) and selector.items() <= pod_labels.items()
          and selector == hub_spec["selector"]["matchLabels"],
          f"selector {selector} labels {pod_labels}")
    ports = [(p.get("port"), p.get("targetPort")) for p in svc["spec"].get("ports") or []]
    check("hub Service port 8899 -> the hub's port", ports == [(8899, "http")], f"{ports}")
    hc = container(hub, "hub")
    named = {p.get("name"): p.get("containerPort") for p in hc.get("ports") or []}
    check("hub listens where its Service and probes point",
          named.get("http") == 8899 and "0.0.0.0:8899" in (hc.get("args") or []), f"ports {named}")
    probes = [hc.get(p, {}).get("tcpSocket", {}).get("port") for p in ("readinessProbe", "livenessProbe")]
    check("hub probes: TCP on its port", probes == ["http", "http"], f"{probes}")
    sc = hc.get("securityContext") or {}
    check("hub: read-only root filesystem", sc.get("readOnlyRootFilesystem") is True, f"{sc}")
    check("hub runs as its service account with --kube",
          pod_spec(hub).get("serviceAccountName") == HUB_SA and "--kube" in (hc.get("args") or []),
          f"{pod_spec(hub).get('serviceAccountName')} {hc.get('args')}")

    args = hc.get("args") or []
    mounts = {m.get("mountPath") for m in hc.get("volumeMounts") or []}
    if store == "data":
        check("hub stores into its data volume",
              args[:1] == ["hub"] and "--data" in args and "--clickhouse" not in args
              and args[args.index("--data") + 1] in mounts, f"args {args} mounts {mounts}")
    else:
        ch_svc = find(objects, "Service", "wiremap-clickhouse")
        ch = find(objects, "StatefulSet", "wiremap-clickhouse")
        check("ClickHouse StatefulSet and Service exist", ch is not None and ch_svc is not None,
              "missing")
        check("hub stores entries into ClickHouse, raw packets in its mounted data directory",
              args[:1] == ["hub"] and "--data" in args
              and args[args.index("--data") + 1] in mounts
              and "--clickhouse" in args
              and args[args.index("--clickhouse") + 1] == "http://wiremap-clickhouse:8123",
              f"args {args} mounts {mounts}")
        if ch is not None and ch_svc is not None:
            cc = container(ch, "clickhouse")
            image = cc.get("image", "")
            tag = image.rpartition(":")[2]
            check("ClickHouse image pinned to a release",
                  image.startswith("clickhouse/clickhouse-server:") and tag[:1].isdigit()
                  and tag.count(".") >= 3, image)
            cports = {p.get("name"): p.get("containerPort") for p in cc.get("ports") or []}
            sports = [(p.get("port"), p.get("targetPort")) for p in ch_svc["spec"].get("ports") or []]
            check("ClickHouse Service 8123 -> the server's HTTP port",
                  cports.get("http") == 8123 and sports == [(8123, "http")]
                  and ch["spec"].get("serviceName") == "wiremap-clickhouse"
                  and (ch_svc["spec"].get("selector") or {}).items()
                  <= (ch["spec"]["template"]["metadata"].get("labels") or {}).items(),
                  f"container {cports} service {sports}")
            vcts = {t["metadata"]["name"] for t in ch["spec"].get("volumeClaimTemplates") or []}
            mounts = {m.get("name"): m.get("mountPath") for m in cc.get("volumeMounts") or []}
            check("ClickHouse data on a volumeClaimTemplate",
                  mounts.get("data") == "/var/lib/clickhouse" and "data" in vcts,
                  f"templates {vcts} mounts {mounts}")
            pols = [o for o in objects if o.get("kind") == "NetworkPolicy"]
            hub_labels = pod_labels
            ok = any(
                (p["spec"].get("podSelector") or {}).get("matchLabels", {}).items()
                <= (ch["spec"]["template"]["metadata"].get("labels") or {}).items()
                and all(
                    all((f.get("podSelector") or {}).get("matchLabels", {}).items()
                        <= hub_labels.items() and (f.get("podSelector") or {}).get("matchLabels")
                        for f in rule.get("from") or [{}])
                    for rule in p["spec"].get("ingress") or [])
                for p in pols)
            check("only the hub may reach ClickHouse (NetworkPolicy)", ok, f"{len(pols)} policies")

    agent = find(objects, "DaemonSet", "wiremap-agent")
    if agent is None:
        return
    spec = pod_spec(agent)
    ac = container(agent, "agent")
    aargs = ac.get("args") or []
    url = aargs[aargs.index("--hub") + 1] if "--hub" in aargs[:-1] else None
    check("agents reach the hub through its Service",
          url == f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:8899",
          f"--hub {url}")
    budget = aargs[aargs.index("--memory-limit") + 1] if "--memory-limit" in aargs[:-1] else ""
    limit = (ac.get("resources") or {}).get("limits", {}).get("memory", "")
    check("agent: all interfaces, memory budget below its container limit",
          "--all-interfaces" in aargs and budget == "128MiB" and mebibytes(limit) > 128,
          f"--memory-limit {budget!r}, container limit {limit!r}")
    node = (env_value(ac, "NODE_NAME") or {}).get("valueFrom", {}).get("fieldRef", {})
    check("agent: NODE_NAME from spec.nodeName", node.get("fieldPath") == "spec.nodeName", f"{node}")
    check("agent: host network resolves cluster names",
          spec.get("hostNetwork") is True and spec.get("dnsPolicy") == "ClusterFirstWithHostNet",
          f"hostNetwork {spec.get('hostNetwork')} dnsPolicy {spec.get('dnsPolicy')}")
    tol = spec.get("tolerations") or []
    check("agent tolerates every taint (every node)",
          any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect") for t in tol),
          f"{tol}")

    for w, c in ((hub, hc), (agent, ac)):
        tok = (env_value(c, "WIREMAP_TOKEN") or {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(f"{label(w)}: token from Secret wiremap-token key token",
              tok.get("name") == "wiremap-token" and tok.get("key") == "token"
              and not tok.get("optional"), f"{tok}")
        check(f"{label(w)}: image {IMAGE}, command wiremap",
              c.get("image") == IMAGE and c.get("command") == ["wiremap"],
              f"{c.get('image')} {c.get('command')}")


def mutate(what, src, dst):
    """Break one thing in a copy of a rendering: each must make a check above fail."""
    objects = load(src)
    hub = find(objects, "Deployment", "wiremap-hub")
    agent = find(objects, "DaemonSet", "wiremap-agent")
    role = next(o for o in objects if o.get("kind") == "ClusterRole")
    if what == "misspelled-field":
        c = container(hub, "hub")
        c["imagePulPolicy"] = c.pop("imagePullPolicy")
    elif what == "wrong-type":
        hub["spec"]["replicas"] = "one"
    elif what == "bind-agent":
        objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "agent-reads"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": AGENT_SA, "namespace": NAMESPACE}],
        })
    elif what == "read-secrets":
        role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    elif what == "agent-caps":
        container(agent, "agent")["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")
    else:
        raise SystemExit(f"unknown mutation {what}")
    with open(dst, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(objects, f, sort_keys=False)


def main(argv):
    if len(argv) == 4 and argv[0] == "mutate":
        mutate(*argv[1:])
    elif len(argv) == 3 and argv[0] == "validate":
        validate(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] in ("base", "clickhouse"):
        objects = load(argv[1])
        privilege(objects)
        wiring(objects, "data" if argv[0] == "base" else "clickhouse")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
