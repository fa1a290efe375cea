//! Segment files as a crash or a disk could leave them. Half the inputs are raw bytes after
//! the magic (framing, torn tails, resynchronisation); the other half are cut into records
//! that get a valid length and CRC, so the record decoder itself (entries, identities,
//! references) sees arbitrary payloads. The raw bytes also go to the packets-file reader,
//! either as they are after its magic (frame headers, CRCs, resynchronisation) or, when the
//! first byte says so, as the pcapng section of one frame with a valid header and CRC, so
//! the block parser inside a frame sees arbitrary bytes. Either way: packets and entries,
//! damage spans inside the file, never a panic. When the first byte says so, the bytes are
//! a rollup file instead: after its magic as they are, and as the rows of two frames with
//! valid framing; what decodes is folded into a map.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// The packets-file magic.
const PACKETS: &[u8; 8] = b"WMPKT002";

/// A packets file of one frame holding `section` (padded to the format's minimum and to
/// four bytes, cut at its maximum) as its compressed pcapng.
fn one_frame(section: &[u8]) -> Vec<u8> {
    let mut raw = section[..section.len().min(4 << 20)].to_vec();
    raw.resize(raw.len().max(32).next_multiple_of(4), 0);
    let payload = lz4_flex::block::compress(&raw);
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    head.extend_from_slice(&1u32.to_le_bytes());
    head.extend_from_slice(&i64::MIN.to_le_bytes());
    head.extend_from_slice(&i64::MAX.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[8..]);
    crc.update(&payload);
    head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut out = PACKETS.to_vec();
    out.extend_from_slice(&head);
    out.extend_from_slice(&payload);
    out
}

/// A rollup file whose two frames (segment rows with the tables, minute rows) hold the two
/// halves of `raw` compressed, with valid lengths and CRCs: the row decoder sees anything.
fn rollup_file(raw: &[u8]) -> Vec<u8> {
    let (a, b) = raw.split_at(raw.len() / 2);
    let mut out = wiremap_store::ROLLUP_MAGIC.to_vec();
    for part in [a, b] {
        let mut p = Vec::new();
        let mut n = part.len() as u64;
        while n >= 0x80 {
            p.push((n as u8) | 0x80);
            n >>= 7;
        }
        p.push(n as u8);
        p.extend_from_slice(&lz4_flex::block::compress(part));
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
        out.extend_from_slice(&p);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Rollup files: as they are, and with valid framing around arbitrary rows.
    if data.first().is_some_and(|b| b & 8 == 8) {
        // Whatever rows decode also fold into a map (counts saturate, never overflow).
        let mut b = wiremap_map::MapBuilder::default();
        let raw = [wiremap_store::ROLLUP_MAGIC.as_slice(), &data[1..]].concat();
        for file in [raw, rollup_file(&data[1..])] {
            let _ = wiremap_store::read_rollups(&file, &mut |r| b.add_rollup(r));
        }
        let _ = serde_json::to_string(&b.build(Default::default()));
        return;
    }
    let mut bytes = wiremap_store::SEGMENT_MAGIC.to_vec();
    let complete = data.first().is_some_and(|b| b & 2 == 2);
    if data.first().is_some_and(|b| b & 1 == 1) {
        // Records: [len:u16][payload], framed properly.
        let mut rest = &data[1..];
        while rest.len() >= 2 {
            let n = (usize::from(rest[0]) | (usize::from(rest[1]) << 8)).min(rest.len() - 2);
            let payload = &rest[2..2 + n];
            if payload.is_empty() {
                break;
            }
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            bytes.extend_from_slice(payload);
            rest = &rest[2 + n..];
        }
    } else {
        bytes.extend_from_slice(data);
        let file = if data.first().is_some_and(|b| b & 4 == 4) {
            one_frame(&data[1..])
        } else {
            let mut f = PACKETS.to_vec();
            f.extend_from_slice(data);
            f
        };
        let len = file.len() as u64;
        let mut damaged = 0;
        let read = wiremap_store::read_packets(
            "fuzz",
            &file[..],
            complete,
            wiremap_store::ALL_TIME,
            &mut |_, _, d, _| {
                assert!(d.len() <= 4 << 20);
                std::ops::ControlFlow::Continue(())
            },
            &mut |s| {
                assert!(s.offset + s.len <= len);
                damaged += s.len;
            },
        );
        if let Ok(s) = read {
            assert!(s.good <= len && s.damaged_bytes == damaged);
        }
    }
    let len = bytes.len() as u64;
    let read = wiremap_store::read_entries(
        "fuzz",
        &bytes[..],
        complete,
        &wiremap_store::Want::default(),
        &mut |e| {
            let _ = serde_json::to_string(&e);
            std::ops::ControlFlow::Continue(())
        },
        &mut |s| assert!(s.offset >= 8 && s.offset + s.len <= len),
    );
    if let Ok(s) = read {
        assert!(s.good <= len);
    }
});
