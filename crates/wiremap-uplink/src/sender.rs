//! The agent's side: items are appended to the open batch on the capture thread, cut into
//! compressed batches every interval (an empty one is the heartbeat), and queued in a buffer
//! bounded by bytes. One sender thread posts them in order; the hub answers each with the
//! highest sequence number it has stored, and the buffer lets go of what that covers. While
//! the hub is away the sender retries with exponential backoff and, once back, sends again
//! everything not acknowledged (the hub skips what it already has); when the buffer is full
//! the oldest batches go, counted as `uplink_buffer_entries` / `uplink_buffer_packets`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wiremap_model::DropReason;

use crate::wire::{AgentCounters, Batch, Head, Item, RawPacketRef};

/// The path agents post batches to.
pub const PUSH_PATH: &str = "/api/agents/push";

/// How an agent reaches the hub.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// `http://HOST:PORT` of the hub.
    pub hub: String,
    /// Bearer token.
    pub token: Option<String>,
    /// This node.
    pub node: String,
    /// Bytes of compressed batches held for the hub.
    pub buffer_bytes: usize,
    /// A batch is cut when its items pass this many bytes.
    pub batch_bytes: usize,
    /// … or this long after the previous cut (a heartbeat when empty).
    pub batch_every: Duration,
    /// A full buffer makes the capture side wait instead of dropping the oldest batches
    /// (for capture files, which can wait; live traffic cannot).
    pub wait_when_full: bool,
}

impl SenderConfig {
    /// Defaults for `hub` and `node`: 64 MiB of buffer, batches of 1 MiB or 250 ms.
    pub fn new(hub: &str, node: &str) -> Self {
        SenderConfig {
            hub: hub.trim_end_matches('/').to_string(),
            token: None,
            node: node.to_string(),
            buffer_bytes: 64 << 20,
            batch_bytes: 1 << 20,
            batch_every: Duration::from_millis(250),
            wait_when_full: false,
        }
    }
}

/// What the sender thread reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    /// The last post succeeded.
    pub connected: bool,
    /// Batches the hub acknowledged (highest sequence number).
    pub acked: u64,
    /// Batches and bytes held now.
    pub buffered_batches: usize,
    /// Compressed bytes held now.
    pub buffered_bytes: usize,
    /// Entries dropped from a full buffer.
    pub dropped_entries: u64,
    /// Packets dropped from a full buffer.
    pub dropped_packets: u64,
    /// Batches sent again after a failure.
    pub resent: u64,
    /// Batches the hub refused as undecodable.
    pub rejected: u64,
    /// Failed posts.
    pub failures: u64,
    /// Posts the hub answered "busy" (back-pressure).
    pub busy: u64,
    /// The last failure.
    pub last_error: String,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    body: Arc<Vec<u8>>,
    entries: u64,
    packets: u64,
}

#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Queued>,
    /// Highest sequence number sent on the current connection.
    sent: u64,
    status: LinkStatus,
}

#[derive(Debug, Default)]
struct Link {
    outbox: Mutex<Outbox>,
    more: Condvar,
    stop: AtomicBool,
    /// This agent process.
    instance: u64,
}

fn lock(m: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The capture thread's handle: builds batches, hands them to the sender thread.
#[derive(Debug)]
pub struct Uplink {
    cfg: SenderConfig,
    instance: u64,
    seq: u64,
    items: Vec<u8>,
    entries: u64,
    packets: u64,
    last_cut: Instant,
    link: Arc<Link>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A number no other agent process picks: 8 bytes of the kernel's randomness (the time and
/// process id when that cannot be read).
fn instance_id() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b).max(1);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)).max(1)
}

