//! TLS hellos: the parsers alone, then a TLS conversation.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use wiremap_dissect::tls;

fuzz_target!(|data: &[u8]| {
    let _ = tls::parse_client_hello(data);
    let _ = tls::parse_server_hello(data);
    let mut conv = vec![0x06, 0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    conv.extend_from_slice(data);
    common::converse(wiremap_model::Transport::Tcp, &conv);
});
