//! Tests of the packets file: round trips, torn tails, damage, pruning.
use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    ts: i64,
    link: LinkType,
    data: Vec<u8>,
    orig: u32,
}

const T0: i64 = 1_700_000_000_000_000_000;

/// `n` packets a millisecond apart, of several link types and sizes.
fn packets(n: usize) -> Vec<Pkt> {
    let links = [
        LinkType::ETHERNET,
        LinkType::RAW,
        LinkType(113),
        LinkType(276),
    ];
    let sizes = [0usize, 1, 3, 60, 1514, 9000, 65_535];
    (0..n)
        .map(|i| {
            let len = sizes[i % sizes.len()];
            Pkt {
                ts: T0 + i as i64 * 1_000_000,
                link: links[i % links.len()],
                // Some repetition for LZ4, not only one byte.
                data: (0..len).map(|k| (k / 7 + i) as u8).collect(),
                orig: len as u32 + (i % 3) as u32,
            }
        })
        .collect()
}

/// A packets file of `pkts`, flushed after every `every` packets.
fn file(pkts: &[Pkt], every: usize) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).expect("writes");
    for (i, p) in pkts.iter().enumerate() {
        w.write(Timestamp(p.ts), p.link, &p.data, p.orig)
            .expect("writes");
        if (i + 1) % every == 0 {
            w.flush().expect("flushes");
        }
    }
    let written = {
        w.flush().expect("flushes");
        w.written()
    };
    let bytes = w.finish().expect("finishes");
    assert_eq!(written, bytes.len() as u64);
    bytes
}

/// Offset and whole length of each frame of an intact file.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let h = Head::parse(&bytes[at..at + HEADER]);
        v.push((at, h.total() as usize));
        at += h.total() as usize;
    }
    v
}

struct Read {
    got: Vec<Pkt>,
    scan: FileScan,
    spans: Vec<Span>,
    work: Work,
}

fn read_in(bytes: &[u8], complete: bool, times: RangeInclusive<Timestamp>) -> Read {
    let mut got = Vec::new();
    let mut spans = Vec::new();
    let (scan, work) = read_frames(
        "test",
        bytes,
        complete,
        &times,
        &mut |ts, link, data, orig| {
            got.push(Pkt {
                ts: ts.0,
                link,
                data: data.to_vec(),
                orig,
            });
            ControlFlow::Continue(())
        },
        &mut |s| spans.push(*s),
    )
    .expect("reads");
    assert_eq!(scan.damaged_bytes, spans.iter().map(|s| s.len).sum::<u64>());
    for s in &spans {
        assert!(s.offset + s.len <= bytes.len() as u64, "{s:?}");
    }
    Read {
        got,
        scan,
        spans,
        work,
    }
}

fn read(bytes: &[u8], complete: bool) -> Read {
    read_in(bytes, complete, ALL_TIME)
}

#[test]
fn packets_read_back_as_written_across_frames() {
    let mut pkts = packets(200);
    // The longest packet a capture keeps, and a longer one that is cut to it.
    pkts[50].data = vec![0xab; SNAPLEN];
    pkts[50].orig = SNAPLEN as u32;
    pkts[120].data = (0..SNAPLEN + 100).map(|k| k as u8).collect();
    pkts[120].orig = 0;
    let bytes = file(&pkts, usize::MAX);
    assert!(frames(&bytes).len() >= 4, "{}", frames(&bytes).len());
    let r = read(&bytes, true);
    let mut want = pkts.clone();
    want[120].data.truncate(SNAPLEN);
    want[120].orig = (SNAPLEN + 100) as u32;
    assert_eq!(r.got, want);
    assert_eq!(
        r.scan,
        FileScan {
            good: bytes.len() as u64,
            ..FileScan::default()
        }
    );
    // Compressed: the packets are repetitive.
    let raw: usize = pkts.iter().map(|p| p.data.len()).sum();
    assert!(bytes.len() < raw / 2, "{} of {raw}", bytes.len());
    // Each frame decompresses to a pcapng section that the capture reader takes.
    let (at, len) = frames(&bytes)[1];
    let h = Head::parse(&bytes[at..]);
    let section = lz4_flex::block::decompress(&bytes[at + HEADER..at + len], h.raw_len as usize)
        .expect("decompresses");
    let mut src =
        wiremap_capture::FileSource::new("frame", Box::new(std::io::Cursor::new(section)))
            .expect("pcapng");
    let mut n = 0;
    while wiremap_capture::PacketSource::advance(&mut src).expect("reads") {
        n += 1;
    }
    assert_eq!(n, h.count);
}

