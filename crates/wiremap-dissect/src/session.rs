use wiremap_model::{Direction, Timestamp, Transport};
use wiremap_reassembly::{CloseReason, FlowInfo, StreamHandler};

use crate::conn::Opaque;
use crate::{default_probes, Cx, DissectStats, Dissector, Next, Output, Probe, Verdict};

/// The dissector context of session `$s` of flow `$info` (split borrows of the handler).
macro_rules! cx {
    ($self:ident, $s:ident, $info:ident) => {
        Cx {
            info: $info,
            out: &mut $self.out,
            stats: &mut $self.stats,
            index: &mut $s.index,
            node: &$self.cfg.node,
            lean: $self.cfg.lean,
        }
    };
}

/// Settings shared by every dissector.
#[derive(Debug, Clone)]
pub struct DissectConfig {
    /// Capture node stamped on entries.
    pub node: String,
    /// Header names (lowercase) whose values are replaced before anything is stored, on top
    /// of [`crate::redact::ALWAYS_REDACTED`] and the names that look like secrets.
    pub redact_headers: Vec<String>,
    /// URL parameter name patterns whose values are replaced in request targets and URL
    /// headers (matched case-insensitively within the name; see [`crate::redact`]).
    /// Defaults to [`crate::redact::DEFAULT_QUERY_PARAMS`].
    pub redact_query_params: Vec<String>,
    /// Bytes per direction buffered while detecting the protocol.
    pub detect_bytes: usize,
    /// Chunks per direction looked at before a flow is declared opaque.
    pub detect_chunks: usize,
    /// Entries carry only what a map needs: no headers, no HTTP targets, no DNS question and
    /// answer lists, no protocol fields. For `wiremap map` without a filter, where those are
    /// built only to be thrown away.
    pub lean: bool,
}

impl Default for DissectConfig {
    fn default() -> Self {
        DissectConfig {
            node: String::new(),
            redact_headers: Vec::new(),
            redact_query_params: crate::redact::DEFAULT_QUERY_PARAMS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            detect_bytes: 4096,
            detect_chunks: 8,
            lean: false,
        }
    }
}

enum Chunk {
    Data(Direction, Timestamp, Vec<u8>),
    Gap(Direction, Timestamp, u64),
}

#[derive(Default)]
struct Detect {
    log: Vec<Chunk>,
    prefix: [Vec<u8>; 2],
    chunks: [usize; 2],
    /// Detection restarted after an upgrade: an opaque result adds no entry.
    after_handoff: bool,
    /// The protocol the upgrade announced (a probe index): no detection needed.
    hint: Option<usize>,
}

enum State {
    Detecting(Detect),
    Active(Box<dyn Dissector>),
    Opaque(Opaque),
}

/// Per-flow state of [`Dissect`].
pub struct Session {
    state: State,
    index: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.state {
            State::Detecting(_) => "detecting",
            State::Active(_) => "active",
            State::Opaque(_) => "opaque",
        };
        f.debug_struct("Session").field("state", &s).finish()
    }
}

/// The stream handler that detects protocols and runs dissectors.
pub struct Dissect {
    probes: Vec<Box<dyn Probe>>,
    cfg: DissectConfig,
    out: Output,
    stats: DissectStats,
    /// Heap bytes all open sessions hold (kept as they change, so asking is free).
    held: usize,
}

