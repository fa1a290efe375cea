//! IPv4, IPv6, TCP, UDP and the tunnels that carry them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wiremap_model::Timestamp;

use crate::frag::{Key, Reassembler};
use crate::{link, DecodeError, Segment, TcpSegment, Transport, MAX_DEPTH};

fn be16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

fn be32(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

/// Decodes an IP packet (v4 or v6, by its version nibble).
pub(crate) fn decode_ip<'a>(
    frags: &'a mut Reassembler,
    ts: Timestamp,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    decode_ip_opt(Some(frags), ts, d, depth)
}

fn decode_ip_opt<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    match d.first().map(|b| b >> 4) {
        Some(4) => ipv4(frags, ts, d, depth),
        Some(6) => ipv6(frags, ts, d, depth),
        Some(_) => Err(DecodeError::Malformed("ip")),
        None => Err(DecodeError::Truncated("ip")),
    }
}

fn ipv4<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    if d.len() < 20 {
        return Err(DecodeError::Truncated("ipv4"));
    }
    let ihl = usize::from(d[0] & 0x0f) * 4;
    let total = usize::from(be16(d, 2));
    if ihl < 20 || d.len() < ihl {
        return Err(DecodeError::Malformed("ipv4"));
    }
    // A total length of 0 is seen with TSO/GSO offload on the capturing host: take the frame.
    let end = if total == 0 {
        d.len()
    } else {
        total.min(d.len())
    };
    if end < ihl {
        return Err(DecodeError::Malformed("ipv4"));
    }
    let src = IpAddr::V4(Ipv4Addr::new(d[12], d[13], d[14], d[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(d[16], d[17], d[18], d[19]));
    let proto = d[9];
    let frag = be16(d, 6);
    let more = frag & 0x2000 != 0;
    let offset = usize::from(frag & 0x1fff) * 8;
    let payload = &d[ihl..end];
    if more || offset > 0 {
        let Some(r) = frags else {
            return Ok(None);
        };
        let key = Key {
            src,
            dst,
            id: u32::from(be16(d, 4)),
            proto,
        };
        return match r.add(ts, key, offset, more, payload) {
            Some(whole) => transport(None, ts, src, dst, proto, whole, depth),
            None => Ok(None),
        };
    }
    transport(frags, ts, src, dst, proto, payload, depth)
}

fn ipv6<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    if d.len() < 40 {
        return Err(DecodeError::Truncated("ipv6"));
    }
    let plen = usize::from(be16(d, 4));
    let end = if plen == 0 {
        d.len()
    } else {
        (40 + plen).min(d.len())
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(a));
    a.copy_from_slice(&d[24..40]);
    let dst = IpAddr::V6(Ipv6Addr::from(a));
    let mut next = d[6];
    let mut i = 40;
    loop {
        match next {
            0 | 43 | 60 | 51 => {
                if i + 2 > end {
                    return Err(DecodeError::Truncated("ipv6_ext"));
                }
                let len = if next == 51 {
                    (usize::from(d[i + 1]) + 2) * 4
                } else {
                    (usize::from(d[i + 1]) + 1) * 8
                };
                next = d[i];
                i += len;
                if i > end {
                    return Err(DecodeError::Truncated("ipv6_ext"));
                }
            }
            44 => {
                if i + 8 > end {
                    return Err(DecodeError::Truncated("ipv6_frag"));
                }
                let proto = d[i];
                let fo = be16(d, i + 2);
                let offset = usize::from(fo & 0xfff8);
                let more = fo & 1 != 0;
                let id = be32(d, i + 4);
                let payload = &d[i + 8..end];
                if !more && offset == 0 {
                    // An atomic fragment: the whole datagram.
                    return transport(frags, ts, src, dst, proto, payload, depth);
                }
                let Some(r) = frags else {
                    return Ok(None);
                };
                let key = Key {
                    src,
                    dst,
                    id,
                    proto,
                };
                return match r.add(ts, key, offset, more, payload) {
                    Some(whole) => transport(None, ts, src, dst, proto, whole, depth),
                    None => Ok(None),
                };
            }
            _ => return transport(frags, ts, src, dst, next, &d[i..end], depth),
        }
    }
}

const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const GENEVE_PORT: u16 = 6081;