#[test]
fn frames_compressed_aside_are_written_in_order_and_counted_meanwhile() {
    // Far more frames than the compressing thread holds in flight at once.
    let pkts = packets(2_000);
    let mut w = Writer::new(Vec::new()).expect("writes");
    for p in &pkts {
        w.write(Timestamp(p.ts), p.link, &p.data, p.orig)
            .expect("writes");
        // Frames in flight count (raw) beside what was written.
        assert!(w.written() >= w.get_ref().len() as u64);
    }
    let bytes = w.finish().expect("finishes");
    let frames = frames(&bytes);
    assert!(
        frames.len() > 2 * crate::press::IN_FLIGHT,
        "{}",
        frames.len()
    );
    let times: Vec<(i64, i64)> = frames
        .iter()
        .map(|(at, _)| {
            let h = Head::parse(&bytes[*at..]);
            (h.first, h.last)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0].1 < w[1].0), "{times:?}");
    assert_eq!(read(&bytes, true).got, pkts);
}

#[test]
fn a_flush_writes_a_frame_however_small() {
    let pkts = packets(3);
    let mut w = Writer::new(Vec::new()).expect("writes");
    assert_eq!(w.written(), 8);
    w.write(
        Timestamp(pkts[0].ts),
        pkts[0].link,
        &pkts[0].data,
        pkts[0].orig,
    )
    .expect("writes");
    // Gathered, not written yet, but counted.
    let gathered = w.written();
    assert_eq!(w.get_ref().len(), 8);
    assert!(gathered > 8 + pkts[0].data.len() as u64);
    w.flush().expect("flushes");
    let one = w.written();
    assert_eq!(one, w.get_ref().len() as u64);
    assert!(one > 8 + HEADER as u64);
    // A flush with nothing gathered writes nothing.
    w.flush().expect("flushes");
    assert_eq!(w.written(), one);
    for p in &pkts[1..] {
        w.write(Timestamp(p.ts), p.link, &p.data, p.orig)
            .expect("writes");
    }
    let bytes = w.finish().expect("finishes");
    assert_eq!(frames(&bytes).len(), 2);
    assert_eq!(read(&bytes, true).got, pkts);
}

#[test]
fn every_prefix_is_intact_frames_and_a_torn_tail() {
    // Small packets: every prefix is read twice.
    let mut pkts = packets(30);
    for p in &mut pkts {
        p.data.truncate(80);
    }
    let bytes = file(&pkts, 3);
    let ends: Vec<usize> = frames(&bytes).iter().map(|(a, l)| a + l).collect();
    assert_eq!(ends.len(), 10);
    for n in 0..=bytes.len() {
        let whole = ends.iter().filter(|e| **e <= n).count();
        let good = if n < MAGIC.len() {
            0
        } else {
            ends.get(whole.wrapping_sub(1))
                .copied()
                .unwrap_or(MAGIC.len())
        };
        let r = read(&bytes[..n], false);
        assert_eq!(r.got, pkts[..3 * whole], "{n}");
        assert_eq!((r.scan.good, r.spans.len()), (good as u64, 0), "{n}");
        // A closed segment's partial frame is damage.
        let r = read(&bytes[..n], true);
        assert_eq!(r.got.len(), 3 * whole);
        assert_eq!(r.scan.good, n as u64);
        assert_eq!(r.scan.damaged_bytes, (n - good) as u64, "{n}");
    }
}

#[test]
fn a_flipped_byte_costs_its_frame_only() {
    let pkts = packets(40);
    let bytes = file(&pkts, 4);
    let fr = frames(&bytes);
    // A payload byte, the count, the time range, the CRC itself.
    for field in [HEADER + 5, 12, 20, 30, 5] {
        let mut b = bytes.clone();
        let (at, len) = fr[4];
        b[at + field] ^= 0x21;
        let r = read(&b, true);
        let want: Vec<Pkt> = pkts
            .iter()
            .enumerate()
            .filter(|(i, _)| i / 4 != 4)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(r.got, want, "{field}");
        assert_eq!(r.spans.len(), 1);
        assert_eq!((r.spans[0].offset, r.spans[0].len), (at as u64, len as u64));
        assert_eq!(r.scan.good, b.len() as u64);
    }
}