impl std::fmt::Debug for Dissect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dissect")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Dissect {
    /// A handler with the default probes.
    pub fn new(cfg: DissectConfig) -> Self {
        Dissect::with_probes(cfg, default_probes())
    }

    /// A handler with the given probes, asked in order.
    pub fn with_probes(cfg: DissectConfig, probes: Vec<Box<dyn Probe>>) -> Self {
        Dissect {
            probes,
            cfg,
            out: Output::default(),
            stats: DissectStats::default(),
            held: 0,
        }
    }

    /// Entries and answers produced since the last call.
    pub fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// Counters so far.
    pub fn stats(&self) -> &DissectStats {
        &self.stats
    }

    /// The first probe that recognises `data` outright.
    fn first_yes(&self, transport: Transport, dir: Direction, data: &[u8]) -> Option<usize> {
        let data = &data[..data.len().min(self.cfg.detect_bytes)];
        self.probes
            .iter()
            .position(|p| p.transport() == transport && p.probe(dir, data) == Verdict::Yes)
    }

    /// Picks a probe for the bytes seen so far; `None` while undecided, `Some(None)` for opaque.
    fn decide(&self, transport: Transport, d: &Detect, closing: bool) -> Option<Option<usize>> {
        if let Some(h) = d.hint {
            return Some(Some(h));
        }
        let mut undecided = false;
        for (i, p) in self.probes.iter().enumerate() {
            if p.transport() != transport {
                continue;
            }
            for dir in [Direction::AtoB, Direction::BtoA] {
                let bytes = &d.prefix[dir.index()];
                if bytes.is_empty() {
                    continue;
                }
                match p.probe(dir, bytes) {
                    Verdict::Yes => return Some(Some(i)),
                    Verdict::NeedMore => undecided = true,
                    Verdict::No => {}
                }
            }
        }
        if closing || transport == Transport::Udp {
            return Some(None);
        }
        let full = (0..2).any(|i| {
            d.prefix[i].len() >= self.cfg.detect_bytes || d.chunks[i] >= self.cfg.detect_chunks
        });
        if full || (!undecided && d.chunks[0] + d.chunks[1] >= 2 * self.cfg.detect_chunks) {
            return Some(None);
        }
        None
    }

    /// Moves a detecting session to its dissector (or opaque) and replays the buffered bytes.
    fn settle(&mut self, s: &mut Session, info: &FlowInfo, choice: Option<usize>) {
        let State::Detecting(det) =
            std::mem::replace(&mut s.state, State::Opaque(Opaque::default()))
        else {
            return;
        };
        match choice {
            Some(i) => {
                let name = self.probes[i].name();
                *self.stats.flows.entry(name).or_insert(0) += 1;
                s.state = State::Active(self.probes[i].build(&self.cfg));
                let mut log = det.log.into_iter();
                while let Some(chunk) = log.next() {
                    let ts = match &chunk {
                        Chunk::Data(_, ts, _) | Chunk::Gap(_, ts, _) => *ts,
                    };
                    if let Next::Handoff(left) = self.run(s, info, chunk) {
                        let hint = self.successor(s);
                        let mut fresh = handoff_detect(left, ts, self.cfg.detect_bytes, hint);
                        for rest in log.by_ref() {
                            push(&mut fresh, rest, self.cfg.detect_bytes);
                        }
                        let choice = self.decide(info.key.transport, &fresh, false);
                        s.state = State::Detecting(fresh);
                        if let Some(choice) = choice {
                            self.settle(s, info, choice);
                        }
                        return;
                    }
                }
            }
            None => {
                let name = match info.key.transport {
                    Transport::Tcp => "tcp",
                    Transport::Udp => "udp",
                };
                *self.stats.flows.entry(name).or_insert(0) += 1;
                s.state = State::Opaque(Opaque {
                    silent: det.after_handoff,
                });
            }
        }
    }

    /// The probe index of the protocol an active dissector says its connection switched to.
    fn successor(&self, s: &Session) -> Option<usize> {
        let State::Active(d) = &s.state else {
            return None;
        };
        let name = d.successor()?;
        self.probes.iter().position(|p| p.name() == name)
    }

    fn run(&mut self, s: &mut Session, info: &FlowInfo, chunk: Chunk) -> Next {
        let State::Active(d) = &mut s.state else {
            return Next::Continue;
        };
        let mut cx = cx!(self, s, info);
        match chunk {
            Chunk::Data(dir, ts, bytes) => d.data(&mut cx, dir, ts, &bytes),
            Chunk::Gap(dir, ts, len) => {
                d.gap(&mut cx, dir, ts, len);
                Next::Continue
            }
        }
    }
}

/// Detection state after a protocol switch, seeded with the bytes that followed it.
fn handoff_detect(left: [Vec<u8>; 2], ts: Timestamp, cap: usize, hint: Option<usize>) -> Detect {
    let mut d = Detect {
        after_handoff: true,
        hint,
        ..Detect::default()
    };
    for (dir, bytes) in [Direction::AtoB, Direction::BtoA].into_iter().zip(left) {
        if !bytes.is_empty() {
            push(&mut d, Chunk::Data(dir, ts, bytes), cap);
        }
    }
    d
}

fn push(d: &mut Detect, chunk: Chunk, cap: usize) {
    if let Chunk::Data(dir, _, bytes) = &chunk {
        let p = &mut d.prefix[dir.index()];
        let room = cap.saturating_sub(p.len());
        p.extend_from_slice(&bytes[..bytes.len().min(room)]);
        d.chunks[dir.index()] += 1;
    }
    d.log.push(chunk);
}

