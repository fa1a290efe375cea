//! The hub's book of agents: what each sent last (its counters, for `/api/stats`), which
//! batches were received and which are stored, so a batch sent again after a reconnect is
//! skipped. What is stored survives a hub restart (a small JSON file beside the data), so
//! batches buffered while the hub was down arrive once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use wiremap_ingest::AgentStatus;
use wiremap_model::{DropReason, Stats};

use crate::wire::AgentCounters;

/// An agent not heard from for this long is shown disconnected.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(3);

/// Instances forgotten after this long without a batch.
const FORGET_AFTER_SECS: u64 = 24 * 3600;

/// Most agent processes remembered (one per node normally; restarts add more).
const MAX_INSTANCES: usize = 100_000;

/// Most nodes the hub keeps agents of: a token holder posting made-up node names cannot
/// grow the book past it (nodes silent for 10 minutes make room).
pub const MAX_NODES: usize = 10_000;

/// Most a batch's sequence number may pass the last one received from its process: an agent
/// numbers its batches 1, 2, 3…, and holds far fewer unacknowledged.
pub const MAX_SEQ_GAP: u64 = 10_000_000;

#[derive(Debug)]
struct Agent {
    instance: u64,
    last_seen: Instant,
    last_seen_at: SystemTime,
    counters: AgentCounters,
    rate: f64,
    rate_point: Option<(Instant, u64)>,
    batches: u64,
    bytes: u64,
    duplicates: u64,
}

/// Stored and received sequence numbers of one agent process.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Marks {
    /// The node the process reports for (a process never changes node).
    #[serde(default)]
    node: String,
    stored: u64,
    #[serde(skip)]
    received: u64,
    /// Unix seconds of the last batch.
    seen: u64,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// New: process it.
    Fresh,
    /// Received before, or a probe (sequence number 0): skip it, answer with what is
    /// stored.
    Duplicate,
    /// A new node past [`MAX_NODES`]: refused.
    TooManyNodes,
    /// Not what this agent process can send: another node than it sent for before, or a
    /// sequence number far past its last (which would make the hub skip everything after).
    Inconsistent,
}

