//! DNS messages: the parser alone, then as UDP datagrams and as a TCP stream.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use wiremap_dissect::dns;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dns::parse(data) {
        let mut out = Vec::new();
        dns::answers_for_identity(&m, wiremap_model::Timestamp(0), &mut out);
    }
    common::converse(wiremap_model::Transport::Udp, data);
    common::converse(wiremap_model::Transport::Tcp, data);
});
