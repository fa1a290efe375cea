//! HPACK header blocks: one decoder state across a sequence of blocks (so the dynamic table
//! carries over), from a connection's start and joined mid-stream. The decoded list never
//! passes its cap, whatever the block expands to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiremap_dissect::hpack::{Hpack, MAX_LIST};

fuzz_target!(|data: &[u8]| {
    for complete in [true, false] {
        let mut h = Hpack::new(complete);
        // Blocks: [len:u8][bytes…].
        let mut rest = data;
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n).min(tail.len());
            let d = h.decode_bounded(&tail[..n]);
            let size: usize = d
                .fields
                .iter()
                .map(|(k, v)| 32 + k.as_ref().map_or(0, String::len) + v.as_ref().map_or(0, String::len))
                .sum();
            assert!(size <= MAX_LIST, "{size} decoded bytes");
            rest = &tail[n..];
        }
    }
});
