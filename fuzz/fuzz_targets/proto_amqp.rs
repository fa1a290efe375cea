//! The amqp dissector, fed a conversation that starts like amqp.
#![no_main]

#[path = "starts.rs"]
mod starts;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| starts::run(5, data));
