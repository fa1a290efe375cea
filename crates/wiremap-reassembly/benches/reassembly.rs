//! Reassembly throughput: in-order and out-of-order segments through the flow table.

use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wiremap_decode::{flags, TcpSegment};
use wiremap_model::{Direction, Timestamp};
use wiremap_reassembly::{CloseReason, FlowInfo, FlowTable, Limits, StreamHandler};

struct Count(u64);

impl StreamHandler for Count {
    type Session = ();
    fn open(&mut self, _: &FlowInfo) {}
    fn data(&mut self, _: &mut (), _: &FlowInfo, _: Direction, _: Timestamp, d: &[u8]) {
        self.0 += d.len() as u64;
    }
    fn gap(&mut self, _: &mut (), _: &FlowInfo, _: Direction, _: Timestamp, _: u64) {}
    fn close(&mut self, _: (), _: &FlowInfo, _: Timestamp, _: CloseReason) {}
}

const SEG: usize = 1400;
const SEGS: usize = 2000;

fn run(order: &[usize], flows: u16, payload: &[u8]) -> u64 {
    let mut t = FlowTable::new(Limits::default());
    let mut h = Count(0);
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    for f in 0..flows {
        let syn = TcpSegment {
            src_port: 1000 + f,
            dst_port: 80,
            seq: 0,
            ack: 0,
            flags: flags::SYN,
            payload: b"",
        };
        t.tcp(&mut h, Timestamp(0), a, b, &syn);
    }
    for (i, &k) in order.iter().enumerate() {
        let f = (i % flows as usize) as u16;
        let seg = TcpSegment {
            src_port: 1000 + f,
            dst_port: 80,
            seq: 1 + (k * SEG) as u32,
            ack: 1,
            flags: flags::ACK,
            payload,
        };
        t.tcp(&mut h, Timestamp(i as i64), a, b, &seg);
    }
    t.finish(&mut h, Timestamp(SEGS as i64));
    h.0
}

fn bench(c: &mut Criterion) {
    let payload = vec![0x55u8; SEG];
    let in_order: Vec<usize> = (0..SEGS).collect();
    let mut swapped = in_order.clone();
    for p in swapped.chunks_mut(2) {
        p.reverse();
    }
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes((SEG * SEGS) as u64));
    g.bench_function("in_order_1_flow", |b| {
        b.iter(|| run(&in_order, 1, &payload))
    });
    g.bench_function("pairs_swapped_1_flow", |b| {
        b.iter(|| run(&swapped, 1, &payload))
    });
    // 100 interleaved flows, each getting every 100th segment number in order.
    let interleaved: Vec<usize> = (0..SEGS).map(|i| i / 100).collect();
    g.bench_function("in_order_100_flows", |b| {
        b.iter(|| run(&interleaved, 100, &payload))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
