//! HTTP/2 header lists kept per stream: bounded across HEADERS frames, counted as held
//! memory, and redacted whatever the case of their names.

mod common;

use common::h2_frame;
use wiremap_model::{Direction, Timestamp};
use wiremap_reassembly::StreamHandler;

fn flow(port: u16) -> wiremap_reassembly::FlowInfo {
    common::tcp_flow(port)
}

/// HPACK integer with an `n`-bit prefix, first byte or-ed with `first`.
fn int(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn lit(out: &mut Vec<u8>, prefix: u8, name: &str, value: &[u8]) {
    out.push(prefix);
    int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

#[test]
fn http2_decoded_headers_are_bounded_and_counted() {
    let mut d = wiremap_dissect::Dissect::new(wiremap_dissect::DissectConfig::default());
    let info = flow(8080);
    let mut s = d.open(&info);
    let mut first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    first.extend(h2_frame(4, 0, 0, &[]));
    // Table size 1 MiB, a request, and one 60 KB header added to the dynamic table.
    let mut block = Vec::new();
    int(&mut block, 0x20, 5, 1 << 20);
    lit(&mut block, 0x00, ":method", b"GET");
    lit(&mut block, 0x00, ":path", b"/");
    lit(&mut block, 0x40, "x-big", &vec![b'v'; 60_000]);
    first.extend(h2_frame(1, 0x04, 1, &block));
    d.data(&mut s, &info, Direction::AtoB, Timestamp(1), &first);
    // Then HEADERS frames on the same open stream (END_HEADERS, no END_STREAM), each four
    // one-byte references to that entry: 13 bytes on the wire, 240 KB decoded and kept.
    let refs = h2_frame(1, 0x04, 1, &[0xbe; 4]);
    for i in 0..200 {
        d.data(&mut s, &info, Direction::AtoB, Timestamp(2 + i), &refs);
    }
    // Thirteen bytes on the wire expand to 240 KB each: what is kept stays under the
    // connection's caps, is known to the memory budget, and the rest is counted.
    let held = d.held();
    assert!(
        held >= 256 << 10,
        "kept headers are counted as held: {held}"
    );
    assert!(held <= 4 << 20, "kept headers are bounded: {held}");
    let truncated = d
        .stats()
        .events
        .get(wiremap_model::DropReason::Http2HeaderListTruncated);
    assert!(truncated >= 190, "{truncated}");
    d.close(
        s,
        &info,
        Timestamp(300),
        wiremap_reassembly::CloseReason::End,
    );
    assert_eq!(d.held(), 0);
}

/// A peer that sends `Authorization` (an uppercase literal name, which HTTP/2 forbids) does
/// not get its secret past the lowercase redaction lists.
#[test]
fn http2_uppercase_secret_header_names_are_redacted() {
    let mut d = wiremap_dissect::Dissect::new(wiremap_dissect::DissectConfig::default());
    let info = flow(8080);
    let mut s = d.open(&info);
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    c.extend(h2_frame(4, 0, 0, &[]));
    let mut block = Vec::new();
    lit(&mut block, 0x00, ":method", b"GET");
    lit(&mut block, 0x00, ":scheme", b"http");
    lit(&mut block, 0x00, ":path", b"/");
    lit(&mut block, 0x00, ":authority", b"svc");
    lit(&mut block, 0x00, "Authorization", b"Bearer s3cr3t-token");
    lit(&mut block, 0x00, "X-Api-Key", b"s3cr3t-key");
    c.extend(h2_frame(1, 0x05, 1, &block));
    d.data(&mut s, &info, Direction::AtoB, Timestamp(1), &c);
    let mut resp = h2_frame(4, 0, 0, &[]);
    let mut rb = Vec::new();
    lit(&mut rb, 0x00, ":status", b"200");
    resp.extend(h2_frame(1, 0x05, 1, &rb));
    d.data(&mut s, &info, Direction::BtoA, Timestamp(2), &resp);
    d.close(s, &info, Timestamp(3), wiremap_reassembly::CloseReason::End);
    let out = format!("{:?}", d.output().entries);
    assert!(out.contains("/"), "an entry was made: {out}");
    assert!(!out.contains("s3cr3t"), "secret stored: {out}");
}
