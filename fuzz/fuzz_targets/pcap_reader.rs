//! Any bytes as a capture file: the reader and the decoder never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiremap_capture::{FileSource, PacketSource};
use wiremap_decode::Decoder;

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = FileSource::new("fuzz", Box::new(std::io::Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut dec = Decoder::new();
    for _ in 0..10_000 {
        match src.advance() {
            Ok(true) => {
                let p = src.packet();
                let _ = dec.decode(p.ts, p.link.0, p.data);
            }
            _ => break,
        }
    }
});