impl Uplink {
    /// Starts the sender thread.
    pub fn start(cfg: SenderConfig) -> std::io::Result<Uplink> {
        let instance = instance_id();
        let link = Arc::new(Link {
            instance,
            ..Link::default()
        });
        let (l, c) = (link.clone(), cfg.clone());
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || send_loop(&l, &c))?;
        Ok(Uplink {
            cfg,
            instance,
            seq: 0,
            items: Vec::with_capacity(1 << 16),
            entries: 0,
            packets: 0,
            last_cut: Instant::now(),
            link,
            thread: Some(thread),
        })
    }

    /// Appends an item to the open batch; cuts it when full.
    pub fn push(&mut self, item: &Item, counters: &dyn Fn() -> AgentCounters) {
        match item {
            Item::Entry(_) => self.entries += 1,
            Item::Packet(_) => self.packets += 1,
            Item::Answer(_) => {}
        }
        Batch::put_item(&mut self.items, item);
        self.cut_if_full(counters);
    }

    /// Appends a raw packet straight from the capture buffer (no copy of its own first).
    pub fn push_packet(&mut self, p: &RawPacketRef<'_>, counters: &dyn Fn() -> AgentCounters) {
        self.packets += 1;
        Batch::put_packet(&mut self.items, p);
        self.cut_if_full(counters);
    }

    fn cut_if_full(&mut self, counters: &dyn Fn() -> AgentCounters) {
        if self.items.len() >= self.cfg.batch_bytes {
            self.cut(&counters());
        }
    }

    /// Cuts the open batch when the interval has passed (also when it is empty: the hub
    /// hears from the agent, and gets its counters, at least that often).
    pub fn tick(&mut self, counters: &dyn Fn() -> AgentCounters) {
        if self.last_cut.elapsed() >= self.cfg.batch_every {
            self.cut(&counters());
        }
    }

    /// What the sender thread reports.
    pub fn status(&self) -> LinkStatus {
        let o = lock(&self.link.outbox);
        let mut s = o.status.clone();
        s.buffered_batches = o.queue.len();
        s
    }

    /// Adds this link's drops to an agent's pipeline counters.
    pub fn add_drops(&self, c: &mut AgentCounters) {
        let s = self.status();
        for (r, v) in [
            (DropReason::UplinkBufferEntries, s.dropped_entries),
            (DropReason::UplinkBatchRejected, s.rejected),
            (DropReason::UplinkBufferPackets, s.dropped_packets),
        ] {
            if v > 0 {
                c.pipeline.dropped.insert(r.name().to_string(), v);
            }
        }
        c.resent = s.resent;
    }

    fn cut(&mut self, counters: &AgentCounters) {
        self.seq += 1;
        let head = Head {
            instance: self.instance,
            seq: self.seq,
            node: self.cfg.node.clone(),
            counters: counters.clone(),
        };
        let body = Arc::new(Batch::seal(&head, &self.items));
        self.items.clear();
        let q = Queued {
            seq: self.seq,
            body,
            entries: std::mem::take(&mut self.entries),
            packets: std::mem::take(&mut self.packets),
        };
        self.last_cut = Instant::now();
        let mut o = lock(&self.link.outbox);
        while self.cfg.wait_when_full
            && !o.queue.is_empty()
            && o.status.buffered_bytes + q.body.len() > self.cfg.buffer_bytes
        {
            drop(o);
            std::thread::sleep(Duration::from_millis(5));
            o = lock(&self.link.outbox);
        }
        o.status.buffered_bytes += q.body.len();
        o.queue.push_back(q);
        // Full: the oldest go first (the newest traffic is what a live map needs). A batch
        // already sent is probably at the hub; only unsent ones count as lost.
        while o.status.buffered_bytes > self.cfg.buffer_bytes && o.queue.len() > 1 {
            if let Some(old) = o.queue.pop_front() {
                o.status.buffered_bytes -= old.body.len();
                if old.seq > o.sent {
                    o.status.dropped_entries += old.entries;
                    o.status.dropped_packets += old.packets;
                }
            }
        }
        drop(o);
        self.link.more.notify_one();
    }

    /// Cuts what is open and gives the sender up to `grace` to deliver the buffer, then stops
    /// it. Returns what it reported last.
    pub fn finish(mut self, counters: &AgentCounters, grace: Duration) -> LinkStatus {
        self.cut(counters);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            let o = lock(&self.link.outbox);
            if o.queue.back().is_none_or(|q| q.seq <= o.status.acked) {
                break;
            }
            drop(o);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.link.stop.store(true, Ordering::Relaxed);
        self.link.more.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.status()
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.link.stop.store(true, Ordering::Relaxed);
        self.link.more.notify_all();
    }
}

/// What one post came to.
enum Posted {
    /// Stored through this sequence number.
    Acked(u64),
    /// The hub cannot read the batch: sending it again would not help.
    Rejected(String),
    /// The hub is busy (its queue is full): the same batch again shortly.
    Busy,
    /// Try again later.
    Failed(String),
}

#[derive(serde::Deserialize)]
struct Ack {
    acked: u64,
}

