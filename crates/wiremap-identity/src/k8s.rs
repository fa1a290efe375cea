//! Kubernetes identity from object snapshots: the JSON of `kubectl get pods,services,
//! endpointslices,replicasets,jobs,nodes -A -o json` (a `List` of any mix of those kinds).
//!
//! Each object becomes intervals on the addresses it held: a pod's IPs from its creation
//! (until its deletion, or until a later pod took the address), a service's cluster and
//! load-balancer IPs, a node's internal addresses. Pods are named by their owning workload,
//! following ReplicaSet → Deployment and Job → CronJob, and by the services whose
//! EndpointSlices list them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;
use wiremap_model::{Identity, IdentityKind, Timestamp};

/// A snapshot that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct K8sError {
    /// File name.
    pub file: String,
    /// What is wrong.
    pub reason: String,
}

/// One address held by one identity over a time range.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The address.
    pub addr: IpAddr,
    /// From (creation).
    pub from: Timestamp,
    /// Until (deletion), if known.
    pub to: Option<Timestamp>,
    /// Who.
    pub who: Identity,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn time(v: &Value, field: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(s(v, &["metadata", field]))
}

fn controller(v: &Value) -> Option<(String, String)> {
    let refs = v.get("metadata")?.get("ownerReferences")?.as_array()?;
    let r = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .or_else(|| refs.first())?;
    Some((s(r, &["kind"]).to_string(), s(r, &["name"]).to_string()))
}

fn ips(list: Option<&Value>, key: &str) -> Vec<IpAddr> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    if key.is_empty() {
                        x.as_str()
                    } else {
                        x.get(key)?.as_str()
                    }
                })
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every object of a snapshot document (a `List`, a single object, or several concatenated).
fn objects(doc: &Value) -> Vec<&Value> {
    match doc.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().flat_map(objects).collect(),
        None if doc.get("kind").is_some() => vec![doc],
        None => Vec::new(),
    }
}

/// Reads snapshot files' texts into address holdings.
pub fn holdings(files: &[(String, String)]) -> Result<Vec<Holding>, K8sError> {
    let mut docs = Vec::new();
    for (name, text) in files {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut any = false;
        for v in stream.by_ref() {
            let v = v.map_err(|e| K8sError {
                file: name.clone(),
                reason: format!("not Kubernetes JSON: {e}"),
            })?;
            any = true;
            docs.push(v);
        }
        if !any {
            return Err(K8sError {
                file: name.clone(),
                reason: "no objects".into(),
            });
        }
    }
    let all: Vec<&Value> = docs.iter().flat_map(objects).collect();
    Ok(holdings_of(&all))
}

/// Address holdings of Kubernetes objects (Pods, Services, Nodes, with the ReplicaSets, Jobs
/// and EndpointSlices that name their workloads and services), from their JSON as the API
/// serves it. A `deletionTimestamp` ends an object's holding.
pub fn holdings_of(all: &[&Value]) -> Vec<Holding> {
    let ctx = Owners::new(all.iter().copied());
    let mut out = Vec::new();
    for o in all {
        ctx.holdings(o, &mut out);
    }
    out
}

/// What names a pod beyond its own object: the workload behind its ReplicaSet or Job, and
/// the services whose EndpointSlices list it. Built from those kinds alone, so the objects
/// that hold addresses can then be read one at a time.
#[derive(Debug, Default)]
pub struct Owners {
    owner: HashMap<(String, String, String), (String, String)>,
    pod_services: HashMap<(String, String), Vec<String>>,
}

