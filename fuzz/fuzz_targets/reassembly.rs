//! Arbitrary TCP segments (flags, sequence numbers, payloads) into the flow table.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use wiremap_decode::TcpSegment;
use wiremap_dissect::{Dissect, DissectConfig};
use wiremap_model::Timestamp;
use wiremap_reassembly::{FlowTable, Limits};

fuzz_target!(|data: &[u8]| {
    let mut table = FlowTable::new(Limits { max_flows: 4, max_buffered: 4096, ..Limits::default() });
    let mut d = Dissect::new(DissectConfig::default());
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut rest = data;
    let mut t = 0i64;
    // Record: flags, seq (4), ack (4), len, payload.
    while rest.len() >= 11 {
        let flags = rest[0];
        let seq = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let ack = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        let port = u16::from(rest[9] & 3);
        let len = usize::from(rest[10]).min(rest.len() - 11);
        let payload = &rest[11..11 + len];
        rest = &rest[11 + len..];
        t += 1_000_000;
        let (src, dst, sp, dp) = if flags & 0x80 == 0 { (a, b, 40000 + port, 80) } else { (b, a, 80, 40000 + port) };
        let seg = TcpSegment { src_port: sp, dst_port: dp, seq, ack, flags: flags & 0x3f, payload };
        table.tcp(&mut d, Timestamp(t), src, dst, &seg);
    }
    table.finish(&mut d, Timestamp(t + 1));
});
