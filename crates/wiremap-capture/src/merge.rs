use crate::{CaptureError, Packet, PacketSource};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unstarted,
    Ready,
    Consumed,
    Done,
}

/// Several sources read as one, in timestamp order (a k-way merge of their heads).
///
/// Each input must itself be in time order, as captures are; ties go to the earlier input.
pub struct Merge {
    sources: Vec<Box<dyn PacketSource + Send>>,
    state: Vec<State>,
    current: usize,
}

impl std::fmt::Debug for Merge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge")
            .field("inputs", &self.sources.len())
            .finish()
    }
}

impl Merge {
    /// Merges `sources`.
    pub fn new(sources: Vec<Box<dyn PacketSource + Send>>) -> Self {
        let n = sources.len();
        Merge {
            sources,
            state: vec![State::Unstarted; n],
            current: 0,
        }
    }

    /// Name of the source the current packet came from.
    pub fn current_name(&self) -> &str {
        self.sources
            .get(self.current)
            .map(|s| s.name())
            .unwrap_or("")
    }
}

impl PacketSource for Merge {
    fn advance(&mut self) -> Result<bool, CaptureError> {
        // A source that fails is marked done first, so a caller that chooses to go on after
        // an error (a truncated tail) continues with the other inputs.
        for i in 0..self.sources.len() {
            if matches!(self.state[i], State::Unstarted | State::Consumed) {
                self.state[i] = State::Done;
                if self.sources[i].advance()? {
                    self.state[i] = State::Ready;
                }
            }
        }
        let mut best: Option<usize> = None;
        for i in 0..self.sources.len() {
            if self.state[i] != State::Ready {
                continue;
            }
            let ts = self.sources[i].packet().ts;
            if best.is_none_or(|b| ts < self.sources[b].packet().ts) {
                best = Some(i);
            }
        }
        match best {
            Some(b) => {
                self.current = b;
                self.state[b] = State::Consumed;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn packet(&self) -> Packet<'_> {
        self.sources[self.current].packet()
    }

    fn name(&self) -> &str {
        self.current_name()
    }

    fn position(&self) -> u64 {
        self.sources.iter().map(|s| s.position()).sum()
    }

    fn location(&self) -> (u64, u64) {
        self.sources
            .get(self.current)
            .map(|s| s.location())
            .unwrap_or((0, 0))
    }
}
