//! Whatever order, duplication or overlap the segments arrive in, the stream comes out whole.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use wiremap_decode::{flags, TcpSegment};
use wiremap_model::{Direction, Timestamp};
use wiremap_reassembly::{CloseReason, FlowInfo, FlowTable, Limits, StreamHandler};

#[derive(Default)]
struct Collect {
    out: Vec<u8>,
    gaps: u64,
}

impl StreamHandler for Collect {
    type Session = ();
    fn open(&mut self, _: &FlowInfo) {}
    fn data(&mut self, _: &mut (), _: &FlowInfo, d: Direction, _: Timestamp, data: &[u8]) {
        assert_eq!(d, Direction::AtoB);
        self.out.extend_from_slice(data);
    }
    fn gap(&mut self, _: &mut (), _: &FlowInfo, _: Direction, _: Timestamp, len: u64) {
        self.gaps += len;
    }
    fn close(&mut self, _: (), _: &FlowInfo, _: Timestamp, _: CloseReason) {}
}

fn feed(isn: u32, stream: &[u8], pieces: &[(usize, usize)]) -> Collect {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut t = FlowTable::new(Limits::default());
    let mut c = Collect::default();
    let syn = TcpSegment {
        src_port: 1,
        dst_port: 2,
        seq: isn,
        ack: 0,
        flags: flags::SYN,
        payload: b"",
    };
    t.tcp(&mut c, Timestamp(0), a, b, &syn);
    for (i, &(s, e)) in pieces.iter().enumerate() {
        let seg = TcpSegment {
            src_port: 1,
            dst_port: 2,
            seq: isn.wrapping_add(1).wrapping_add(s as u32),
            ack: 0,
            flags: flags::ACK,
            payload: &stream[s..e],
        };
        t.tcp(&mut c, Timestamp(i as i64 + 1), a, b, &seg);
    }
    t.finish(&mut c, Timestamp(1_000_000));
    c
}

proptest! {
    #[test]
    fn shuffled_duplicated_overlapping_segments_rebuild_the_stream(
        stream in proptest::collection::vec(any::<u8>(), 1..2000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        extra in proptest::collection::vec((any::<prop::sample::Index>(), 1usize..200), 0..20),
        order in any::<prop::sample::Index>(),
        isn in any::<u32>(),
    ) {
        let n = stream.len();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(n + 1)).collect();
        points.push(0);
        points.push(n);
        points.sort_unstable();
        points.dedup();
        let mut pieces: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
        // Overlapping and duplicated segments anywhere in the stream.
        for (at, len) in &extra {
            let s = at.index(n);
            pieces.push((s, (s + len).min(n)));
        }
        // A deterministic shuffle chosen by the generator.
        let k = pieces.len();
        let rot = order.index(k.max(1));
        pieces.rotate_left(rot);
        for i in (1..k).step_by(2) {
            pieces.swap(i - 1, i);
        }
        let c = feed(isn, &stream, &pieces);
        prop_assert_eq!(c.gaps, 0);
        prop_assert_eq!(c.out, stream);
    }

    #[test]
    fn a_missing_segment_is_one_gap_of_its_size(
        stream in proptest::collection::vec(any::<u8>(), 10..500),
        hole in any::<prop::sample::Index>(),
    ) {
        let n = stream.len();
        let s = hole.index(n - 5);
        let pieces = vec![(0, s), (s + 5, n)];
        let c = feed(7, &stream, &pieces);
        prop_assert_eq!(c.gaps, 5);
        let mut want = stream[..s].to_vec();
        want.extend_from_slice(&stream[s + 5..]);
        prop_assert_eq!(c.out, want);
    }
}
