//! Feeds fuzz input to the dissectors as a two-way conversation.

use std::net::{IpAddr, Ipv4Addr};

use wiremap_dissect::{Dissect, DissectConfig};
use wiremap_model::{Direction, FlowKey, Timestamp, Transport};
use wiremap_reassembly::{CloseReason, FlowInfo, StreamHandler};

/// Input layout: records of `[header][bytes…]`; the header's top bit is the direction, the
/// low 7 bits the record length (0 means a gap of 1–8 bytes instead of data).
pub fn converse(transport: Transport, data: &[u8]) {
    let info = FlowInfo::new(
        1,
        FlowKey {
            transport,
            a_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            a_port: 40000,
            b_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            b_port: 8080,
        },
        true,
        Timestamp(0),
    );
    let mut d = Dissect::new(DissectConfig::default());
    let mut s = d.open(&info);
    let mut rest = data;
    let mut t = 0;
    while let Some((&h, tail)) = rest.split_first() {
        let dir = if h & 0x80 == 0 { Direction::AtoB } else { Direction::BtoA };
        let len = usize::from(h & 0x7f);
        t += 1;
        if len == 0 {
            d.gap(&mut s, &info, dir, Timestamp(t), u64::from(h % 8) + 1);
            rest = tail;
            continue;
        }
        let n = len.min(tail.len());
        d.data(&mut s, &info, dir, Timestamp(t), &tail[..n]);
        rest = &tail[n..];
    }
    d.close(s, &info, Timestamp(t + 1), CloseReason::Fin);
}
