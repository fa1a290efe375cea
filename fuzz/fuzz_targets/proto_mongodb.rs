//! The mongodb dissector, fed a conversation that starts like mongodb.
#![no_main]

#[path = "starts.rs"]
mod starts;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| starts::run(2, data));
