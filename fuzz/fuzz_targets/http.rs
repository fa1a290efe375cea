//! HTTP/1 (and whatever detection makes of the bytes) over a TCP conversation.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Start every input as a request so the HTTP dissector is the one exercised.
    let mut conv = vec![0x10];
    conv.extend_from_slice(b"GET / HTTP/1.1\r\n");
    conv.extend_from_slice(data);
    common::converse(wiremap_model::Transport::Tcp, &conv);
});
