//! Segment files as a crash or a disk could leave them. Half the inputs are raw bytes after
//! the magic (framing, torn tails, resynchronisation); the other half are cut into records
//! that get a valid length and CRC, so the record decoder itself (entries, identities,
//! references) sees arbitrary payloads. The same raw bytes also go to the packets-file
//! reader. Either way: entries, damage spans inside the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"WMSEG001".to_vec();
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
        let mut damaged = 0;
        let read = wiremap_store::read_packets(
            "fuzz",
            data,
            data.first().is_some_and(|b| b & 2 == 2),
            &mut |_, _, d, _| {
                assert!(d.len() <= data.len());
                std::ops::ControlFlow::Continue(())
            },
            &mut |s| {
                assert!(s.offset + s.len <= data.len() as u64);
                damaged += s.len;
            },
        );
        if let Ok(s) = read {
            assert!(s.good as usize <= data.len() && s.damaged_bytes == damaged);
        }
    }
    let complete = data.first().is_some_and(|b| b & 2 == 2);
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