fn transport<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    let seg = |t: Transport<'a>| {
        Ok(Some(Segment {
            src,
            dst,
            transport: t,
            tunnels: depth,
        }))
    };
    match proto {
        6 => {
            if d.len() < 20 {
                return Err(DecodeError::Truncated("tcp"));
            }
            let off = usize::from(d[12] >> 4) * 4;
            if off < 20 || off > d.len() {
                return Err(DecodeError::Malformed("tcp"));
            }
            seg(Transport::Tcp(TcpSegment {
                src_port: be16(d, 0),
                dst_port: be16(d, 2),
                seq: be32(d, 4),
                ack: be32(d, 8),
                flags: d[13],
                payload: &d[off..],
            }))
        }
        17 => {
            if d.len() < 8 {
                return Err(DecodeError::Truncated("udp"));
            }
            let sp = be16(d, 0);
            let dp = be16(d, 2);
            let ulen = usize::from(be16(d, 4));
            let end = if ulen < 8 { d.len() } else { ulen.min(d.len()) };
            let payload = &d[8..end];
            if VXLAN_PORTS.contains(&dp) && payload.len() >= 8 && payload[0] & 0x08 != 0 {
                if let Some(inner) = link::ethernet(&payload[8..])? {
                    return decode_ip_opt(frags, ts, inner, depth + 1);
                }
                return Ok(None);
            }
            if dp == GENEVE_PORT && payload.len() >= 8 && payload[0] >> 6 == 0 {
                let hlen = 8 + usize::from(payload[0] & 0x3f) * 4;
                let ptype = be16(payload, 2);
                if payload.len() < hlen {
                    return Err(DecodeError::Truncated("geneve"));
                }
                return inner_by_type(frags, ts, ptype, &payload[hlen..], depth);
            }
            seg(Transport::Udp {
                src_port: sp,
                dst_port: dp,
                payload,
            })
        }
        4 | 41 => decode_ip_opt(frags, ts, d, depth + 1),
        47 => gre(frags, ts, d, depth),
        other => seg(Transport::Other(other)),
    }
}

fn inner_by_type<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    ptype: u16,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    match ptype {
        0x6558 => match link::ethernet(d)? {
            Some(inner) => decode_ip_opt(frags, ts, inner, depth + 1),
            None => Ok(None),
        },
        0x0800 | 0x86dd => decode_ip_opt(frags, ts, d, depth + 1),
        _ => Ok(None),
    }
}

fn gre<'a>(
    frags: Option<&'a mut Reassembler>,
    ts: Timestamp,
    d: &'a [u8],
    depth: u8,
) -> Result<Option<Segment<'a>>, DecodeError> {
    if d.len() < 4 {
        return Err(DecodeError::Truncated("gre"));
    }
    let fl = be16(d, 0);
    if fl & 0x0007 != 0 || fl & 0x4000 != 0 {
        // Enhanced GRE (PPTP) or source routing: not a tunnel of a cluster network.
        return Ok(None);
    }
    let ptype = be16(d, 2);
    let mut i = 4;
    let seq_present = fl & 0x1000 != 0;
    for bit in [0x8000u16, 0x2000, 0x1000] {
        if fl & bit != 0 {
            i += 4;
        }
    }
    if d.len() < i {
        return Err(DecodeError::Truncated("gre"));
    }
    match ptype {
        0x88be => {
            // ERSPAN type II (8-byte header) or type I (no header, no sequence number).
            let h = if seq_present { 8 } else { 0 };
            let rest = d.get(i + h..).ok_or(DecodeError::Truncated("erspan"))?;
            inner_by_type(frags, ts, 0x6558, rest, depth)
        }
        0x22eb => {
            let hdr = d.get(i..i + 12).ok_or(DecodeError::Truncated("erspan"))?;
            let h = if hdr[11] & 0x01 != 0 { 20 } else { 12 };
            let rest = d.get(i + h..).ok_or(DecodeError::Truncated("erspan"))?;
            inner_by_type(frags, ts, 0x6558, rest, depth)
        }
        _ => inner_by_type(frags, ts, ptype, &d[i..], depth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let tcp = [
            0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ];
        p.extend_from_slice(&tcp);
        p.extend_from_slice(payload);
        let n = p.len() as u16;
        p[2..4].copy_from_slice(&n.to_be_bytes());
        p
    }

    #[test]
    fn tcp_over_ipv4() {
        let pkt = ipv4_tcp(b"GET /");
        let mut r = Reassembler::default();
        let s = decode_ip(&mut r, Timestamp(0), &pkt, 0).ok().flatten();
        match s.map(|s| s.transport) {
            Some(Transport::Tcp(t)) => {
                assert_eq!((t.src_port, t.dst_port), (1234, 80));
                assert_eq!(t.payload, b"GET /");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_is_handled_without_panic() {
        let pkt = ipv4_tcp(b"GET / HTTP/1.1\r\n");
        for n in 0..pkt.len() {
            let mut r = Reassembler::default();
            let _ = decode_ip(&mut r, Timestamp(0), &pkt[..n], 0);
        }
    }

    #[test]
    fn fragments_are_reassembled_in_any_order() {
        let whole = ipv4_tcp(b"0123456789abcdef0123456789abcdef");
        let body = &whole[20..];
        let mk = |off: usize, more: bool, part: &[u8]| {
            let mut p = whole[..20].to_vec();
            let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
            p[6..8].copy_from_slice(&fo.to_be_bytes());
            p.extend_from_slice(part);
            let n = p.len() as u16;
            p[2..4].copy_from_slice(&n.to_be_bytes());
            p
        };
        let a = mk(0, true, &body[..24]);
        let b = mk(24, false, &body[24..]);
        let mut r = Reassembler::default();
        assert!(decode_ip(&mut r, Timestamp(0), &b, 0)
            .ok()
            .flatten()
            .is_none());
        let s = decode_ip(&mut r, Timestamp(1), &a, 0).ok().flatten();
        match s.map(|s| s.transport) {
            Some(Transport::Tcp(t)) => assert_eq!(t.payload, b"0123456789abcdef0123456789abcdef"),
            other => panic!("{other:?}"),
        }
    }
}