/// The book.
#[derive(Debug, Default)]
pub struct Registry {
    agents: BTreeMap<String, Agent>,
    marks: HashMap<u64, Marks>,
    path: Option<PathBuf>,
    dirty: bool,
    /// Batches that did not decode.
    pub rejected: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    /// A book kept in `path` (read now if it exists; an unreadable one is reported and
    /// started afresh: at worst, batches buffered across that restart count twice).
    pub fn open(path: Option<PathBuf>) -> Registry {
        let mut r = Registry {
            path,
            ..Registry::default()
        };
        if let Some(p) = &r.path {
            match std::fs::read(p) {
                Ok(b) => match serde_json::from_slice::<HashMap<String, Marks>>(&b) {
                    Ok(m) => {
                        for (k, mut v) in m {
                            if let Ok(id) = u64::from_str_radix(&k, 16) {
                                v.received = v.stored;
                                r.marks.insert(id, v);
                            }
                        }
                    }
                    Err(e) => eprintln!(
                        "wiremap: warning: {}: {e}; starting without the agents' marks",
                        p.display()
                    ),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("wiremap: warning: {}: {e}", p.display()),
            }
        }
        r
    }

    /// A batch arrived from `node`: its counters are noted; whether to process it.
    pub fn admit(
        &mut self,
        node: &str,
        instance: u64,
        seq: u64,
        counters: &AgentCounters,
        bytes: usize,
    ) -> Admit {
        if self.agents.len() >= MAX_NODES && !self.agents.contains_key(node) {
            let silent = self
                .agents
                .iter()
                .filter(|(_, a)| a.last_seen.elapsed() >= Duration::from_secs(600))
                .min_by_key(|(_, a)| a.last_seen)
                .map(|(n, _)| n.clone());
            match silent {
                Some(n) => {
                    self.agents.remove(&n);
                }
                None => return Admit::TooManyNodes,
            }
        }
        if self.marks.len() >= MAX_INSTANCES && !self.marks.contains_key(&instance) {
            self.forget_oldest();
        }
        let m = self.marks.entry(instance).or_default();
        if m.node.is_empty() {
            m.node = node.to_string();
        }
        if m.node != node || seq > m.received.saturating_add(MAX_SEQ_GAP) {
            return Admit::Inconsistent;
        }
        m.seen = unix_now();
        if seq == 0 {
            // An agent asking what is stored: heard from, nothing else.
            if let Some(a) = self.agents.get_mut(node).filter(|a| a.instance == instance) {
                a.last_seen = Instant::now();
                a.last_seen_at = SystemTime::now();
            }
            return Admit::Duplicate;
        }
        let admit = if seq <= m.received {
            Admit::Duplicate
        } else {
            Admit::Fresh
        };
        let now = Instant::now();
        let a = self
            .agents
            .entry(node.to_string())
            .or_insert_with(|| Agent {
                instance,
                last_seen: now,
                last_seen_at: SystemTime::now(),
                counters: AgentCounters::default(),
                rate: 0.0,
                rate_point: None,
                batches: 0,
                bytes: 0,
                duplicates: 0,
            });
        if a.instance != instance {
            // A restarted agent: its counters start again.
            a.instance = instance;
            a.rate_point = None;
        }
        a.last_seen = now;
        a.last_seen_at = SystemTime::now();
        a.batches += 1;
        a.bytes += bytes as u64;
        if admit == Admit::Duplicate {
            a.duplicates += 1;
        }
        let entries = counters.pipeline.entries;
        match a.rate_point {
            Some((t, n)) if now.duration_since(t) >= Duration::from_secs(1) => {
                let secs = now.duration_since(t).as_secs_f64();
                let r = entries.saturating_sub(n) as f64 / secs;
                a.rate = if a.rate == 0.0 {
                    r
                } else {
                    a.rate * 0.5 + r * 0.5
                };
                a.rate_point = Some((now, entries));
            }
            Some(_) => {}
            None => a.rate_point = Some((now, entries)),
        }
        a.counters = counters.clone();
        admit
    }

    /// The batch `seq` of `instance` was taken into the pipeline.
    pub fn received(&mut self, instance: u64, seq: u64) {
        let m = self.marks.entry(instance).or_default();
        m.received = m.received.max(seq);
    }

    /// Everything of `instance` through `seq` is in the store.
    pub fn stored(&mut self, instance: u64, seq: u64) {
        let m = self.marks.entry(instance).or_default();
        if seq > m.stored {
            m.stored = seq;
            self.dirty = true;
        }
    }

    /// What the hub acknowledges to `instance`.
    pub fn acked(&self, instance: u64) -> u64 {
        self.marks.get(&instance).map_or(0, |m| m.stored)
    }

    fn forget_oldest(&mut self) {
        if let Some((&id, _)) = self.marks.iter().min_by_key(|(_, m)| m.seen) {
            self.marks.remove(&id);
        }
    }

    /// Writes the marks if they changed (a new file renamed over the old one).
    pub fn save(&mut self) -> std::io::Result<()> {
        let Some(p) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let cutoff = unix_now().saturating_sub(FORGET_AFTER_SECS);
        self.marks.retain(|_, m| m.seen >= cutoff);
        let out: HashMap<String, Marks> = self
            .marks
            .iter()
            .map(|(k, v)| (format!("{k:016x}"), v.clone()))
            .collect();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&out).unwrap_or_default())?;
        std::fs::rename(&tmp, p)?;
        self.dirty = false;
        Ok(())
    }

    /// Every agent, for `/api/stats`.
    pub fn status(&self) -> Vec<AgentStatus> {
        let now = Instant::now();
        self.agents
            .iter()
            .map(|(node, a)| {
                let ago = now.duration_since(a.last_seen);
                let p = &a.counters.pipeline;
                let dropped = |r: DropReason| p.dropped.get(r.name()).copied().unwrap_or(0);
                AgentStatus {
                    node: node.clone(),
                    instance: format!("{:016x}", a.instance),
                    connected: ago <= CONNECTED_WITHIN,
                    last_seen_secs_ago: (ago.as_secs_f64() * 10.0).round() / 10.0,
                    last_seen: wiremap_model::Timestamp(
                        a.last_seen_at
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as i64),
                    )
                    .to_string(),
                    entries_per_sec: (a.rate * 10.0).round() / 10.0,
                    pipeline: p.clone(),
                    kernel_drops: a.counters.kernel_drops,
                    buffer_drops: dropped(DropReason::UplinkBufferEntries)
                        + dropped(DropReason::UplinkBufferPackets),
                    resent: a.counters.resent,
                    batches: a.batches,
                    bytes: a.bytes,
                    duplicate_batches: a.duplicates,
                }
            })
            .collect()
    }

    /// Every agent's pipeline counters and kernel counters (by node); the hub's own drops
    /// (batches it rejected) are the caller's to add.
    pub fn pipelines(&self) -> (Vec<Stats>, Vec<(String, wiremap_capture::KernelStats)>) {
        let mut s = Vec::with_capacity(self.agents.len());
        let mut k = Vec::with_capacity(self.agents.len());
        for (node, a) in &self.agents {
            s.push(a.counters.pipeline.clone());
            k.push((
                node.clone(),
                wiremap_capture::KernelStats {
                    packets: a.counters.pipeline.packets,
                    drops: a.counters.kernel_drops,
                },
            ));
        }
        (s, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resent_batches_are_skipped_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("wiremap-reg-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("agents.json");
        let _ = std::fs::remove_file(&path);
        let c = AgentCounters::default();
        let mut r = Registry::open(Some(path.clone()));
        assert_eq!(r.admit("n1", 9, 1, &c, 10), Admit::Fresh);
        r.received(9, 1);
        assert_eq!(r.admit("n1", 9, 2, &c, 10), Admit::Fresh);
        r.received(9, 2);
        // Sent again before it was stored: still skipped (it is in the pipeline).
        assert_eq!(r.admit("n1", 9, 2, &c, 10), Admit::Duplicate);
        r.stored(9, 1);
        assert_eq!(r.acked(9), 1);
        r.save().expect("save");
        // The hub restarts: batch 2 was received but never stored, so it is taken again;
        // batch 1 is skipped.
        let mut r = Registry::open(Some(path.clone()));
        assert_eq!(r.admit("n1", 9, 1, &c, 10), Admit::Duplicate);
        assert_eq!(r.admit("n1", 9, 2, &c, 10), Admit::Fresh);
        // A restarted agent is a new instance: its sequence starts again.
        assert_eq!(r.admit("n1", 10, 1, &c, 10), Admit::Fresh);
        // Another node's name, or a jump far ahead, from a known process: refused.
        assert_eq!(r.admit("n2", 10, 2, &c, 10), Admit::Inconsistent);
        assert_eq!(r.admit("n1", 10, u64::MAX, &c, 10), Admit::Inconsistent);
        // A probe asks without sending: never processed, never counted as a resend.
        assert_eq!(r.admit("n1", 10, 0, &c, 10), Admit::Duplicate);
        let st = r.status();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].duplicate_batches, 1);
        assert!(st[0].connected);
        // A damaged file starts afresh instead of failing.
        std::fs::write(&path, b"{not json").expect("write");
        let r = Registry::open(Some(path));
        assert_eq!(r.acked(9), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn made_up_node_names_cannot_grow_the_book() {
        let mut r = Registry::open(None);
        let c = AgentCounters::default();
        for i in 0..MAX_NODES as u64 {
            assert_eq!(r.admit(&format!("n{i}"), i + 1, 1, &c, 1), Admit::Fresh);
        }
        assert_eq!(r.admit("one-more", 0xffff, 1, &c, 1), Admit::TooManyNodes);
        // Known nodes still get through.
        assert_eq!(r.admit("n7", 8, 2, &c, 1), Admit::Fresh);
        assert_eq!(r.status().len(), MAX_NODES);
    }
}
