//! Reading ahead on a second thread, so that the parsing thread never waits on the kernel.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Bytes per read.
const CHUNK: usize = 1 << 20;
/// Room left before each chunk's data, so a consumer can put the unread end of the previous
/// chunk in front of it instead of copying the chunk (one record at most).
pub(crate) const HEAD: usize = (1 << 20) + (64 << 10);
/// Chunks in flight (memory stays at about `(DEPTH + 2) * CHUNK`).
const DEPTH: usize = 4;

/// A [`Read`] whose underlying reads happen on a background thread, chunks ahead.
pub struct ReadAhead {
    rx: Receiver<io::Result<Vec<u8>>>,
    pool: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    _thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("done", &self.done)
            .finish()
    }
}

impl ReadAhead {
    /// Starts reading `inner` ahead.
    pub fn new(mut inner: Box<dyn Read + Send>) -> ReadAhead {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let (pool, free) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::Builder::new()
            .name("wiremap-read".into())
            .spawn(move || loop {
                let mut buf = free.try_recv().unwrap_or_default();
                buf.resize(HEAD + CHUNK, 0);
                let mut n = HEAD;
                let result = loop {
                    match inner.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(n);
                let last = n == HEAD || result.is_err();
                let msg = match result {
                    Err(e) if n == HEAD => Err(e),
                    _ => Ok(buf),
                };
                // The reader went away: stop.
                if tx.send(msg).is_err() || last {
                    return;
                }
            });
        ReadAhead {
            rx,
            pool,
            cur: Vec::new(),
            pos: 0,
            done: false,
            _thread: thread.ok(),
        }
    }
}

impl ReadAhead {
    /// The next chunk: `HEAD` bytes of room, then data. `None` at the end of the input.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(chunk)) if chunk.len() <= HEAD => {
                self.done = true;
                Ok(None)
            }
            Ok(Ok(chunk)) => Ok(Some(chunk)),
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    /// Gives a spent buffer back for reuse.
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.pool.try_send(buf)
        {
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let spent = std::mem::take(&mut self.cur);
            self.recycle(spent);
            match self.next_chunk()? {
                Some(chunk) => {
                    self.cur = chunk;
                    self.pos = HEAD;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everything_in_order() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut r = ReadAhead::new(Box::new(std::io::Cursor::new(data.clone())));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 77_777];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let data = vec![1u8; 10 * CHUNK];
        let mut r = ReadAhead::new(Box::new(std::io::Cursor::new(data)));
        let mut b = [0u8; 10];
        assert_eq!(r.read(&mut b).expect("read"), 10);
        drop(r);
    }
}
