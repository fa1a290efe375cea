//! Hostile sizes stay bounded and are counted: HTTP/2 header blocks and DATA frames, HTTP/1
//! resynchronisation, messages over the buffering cap, DNS replies with many records.

mod common;

use common::{converse, converse_steps, h2_frame, hpack_literals, Step};
use wiremap_dissect::DissectConfig;
use wiremap_model::{Detail, Direction, DropReason};

use Direction::{AtoB as C, BtoA as S};

fn flow(port: u16) -> wiremap_reassembly::FlowInfo {
    common::tcp_flow(port)
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

fn event(stats: &wiremap_dissect::DissectStats, reason: DropReason) -> u64 {
    stats.events.get(reason)
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
        event(&stats, DropReason::Http2HeaderBlockTooLarge),
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
    assert_eq!(
        event(&stats, DropReason::Http2HeaderListTruncated),
        1,
        "{stats:?}"
    );
    assert_eq!(event(&stats, DropReason::Http2HpackError), 1, "{stats:?}");
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
    assert_eq!(event(&stats, DropReason::Http2DataSkipped), 1, "{stats:?}");
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

/// Runs `f` on a thread with a 256 KiB stack, as a small worker would have.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("thread starts")
        .join()
        .expect("no overflow, no panic")
}

fn http_after_garbage(garbage: Vec<u8>, chunk: usize) -> (Vec<(i64, bool)>, u64, u64) {
    let mut conv = vec![(C, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n".to_vec())];
    for c in garbage.chunks(chunk) {
        conv.push((S, c.to_vec()));
    }
    conv.push((C, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec()));
    conv.push((
        S,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    ));
    let (es, stats) = converse(DissectConfig::default(), 80, &conv);
    let lost: u64 = [
        DropReason::HttpMalformed,
        DropReason::HttpChunkDesync,
        DropReason::HttpDesync,
        DropReason::HttpHeadTooLarge,
    ]
    .iter()
    .map(|n| event(&stats, *n))
    .sum();
    let got = es.iter().map(|e| (e.status_code, e.has_response)).collect();
    (got, lost, event(&stats, DropReason::HttpResync))
}

#[test]
fn http1_resync_is_iterative_and_linear() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Malformed status lines, each a whole head.
        ("bad status", b"HTTP/1.1 200x OK\r\n\r\n".repeat(1 << 16)),
        // Heads of 4,000 status-line look-alikes each: every line a candidate start.
        ("long heads", {
            let mut head = b"HTTP/1.1 200x\r\n".repeat(4000);
            head.extend_from_slice(b"\r\n");
            head.repeat(20)
        }),
        // Status-line look-alikes with no blank line: a head that never ends.
        ("endless head", b"HTTP/1.1 200x\r\n".repeat(70_000)),
        // A chunked body whose chunk sizes are garbage, with look-alikes between.
        ("bad chunks", {
            let mut g = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            g.extend(b"zz\r\nHTTP/1.1 200x\r\n\r\n".repeat(50_000));
            g
        }),
    ];
    for (name, garbage) in cases {
        assert!(garbage.len() >= 1 << 20, "{name}: {}", garbage.len());
        for chunk in [garbage.len(), 210_000, 1460] {
            let g = garbage.clone();
            let t = std::time::Instant::now();
            let (got, lost, _) = on_small_stack(move || http_after_garbage(g, chunk));
            let took = t.elapsed();
            assert!(lost > 0, "{name}/{chunk}: nothing counted");
            assert!(
                got.contains(&(200, true)),
                "{name}/{chunk}: the exchange after the garbage is lost: {got:?}"
            );
            // Linear: a megabyte is milliseconds even unoptimised; quadratic was minutes.
            assert!(took.as_secs() < 20, "{name}/{chunk}: {took:?}");
        }
    }
}

#[test]
fn http1_heads_are_capped_and_unfinished_ones_counted() {
    let mut head = b"GET /slow HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..600 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(90)).as_bytes());
    }
    assert!(head.len() > 60 * 1024 && head.len() < 64 * 1024);
    // Unfinished at the end of the flow: counted, not silent.
    let (es, stats) = converse(DissectConfig::default(), 80, &chunked(C, &head, 1460));
    assert_eq!(
        event(&stats, DropReason::HttpHeadUnfinished),
        1,
        "{stats:?}"
    );
    assert!(es.is_empty());
    // Past 64 KiB: dropped and counted, and the next request is read.
    let mut long = head.clone();
    long.extend(head[30..].iter().copied());
    long.extend_from_slice(b"\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut conv = chunked(C, &long, 1460);
    conv.push((S, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()));
    let (es, stats) = converse(DissectConfig::default(), 80, &conv);
    assert_eq!(event(&stats, DropReason::HttpHeadTooLarge), 1, "{stats:?}");
    let got: Vec<(String, i64)> = es
        .iter()
        .filter_map(|e| match &e.detail {
            Detail::Http(h) => Some((h.path.clone(), e.status_code)),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("/next".to_string(), 204)]);
}

fn app_field<'e>(e: &'e wiremap_model::Entry, name: &str) -> Option<&'e wiremap_model::AppVal> {
    match &e.detail {
        Detail::App(a) => a.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn chunked(dir: Direction, bytes: &[u8], size: usize) -> Vec<(Direction, Vec<u8>)> {
    bytes.chunks(size).map(|c| (dir, c.to_vec())).collect()
}

fn kafka_request(key: i16, corr: i32, body_len: usize) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&key.to_be_bytes());
    m.extend_from_slice(&9i16.to_be_bytes());
    m.extend_from_slice(&corr.to_be_bytes());
    m.extend_from_slice(&3i16.to_be_bytes());
    m.extend_from_slice(b"cli");
    m.extend(std::iter::repeat_n(0u8, body_len));
    let mut f = (m.len() as i32).to_be_bytes().to_vec();
    f.extend(m);
    f
}

