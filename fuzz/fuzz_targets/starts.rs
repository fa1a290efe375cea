//! Conversations that start the way each binary protocol does, for the per-protocol targets.

#[path = "common.rs"]
mod common;

pub const STARTS: [&[u8]; 8] = [
    b"*1\r\n$4\r\nPING\r\n",
    b"\x00\x00\x00\x13\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05kafka",
    b"\x10\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00",
    b"\x00\x00\x00\x13\x00\x03\x00\x00user\x00bob\x00\x00",
    b"\x2e\x00\x00\x00\x0a8.0.33\x00",
    b"AMQP\x00\x00\x09\x01",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
];

/// Feeds `rest` after the opening of protocol `which` (an index into [`STARTS`]).
pub fn run(which: usize, rest: &[u8]) {
    let start = STARTS[which % STARTS.len()];
    let mut conv = vec![start.len().min(127) as u8];
    conv.extend_from_slice(&start[..start.len().min(127)]);
    if which % STARTS.len() == 7 {
        let reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        conv.push(0x80 | reply.len() as u8);
        conv.extend_from_slice(reply);
    }
    conv.extend_from_slice(rest);
    common::converse(wiremap_model::Transport::Tcp, &conv);
}
