//! The redis dissector, fed a conversation that starts like redis.
#![no_main]

#[path = "starts.rs"]
mod starts;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| starts::run(0, data));
