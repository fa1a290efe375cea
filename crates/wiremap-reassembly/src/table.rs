use std::collections::BTreeMap;
#[cfg(test)]
use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use wiremap_decode::{flags, TcpSegment};
use wiremap_model::{Direction, FlowKey, Timestamp, Transport};

use crate::handler::{CloseReason, FlowInfo, Limits, ReassemblyStats, StreamHandler};

/// What one buffered out-of-order segment costs besides its bytes: its allocation and its
/// place in the tree (order of magnitude; small segments are what a hostile sender uses).
const SEGMENT_OVERHEAD: u64 = 64;
/// What a direction's first buffered segment costs on top: the tree's first node (eleven
/// slots, whatever it holds).
const TREE_OVERHEAD: u64 = 400;
/// What one flow costs besides its slots and box: control bytes and the allocator's header.
const FLOW_OVERHEAD: usize = 18;

#[derive(Debug, Default)]
struct Half {
    /// Sequence number of relative offset 0.
    base: Option<u32>,
    /// Next relative offset expected.
    next: u64,
    /// Highest relative offset the peer acknowledged.
    acked: u64,
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    fin: bool,
}

impl Half {
    /// Relative offset of `seq`, extended to 64 bits near `next`.
    fn rel(&self, base: u32, seq: u32) -> u64 {
        let expected = base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(expected) as i32;
        (self.next as i64 + i64::from(delta)).max(0) as u64
    }
}

struct Flow<S> {
    info: FlowInfo,
    half: [Half; 2],
    session: S,
}

/// The table of live flows.
pub struct FlowTable<S> {
    /// Flows are boxed: the table then holds small slots, and its spare room costs little.
    flows: FxHashMap<FlowKey, Box<Flow<S>>>,
    limits: Limits,
    stats: ReassemblyStats,
    next_id: u64,
    last_sweep: Timestamp,
    now: Timestamp,
    /// Connections that just closed (FIN or RST), so that their last ACKs and FINs are not
    /// counted as packets of no known flow.
    closed: RecentlyClosed,
}

/// The last [`RecentlyClosed::CAP`] connections closed, with when (a bounded ring).
#[derive(Default)]
struct RecentlyClosed {
    at: FxHashMap<FlowKey, Timestamp>,
    /// Closes in the order they happened; an entry whose time is no longer the key's (it
    /// closed again since) is stale and only leaves the ring.
    order: std::collections::VecDeque<(FlowKey, Timestamp)>,
}

impl RecentlyClosed {
    const CAP: usize = 4096;
    /// How long a connection's stragglers are expected after it closed (TCP's TIME-WAIT is
    /// one to four minutes).
    const LINGER_NS: i64 = 120_000_000_000;

    fn add(&mut self, k: FlowKey, ts: Timestamp) {
        if self.order.len() >= Self::CAP {
            if let Some((old, t)) = self.order.pop_front() {
                if self.at.get(&old) == Some(&t) {
                    self.at.remove(&old);
                }
            }
        }
        self.at.insert(k, ts);
        self.order.push_back((k, ts));
    }

    fn holds(&self, k: &FlowKey, ts: Timestamp) -> bool {
        self.at
            .get(k)
            .is_some_and(|t| ts.0.saturating_sub(t.0) <= Self::LINGER_NS)
    }
}