fn kafka_response(corr: i32) -> Vec<u8> {
    let mut f = 8i32.to_be_bytes().to_vec();
    f.extend_from_slice(&corr.to_be_bytes());
    f.extend_from_slice(&[0; 4]);
    f
}

#[test]
fn kafka_message_over_the_buffer_cap_is_skipped_and_the_flow_goes_on() {
    let big = kafka_request(0, 1, 20 << 20);
    let mut conv = chunked(C, &big, 65_536);
    conv.push((S, kafka_response(1)));
    conv.push((C, kafka_request(3, 2, 10)));
    conv.push((S, kafka_response(2)));
    let (es, stats) = converse(DissectConfig::default(), 9092, &conv);
    assert_eq!(
        event(&stats, DropReason::KafkaMessageSkipped),
        1,
        "{stats:?}"
    );
    assert_eq!(event(&stats, DropReason::KafkaDesync), 0, "{stats:?}");
    let names: Vec<String> = es
        .iter()
        .filter_map(|e| match app_field(e, "kafka_api_key_name") {
            Some(wiremap_model::AppVal::Str(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Produce", "Metadata"], "{es:?}");
    assert_eq!(es[0].request_size, big.len() as u64);
    assert!(es.iter().all(|e| e.has_response));

    // Bytes lost inside the skipped body cost nothing: the framing resumes after it.
    let steps = [
        Step::Data(C, big[..100_000].to_vec()),
        Step::Gap(C, 5_000_000),
        Step::Data(C, big[5_100_000..].to_vec()),
        Step::Data(S, kafka_response(1)),
        Step::Data(C, kafka_request(3, 2, 10)),
        Step::Data(S, kafka_response(2)),
    ];
    let (es, stats) = converse_steps(DissectConfig::default(), flow(9092), &steps);
    assert_eq!(event(&stats, DropReason::KafkaGapDesync), 0, "{stats:?}");
    assert_eq!(es.len(), 2, "{es:?}");
    assert!(es.iter().all(|e| e.has_response));
}

fn pg_msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn postgres_query_over_the_buffer_cap_is_skipped_and_the_flow_goes_on() {
    let mut text = b"INSERT INTO blobs VALUES ('".to_vec();
    text.extend(std::iter::repeat_n(b'x', 20 << 20));
    text.extend_from_slice(b"')\0");
    let big = pg_msg(b'Q', &text);
    let mut done = pg_msg(b'C', b"INSERT 0 1\0");
    done.extend(pg_msg(b'Z', b"I"));
    let params = b"user\0app\0\0";
    let mut startup = (8 + params.len() as i32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(params);
    let mut ready = pg_msg(b'R', &0i32.to_be_bytes());
    ready.extend(pg_msg(b'Z', b"I"));
    let mut conv = vec![(C, startup), (S, ready)];
    conv.extend(chunked(C, &big, 1460 * 40));
    conv.push((S, done.clone()));
    conv.push((C, pg_msg(b'Q', b"SELECT 1\0")));
    conv.push((S, done));
    let (es, stats) = converse(DissectConfig::default(), 5432, &conv);
    assert_eq!(
        event(&stats, DropReason::PostgresqlMessageSkipped),
        1,
        "{stats:?}"
    );
    let queries: Vec<String> = es
        .iter()
        .filter_map(|e| match app_field(e, "postgresql_query") {
            Some(wiremap_model::AppVal::Str(s)) => Some(s.chars().take(26).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(
        queries,
        ["INSERT INTO blobs VALUES (", "SELECT 1"],
        "{es:?}"
    );
    assert_eq!(es[0].request_size, big.len() as u64);
    assert!(es.iter().all(|e| e.has_response));
}

#[test]
fn dns_reply_with_thousands_of_records_keeps_its_entry() {
    let tcp = |m: &[u8]| {
        let mut f = (m.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    };
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03big\x07example\x00\x00\x01\x00\x01");
    let mut r = q.clone();
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..8].copy_from_slice(&3000u16.to_be_bytes());
    for i in 0..3000u32 {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
    }
    let (es, stats) = converse(DissectConfig::default(), 53, &[(C, tcp(&q)), (S, tcp(&r))]);
    assert_eq!(
        event(&stats, DropReason::DnsAnswersTruncated),
        1,
        "{stats:?}"
    );
    assert_eq!(es.len(), 1);
    let Detail::Dns(d) = &es[0].detail else {
        panic!("dns detail: {es:?}")
    };
    assert_eq!(d.answers.len(), wiremap_dissect::dns::MAX_ANSWERS);
    assert_eq!(d.answers[0], "10.0.0.0");
    assert!(es[0].has_response);
}

#[test]
fn redis_large_values_are_skipped_by_length() {
    let mut set = b"*3\r\n$3\r\nSET\r\n$4\r\nblob\r\n$20971520\r\n".to_vec();
    set.extend(std::iter::repeat_n(b'v', 20 << 20));
    set.extend_from_slice(b"\r\n");
    let mut get_reply = b"$20971520\r\n".to_vec();
    get_reply.extend(std::iter::repeat_n(b'v', 20 << 20));
    get_reply.extend_from_slice(b"\r\n");
    let mut conv = chunked(C, &set, 65_536);
    conv.push((S, b"+OK\r\n".to_vec()));
    conv.push((C, b"*2\r\n$3\r\nGET\r\n$4\r\nblob\r\n".to_vec()));
    conv.extend(chunked(S, &get_reply, 65_536));
    conv.push((C, b"*1\r\n$4\r\nPING\r\n".to_vec()));
    conv.push((S, b"+PONG\r\n".to_vec()));
    let (es, stats) = converse(DissectConfig::default(), 6379, &conv);
    assert_eq!(
        event(&stats, DropReason::RedisMessageSkipped),
        2,
        "{stats:?}"
    );
    assert_eq!(event(&stats, DropReason::RedisDesync), 0, "{stats:?}");
    let verbs: Vec<String> = es
        .iter()
        .filter_map(|e| match app_field(e, "redis_type") {
            Some(wiremap_model::AppVal::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(verbs, ["SET", "GET", "PING"], "{es:?}");
    assert_eq!(es[0].request_size, set.len() as u64);
    assert_eq!(es[1].response_size, get_reply.len() as u64);
}

#[test]
fn what_sessions_hold_is_known_to_the_flow_table() {
    use wiremap_model::Timestamp;
    use wiremap_reassembly::{CloseReason, StreamHandler};
    let mut d = wiremap_dissect::Dissect::new(DissectConfig::default());
    let info = flow(8080);
    let mut sessions: Vec<_> = (0..10).map(|_| d.open(&info)).collect();
    // Ten unfinished 30 KiB HTTP heads: held until a blank line that never comes.
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    while head.len() < 30 << 10 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    for s in &mut sessions {
        for chunk in head.chunks(1400) {
            d.data(s, &info, C, Timestamp(1), chunk);
        }
    }
    let held = d.held();
    assert!(held >= 10 * (30 << 10), "{held}");
    for s in sessions {
        d.close(s, &info, Timestamp(2), CloseReason::End);
    }
    assert_eq!(d.held(), 0);
}
