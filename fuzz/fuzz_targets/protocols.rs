//! Every binary-protocol dissector (Redis, Kafka, MongoDB, PostgreSQL, MySQL, AMQP, HTTP/2,
//! WebSocket after an upgrade), chosen by the first byte.
#![no_main]

#[path = "starts.rs"]
mod starts;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&sel, rest)) = data.split_first() {
        starts::run(usize::from(sel), rest);
    }
});