#[test]
fn a_damaged_length_is_resynchronised_past() {
    let pkts = packets(40);
    let bytes = file(&pkts, 4);
    let fr = frames(&bytes);
    for (k, flip) in [(0usize, 0x80u8), (3, 0x01), (9, 0x10)] {
        let mut b = bytes.clone();
        let (at, len) = fr[k];
        // The length's high byte or low bit: too long, too short or the last frame.
        b[at + usize::from(flip == 0x80) * 3 + usize::from(flip == 0x10)] ^= flip;
        for complete in [true, false] {
            let r = read(&b, complete);
            let want: Vec<Pkt> = pkts
                .iter()
                .enumerate()
                .filter(|(i, _)| i / 4 != k)
                .map(|(_, p)| p.clone())
                .collect();
            assert_eq!(r.got, want, "{k}");
            if k + 1 < fr.len() || complete {
                assert_eq!(r.scan.damaged_bytes, len as u64, "{k}");
            } else {
                // The last frame damaged in an open segment reads as a torn tail.
                assert_eq!(r.scan.good, at as u64);
            }
        }
    }
}

#[test]
fn a_bad_magic_or_an_undecompressible_frame_costs_only_itself() {
    let pkts = packets(12);
    let mut bytes = file(&pkts, 4);
    bytes[2] ^= 1;
    let r = read(&bytes, true);
    assert_eq!(r.got, pkts);
    assert_eq!((r.spans.len(), r.spans[0].len), (1, 8));
    // A frame whose CRC holds but whose payload is not LZ4 of `raw_len` bytes.
    let mut bytes = file(&pkts, 4);
    let (at, len) = frames(&bytes)[1];
    bytes[at + HEADER..at + len].fill(0xff);
    let crc = crc32fast::hash(&bytes[at + 8..at + len]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    let r = read(&bytes, true);
    assert_eq!(r.got.len(), 8);
    assert_eq!(r.spans[0].what, "frame that does not decompress");
    assert_eq!((r.spans[0].offset, r.spans[0].len), (at as u64, len as u64));
}

#[test]
fn frames_outside_the_window_are_not_decompressed() {
    let pkts = packets(40);
    let bytes = file(&pkts, 4);
    // Packets 13..=22 lie in frames 3, 4 and 5.
    let times = Timestamp(pkts[13].ts)..=Timestamp(pkts[22].ts);
    let r = read_in(&bytes, true, times.clone());
    assert_eq!(r.got, pkts[13..=22]);
    assert_eq!(r.work.decompressed, 3);
    assert_eq!(r.scan.good, bytes.len() as u64);
    assert_eq!(read(&bytes, true).work.decompressed, 10);
    // A pruned frame is still checked: its damage counts.
    let mut b = bytes.clone();
    let (at, _) = frames(&bytes)[0];
    b[at + HEADER + 1] ^= 4;
    let r = read_in(&b, true, times);
    assert_eq!((r.got.len(), r.spans.len()), (10, 1));
}

#[test]
fn a_stopped_read_ends_after_its_frame() {
    let pkts = packets(12);
    let bytes = file(&pkts, 4);
    let mut n = 0;
    let scan = read_packets(
        "t",
        &bytes[..],
        true,
        ALL_TIME,
        &mut |_, _, _, _| {
            n += 1;
            if n == 6 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
        &mut |_| {},
    )
    .expect("reads");
    let (at, len) = frames(&bytes)[1];
    assert_eq!((n, scan.good), (6, (at + len) as u64));
}

#[test]
fn garbage_costs_bounded_work() {
    // Every 32nd offset holds a plausible header of a 1 MiB frame whose CRC fails.
    let mut head = [0u8; HEADER];
    head[0..4].copy_from_slice(&(1u32 << 20).to_le_bytes());
    head[8..12].copy_from_slice(&(2u32 << 20).to_le_bytes());
    head[12..16].copy_from_slice(&1u32.to_le_bytes());
    let mut bytes = MAGIC.to_vec();
    while bytes.len() < (8 << 20) {
        bytes.extend_from_slice(&head);
    }
    let t = std::time::Instant::now();
    let r = read(&bytes, true);
    assert!(r.got.is_empty());
    assert_eq!(r.scan.damaged_bytes, bytes.len() as u64 - 8);
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}
