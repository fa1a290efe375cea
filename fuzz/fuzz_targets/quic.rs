//! QUIC Initial header parsing, decryption and CRYPTO frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wiremap_dissect::quic::initial_crypto_frames(data);
});