impl<S> std::fmt::Debug for FlowTable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("flows", &self.flows.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn key_of(transport: Transport, src: IpAddr, sp: u16, dst: IpAddr, dp: u16) -> FlowKey {
    FlowKey {
        transport,
        a_ip: src,
        a_port: sp,
        b_ip: dst,
        b_port: dp,
    }
}

impl<S> FlowTable<S> {
    /// An empty table. The flows take at most half of `max_memory` (fewer flows than
    /// `max_flows` when they would not fit), counting for each its box and two slots of the
    /// hash table: with deletions the table settles at about twice the flows it holds.
    /// Flows are boxed so that those slots are small: a table that doubles holds the old
    /// and the new one at once, which with whole flows in the slots cost more than the flows.
    /// The table grows as flows arrive (a sweep for idle flows walks all of it, so a table
    /// made at its final size would make every sweep of a quiet capture cost the maximum).
    pub fn new(mut limits: Limits) -> Self {
        let fit = limits.max_memory / 2 / Self::slot_size();
        limits.max_flows = limits.max_flows.min(fit).max(1);
        let flows = FxHashMap::default();
        FlowTable {
            flows,
            limits,
            stats: ReassemblyStats::default(),
            next_id: 1,
            last_sweep: Timestamp(i64::MIN),
            now: Timestamp(i64::MIN),
            closed: RecentlyClosed::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn create<H: StreamHandler<Session = S>>(
        &mut self,
        h: &mut H,
        ts: Timestamp,
        key: FlowKey,
        known: bool,
    ) -> FlowKey {
        if self.flows.len() >= self.limits.max_flows {
            self.evict(h, ts);
        }
        let info = FlowInfo::new(self.next_id, key, known, ts);
        self.next_id += 1;
        match key.transport {
            Transport::Tcp => self.stats.tcp_flows += 1,
            Transport::Udp => self.stats.udp_flows += 1,
        }
        let session = h.open(&info);
        let canon = key.canonical();
        self.flows.insert(
            canon,
            Box::new(Flow {
                info,
                half: [Half::default(), Half::default()],
                session,
            }),
        );
        canon
    }

    /// Time moves on: close idle flows now and then.
    fn tick<H: StreamHandler<Session = S>>(&mut self, h: &mut H, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        if self.memory(h) > self.limits.max_memory {
            self.shed(h, ts);
        }
        // Idle timeouts are minutes long: looking every five seconds of capture time is enough.
        if self.now.nanos().saturating_sub(self.last_sweep.nanos()) < 5_000_000_000 {
            return;
        }
        self.last_sweep = self.now;
        let now = self.now;
        let (tcp_idle, udp_idle) = (self.limits.tcp_idle_secs, self.limits.udp_idle_secs);
        let idle: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(k, f)| {
                let limit = if k.transport == Transport::Tcp {
                    tcp_idle
                } else {
                    udp_idle
                };
                f.info.last_ts.plus_secs(limit) < now
            })
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            self.close(h, k, now, CloseReason::Idle);
        }
    }

    /// What one flow costs: its two slots in the table (see [`FlowTable::new`]) and its box.
    fn slot_size() -> usize {
        2 * std::mem::size_of::<(FlowKey, Box<Flow<S>>)>()
            + std::mem::size_of::<Flow<S>>()
            + FLOW_OVERHEAD
    }

    /// Most flows held at once (`max_flows`, or fewer to fit the memory budget).
    pub fn max_flows(&self) -> usize {
        self.limits.max_flows
    }

    /// Bytes held now: the flows, out-of-order buffers and the handler's buffers.
    pub fn memory<H: StreamHandler<Session = S>>(&self, h: &H) -> usize {
        (self.flows.len() * Self::slot_size())
            .saturating_add(self.stats.buffered_bytes as usize)
            .saturating_add(h.held())
    }

    /// Over the memory budget: closes the least recently active flows until the table is
    /// back under seven eighths of it (so that it does not sort again at the next packet).
    fn shed<H: StreamHandler<Session = S>>(&mut self, h: &mut H, ts: Timestamp) {
        let mut by_age: Vec<(Timestamp, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.info.last_ts, *k))
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let target = self.limits.max_memory / 8 * 7;
        for (_, k) in by_age {
            if self.memory(h) <= target {
                break;
            }
            self.stats.memory_evicted_flows += 1;
            self.close(h, k, ts, CloseReason::Evicted);
        }
    }

    /// Frees room: the least recently active eighth of the flows goes.
    fn evict<H: StreamHandler<Session = S>>(&mut self, h: &mut H, ts: Timestamp) {
        let mut by_age: Vec<(Timestamp, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.info.last_ts, *k))
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let n = (by_age.len() / 8).max(1);
        for (_, k) in by_age.into_iter().take(n) {
            self.stats.evicted_flows += 1;
            self.close(h, k, ts, CloseReason::Evicted);
        }
    }

    fn close<H: StreamHandler<Session = S>>(
        &mut self,
        h: &mut H,
        canon: FlowKey,
        ts: Timestamp,
        reason: CloseReason,
    ) {
        let Some(mut f) = self.flows.remove(&canon) else {
            return;
        };
        // Whatever is still buffered is delivered after declaring the holes before it.
        for d in [Direction::AtoB, Direction::BtoA] {
            while !f.half[d.index()].ooo.is_empty() {
                skip_gap(&mut f, h, d, ts, &mut self.stats);
            }
        }
        h.close(f.session, &f.info, ts, reason);
    }

    /// Feeds one TCP segment.
    pub fn tcp<H: StreamHandler<Session = S>>(
        &mut self,
        h: &mut H,
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpSegment<'_>,
    ) {
        self.tick(h, ts);
        let key = key_of(Transport::Tcp, src, seg.src_port, dst, seg.dst_port);
        let canon = key.canonical();
        let syn = seg.flags & flags::SYN != 0;
        let ackf = seg.flags & flags::ACK != 0;
        let rst = seg.flags & flags::RST != 0;
        let fin = seg.flags & flags::FIN != 0;

        // A new SYN on a flow that already carried data is a new connection on a reused port.
        if syn && !ackf {
            let reused = self.flows.get(&canon).is_some_and(|f| {
                let d = if f.info.key == key { 0 } else { 1 };
                f.half[d].base.is_some_and(|b| b != seg.seq.wrapping_add(1))
                    && (f.info.bytes[0] + f.info.bytes[1] > 0 || f.half[d].fin)
            });
            if reused {
                self.close(h, canon, ts, CloseReason::Fin);
            }
        }
        // One lookup for a known flow; a new one costs a second after its creation.
        let f = match self.flows.get_mut(&canon) {
            Some(f) => f,
            None => {
                if syn && !ackf {
                    self.create(h, ts, key, true);
                } else if syn && ackf {
                    self.create(h, ts, key.reversed(), true);
                } else if !seg.payload.is_empty() && !rst {
                    self.create(h, ts, key, false);
                } else if !self.closed.holds(&canon, ts) {
                    self.stats.orphan_packets += 1;
                    return;
                }
                match self.flows.get_mut(&canon) {
                    Some(f) => f,
                    None => return,
                }
            }
        };
        let dir = if f.info.key == key {
            Direction::AtoB
        } else {
            Direction::BtoA
        };
        let di = dir.index();
        f.info.packets[di] += 1;
        f.info.last_ts = ts;
        if dir == Direction::BtoA && f.info.first_reply_ts.is_none() {
            f.info.first_reply_ts = Some(ts);
        }

        if syn && f.info.client_isn.is_none() && f.info.initiator_known {
            f.info.client_isn = match dir {
                Direction::AtoB if !ackf => Some(seg.seq),
                Direction::BtoA if ackf => Some(seg.ack.wrapping_sub(1)),
                _ => None,
            };
        }
        if syn {
            let h0 = &mut f.half[di];
            if h0.base.is_none() {
                h0.base = Some(seg.seq.wrapping_add(1));
                h0.next = 0;
            }
        }
        // The peer's acknowledgement tells what this side's peer has received.
        if ackf {
            let o = &mut f.half[dir.flip().index()];
            if let Some(b) = o.base {
                let a = o.rel(b, seg.ack);
                if a > o.acked && a <= o.next + (1 << 30) {
                    o.acked = a;
                }
            }
        }
        if !seg.payload.is_empty() {
            deliver(
                f,
                h,
                dir,
                ts,
                seg.seq,
                seg.payload,
                syn,
                self.limits.max_buffered,
                &mut self.stats,
            );
        }
        // The peer acknowledged data we never saw: the hole will not be filled.
        let o = dir.flip();
        while gap_confirmed(&f.half[o.index()]) {
            skip_gap(f, h, o, ts, &mut self.stats);
        }
        if fin {
            f.half[di].fin = true;
        }
        if rst {
            f.info.reset = true;
            self.close(h, canon, ts, CloseReason::Reset);
            self.closed.add(canon, ts);
        } else if f.half[0].fin && f.half[1].fin {
            self.close(h, canon, ts, CloseReason::Fin);
            self.closed.add(canon, ts);
        }
    }

    /// Feeds one UDP datagram from `src` (address, port) to `dst`.
    pub fn udp<H: StreamHandler<Session = S>>(
        &mut self,
        h: &mut H,
        ts: Timestamp,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        payload: &[u8],
    ) {
        self.tick(h, ts);
        let key = key_of(Transport::Udp, src.0, src.1, dst.0, dst.1);
        let canon = key.canonical();
        if !self.flows.contains_key(&canon) {
            self.create(h, ts, key, false);
        }
        let Some(f) = self.flows.get_mut(&canon) else {
            return;
        };
        let dir = if f.info.key == key {
            Direction::AtoB
        } else {
            Direction::BtoA
        };
        f.info.packets[dir.index()] += 1;
        f.info.bytes[dir.index()] += payload.len() as u64;
        f.info.last_ts = ts;
        if dir == Direction::BtoA && f.info.first_reply_ts.is_none() {
            f.info.first_reply_ts = Some(ts);
        }
        h.data(&mut f.session, &f.info, dir, ts, payload);
    }

    /// Closes every flow (end of input).
    pub fn finish<H: StreamHandler<Session = S>>(&mut self, h: &mut H, ts: Timestamp) {
        self.finish_in_batches(h, ts, |_| {});
    }

    /// Closes every flow in creation order, calling `between` after every batch of closes so
    /// the caller can take what the handler produced: a table of many flows would otherwise
    /// turn into as many results held at once.
    pub fn finish_in_batches<H: StreamHandler<Session = S>>(
        &mut self,
        h: &mut H,
        ts: Timestamp,
        mut between: impl FnMut(&mut H),
    ) {
        let mut keys: Vec<(u64, FlowKey)> =
            self.flows.iter().map(|(k, f)| (f.info.id, *k)).collect();
        keys.sort_unstable();
        for batch in keys.chunks(256) {
            for (_, k) in batch {
                self.close(h, *k, ts, CloseReason::End);
            }
            between(h);
        }
    }
}

