//! Packet frames compressed on a thread of their own.
//!
//! Why: compressing the raw packets is the largest single cost of storing them (about a
//! third of a store thread that also encodes entries, builds rollups and publishes). On its
//! own thread it overlaps with everything else, so an import or a capture is no longer held
//! to one core by it. Frames come back in the order they were sent (one thread, FIFO
//! channels), at most [`IN_FLIGHT`] of them at a time, so memory stays bounded.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Frames being compressed or waiting to be written, at most.
pub(crate) const IN_FLIGHT: usize = 8;

/// A raw frame to compress: its pcapng section and the header facts about it.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) raw: Vec<u8>,
    pub(crate) count: u32,
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// A buffer for the compressed frame (reused).
    pub(crate) frame: Vec<u8>,
}

/// A compressed frame (or why there is none) and the emptied raw buffer, for reuse.
pub(crate) type Done = (std::io::Result<Vec<u8>>, Vec<u8>);

/// Builds a whole frame (header and LZ4 block) of `job.raw` into `job.frame`.
pub(crate) type Encode = fn(&[u8], u32, i64, i64, &mut Vec<u8>) -> std::io::Result<()>;

/// The compressing thread and the frames in flight to and from it.
#[derive(Debug)]
pub(crate) struct Press {
    to: Option<SyncSender<Job>>,
    from: Receiver<Done>,
    worker: Option<JoinHandle<()>>,
    /// Raw bytes of each frame in flight, oldest first.
    raw: VecDeque<u64>,
    /// Their sum (segments are sized by what they hold).
    raw_in_flight: u64,
}

impl Press {
    /// Starts the thread; `None` when it cannot be started (the caller compresses inline).
    pub(crate) fn start(encode: Encode) -> Option<Press> {
        let (to, jobs) = sync_channel::<Job>(IN_FLIGHT);
        let (done, from) = sync_channel::<Done>(IN_FLIGHT);
        let worker = std::thread::Builder::new()
            .name("packets".into())
            .spawn(move || {
                for mut job in jobs {
                    let r = encode(&job.raw, job.count, job.first, job.last, &mut job.frame);
                    job.raw.clear();
                    if done.send((r.map(|()| job.frame), job.raw)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Press {
            to: Some(to),
            from,
            worker: Some(worker),
            raw: VecDeque::with_capacity(IN_FLIGHT),
            raw_in_flight: 0,
        })
    }

    /// Raw bytes of the frames not yet handed back.
    pub(crate) fn raw_in_flight(&self) -> u64 {
        self.raw_in_flight
    }

    /// Hands a frame over. `Err(job)`: the thread is gone, compress it inline.
    pub(crate) fn send(&mut self, job: Job) -> Result<(), Job> {
        let Some(to) = &self.to else { return Err(job) };
        let raw = job.raw.len() as u64;
        // The caller collects before sending more than IN_FLIGHT, so this never blocks on a
        // full channel for long: the thread is working through it.
        match to.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                if let Err(e) = to.send(job) {
                    return Err(e.0);
                }
            }
            Err(TrySendError::Disconnected(job)) => return Err(job),
        }
        self.raw.push_back(raw);
        self.raw_in_flight += raw;
        Ok(())
    }

    /// Whether another frame may be sent without waiting for one back.
    pub(crate) fn has_room(&self) -> bool {
        self.raw.len() < IN_FLIGHT
    }

    /// The next finished frame, in order: waiting for it when `wait`, else only if ready.
    /// `None` when nothing is in flight (or, not waiting, nothing is finished yet).
    pub(crate) fn next(&mut self, wait: bool) -> Option<Done> {
        if self.raw.is_empty() {
            return None;
        }
        let got = if wait {
            self.from.recv().ok()
        } else {
            self.from.try_recv().ok()
        };
        match got {
            Some(d) => {
                let raw = self.raw.pop_front().unwrap_or(0);
                self.raw_in_flight = self.raw_in_flight.saturating_sub(raw);
                Some(d)
            }
            None if wait => {
                // The thread died with frames in flight: they are lost, as a crash loses
                // what a flush had not written; say so once, at the caller.
                self.raw.clear();
                self.raw_in_flight = 0;
                Some((
                    Err(std::io::Error::other(
                        "the packet compression thread stopped",
                    )),
                    Vec::new(),
                ))
            }
            None => None,
        }
    }
}

impl Drop for Press {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; a frame it is compressing is
        // abandoned (the writer flushes before it is dropped on every clean path).
        self.to = None;
        while self.from.try_recv().is_ok() {}
        drop(self.worker.take());
    }
}