fn post(agent: &ureq::Agent, cfg: &SenderConfig, body: &[u8]) -> Posted {
    let url = format!("{}{PUSH_PATH}", cfg.hub);
    let mut req = agent
        .post(&url)
        .header("Content-Type", "application/x-wiremap-batch");
    if let Some(t) = &cfg.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = match req.send(body) {
        Ok(r) => r,
        Err(e) => return Posted::Failed(e.to_string()),
    };
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    match status {
        200 => match serde_json::from_str::<Ack>(&text) {
            Ok(a) => Posted::Acked(a.acked),
            Err(e) => Posted::Failed(format!("unreadable acknowledgement: {e}")),
        },
        400 | 413 => Posted::Rejected(format!("HTTP {status}: {}", text.trim())),
        503 if text.contains("busy") => Posted::Busy,
        _ => Posted::Failed(format!("HTTP {status}: {}", text.trim())),
    }
}

fn send_loop(link: &Link, cfg: &SenderConfig) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .timeout_connect(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut backoff = Duration::from_millis(100);
    let mut logged_at: Option<Instant> = None;
    // Sequence number 0 asks what is stored without sending anything: when every batch
    // went out and the buffer waits for acknowledgements (a capture file fills it faster
    // than the hub's merge window lets batches be acknowledged), nothing else would ask.
    let probe = Arc::new(Batch::seal(
        &Head {
            instance: link.instance,
            seq: 0,
            node: cfg.node.clone(),
            counters: AgentCounters::default(),
        },
        &[],
    ));
    let mut last_post = Instant::now();
    loop {
        let next = {
            let mut o = lock(&link.outbox);
            loop {
                if link.stop.load(Ordering::Relaxed) {
                    return;
                }
                let sent = o.sent;
                if let Some(q) = o.queue.iter().find(|q| q.seq > sent) {
                    break (q.seq, q.body.clone());
                }
                let waiting = o.queue.front().is_some_and(|q| q.seq > o.status.acked);
                if waiting && last_post.elapsed() >= Duration::from_millis(250) {
                    break (0, probe.clone());
                }
                o = match link.more.wait_timeout(o, Duration::from_millis(100)) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
        };
        let (seq, body) = next;
        last_post = Instant::now();
        match post(&agent, cfg, &body) {
            Posted::Acked(n) => {
                backoff = Duration::from_millis(100);
                let mut o = lock(&link.outbox);
                if !o.status.connected {
                    eprintln!("wiremap: connected to the hub at {}", cfg.hub);
                }
                o.status.connected = true;
                o.sent = o.sent.max(seq);
                o.status.acked = o.status.acked.max(n);
                let acked = o.status.acked;
                while o.queue.front().is_some_and(|q| q.seq <= acked) {
                    if let Some(q) = o.queue.pop_front() {
                        o.status.buffered_bytes -= q.body.len();
                    }
                }
            }
            Posted::Rejected(why) => {
                let mut o = lock(&link.outbox);
                o.status.rejected += 1;
                o.status.last_error = why.clone();
                o.sent = o.sent.max(seq);
                if let Some(i) = o.queue.iter().position(|q| q.seq == seq) {
                    if let Some(q) = o.queue.remove(i) {
                        o.status.buffered_bytes -= q.body.len();
                        o.status.dropped_entries += q.entries;
                        o.status.dropped_packets += q.packets;
                    }
                }
                eprintln!("wiremap: warning: the hub refused batch {seq}: {why}");
            }
            Posted::Busy => {
                // Back-pressure, not a failure: nothing is sent again but this batch.
                lock(&link.outbox).status.busy += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Posted::Failed(why) => {
                {
                    let mut o = lock(&link.outbox);
                    if o.status.connected || logged_at.is_none_or(|t| t.elapsed().as_secs() >= 30) {
                        eprintln!("wiremap: warning: hub {}: {why}; retrying", cfg.hub);
                        logged_at = Some(Instant::now());
                    }
                    o.status.connected = false;
                    o.status.failures += 1;
                    o.status.last_error = why;
                    // Everything after the last acknowledgement goes again.
                    let acked = o.status.acked;
                    let again = o
                        .queue
                        .iter()
                        .filter(|q| q.seq > acked && q.seq <= o.sent)
                        .count() as u64;
                    o.status.resent += again;
                    o.sent = acked;
                }
                let until = Instant::now() + backoff;
                while Instant::now() < until && !link.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
