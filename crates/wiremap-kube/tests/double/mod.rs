//! An in-repo Kubernetes API double: list+watch as the API server speaks it (lists with a
//! resourceVersion, newline-delimited watch events from a resourceVersion, bookmarks, 410
//! Gone as an in-stream ERROR Status for compacted versions) and, on demand, slow streams,
//! dropped connections and failing requests. Shared by the watch tests and the `apidouble`
//! example that the live test script runs.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use wiremap_kube::KINDS;

#[derive(Default)]
pub struct St {
    pub rv: u64,
    pub objects: BTreeMap<(String, String, String), Value>,
    /// (resourceVersion, plural, event type, object)
    pub history: Vec<(u64, String, &'static str, Value)>,
    /// Watches from before this version get 410 Gone.
    pub floor: u64,
    /// Bumped to cut every open watch.
    pub generation: u64,
    pub lists: HashMap<String, u64>,
    pub watches: HashMap<String, u64>,
    pub requests: u64,
    pub bookmark_queries: u64,
    pub drop_after: Option<usize>,
    pub slow: Duration,
    pub fail: bool,
}

#[derive(Clone, Default)]
pub struct Double {
    pub st: Arc<Mutex<St>>,
}

fn kind_of(plural: &str) -> (&'static str, String) {
    let k = KINDS
        .iter()
        .find(|k| k.plural == plural)
        .expect("known kind");
    let api_version = if k.group.is_empty() {
        k.version.to_string()
    } else {
        format!("{}/{}", k.group, k.version)
    };
    (k.kind, api_version)
}

impl Double {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, St> {
        self.st.lock().expect("lock")
    }

    pub fn put(&self, plural: &str, mut obj: Value) {
        let mut st = self.lock();
        st.rv += 1;
        let rv = st.rv;
        let (kind, api_version) = kind_of(plural);
        obj["kind"] = json!(kind);
        obj["apiVersion"] = json!(api_version);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        obj["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
        let key = (
            plural.to_string(),
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        let t = if st.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key, obj.clone());
        st.history.push((rv, plural.to_string(), t, obj));
    }

    pub fn delete(&self, plural: &str, ns: &str, name: &str, at: &str) {
        let mut st = self.lock();
        let key = (plural.to_string(), ns.to_string(), name.to_string());
        let Some(mut obj) = st.objects.remove(&key) else {
            return;
        };
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["deletionTimestamp"] = json!(at);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.history.push((rv, plural.to_string(), "DELETED", obj));
    }

    /// Cuts every watch and forgets history up to now; with a change made at the same
    /// moment, every reconnecting client is behind the floor and gets 410 Gone.
    pub fn compact_and_cut(&self, change: Option<(&str, Value)>) {
        if let Some((plural, obj)) = change {
            self.put(plural, obj);
        }
        let mut st = self.lock();
        st.floor = st.rv;
        st.generation += 1;
    }

    pub fn count(&self, what: &str) -> u64 {
        let st = self.lock();
        match what {
            "lists" => st.lists.values().sum(),
            "watches" => st.watches.values().sum(),
            "requests" => st.requests,
            "bookmarks" => st.bookmark_queries,
            _ => 0,
        }
    }
}

async fn core(
    State(d): State<Double>,
    Path(plural): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    serve(d, plural, q).await
}

async fn grouped(
    State(d): State<Double>,
    Path((_g, _v, plural)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    serve(d, plural, q).await
}

async fn serve(d: Double, plural: String, q: HashMap<String, String>) -> Response {
    let (kind, api_version) = kind_of(&plural);
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    {
        let mut st = d.lock();
        st.requests += 1;
        if st.fail {
            return (StatusCode::INTERNAL_SERVER_ERROR, "etcd is sad").into_response();
        }
        if !watch {
            *st.lists.entry(plural.clone()).or_default() += 1;
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.0 == plural)
                .map(|(_, v)| {
                    // List items carry no kind, as the real API serves them.
                    let mut v = v.clone();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    v
                })
                .collect();
            let body = json!({
                "kind": format!("{kind}List"),
                "apiVersion": api_version,
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items,
            });
            return axum::Json(body).into_response();
        }
        *st.watches.entry(plural.clone()).or_default() += 1;
        if q.get("allowWatchBookmarks").is_some_and(|b| b == "true") {
            st.bookmark_queries += 1;
        }
        if from < st.floor {
            let line = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
            return Body::from(format!("{line}\n")).into_response();
        }
    }
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::spawn(async move {
        let started = Instant::now();
        let generation = d.lock().generation;
        let mut cursor = from;
        let mut sent = 0usize;
        let mut last_bookmark = Instant::now();
        loop {
            let (events, slow, drop_after, cut, rv) = {
                let st = d.lock();
                let ev: Vec<(u64, &'static str, Value)> = st
                    .history
                    .iter()
                    .filter(|(rv, p, _, _)| *rv > cursor && *p == plural)
                    .map(|(rv, _, t, v)| (*rv, *t, v.clone()))
                    .collect();
                (
                    ev,
                    st.slow,
                    st.drop_after,
                    st.generation != generation,
                    st.rv,
                )
            };
            if cut || started.elapsed() > timeout {
                return;
            }
            for (rv, t, v) in events {
                tokio::time::sleep(slow).await;
                if tx
                    .send(Ok(format!("{}\n", json!({"type": t, "object": v}))))
                    .await
                    .is_err()
                {
                    return;
                }
                cursor = rv;
                sent += 1;
                if drop_after.is_some_and(|n| sent >= n) {
                    return;
                }
            }
            if last_bookmark.elapsed() > Duration::from_millis(300) {
                let bm = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                    "metadata": {"resourceVersion": rv.max(cursor).to_string()}}});
                if tx.send(Ok(format!("{bm}\n"))).await.is_err() {
                    return;
                }
                cursor = cursor.max(rv);
                last_bookmark = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Body::from_stream(stream).into_response()
}

impl Double {
    /// The API's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/{plural}", get(core))
            .route("/apis/{group}/{version}/{plural}", get(grouped))
            .with_state(self.clone())
    }

    /// Loads objects of the watched kinds from `kubectl get … -o json` output.
    pub fn load(&self, doc: &Value) {
        let items: Vec<&Value> = match doc.get("items").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![doc],
        };
        for o in items {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
            if let Some(k) = KINDS.iter().find(|k| k.kind == kind) {
                self.put(k.plural, o.clone());
            }
        }
    }
}
