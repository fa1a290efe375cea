//! Any bytes as a frame of any supported link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiremap_decode::{Decoder, SUPPORTED_LINKS};
use wiremap_model::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = SUPPORTED_LINKS[usize::from(sel) % SUPPORTED_LINKS.len()];
    let mut dec = Decoder::new();
    // Twice, so fragments meet their own copies.
    for t in 0..2 {
        let _ = dec.decode(Timestamp(t), link, frame);
    }
});
