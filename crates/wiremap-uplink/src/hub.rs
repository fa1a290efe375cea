//! The hub's ingest loop: batches from every agent, in arrival order, named by one identity
//! index, counted once ([`crate::Once`]), stored; raw packets stored once (the same packet
//! from two nodes is one packet). A batch is acknowledged to its agent once its entries have
//! left the merge window and the store has flushed them.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wiremap_capture::Dedup;
use wiremap_ingest::{lock_counters, Ingest, FLUSH_EVERY};
use wiremap_model::{DropReason, Entry};

use crate::agents::Registry;
use crate::once::{Once, OnceConfig};
use crate::wire::{Batch, Head, Item};

/// The hub's windows.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Counting once.
    pub once: OnceConfig,
    /// How far apart two agents' copies of one raw packet may be stamped, ns.
    pub packet_window_ns: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            once: OnceConfig::default(),
            packet_window_ns: 2_000_000_000,
        }
    }
}

/// A batch as the hub's door passes it on: its head read, its items still compressed (they
/// are decoded on the ingest thread, which also frees them: one thread's memory).
#[derive(Debug)]
pub struct Incoming {
    /// The head.
    pub head: Head,
    /// The compressed items.
    pub items: Vec<u8>,
}

/// Locks the registry, whatever a panicking holder left.
pub fn lock_registry(r: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    match r.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs until the ingest is told to stop (or every sender is gone).
pub fn hub_loop(
    rx: Receiver<Incoming>,
    mut ingest: Ingest,
    registry: Arc<Mutex<Registry>>,
    cfg: HubConfig,
) {
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut once = Once::new(cfg.once);
    let mut dedup = Dedup::with_window(cfg.packet_window_ns);
    let mut node_ids: HashMap<String, u32> = HashMap::new();
    // Batches waiting for their entries to be stored: (due, instance, seq).
    let mut waiting: VecDeque<(u64, u64, u64)> = VecDeque::new();
    let mut last = Instant::now();
    lock_counters(ingest.shared()).capturing = true;
    loop {
        if ingest.stopping() {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Incoming { head, items: body }) => {
                let now = now_ms();
                let decoded = match Batch::items(&body) {
                    Ok(d) => d,
                    Err(e) => {
                        let mut reg = lock_registry(&registry);
                        reg.rejected += 1;
                        eprintln!(
                            "wiremap: warning: batch {} of node `{}` does not decode: {e}",
                            head.seq, head.node
                        );
                        Vec::new()
                    }
                };
                drop(body);
                let next_id = node_ids.len() as u32;
                let iface = *node_ids.entry(head.node.clone()).or_insert(next_id);
                let mut items = Vec::with_capacity(decoded.len());
                for item in decoded {
                    match item {
                        Item::Entry(mut e) => {
                            // The batch's node is what the hub vouches for; evidence of other
                            // nodes is the hub's to add, never an agent's to claim.
                            e.node_name.clone_from(&head.node);
                            e.seen_by.clear();
                            items.push(wiremap_engine::Item::Entry(e));
                        }
                        Item::Answer(a) => items.push(wiremap_engine::Item::Answer(a)),
                        Item::Packet(p) => {
                            if !dedup.is_copy(p.ts, iface, p.link, &p.data) {
                                ingest.store_packet(p.ts, p.link, &p.data, p.orig_len);
                            }
                        }
                    }
                }
                let mut early: Vec<Entry> = Vec::new();
                ingest.name_items(items, &mut |e| once.offer(e, now, &mut |x| early.push(x)));
                if !early.is_empty() {
                    ingest.store_named(early);
                }
                waiting.push_back((now + cfg.once.hold_ms, head.instance, head.seq));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last.elapsed() >= FLUSH_EVERY {
            let now = now_ms();
            tick(&mut ingest, &mut once, &registry, &dedup, now, &mut waiting);
            last = Instant::now();
        }
    }
    let mut rest = Vec::new();
    once.drain(now_ms(), &mut |e| rest.push(e));
    ingest.store_named(rest);
    tick(
        &mut ingest,
        &mut once,
        &registry,
        &dedup,
        u64::MAX,
        &mut waiting,
    );
    ingest.finish();
    lock_counters(ingest.shared()).capturing = false;
    eprintln!("wiremap: hub stopped");
}

/// Releases what the window let go, flushes, acknowledges what is now stored, and publishes
/// the agents' counters.
fn tick(
    ingest: &mut Ingest,
    once: &mut Once,
    registry: &Mutex<Registry>,
    dedup: &Dedup,
    now: u64,
    waiting: &mut VecDeque<(u64, u64, u64)>,
) {
    let mut out = Vec::new();
    once.release(now, &mut |e| out.push(e));
    ingest.store_named(out);
    let (mut pipelines, kernel, rejected) = {
        let reg = lock_registry(registry);
        let (p, k) = reg.pipelines();
        (p, k, reg.rejected)
    };
    let c = once.counters;
    // The hub's own drops stand beside the agents' (none of them is charged for them).
    let mut own = wiremap_model::Stats::default();
    for (r, v) in [
        (DropReason::HubReleasedEarly, c.released_early),
        (DropReason::HubForgottenEarly, c.forgotten_early),
        (DropReason::UplinkBatchRejected, rejected),
    ] {
        if v > 0 {
            own.dropped.insert(r.name().to_string(), v);
        }
    }
    pipelines.push(own);
    ingest.set_worker_stats(&pipelines);
    let flushed = ingest.tick(&kernel, dedup.dropped);
    let mut reg = lock_registry(registry);
    if flushed {
        while waiting.front().is_some_and(|(due, _, _)| *due <= now) {
            if let Some((_, instance, seq)) = waiting.pop_front() {
                reg.stored(instance, seq);
            }
        }
        if let Err(e) = reg.save() {
            eprintln!("wiremap: warning: saving the agents' marks: {e}");
        }
    }
    let status = reg.status();
    drop(reg);
    let mut counters = lock_counters(ingest.shared());
    counters.agents = status;
    counters.cluster = [
        ("merged", c.merged),
        ("late_duplicates", c.late_duplicates),
        ("released_early", c.released_early),
        ("forgotten_early", c.forgotten_early),
        ("held", once.held() as u64),
        ("packet_copies", dedup.dropped),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
}
