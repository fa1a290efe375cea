//! Hostile sizes stay bounded and are counted: HTTP/2 header blocks and DATA frames, HTTP/1
//! resynchronisation, messages over the buffering cap, DNS replies with many records.

mod common;

use common::converse;
use wiremap_dissect::DissectConfig;
use wiremap_model::{Detail, Direction};

use Direction::{AtoB as C, BtoA as S};

fn h2_frame(ty: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&sid.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(0x00);
        b.push(n.len() as u8);
        b.extend_from_slice(n.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn h2_client_start() -> Vec<u8> {
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    c.extend(h2_frame(4, 0, 0, &[]));
    c
}

fn get(path: &str) -> Vec<u8> {
    hpack_literals(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "svc"),
    ])
}

fn ok_response(sid: u32) -> Vec<u8> {
    h2_frame(1, 0x05, sid, &hpack_literals(&[(":status", "200")]))
}

fn event(stats: &wiremap_dissect::DissectStats, name: &str) -> u64 {
    stats.events.get(name).copied().unwrap_or(0)
}

#[test]
fn http2_continuation_flood_is_capped_and_the_connection_goes_on() {
    let mut client = h2_client_start();
    client.extend(h2_frame(1, 0, 1, &get("/flood")));
    // 400 CONTINUATION frames of 1 KiB of literal fields: 400 KiB, over the 256 KiB cap.
    let filler = hpack_literals(&[("x-fill", &"a".repeat(120))]).repeat(8);
    let mut conv = vec![(C, client)];
    for i in 0..400 {
        let last = i == 399;
        conv.push((C, h2_frame(9, if last { 0x04 } else { 0 }, 1, &filler)));
    }
    conv.push((C, h2_frame(1, 0x05, 3, &get("/after"))));
    conv.push((S, ok_response(3)));
    let (es, stats) = converse(DissectConfig::default(), 8080, &conv);
    assert_eq!(
        event(&stats, "http2_header_block_too_large"),
        1,
        "{stats:?}"
    );
    let paths: Vec<String> = es
        .iter()
        .filter_map(|e| match &e.detail {
            Detail::Http(h) => Some(h.path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(paths, vec!["/after".to_string()], "{es:?}");
}

#[test]
fn hpack_output_is_capped_and_errors_counted() {
    // One 100 KB value added to the dynamic table, then 20,000 one-byte references to it.
    let mut block = vec![0x3f, 0xe1, 0xff, 0x3f];
    block.extend(get("/big"));
    block.extend_from_slice(&[0x40, 1, b'x', 0x7f, 0xa1, 0x8c, 0x06]);
    block.extend(std::iter::repeat_n(b'v', 100_000));
    block.extend(std::iter::repeat_n(0xbe, 20_000));
    let mut client = h2_client_start();
    client.extend(h2_frame(1, 0x05, 1, &block));
    // A malformed block: a string length that never ends.
    client.extend(h2_frame(1, 0x05, 3, &[0x82, 0x00, 0x7f]));
    let (es, stats) = converse(
        DissectConfig::default(),
        8080,
        &[(C, client), (S, ok_response(1))],
    );
    assert_eq!(event(&stats, "http2_header_list_truncated"), 1, "{stats:?}");
    assert_eq!(event(&stats, "http2_hpack_error"), 1, "{stats:?}");
    let kept: usize = es
        .iter()
        .map(|e| match &e.detail {
            Detail::Http(h) => h
                .request_headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum(),
            _ => 0,
        })
        .sum();
    assert!(kept <= 2 * 256 * 1024, "{kept} bytes of headers kept");
    assert!(!es.is_empty());
}

#[test]
fn http2_large_data_frames_are_skipped_by_length() {
    let mut client = h2_client_start();
    client.extend(h2_frame(1, 0x04, 1, &get("/upload")));
    let body = vec![7u8; 4 << 20];
    let frame = h2_frame(0, 0x01, 1, &body);
    let mut conv = vec![(C, client)];
    for chunk in frame.chunks(60_000) {
        conv.push((C, chunk.to_vec()));
    }
    conv.push((C, h2_frame(1, 0x05, 3, &get("/next"))));
    conv.push((S, ok_response(1)));
    conv.push((S, ok_response(3)));
    let (es, stats) = converse(DissectConfig::default(), 8080, &conv);
    assert_eq!(event(&stats, "http2_data_skipped"), 1, "{stats:?}");
    let got: Vec<(String, u64)> = es
        .iter()
        .filter_map(|e| match &e.detail {
            Detail::Http(h) => Some((h.path.clone(), h.request_body_size)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![("/upload".to_string(), 4 << 20), ("/next".to_string(), 0)]
    );
}
