//! The http2 dissector, fed a conversation that starts like http2.
#![no_main]

#[path = "starts.rs"]
mod starts;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| starts::run(6, data));