fn gap_confirmed(h: &Half) -> bool {
    match h.ooo.keys().next() {
        Some(&first) => h.acked > h.next && first > h.next,
        None => false,
    }
}

/// Declares the hole before the first buffered segment and delivers what follows it.
fn skip_gap<S, H: StreamHandler<Session = S>>(
    f: &mut Flow<S>,
    h: &mut H,
    d: Direction,
    ts: Timestamp,
    stats: &mut ReassemblyStats,
) {
    let di = d.index();
    let Some(&first) = f.half[di].ooo.keys().next() else {
        return;
    };
    if first > f.half[di].next {
        let len = first - f.half[di].next;
        stats.gaps += 1;
        stats.gap_bytes += len;
        f.info.gap_bytes[di] += len;
        f.half[di].next = first;
        h.gap(&mut f.session, &f.info, d, ts, len);
    }
    drain(f, h, d, ts, stats);
}

/// Delivers buffered segments that are now in order.
fn drain<S, H: StreamHandler<Session = S>>(
    f: &mut Flow<S>,
    h: &mut H,
    d: Direction,
    ts: Timestamp,
    stats: &mut ReassemblyStats,
) {
    let di = d.index();
    loop {
        let next = f.half[di].next;
        let Some((&off, _)) = f.half[di].ooo.iter().next() else {
            return;
        };
        if off > next {
            return;
        }
        let Some(data) = f.half[di].ooo.remove(&off) else {
            return;
        };
        f.half[di].ooo_bytes -= data.len();
        stats.buffered_bytes = stats
            .buffered_bytes
            .saturating_sub(data.len() as u64 + SEGMENT_OVERHEAD);
        if f.half[di].ooo.is_empty() {
            stats.buffered_bytes = stats.buffered_bytes.saturating_sub(TREE_OVERHEAD);
        }
        let end = off + data.len() as u64;
        if end <= next {
            stats.duplicate_bytes += data.len() as u64;
            continue;
        }
        let skip = (next - off) as usize;
        stats.duplicate_bytes += skip as u64;
        let fresh = &data[skip..];
        f.half[di].next = end;
        f.info.bytes[di] += fresh.len() as u64;
        h.data(&mut f.session, &f.info, d, ts, fresh);
    }
}