impl Owners {
    /// Reads ReplicaSets, Jobs and EndpointSlices among `objs` (other kinds are skipped).
    pub fn new<'a>(objs: impl Iterator<Item = &'a Value>) -> Owners {
        let all: Vec<&Value> = objs
            .filter(|o| matches!(s(o, &["kind"]), "ReplicaSet" | "Job" | "EndpointSlice"))
            .collect();
        // Owners: ReplicaSet and Job names to the workload that controls them.
        let mut owner: HashMap<(String, String, String), (String, String)> = HashMap::new();
        for o in &all {
            let kind = s(o, &["kind"]);
            if matches!(kind, "ReplicaSet" | "Job") {
                if let Some(c) = controller(o) {
                    let key = (
                        kind.to_string(),
                        s(o, &["metadata", "namespace"]).to_string(),
                        s(o, &["metadata", "name"]).to_string(),
                    );
                    owner.insert(key, c);
                }
            }
        }
        // Services of each pod, from EndpointSlices.
        let mut pod_services: HashMap<(String, String), Vec<String>> = HashMap::new();
        for o in all.iter().filter(|o| s(o, &["kind"]) == "EndpointSlice") {
            let ns = s(o, &["metadata", "namespace"]);
            let svc = labels(o)
                .get("kubernetes.io/service-name")
                .cloned()
                .unwrap_or_default();
            if svc.is_empty() {
                continue;
            }
            for ep in o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if s(ep, &["targetRef", "kind"]) == "Pod" {
                    let list = pod_services
                        .entry((ns.to_string(), s(ep, &["targetRef", "name"]).to_string()))
                        .or_default();
                    if !list.contains(&svc) {
                        list.push(svc.clone());
                    }
                }
            }
        }
        Owners {
            owner,
            pod_services,
        }
    }

    /// Appends the holdings of one Pod, Service or Node (nothing for other kinds).
    pub fn holdings(&self, o: &Value, out: &mut Vec<Holding>) {
        let (owner, pod_services) = (&self.owner, &self.pod_services);
        let mut held: Vec<(Vec<IpAddr>, Identity)> = Vec::new();
        let epoch = Timestamp(i64::MIN / 2);
        {
            let kind = s(o, &["kind"]);
            let ns = s(o, &["metadata", "namespace"]).to_string();
            let name = s(o, &["metadata", "name"]).to_string();
            let from = time(o, "creationTimestamp").unwrap_or(epoch);
            let to = time(o, "deletionTimestamp");
            match kind {
                "Pod" => {
                    let mut addrs = ips(o.get("status").and_then(|st| st.get("podIPs")), "ip");
                    if addrs.is_empty() {
                        addrs = s(o, &["status", "podIP"]).parse().into_iter().collect();
                    }
                    let (wk, wn) = match controller(o) {
                        Some((k, n)) if k == "ReplicaSet" || k == "Job" => {
                            match owner.get(&(k.clone(), ns.clone(), n.clone())) {
                                Some((ok, on)) => (ok.clone(), on.clone()),
                                None => (k, n),
                            }
                        }
                        Some(kn) => kn,
                        None => ("Pod".to_string(), name.clone()),
                    };
                    let services = pod_services
                        .get(&(ns.clone(), name.clone()))
                        .cloned()
                        .unwrap_or_default();
                    // A host-network pod shares its node's address: the node names it.
                    if o.get("spec")
                        .and_then(|sp| sp.get("hostNetwork"))
                        .and_then(Value::as_bool)
                        == Some(true)
                    {
                        return;
                    }
                    let node = s(o, &["spec", "nodeName"]).to_string();
                    let who = Identity {
                        kind: IdentityKind::Pod,
                        name: name.clone(),
                        namespace: ns.clone(),
                        pod: name.clone(),
                        service: services.first().cloned().unwrap_or_default(),
                        workload_kind: wk.to_ascii_lowercase(),
                        workload_name: wn,
                        node,
                        labels: labels(o),
                        ..Identity::default()
                    };
                    held.push((addrs, who));
                }
                "Service" => {
                    let spec = o.get("spec");
                    let mut addrs = ips(spec.and_then(|sp| sp.get("clusterIPs")), "");
                    if addrs.is_empty() {
                        addrs = s(o, &["spec", "clusterIP"]).parse().into_iter().collect();
                    }
                    addrs.extend(ips(
                        o.get("status")
                            .and_then(|st| st.get("loadBalancer"))
                            .and_then(|lb| lb.get("ingress")),
                        "ip",
                    ));
                    let who = Identity {
                        kind: IdentityKind::Service,
                        name: name.clone(),
                        namespace: ns.clone(),
                        service: name.clone(),
                        labels: labels(o),
                        ..Identity::default()
                    };
                    held.push((addrs, who));
                }
                "Node" => {
                    let addrs: Vec<IpAddr> = o
                        .get("status")
                        .and_then(|st| st.get("addresses"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|a| matches!(s(a, &["type"]), "InternalIP" | "ExternalIP"))
                        .filter_map(|a| s(a, &["address"]).parse().ok())
                        .collect();
                    let who = Identity {
                        kind: IdentityKind::Node,
                        name: name.clone(),
                        node: name.clone(),
                        labels: labels(o),
                        ..Identity::default()
                    };
                    held.push((addrs, who));
                }
                _ => {}
            }
            for (addrs, who) in held.drain(..) {
                out.extend(addrs.into_iter().map(|addr| Holding {
                    addr,
                    from,
                    to,
                    who: who.clone(),
                }));
            }
        }
    }
}
