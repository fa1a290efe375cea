//! Dissector throughput on synthetic but realistic conversations: HTTP/1.1 keep-alive with
//! content-length and chunked bodies, DNS over UDP, and a TLS handshake.

use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wiremap_dissect::{Dissect, DissectConfig};
use wiremap_model::{Direction, FlowKey, Timestamp, Transport};
use wiremap_reassembly::{CloseReason, FlowInfo, StreamHandler};

fn info(transport: Transport) -> FlowInfo {
    FlowInfo::new(
        1,
        FlowKey {
            transport,
            a_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            a_port: 40000,
            b_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            b_port: 80,
        },
        true,
        Timestamp(0),
    )
}

/// Request and response segments of `n` exchanges, cut into 1448-byte segments.
fn http_conversation(n: usize, chunked: bool) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    let body = vec![b'x'; 4000];
    for i in 0..n {
        let req = format!(
            "GET /api/v1/items/{i}?q=abc HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\nCookie: session=secret\r\n\r\n"
        );
        out.push((Direction::AtoB, req.into_bytes()));
        let mut resp = if chunked {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes()
        };
        if chunked {
            for part in body.chunks(1000) {
                resp.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                resp.extend_from_slice(part);
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"0\r\n\r\n");
        } else {
            resp.extend_from_slice(&body);
        }
        for seg in resp.chunks(1448) {
            out.push((Direction::BtoA, seg.to_vec()));
        }
    }
    out
}

fn feed(transport: Transport, conv: &[(Direction, Vec<u8>)], keep_headers: bool) -> usize {
    let cfg = DissectConfig {
        lean: !keep_headers,
        ..DissectConfig::default()
    };
    let mut d = Dissect::new(cfg);
    let i = info(transport);
    let mut s = d.open(&i);
    for (k, (dir, bytes)) in conv.iter().enumerate() {
        d.data(&mut s, &i, *dir, Timestamp(k as i64), bytes);
    }
    d.close(s, &i, Timestamp(conv.len() as i64), CloseReason::Fin);
    d.output().entries.len()
}

fn dns_conversation(n: usize) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = (i as u16).to_be_bytes();
        let mut q = vec![id[0], id[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03api\x07example\x03com\x00\x00\x01\x00\x01");
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[
            0xc0,
            12,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
            93,
            184,
            216,
            (i % 250) as u8,
        ]);
        out.push((Direction::AtoB, q));
        out.push((Direction::BtoA, r));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dissect");
    for (name, conv) in [
        ("http_content_length", http_conversation(200, false)),
        ("http_chunked", http_conversation(200, true)),
    ] {
        let bytes: usize = conv.iter().map(|(_, b)| b.len()).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(format!("{name}_map"), |b| {
            b.iter(|| feed(Transport::Tcp, &conv, false))
        });
        g.bench_function(format!("{name}_entries"), |b| {
            b.iter(|| feed(Transport::Tcp, &conv, true))
        });
    }
    let dns = dns_conversation(1000);
    let bytes: usize = dns.iter().map(|(_, b)| b.len()).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("dns_udp", |b| b.iter(|| feed(Transport::Udp, &dns, true)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
