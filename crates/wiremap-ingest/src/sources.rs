//! Packet sources driven into an [`Ingest`]: a capture file, one capture ring set, or
//! fanout workers that dissect on several threads and hand their items to one naming and
//! storing thread.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wiremap_capture::{KernelStats, LiveSource, PacketSource};
use wiremap_engine::{Engine, EngineConfig, Item, Stats};

use crate::pipeline::{self, Batch};
use crate::{lock_counters, Ingest, FLUSH_EVERY};

/// Reads a capture into the store; a broken input keeps what was read before the break.
/// Dissection runs on this thread and the store's writes on another
/// ([`crate::pipeline`]); if that thread cannot be started, both run here.
pub fn import(ingest: &mut Ingest, src: &mut dyn PacketSource) {
    let started = Instant::now();
    lock_counters(ingest.shared()).capturing = true;
    let (shared, sink, keep_packets) = ingest.store_side();
    let (tx, rx) = std::sync::mpsc::sync_channel(pipeline::IN_FLIGHT);
    let (back, spare) = std::sync::mpsc::sync_channel(pipeline::IN_FLIGHT + 1);
    let writer = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || pipeline::store_thread(shared, sink, rx, back));
    match writer {
        Ok(writer) => {
            let mut batch = Batch::default();
            let mut last = Instant::now();
            let mut sent = true;
            let mut n: u32 = 0;
            read_all(ingest, src, &mut |ingest, p| {
                if keep_packets {
                    batch.packet(p);
                }
                ingest.engine_mut().packet(p, &mut |e| batch.entry(e));
                if batch.full() {
                    sent = batch.send(&tx, &spare, false);
                }
                // The clock is read every 64 packets, not for each (a slow stream on
                // standard input still publishes within a few packets of FLUSH_EVERY).
                n = n.wrapping_add(1);
                if n.is_multiple_of(64) && last.elapsed() >= FLUSH_EVERY {
                    sent = batch.send(&tx, &spare, true);
                    let _ = ingest.tick(&[], 0);
                    last = Instant::now();
                }
                sent
            });
            ingest.engine_mut().finish(&mut |e| batch.entry(e));
            batch.send(&tx, &spare, true);
            drop(tx);
            if writer.join().is_err() {
                eprintln!("wiremap: error: the store thread failed; the import is cut short");
            }
        }
        Err(e) => {
            eprintln!("wiremap: warning: no store thread ({e}); importing on one thread");
            let mut last = Instant::now();
            read_all(ingest, src, &mut |ingest, p| {
                ingest.packet(p);
                if last.elapsed() >= FLUSH_EVERY {
                    let _ = ingest.tick(&[], 0);
                    last = Instant::now();
                }
                true
            });
        }
    }
    ingest.finish();
    lock_counters(ingest.shared()).capturing = false;
    let how = if ingest.stopping() {
        "stopped after"
    } else {
        "done in"
    };
    eprintln!(
        "wiremap: import {how} {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Hands every packet of `src` to `each` until the input ends, a stop is asked for, or
/// `each` says no more.
fn read_all(
    ingest: &mut Ingest,
    src: &mut dyn PacketSource,
    each: &mut dyn FnMut(&mut Ingest, &wiremap_capture::Packet<'_>) -> bool,
) {
    loop {
        if ingest.stopping() {
            break;
        }
        match src.advance() {
            Ok(true) => {
                let p = src.packet();
                if !wiremap_decode::link_supported(p.link.0) {
                    let (record, offset) = src.location();
                    eprintln!(
                        "wiremap: error: {}: record {record} at byte {offset}: link type {} is not supported",
                        src.name(),
                        p.link.0
                    );
                    break;
                }
                if !each(ingest, &p) {
                    break;
                }
            }
            Ok(false) => break,
            Err(e) if e.is_truncated_tail() => {
                eprintln!("wiremap: warning: {e}; using the records before it");
            }
            Err(e) => eprintln!("wiremap: error: {e}; keeping what was read before it"),
        }
    }
}

/// Reads one live source into `ingest` until told to stop or `deadline`.
pub fn capture_loop(mut live: LiveSource, mut ingest: Ingest, deadline: Option<Instant>) {
    lock_counters(ingest.shared()).capturing = true;
    let mut last = Instant::now();
    loop {
        if ingest.stopping() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match live.next_packet(Duration::from_millis(100)) {
            Ok(Some(p)) => ingest.packet(&p),
            Ok(None) => {}
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                break;
            }
        }
        if last.elapsed() >= FLUSH_EVERY {
            let k = live.kernel_stats();
            lock_counters(ingest.shared()).interfaces = live.follow_counts();
            let _ = ingest.tick(&k, live.duplicates());
            last = Instant::now();
        }
    }
    let k = live.kernel_stats();
    let _ = ingest.tick(&k, live.duplicates());
    ingest.finish();
    lock_counters(ingest.shared()).capturing = false;
    eprintln!("wiremap: capture stopped");
}

/// What a dissecting worker tells the naming thread.
enum FromWorker {
    Items(Vec<Item>),
    Stats(usize, Stats, Vec<(String, KernelStats)>, u64),
    Done,
}

/// Fanout capture: each worker reads its rings, stores the raw packets and dissects; this
/// thread names the entries (one identity index, so a DNS answer seen by one worker names
/// the flows of all) and stores them. Entries are produced only when their response has
/// been seen, well after the DNS answer that named the server, so arrival order suffices.
pub fn fanout_loop(
    sources: Vec<LiveSource>,
    mut ingest: Ingest,
    deadline: Option<Instant>,
    cfg: EngineConfig,
    keep_packets: bool,
) {
    const BATCH: usize = 256;
    let n = sources.len();
    let (tx, rx) = std::sync::mpsc::sync_channel::<FromWorker>(64);
    let shared = ingest.shared().clone();
    let mut handles = Vec::new();
    for (w, mut live) in sources.into_iter().enumerate() {
        let (tx, shared, cfg) = (tx.clone(), shared.clone(), cfg.clone());
        let h = std::thread::Builder::new()
            .name(format!("dissect-{w}"))
            .spawn(move || {
                let mut engine = Engine::new(cfg);
                let mut items = Vec::with_capacity(BATCH * 2);
                let mut last = Instant::now();
                loop {
                    let stop = shared.stop.load(Ordering::Relaxed)
                        || deadline.is_some_and(|d| Instant::now() >= d);
                    if stop {
                        break;
                    }
                    match live.next_packet(Duration::from_millis(100)) {
                        Ok(Some(p)) => {
                            if keep_packets {
                                let mut store = match shared.store.lock() {
                                    Ok(g) => g,
                                    Err(e) => e.into_inner(),
                                };
                                let r = store.append_packet(p.ts, p.link, p.data, p.orig_len);
                                drop(store);
                                if let Err(e) = r {
                                    shared.store_error(&e);
                                }
                            }
                            engine.dissect(&p, &mut items);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            eprintln!("wiremap: error: {e}");
                            break;
                        }
                    }
                    if items.len() >= BATCH || (last.elapsed() >= FLUSH_EVERY && !items.is_empty())
                    {
                        let full = std::mem::replace(&mut items, Vec::with_capacity(BATCH * 2));
                        if tx.send(FromWorker::Items(full)).is_err() {
                            return;
                        }
                    }
                    if last.elapsed() >= FLUSH_EVERY {
                        let k = live.kernel_stats();
                        if w == 0 {
                            // Every worker follows the same interfaces: one tells.
                            lock_counters(&shared).interfaces = live.follow_counts();
                        }
                        let _ = tx.send(FromWorker::Stats(w, engine.stats(), k, live.duplicates()));
                        last = Instant::now();
                    }
                }
                engine.finish_dissect(&mut items);
                let _ = tx.send(FromWorker::Items(items));
                let k = live.kernel_stats();
                let _ = tx.send(FromWorker::Stats(w, engine.stats(), k, live.duplicates()));
                let _ = tx.send(FromWorker::Done);
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => eprintln!("wiremap: error: starting a dissecting thread: {e}"),
        }
    }
    drop(tx);
    lock_counters(ingest.shared()).capturing = true;
    let mut stats = vec![Stats::default(); n];
    let mut kernel: Vec<Vec<(String, KernelStats)>> = vec![Vec::new(); n];
    let mut dups = vec![0u64; n];
    let mut done = 0;
    let mut last = Instant::now();
    let publish = |ingest: &mut Ingest,
                   stats: &[Stats],
                   kernel: &[Vec<(String, KernelStats)>],
                   dups: &[u64]| {
        ingest.set_worker_stats(stats);
        let mut per: std::collections::BTreeMap<String, KernelStats> =
            std::collections::BTreeMap::new();
        for (iface, k) in kernel.iter().flatten() {
            let e = per.entry(iface.clone()).or_default();
            e.packets += k.packets;
            e.drops += k.drops;
        }
        let per: Vec<(String, KernelStats)> = per.into_iter().collect();
        let _ = ingest.tick(&per, dups.iter().sum());
    };
    while done < handles.len() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(FromWorker::Items(batch)) => ingest.items(batch),
            Ok(FromWorker::Stats(w, s, k, d)) => {
                stats[w] = s;
                kernel[w] = k;
                dups[w] = d;
            }
            Ok(FromWorker::Done) => done += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last.elapsed() >= FLUSH_EVERY {
            publish(&mut ingest, &stats, &kernel, &dups);
            last = Instant::now();
        }
    }
    for h in handles {
        let _ = h.join();
    }
    publish(&mut ingest, &stats, &kernel, &dups);
    ingest.finish();
    lock_counters(ingest.shared()).capturing = false;
    eprintln!("wiremap: capture stopped");
}
