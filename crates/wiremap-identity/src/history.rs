//! Resolution history: who each address was, over which time, for the entries of an export.
//!
//! It travels inside exported pcapng files as wiremap custom blocks (JSON lines, one holding
//! per line), so a map rebuilt later from the file alone names every endpoint as it was named
//! at capture time: it is loaded with the precedence of cluster objects.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::Holding;
use serde_json::{json, Map, Value};
use wiremap_model::{Entry, Identity, IdentityKind, Timestamp};

/// Collects the identities entries carried, per address, with the time span they were seen.
#[derive(Debug, Default)]
pub struct History {
    /// First and last time each address was seen as each identity.
    spans: HashMap<(IpAddr, Arc<Identity>), (Timestamp, Timestamp)>,
}

/// Lines per custom block (a block is at most 16 MiB).
const LINES_PER_BLOCK: usize = 20_000;

impl History {
    /// Notes both sides of an entry.
    pub fn add(&mut self, e: &Entry) {
        for ep in [&e.src, &e.dst] {
            let Some(id) = &ep.identity else { continue };
            let t = e.timestamp;
            self.spans
                .entry((ep.ip, id.clone()))
                .and_modify(|s| {
                    s.0 = s.0.min(t);
                    s.1 = s.1.max(t);
                })
                .or_insert((t, t));
        }
    }

    /// Number of (address, identity) spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The history as custom-block payloads of JSON lines.
    pub fn blocks(&self) -> Vec<Vec<u8>> {
        let mut lines: Vec<(IpAddr, Timestamp, String)> = self
            .spans
            .iter()
            .map(|((ip, id), (from, to))| {
                let v = json!({
                    "wiremap_history": 1,
                    "ip": ip.to_string(),
                    "from": from.0,
                    "to": to.0,
                    "identity": identity_json(id),
                });
                (*ip, *from, v.to_string())
            })
            .collect();
        lines.sort();
        lines
            .chunks(LINES_PER_BLOCK)
            .map(|c| {
                let mut b = Vec::new();
                for (_, _, l) in c {
                    b.extend_from_slice(l.as_bytes());
                    b.push(b'\n');
                }
                b
            })
            .collect()
    }
}

fn kind_name(k: IdentityKind) -> &'static str {
    match k {
        IdentityKind::Pod => "pod",
        IdentityKind::Service => "service",
        IdentityKind::Node => "node",
        IdentityKind::Dns => "dns",
        IdentityKind::Hint => "hint",
        IdentityKind::Zone => "zone",
        IdentityKind::Ip => "ip",
    }
}

fn identity_json(id: &Identity) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), kind_name(id.kind).into());
    for (k, v) in [
        ("name", &id.name),
        ("namespace", &id.namespace),
        ("dns", &id.dns),
        ("zone", &id.zone),
        ("pod", &id.pod),
        ("service", &id.service),
        ("workload_kind", &id.workload_kind),
        ("workload_name", &id.workload_name),
        ("node", &id.node),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), v.as_str().into());
        }
    }
    if !id.labels.is_empty() {
        m.insert("labels".into(), json!(id.labels));
    }
    if !id.resolution_status.is_empty() {
        m.insert("resolution_status".into(), id.resolution_status.into());
    }
    Value::Object(m)
}

fn identity_from(v: &Value) -> Option<Identity> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let kind = match v.get("kind")?.as_str()? {
        "pod" => IdentityKind::Pod,
        "service" => IdentityKind::Service,
        "node" => IdentityKind::Node,
        "dns" => IdentityKind::Dns,
        "hint" => IdentityKind::Hint,
        "zone" => IdentityKind::Zone,
        _ => IdentityKind::Ip,
    };
    Some(Identity {
        kind,
        name: s("name"),
        namespace: s("namespace"),
        dns: s("dns"),
        zone: s("zone"),
        pod: s("pod"),
        service: s("service"),
        workload_kind: s("workload_kind"),
        workload_name: s("workload_name"),
        node: s("node"),
        labels: v
            .get("labels")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        resolution_status: match v.get("resolution_status").and_then(Value::as_str) {
            Some("stale") => "stale",
            Some("unresolved") => "unresolved",
            _ => "",
        },
    })
}

/// Reads holdings back from custom-block payloads; lines that are not history are skipped.
pub fn holdings(blocks: &[Vec<u8>]) -> Vec<Holding> {
    let mut out = Vec::new();
    for b in blocks {
        let text = String::from_utf8_lossy(b);
        for line in text.lines() {
            let line = line.trim_matches('\0').trim();
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v.get("wiremap_history").is_none() {
                continue;
            }
            let (Some(ip), Some(from), Some(to), Some(who)) = (
                v.get("ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
                v.get("from").and_then(Value::as_i64),
                v.get("to").and_then(Value::as_i64),
                v.get("identity").and_then(identity_from),
            ) else {
                continue;
            };
            out.push(Holding {
                addr: ip,
                from: Timestamp(from),
                to: Some(Timestamp(to)),
                who,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips() {
        let who = Arc::new(Identity {
            kind: IdentityKind::Pod,
            name: "cart-1".into(),
            namespace: "shop".into(),
            pod: "cart-1".into(),
            workload_kind: "deployment".into(),
            workload_name: "cart".into(),
            labels: [("app".to_string(), "cart".to_string())].into(),
            ..Identity::default()
        });
        let e = Entry {
            id: 1,
            stream: 1,
            index: 0,
            timestamp: Timestamp::from_parts(1_700_000_000, 5),
            elapsed_time: 0,
            protocol: wiremap_model::Protocol::Http,
            transport: wiremap_model::Transport::Tcp,
            src: wiremap_model::Endpoint {
                ip: "10.0.0.1".parse().expect("ip"),
                port: 1,
                identity: Some(who),
            },
            dst: wiremap_model::Endpoint::new("10.0.0.2".parse().expect("ip"), 80),
            request_size: 0,
            response_size: 0,
            has_response: false,
            status_code: 0,
            error: false,
            node_name: String::new(),
            seen_by: Vec::new(),
            client_isn: None,
            detail: wiremap_model::Detail::None,
        };
        let mut h = History::default();
        h.add(&e);
        let blocks = h.blocks();
        let mut padded = blocks[0].clone();
        padded.extend_from_slice(&[0, 0]);
        let back = holdings(&[padded]);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].addr, e.src.ip);
        assert_eq!(back[0].from, e.timestamp);
        assert_eq!(&back[0].who, e.src.identity.as_deref().expect("identity"));
    }
}
