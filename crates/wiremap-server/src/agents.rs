//! The hub's door for agents: `POST /api/agents/push` takes one compressed batch, skips one
//! it already has, queues a new one for the hub's ingest loop (503 when that queue is full:
//! the agent keeps the batch and tries again later — back-pressure), and answers with the
//! highest sequence number of that agent that is stored.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wiremap_uplink::{lock_registry, Admit, Batch, Incoming, Registry};

use crate::query::refuse;
use crate::App;

/// Largest compressed batch accepted.
pub const MAX_PUSH_BYTES: usize = 16 << 20;

/// Longest node name (a DNS subdomain).
const MAX_NODE_NAME: usize = 253;

/// Where the hub's agents deliver.
#[derive(Debug, Clone)]
pub struct AgentsLink {
    /// The ingest loop's queue (bounded).
    pub tx: SyncSender<Incoming>,
    /// The book of agents.
    pub registry: Arc<Mutex<Registry>>,
}

pub(crate) async fn push(State(app): State<App>, body: Bytes) -> Response {
    let Some(link) = app.agents.clone() else {
        return refuse(StatusCode::NOT_FOUND, "this server is not a hub");
    };
    let len = body.len();
    // Only the head is read here; the items are decoded (and freed) by the ingest thread.
    let (head, items) = match Batch::head(&body) {
        Ok((h, _)) if h.node.is_empty() || h.node.len() > MAX_NODE_NAME => {
            lock_registry(&link.registry).rejected += 1;
            let msg = format!(
                "node name must be 1..={MAX_NODE_NAME} bytes, got {}",
                h.node.len()
            );
            return refuse(StatusCode::BAD_REQUEST, &msg);
        }
        Ok((h, rest)) => (h, rest.to_vec()),
        Err(e) => {
            lock_registry(&link.registry).rejected += 1;
            return refuse(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let (instance, seq) = (head.instance, head.seq);
    // One lock from the check to the mark: a batch posted twice at once is taken once.
    let mut reg = lock_registry(&link.registry);
    match reg.admit(&head.node, instance, seq, &head.counters, len) {
        Admit::TooManyNodes => {
            reg.rejected += 1;
            let msg = format!("the hub keeps at most {} nodes", wiremap_uplink::MAX_NODES);
            return refuse(StatusCode::BAD_REQUEST, &msg);
        }
        Admit::Inconsistent => {
            reg.rejected += 1;
            let msg = format!(
                "batch {seq} does not follow what agent process {instance:016x} sent before"
            );
            return refuse(StatusCode::BAD_REQUEST, &msg);
        }
        Admit::Duplicate => {}
        Admit::Fresh => match link.tx.try_send(Incoming { head, items }) {
            Ok(()) => reg.received(instance, seq),
            Err(TrySendError::Full(_)) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "hub busy: send again later",
                )
            }
            Err(TrySendError::Disconnected(_)) => {
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "hub stopping")
            }
        },
    }
    let acked = reg.acked(instance);
    drop(reg);
    axum::Json(json!({ "acked": acked })).into_response()
}
