//! Live Kubernetes identity: the API server's objects as address holdings over time.
//!
//! One list+watch per kind (Pods, Services, EndpointSlices, ReplicaSets, Jobs, StatefulSets,
//! DaemonSets, Nodes) through `kube`'s watcher, which asks for bookmarks, resumes from the last
//! resourceVersion after a dropped connection, re-lists on `410 Gone`, and backs off
//! exponentially on errors, so a flapping API server sees no storm. Each object is trimmed
//! on arrival to what identity needs (names, labels, owners, addresses, times); a deleted
//! Pod, Service or Node is kept for [`TOMBSTONE_SECS`] with its deletion time, so traffic
//! from before the deletion still resolves to it and a reused address resolves to the new
//! holder after. Whenever something changed, the holdings of everything are rebuilt (at most
//! every [`REBUILD_EVERY`]) and sent to the pipeline, which swaps them in whole.
#![deny(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Map, Value};
use wiremap_identity::Holding;

/// A watched kind.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource name in URLs.
    pub plural: &'static str,
}

/// Everything identity needs, and nothing else (the RBAC manifest grants exactly these).
pub const KINDS: [Kind; 8] = [
    Kind {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
    },
    Kind {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
    },
    Kind {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
    },
];

/// How long a deleted object still names its addresses for traffic from before its deletion.
pub const TOMBSTONE_SECS: u64 = 3600;
/// Deleted objects kept at most.
pub const MAX_TOMBSTONES: usize = 100_000;
/// Holdings are rebuilt at most this often.
pub const REBUILD_EVERY: Duration = Duration::from_millis(250);

/// Why the cluster could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable configuration (kubeconfig or in-cluster service account).
    #[error("no Kubernetes configuration: {0}")]
    Config(String),
    /// The client could not be built.
    #[error("Kubernetes client: {0}")]
    Client(String),
}

/// Counters of the watches.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Watch events applied (objects added, changed, deleted).
    pub events: AtomicU64,
    /// Complete lists received (the first one per kind, then one per re-list).
    pub lists: AtomicU64,
    /// Errors the watcher reported (it backs off and retries).
    pub errors: AtomicU64,
    /// Objects held now.
    pub objects: AtomicU64,
    /// Deleted objects kept for past traffic.
    pub tombstones: AtomicU64,
    /// Holdings sets sent to the pipeline.
    pub rebuilds: AtomicU64,
}

impl WatchStats {
    /// The counters by name, for stats pages.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        [
            ("lists", &self.lists),
            ("events", &self.events),
            ("errors", &self.errors),
            ("objects", &self.objects),
            ("tombstones", &self.tombstones),
            ("rebuilds", &self.rebuilds),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// A client from `--kubeconfig FILE`, or else the usual inference (`KUBECONFIG`,
/// `~/.kube/config`, in-cluster service account).
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))
}

