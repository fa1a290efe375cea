//! ClickHouse behind the store seam: [`EntryStore`] for the API's reads, and [`Writer`], the
//! [`EntrySink`] that gets a hub's entries there — a thread with a buffer bounded by entries
//! that inserts in batches, keeps what failed and tries again with backoff (so a ClickHouse
//! that is away for a while loses nothing within the buffer), drops the oldest beyond it
//! (counted), and applies retention by dropping whole partitions.

use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wiremap_map::Rollup;
use wiremap_model::{Entry, Timestamp};
use wiremap_store::{EntrySink, EntryStore, Query, StoreError};

use crate::{ClickHouse, Error, MAX_PAGE};

/// Far enough ahead for any capture, and a whole hour (so open windows use the hourly rollups);
/// within what 18.16's `DateTime` (32-bit seconds) holds.
const END_OF_TIME: Timestamp = Timestamp(4_102_444_800_000_000_000);

fn err(e: Error) -> StoreError {
    match e {
        Error::Stopped => StoreError::Stopped,
        e => StoreError::Backend {
            backend: "clickhouse",
            message: e.to_string(),
        },
    }
}

/// The half-open window ClickHouse queries take, from a scope's inclusive one.
fn bounds(q: &Query<'_>) -> (Timestamp, Timestamp) {
    let from = q.scope.from.unwrap_or(Timestamp(0)).max(Timestamp(0));
    let to = q
        .scope
        .to
        .map_or(END_OF_TIME, |t| Timestamp(t.0.saturating_add(1)))
        .min(END_OF_TIME);
    (from, to)
}

impl EntryStore for ClickHouse {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }

    fn scan(
        &self,
        q: &Query<'_>,
        visit: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (from, to) = bounds(q);
        // A filter with no SQL form is applied by the caller alone.
        let mut filter = q.filter;
        if let Some(f) = filter {
            if f.to_sql().is_err() {
                filter = None;
            }
        }
        let mut after = q.after_id;
        loop {
            if (q.stop)() {
                return Ok(());
            }
            let page = self
                .entries(filter, from, to, after, MAX_PAGE, q.stop)
                .map_err(err)?;
            let full = page.len() == MAX_PAGE;
            for e in page {
                after = e.id;
                if visit(e).is_break() {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn get(&self, id: u64) -> Result<Option<Entry>, StoreError> {
        ClickHouse::get(self, id, &|| false).map_err(err)
    }

    fn rollups(&self, q: &Query<'_>, visit: &mut dyn FnMut(&Rollup)) -> Result<bool, StoreError> {
        let (from, to) = bounds(q);
        if to <= from {
            return Ok(true);
        }
        match ClickHouse::rollups(self, q.filter, from, to, q.stop) {
            Ok(r) => {
                r.iter().for_each(visit);
                Ok(true)
            }
            // No SQL form: the caller scans and filters in Rust.
            Err(Error::Filter(_)) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }
}

/// What the writer did.
#[derive(Debug, Clone, Default)]
struct Status {
    inserted: u64,
    dropped: u64,
    failures: u64,
    connected: bool,
    partitions_dropped: u64,
    last_error: String,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Arc<Entry>>,
    status: Status,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    more: Condvar,
    stop: AtomicBool,
    cap: usize,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Gets entries into ClickHouse from a bounded buffer, on a thread of its own.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer: at most `cap` entries wait; `retention` drops partitions older
    /// than that before the newest entry written.
    pub fn start(
        ch: ClickHouse,
        cap: usize,
        retention: Option<Duration>,
    ) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            more: Condvar::new(),
            stop: AtomicBool::new(false),
            cap: cap.max(1),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("clickhouse".into())
            .spawn(move || write_loop(&ch, &s, retention))?;
        Ok(Writer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Gives the writer up to `grace` to empty its buffer, then stops it.
    pub fn finish(&self, grace: Duration) {
        let until = Instant::now() + grace;
        while Instant::now() < until && !lock(&self.shared.state).queue.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.more.notify_all();
        let t = match self.thread.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl EntrySink for Writer {
    fn append(&self, entries: &[Arc<Entry>]) {
        let mut st = lock(&self.shared.state);
        st.queue.extend(entries.iter().cloned());
        while st.queue.len() > self.shared.cap {
            st.queue.pop_front();
            st.status.dropped += 1;
        }
        drop(st);
        self.shared.more.notify_one();
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let st = lock(&self.shared.state);
        let s = &st.status;
        [
            ("queued", st.queue.len() as u64),
            ("inserted", s.inserted),
            ("dropped", s.dropped),
            ("failures", s.failures),
            ("connected", u64::from(s.connected)),
            ("partitions_dropped", s.partitions_dropped),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn last_error(&self) -> String {
        lock(&self.shared.state).status.last_error.clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.more.notify_all();
    }
}

fn write_loop(ch: &ClickHouse, s: &Shared, retention: Option<Duration>) {
    let batch_rows = ch.config().batch_rows;
    let mut backoff = Duration::from_millis(200);
    let mut newest = Timestamp(0);
    let mut last_retention = Instant::now();
    loop {
        let batch: Vec<Arc<Entry>> = {
            let mut st = lock(&s.state);
            while st.queue.is_empty() && !s.stop.load(Ordering::Relaxed) {
                st = match s.more.wait_timeout(st, Duration::from_millis(500)) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            if st.queue.is_empty() {
                return;
            }
            st.queue.iter().take(batch_rows).cloned().collect()
        };
        let r = ch.insert(&batch);
        let mut st = lock(&s.state);
        match r {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                if !st.status.connected {
                    eprintln!(
                        "wiremap: storing entries in ClickHouse at {}",
                        ch.config().url
                    );
                }
                st.status.connected = true;
                let last = batch.last().map_or(0, |e| e.id);
                // Entries dropped from the front meanwhile were counted as dropped but went
                // in: count them as inserted instead.
                let still = st.queue.iter().take_while(|e| e.id <= last).count() as u64;
                let gone = batch.len() as u64 - still.min(batch.len() as u64);
                st.status.dropped = st.status.dropped.saturating_sub(gone);
                st.status.inserted += batch.len() as u64;
                while st.queue.front().is_some_and(|e| e.id <= last) {
                    st.queue.pop_front();
                }
                newest = batch
                    .iter()
                    .map(|e| e.timestamp)
                    .fold(newest, Timestamp::max);
            }
            Err(e) => {
                if st.status.connected || st.status.failures == 0 {
                    eprintln!("wiremap: warning: ClickHouse: {e}; keeping entries and retrying");
                }
                st.status.connected = false;
                st.status.failures += 1;
                st.status.last_error = e.to_string();
                drop(st);
                let until = Instant::now() + backoff;
                while Instant::now() < until && !s.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if s.stop.load(Ordering::Relaxed) {
                    // Stopping with ClickHouse away: what is left never gets there.
                    let mut st = lock(&s.state);
                    st.status.dropped += st.queue.len() as u64;
                    st.queue.clear();
                    return;
                }
                continue;
            }
        }
        drop(st);
        if let Some(keep) = retention {
            if last_retention.elapsed() >= Duration::from_secs(60) && newest.0 > 0 {
                last_retention = Instant::now();
                let cutoff = Timestamp(newest.0.saturating_sub(keep.as_nanos() as i64));
                match ch.drop_before(cutoff) {
                    Ok(d) => lock(&s.state).status.partitions_dropped += d.len() as u64,
                    Err(e) => lock(&s.state).status.last_error = e.to_string(),
                }
            }
        }
    }
}
