//! File import on two threads: the reading thread dissects and names, and hands batches of
//! raw packets and entries to a store thread that appends them (numbering, encoding,
//! rollups, compression, writes) and publishes them to the live views. A bounded channel
//! of batches between the two keeps memory bounded and makes the faster side wait.
//!
//! Why only for imports: a live capture must not block on the store (its kernel ring drops
//! instead), and its fanout workers already spread dissection; an import has all its input
//! at hand and is limited by one core doing everything.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use wiremap_capture::{LinkType, Packet};
use wiremap_model::{Entry, Timestamp};
use wiremap_store::EntrySink;

use crate::shared::{lock, publish, Shared};

/// Batches in flight between the threads.
pub(crate) const IN_FLIGHT: usize = 4;
/// A batch is sent at this many operations, or bytes of raw packets.
const BATCH_OPS: usize = 4096;
const BATCH_BYTES: usize = 1 << 20;

enum Op {
    Packet {
        ts: Timestamp,
        link: LinkType,
        orig_len: u32,
        at: usize,
        len: usize,
    },
    Entry(Entry),
}

/// Raw packets and entries in the order they were produced.
#[derive(Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    ops: Vec<Op>,
    /// Publish to the live views and flush once stored.
    pub(crate) publish: bool,
}

impl Batch {
    pub(crate) fn packet(&mut self, p: &Packet<'_>) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(p.data);
        self.ops.push(Op::Packet {
            ts: p.ts,
            link: p.link,
            orig_len: p.orig_len,
            at,
            len: p.data.len(),
        });
    }

    pub(crate) fn entry(&mut self, e: Entry) {
        self.ops.push(Op::Entry(e));
    }

    pub(crate) fn full(&self) -> bool {
        self.ops.len() >= BATCH_OPS || self.bytes.len() >= BATCH_BYTES
    }

    /// Sends the batch, leaving in its place an emptied one the store thread gave back (its
    /// buffers keep their capacity, so a batch is not grown, and its pages not faulted in,
    /// again and again) or a new one; `false` when the store thread is gone.
    pub(crate) fn send(
        &mut self,
        tx: &SyncSender<Batch>,
        spare: &Receiver<Batch>,
        publish: bool,
    ) -> bool {
        let mut b = std::mem::replace(self, spare.try_recv().unwrap_or_default());
        b.publish = publish;
        tx.send(b).is_ok()
    }
}

/// The store thread: appends every batch in order, publishes when asked and at the end, and
/// gives emptied batches `back` for reuse.
pub(crate) fn store_thread(
    shared: Arc<Shared>,
    sink: Option<Arc<dyn EntrySink>>,
    rx: Receiver<Batch>,
    back: SyncSender<Batch>,
) {
    let mut pending = Vec::new();
    let publish_now = |pending: &mut Vec<_>| {
        let r = publish(&shared, sink.as_ref(), std::mem::take(pending));
        let mut c = lock(&shared.counters);
        match r {
            Ok(s) => c.store = s,
            Err(e) => {
                c.store_errors += 1;
                c.last_store_error = e.to_string();
            }
        }
    };
    for mut b in rx {
        let mut err = None;
        {
            let mut store = lock(&shared.store);
            for op in b.ops.drain(..) {
                match op {
                    Op::Packet {
                        ts,
                        link,
                        orig_len,
                        at,
                        len,
                    } => {
                        let data = b.bytes.get(at..at + len).unwrap_or_default();
                        if let Err(e) = store.append_packet(ts, link, data, orig_len) {
                            err = Some(e);
                        }
                    }
                    Op::Entry(mut e) => match store.append_entry(&mut e) {
                        Ok(()) => pending.push((Arc::new(e), store.last_entry_len())),
                        Err(e) => err = Some(e),
                    },
                }
            }
        }
        if let Some(e) = err {
            shared.store_error(&e);
        }
        if b.publish {
            publish_now(&mut pending);
        }
        b.bytes.clear();
        // Full: the reading thread has spares enough; this one is freed.
        let _ = back.try_send(b);
    }
    publish_now(&mut pending);
}