#[allow(clippy::too_many_arguments)]
fn deliver<S, H: StreamHandler<Session = S>>(
    f: &mut Flow<S>,
    h: &mut H,
    d: Direction,
    ts: Timestamp,
    seq: u32,
    payload: &[u8],
    syn: bool,
    cap: usize,
    stats: &mut ReassemblyStats,
) {
    let di = d.index();
    let half = &mut f.half[di];
    // Data on a SYN (TCP fast open) starts at seq + 1.
    let seq = if syn { seq.wrapping_add(1) } else { seq };
    let base = *half.base.get_or_insert(seq);
    let start = half.rel(base, seq);
    let end = start + payload.len() as u64;
    if end <= half.next {
        stats.duplicate_bytes += payload.len() as u64;
        return;
    }
    if start > half.next {
        stats.out_of_order_segments += 1;
        half.ooo_bytes += payload.len();
        match half.ooo.get(&start) {
            Some(old) if old.len() >= payload.len() => {
                half.ooo_bytes -= payload.len();
                stats.duplicate_bytes += payload.len() as u64;
            }
            Some(old) => {
                half.ooo_bytes -= old.len();
                stats.buffered_bytes += (payload.len() - old.len()) as u64;
                half.ooo.insert(start, payload.to_vec());
            }
            None => {
                stats.buffered_bytes += payload.len() as u64 + SEGMENT_OVERHEAD;
                if half.ooo.is_empty() {
                    stats.buffered_bytes += TREE_OVERHEAD;
                }
                half.ooo.insert(start, payload.to_vec());
            }
        }
        while f.half[di].ooo_bytes > cap {
            skip_gap(f, h, d, ts, stats);
        }
        return;
    }
    let skip = (half.next - start) as usize;
    stats.duplicate_bytes += skip as u64;
    half.next = end;
    let fresh = &payload[skip..];
    f.info.bytes[di] += fresh.len() as u64;
    h.data(&mut f.session, &f.info, d, ts, fresh);
    drain(f, h, d, ts, stats);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[derive(Default)]
    struct Collect {
        streams: HashMap<(u64, usize), Vec<u8>>,
        gaps: u64,
        closed: Vec<(u64, CloseReason)>,
    }

    impl StreamHandler for Collect {
        type Session = ();
        fn open(&mut self, _: &FlowInfo) {}
        fn data(&mut self, _: &mut (), i: &FlowInfo, d: Direction, _: Timestamp, data: &[u8]) {
            self.streams
                .entry((i.id, d.index()))
                .or_default()
                .extend_from_slice(data);
        }
        fn gap(&mut self, _: &mut (), _: &FlowInfo, _: Direction, _: Timestamp, len: u64) {
            self.gaps += len;
        }
        fn close(&mut self, _: (), i: &FlowInfo, _: Timestamp, r: CloseReason) {
            self.closed.push((i.id, r));
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    fn seg(seq: u32, fl: u8, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src_port: 40000,
            dst_port: 80,
            seq,
            ack: 0,
            flags: fl,
            payload,
        }
    }

    #[test]
    fn flows_with_holes_never_filled_stay_within_the_memory_budget() {
        // 20,000 connections, each sending one segment past a hole: without a budget every
        // flow would hold its segment until it idles out.
        let limits = Limits {
            max_memory: 1 << 20,
            ..Limits::default()
        };
        let mut t = FlowTable::new(limits);
        let mut c = Collect::default();
        // Segments big enough that buffers, not the flow count, reach the budget first.
        let payload = [7u8; 2000];
        let mut peak = 0;
        for i in 0..20_000u32 {
            let ts = Timestamp(i64::from(i) * 1000);
            let src = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i));
            t.tcp(&mut c, ts, src, ip(2), &seg(1000, flags::SYN, b""));
            t.tcp(&mut c, ts, src, ip(2), &seg(5000, flags::ACK, &payload));
            peak = peak.max(t.memory(&c));
        }
        // The budget is enforced before each packet: over by one packet's worth at most.
        assert!(peak <= (1 << 20) + 4096, "peak {peak}");
        assert!(t.max_flows() < 20_000, "the flow count fits the budget too");
        let st = t.stats().clone();
        assert!(st.memory_evicted_flows > 1_000, "{st:?}");
        assert!(st.buffered_bytes > 0);
        // Evicted flows delivered what they held after declaring the hole: nothing lost
        // silently.
        assert_eq!(st.gaps, st.memory_evicted_flows + st.evicted_flows);
        t.finish(&mut c, Timestamp(i64::MAX));
        assert_eq!(t.stats().buffered_bytes, 0);
    }

    #[test]
    fn out_of_order_and_retransmission() {
        let mut t = FlowTable::new(Limits::default());
        let mut c = Collect::default();
        let ts = Timestamp(0);
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(99, flags::SYN, b""));
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(106, flags::ACK, b"world"));
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(100, flags::ACK, b"hello "));
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(100, flags::ACK, b"hello "));
        t.finish(&mut c, ts);
        assert_eq!(c.streams[&(1, 0)], b"hello world");
        assert_eq!(t.stats().duplicate_bytes, 6);
        assert_eq!(c.gaps, 0);
    }

    #[test]
    fn sequence_wraps() {
        let mut t = FlowTable::new(Limits::default());
        let mut c = Collect::default();
        let ts = Timestamp(0);
        t.tcp(
            &mut c,
            ts,
            ip(1),
            ip(2),
            &seg(u32::MAX - 2, flags::SYN, b""),
        );
        t.tcp(
            &mut c,
            ts,
            ip(1),
            ip(2),
            &seg(u32::MAX - 1, flags::ACK, b"abcd"),
        );
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(2, flags::ACK, b"ef"));
        t.finish(&mut c, ts);
        assert_eq!(c.streams[&(1, 0)], b"abcdef");
    }

    #[test]
    fn acked_hole_is_a_gap() {
        let mut t = FlowTable::new(Limits::default());
        let mut c = Collect::default();
        let ts = Timestamp(0);
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(0, flags::SYN, b""));
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(1, flags::ACK, b"aaaa"));
        t.tcp(&mut c, ts, ip(1), ip(2), &seg(9, flags::ACK, b"cccc"));
        let mut back = seg(500, flags::ACK, b"");
        back.src_port = 80;
        back.dst_port = 40000;
        back.ack = 13;
        t.tcp(&mut c, ts, ip(2), ip(1), &back);
        assert_eq!(c.gaps, 4);
        assert_eq!(c.streams[&(1, 0)], b"aaaacccc");
    }

    #[test]
    fn reset_closes_and_stray_ack_is_orphan() {
        let mut t: FlowTable<()> = FlowTable::new(Limits::default());
        let mut c = Collect::default();
        t.tcp(&mut c, Timestamp(0), ip(1), ip(2), &seg(0, flags::SYN, b""));
        t.tcp(&mut c, Timestamp(1), ip(1), ip(2), &seg(1, flags::RST, b""));
        assert_eq!(c.closed, vec![(1, CloseReason::Reset)]);
        // The reset connection's own straggler is expected, not an orphan...
        t.tcp(&mut c, Timestamp(2), ip(1), ip(2), &seg(1, flags::ACK, b""));
        assert_eq!(t.stats().orphan_packets, 0);
        // ...an ACK of a connection never seen is...
        t.tcp(&mut c, Timestamp(3), ip(1), ip(3), &seg(1, flags::ACK, b""));
        assert_eq!(t.stats().orphan_packets, 1);
        // ...and so is the closed one's, long after it closed.
        let late = Timestamp(1 + RecentlyClosed::LINGER_NS + 1);
        t.tcp(&mut c, late, ip(1), ip(2), &seg(1, flags::ACK, b""));
        assert_eq!(t.stats().orphan_packets, 2);
        assert!(t.is_empty());
    }

    #[test]
    fn a_clean_close_leaves_no_orphans() {
        let mut t: FlowTable<()> = FlowTable::new(Limits::default());
        let mut c = Collect::default();
        let back = |seq, fl, ack| {
            let mut s = seg(seq, fl, b"");
            s.src_port = 80;
            s.dst_port = 40000;
            s.ack = ack;
            s
        };
        t.tcp(&mut c, Timestamp(0), ip(1), ip(2), &seg(0, flags::SYN, b""));
        t.tcp(
            &mut c,
            Timestamp(1),
            ip(2),
            ip(1),
            &back(100, flags::SYN | flags::ACK, 1),
        );
        t.tcp(
            &mut c,
            Timestamp(2),
            ip(1),
            ip(2),
            &seg(1, flags::ACK, b"GET"),
        );
        t.tcp(
            &mut c,
            Timestamp(3),
            ip(1),
            ip(2),
            &seg(4, flags::FIN | flags::ACK, b""),
        );
        t.tcp(
            &mut c,
            Timestamp(4),
            ip(2),
            ip(1),
            &back(101, flags::FIN | flags::ACK, 5),
        );
        assert_eq!(c.closed, vec![(1, CloseReason::Fin)]);
        // The last ACK of the handshake that closes the connection.
        t.tcp(&mut c, Timestamp(5), ip(1), ip(2), &seg(5, flags::ACK, b""));
        assert_eq!(t.stats().orphan_packets, 0);
        // A new connection on the same ports still opens.
        t.tcp(
            &mut c,
            Timestamp(6),
            ip(1),
            ip(2),
            &seg(900, flags::SYN, b""),
        );
        assert_eq!(t.len(), 1);
    }
}