impl Session {
    /// Heap bytes this flow's detection log or dissector holds.
    fn held(&self) -> usize {
        match &self.state {
            State::Detecting(d) => {
                let log: usize = d
                    .log
                    .iter()
                    .map(|c| match c {
                        Chunk::Data(_, _, v) => v.capacity(),
                        Chunk::Gap(..) => 0,
                    })
                    .sum();
                log + d.prefix[0].capacity() + d.prefix[1].capacity()
            }
            State::Active(d) => d.held(),
            State::Opaque(_) => 0,
        }
    }
}

impl StreamHandler for Dissect {
    type Session = Session;

    fn open(&mut self, _info: &FlowInfo) -> Session {
        Session {
            state: State::Detecting(Detect::default()),
            index: 0,
        }
    }

    fn data(
        &mut self,
        s: &mut Session,
        info: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    ) {
        let before = s.held();
        self.data_inner(s, info, dir, ts, data);
        self.held = self.held.saturating_sub(before) + s.held();
    }

    fn gap(&mut self, s: &mut Session, info: &FlowInfo, dir: Direction, ts: Timestamp, len: u64) {
        let before = s.held();
        self.gap_inner(s, info, dir, ts, len);
        self.held = self.held.saturating_sub(before) + s.held();
    }

    fn close(&mut self, s: Session, info: &FlowInfo, ts: Timestamp, reason: CloseReason) {
        self.held = self.held.saturating_sub(s.held());
        self.close_inner(s, info, ts, reason);
    }

    fn held(&self) -> usize {
        self.held
    }
}

impl Dissect {
    fn data_inner(
        &mut self,
        s: &mut Session,
        info: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    ) {
        // Most flows are recognised from their first chunk: no need to copy it.
        if let State::Detecting(det) = &s.state {
            if det.log.is_empty() && !det.after_handoff {
                if let Some(i) = self.first_yes(info.key.transport, dir, data) {
                    let name = self.probes[i].name();
                    *self.stats.flows.entry(name).or_insert(0) += 1;
                    s.state = State::Active(self.probes[i].build(&self.cfg));
                }
            }
        }
        match &mut s.state {
            State::Opaque(_) => {}
            State::Active(d) => {
                let mut cx = cx!(self, s, info);
                if let Next::Handoff(left) = d.data(&mut cx, dir, ts, data) {
                    let hint = self.successor(s);
                    s.state =
                        State::Detecting(handoff_detect(left, ts, self.cfg.detect_bytes, hint));
                    if let State::Detecting(det) = &s.state {
                        if let Some(choice) = self.decide(info.key.transport, det, false) {
                            self.settle(s, info, choice);
                        }
                    }
                }
            }
            State::Detecting(det) => {
                push(
                    det,
                    Chunk::Data(dir, ts, data.to_vec()),
                    self.cfg.detect_bytes,
                );
                let det: &Detect = det;
                if let Some(choice) = self.decide(info.key.transport, det, false) {
                    self.settle(s, info, choice);
                }
            }
        }
    }

    fn gap_inner(
        &mut self,
        s: &mut Session,
        info: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        len: u64,
    ) {
        match &mut s.state {
            State::Opaque(_) => {}
            State::Detecting(det) => det.log.push(Chunk::Gap(dir, ts, len)),
            State::Active(d) => {
                let mut cx = cx!(self, s, info);
                d.gap(&mut cx, dir, ts, len);
            }
        }
    }

    fn close_inner(&mut self, mut s: Session, info: &FlowInfo, ts: Timestamp, reason: CloseReason) {
        if let State::Detecting(det) = &s.state {
            let choice = self.decide(info.key.transport, det, true).flatten();
            self.settle(&mut s, info, choice);
            // A handoff during the replay leaves the rest undetected: decide once more.
            if let State::Detecting(det) = &s.state {
                let choice = self.decide(info.key.transport, det, true).flatten();
                self.settle(&mut s, info, choice);
            }
        }
        let mut cx = cx!(self, s, info);
        match &mut s.state {
            State::Active(d) => d.close(&mut cx, ts),
            State::Opaque(o) => o.close(&mut cx, reason),
            State::Detecting(_) => {}
        }
    }
}