/// The client for an API server at `url` with no credentials (tests, `kubectl proxy`).
pub fn client_for_url(url: &str) -> Result<Client, KubeError> {
    let uri = url
        .parse()
        .map_err(|e| KubeError::Config(format!("{url}: {e}")))?;
    Client::try_from(kube::Config::new(uri)).map_err(|e| KubeError::Client(e.to_string()))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// Keeps what identity reads of an object: metadata without managed fields or annotations,
/// and the few spec/status fields that carry addresses.
pub fn trim(kind: &str, v: &Value) -> Value {
    let mut meta = Map::new();
    for k in [
        "name",
        "namespace",
        "labels",
        "ownerReferences",
        "creationTimestamp",
        "deletionTimestamp",
        "resourceVersion",
    ] {
        if let Some(x) = s(v, &["metadata", k]) {
            meta.insert(k.into(), x.clone());
        }
    }
    let mut out = json!({ "kind": kind, "metadata": meta });
    let pick = |out: &mut Value, path: &[&str]| {
        if let Some(x) = s(v, path) {
            let mut cur = &mut *out;
            for p in &path[..path.len() - 1] {
                if cur.get(*p).is_none() {
                    cur[*p] = json!({});
                }
                cur = &mut cur[*p];
            }
            cur[path[path.len() - 1]] = x.clone();
        }
    };
    match kind {
        "Pod" => {
            for p in [
                &["spec", "hostNetwork"][..],
                &["spec", "nodeName"],
                &["status", "podIP"],
                &["status", "podIPs"],
            ] {
                pick(&mut out, p);
            }
        }
        "Service" => {
            for p in [
                &["spec", "clusterIP"][..],
                &["spec", "clusterIPs"],
                &["status", "loadBalancer"],
            ] {
                pick(&mut out, p);
            }
        }
        "Node" => pick(&mut out, &["status", "addresses"]),
        "EndpointSlice" => {
            let eps: Vec<Value> = v
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(
                    |e| json!({ "addresses": e.get("addresses"), "targetRef": e.get("targetRef") }),
                )
                .collect();
            out["endpoints"] = Value::Array(eps);
        }
        _ => {}
    }
    out
}

type Key = (usize, String, String);

fn key(kind: usize, v: &Value) -> Key {
    let get = |k: &str| {
        s(v, &["metadata", k])
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (kind, get("namespace"), get("name"))
}

/// The objects held, and the deleted ones still remembered, each as its trimmed JSON text
/// (a few hundred bytes a pod; a parsed tree would take ten times that).
#[derive(Debug, Default)]
pub struct ClusterState {
    objects: HashMap<Key, Box<str>>,
    tombstones: Vec<(Instant, Box<str>)>,
    /// Objects of a kind being listed (between `Init` and `InitDone`).
    listing: HashMap<usize, HashMap<Key, Box<str>>>,
}

fn text(v: &Value) -> Box<str> {
    v.to_string().into_boxed_str()
}

impl ClusterState {
    fn bury(&mut self, kind: usize, t: &str) {
        if !matches!(KINDS[kind].kind, "Pod" | "Service" | "Node") {
            return;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(t) else {
            return;
        };
        if s(&v, &["metadata", "deletionTimestamp"]).is_none() {
            v["metadata"]["deletionTimestamp"] = Value::String(
                wiremap_model::Timestamp::from(std::time::SystemTime::now()).to_string(),
            );
        }
        self.tombstones.push((Instant::now(), text(&v)));
        if self.tombstones.len() > MAX_TOMBSTONES {
            let extra = self.tombstones.len() - MAX_TOMBSTONES;
            self.tombstones.drain(..extra);
        }
    }

    /// Applies one watcher event; true when identity may have changed.
    pub fn apply(&mut self, kind: usize, ev: Event<DynamicObject>) -> bool {
        let val = |o: &DynamicObject| serde_json::to_value(o).map(|v| trim(KINDS[kind].kind, &v));
        match ev {
            Event::Init => {
                self.listing.insert(kind, HashMap::new());
                false
            }
            Event::InitApply(o) => {
                if let Ok(v) = val(&o) {
                    self.listing
                        .entry(kind)
                        .or_default()
                        .insert(key(kind, &v), text(&v));
                }
                false
            }
            Event::InitDone => {
                let fresh = self.listing.remove(&kind).unwrap_or_default();
                // What the new list no longer has was deleted while we were not watching.
                let gone: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.0 == kind && !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some(t) = self.objects.remove(&k) {
                        self.bury(kind, &t);
                    }
                }
                self.objects.extend(fresh);
                true
            }
            Event::Apply(o) => match val(&o) {
                Ok(v) => {
                    self.objects.insert(key(kind, &v), text(&v));
                    true
                }
                Err(_) => false,
            },
            Event::Delete(o) => match val(&o) {
                Ok(v) => {
                    self.objects.remove(&key(kind, &v));
                    self.bury(kind, &text(&v));
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Forgets tombstones older than [`TOMBSTONE_SECS`].
    pub fn expire(&mut self) {
        let keep = Duration::from_secs(TOMBSTONE_SECS);
        self.tombstones.retain(|(t, _)| t.elapsed() < keep);
    }

    /// Holdings of everything held and remembered.
    ///
    /// Owners and EndpointSlices are parsed first; then each Pod, Service and Node is parsed,
    /// turned into holdings and dropped, so a rebuild never holds every object parsed.
    pub fn holdings(&self) -> Vec<Holding> {
        let context: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| matches!(KINDS[k.0].kind, "ReplicaSet" | "Job" | "EndpointSlice"))
            .filter_map(|(_, t)| serde_json::from_str(t).ok())
            .collect();
        let owners = wiremap_identity::Owners::new(context.iter());
        drop(context);
        let mut out = Vec::new();
        let holders = self
            .objects
            .iter()
            .filter(|(k, _)| matches!(KINDS[k.0].kind, "Pod" | "Service" | "Node"))
            .map(|(_, t)| t)
            .chain(self.tombstones.iter().map(|(_, t)| t));
        for t in holders {
            if let Ok(v) = serde_json::from_str::<Value>(t) {
                owners.holdings(&v, &mut out);
            }
        }
        out
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Watches every kind until `out` is dropped; sends a fresh set of holdings after changes.
pub async fn watch(
    client: Client,
    out: std::sync::mpsc::Sender<Vec<Holding>>,
    stats: Arc<WatchStats>,
) {
    let streams = KINDS.iter().enumerate().map(|(i, k)| {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(k.group, k.version, k.kind),
            k.plural,
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |r| (i, r))
            .boxed()
    });
    let mut all = futures_util::stream::select_all(streams);
    let mut state = ClusterState::default();
    let mut dirty = false;
    let mut last = Instant::now() - REBUILD_EVERY;
    loop {
        let next = if dirty {
            let wait = REBUILD_EVERY.saturating_sub(last.elapsed());
            match tokio::time::timeout(wait, all.next()).await {
                Ok(x) => x,
                Err(_) => {
                    state.expire();
                    stats.rebuilds.fetch_add(1, Ordering::Relaxed);
                    stats
                        .tombstones
                        .store(state.tombstones.len() as u64, Ordering::Relaxed);
                    if out.send(state.holdings()).is_err() {
                        return;
                    }
                    dirty = false;
                    last = Instant::now();
                    continue;
                }
            }
        } else {
            all.next().await
        };
        let Some((kind, r)) = next else { return };
        match r {
            Ok(ev) => {
                match &ev {
                    Event::InitDone => {
                        stats.lists.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::Apply(_) | Event::Delete(_) => {
                        stats.events.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                if state.apply(kind, ev) {
                    dirty = true;
                }
                stats.objects.store(state.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped RBAC manifest grants get/list/watch on exactly the watched kinds.
    #[test]
    fn rbac_manifest_matches_the_watched_kinds() {
        let text = include_str!("../../../deploy/rbac.yaml");
        for k in KINDS {
            let group = if k.group.is_empty() { "\"\"" } else { k.group };
            let rule = text
                .split("- apiGroups:")
                .find(|r| r.trim_start().starts_with(&format!("[{group}]")))
                .unwrap_or_else(|| panic!("no rule for group {group}"));
            assert!(rule.contains(k.plural), "{} not granted", k.plural);
            assert!(rule.contains("verbs: [get, list, watch]"), "{rule}");
        }
        let granted = text.matches("resources:").count();
        assert_eq!(granted, 4, "one rule per API group, nothing else");
        assert!(!text.contains("secrets") && !text.contains("create") && !text.contains("\"*\""));
    }
}
