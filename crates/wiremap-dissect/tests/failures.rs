//! Failures the dissectors must flag, from conversations built of wire bytes: a server
//! closing an AMQP channel on a request it refuses.

mod common;

use common::converse;
use wiremap_dissect::DissectConfig;
use wiremap_model::{Direction, Entry};

use Direction::{AtoB as C, BtoA as S};

fn json(e: &Entry) -> serde_json::Value {
    serde_json::to_value(e).expect("serialises")
}

fn method(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut f = vec![1];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xce);
    f
}

fn shortstr(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

#[test]
fn an_amqp_channel_closed_by_the_server_fails_the_request() {
    let declare = [
        &[0u8, 0][..],
        &shortstr("ex"),
        &shortstr("topic"),
        &[0, 0, 0, 0, 0],
    ]
    .concat();
    let close = |code: u16, text: &str| {
        [&code.to_be_bytes()[..], &shortstr(text), &[0, 40, 0, 10]].concat()
    };
    let conv = [
        (C, b"AMQP\x00\x00\x09\x01".to_vec()),
        (C, method(1, 40, 10, &declare)),
        // PRECONDITION_FAILED: the server closes the channel instead of answering.
        (S, method(1, 20, 40, &close(406, "PRECONDITION_FAILED"))),
        (C, method(1, 20, 41, &[])),
        // A client's own close, answered normally.
        (C, method(2, 20, 40, &close(200, "Normal shutdown"))),
        (S, method(2, 20, 41, &[])),
    ];
    let (es, _) = converse(DissectConfig::default(), 5672, &conv);
    let es: Vec<serde_json::Value> = es.iter().map(json).collect();
    let declared = es
        .iter()
        .find(|e| e["amqp_method"] == "exchange.declare")
        .expect("declare entry");
    assert_eq!(declared["error"], true, "{declared}");
    assert_eq!(declared["status_code"], 406);
    assert_eq!(declared["amqp_reply"], "channel.close");
    let closed = es
        .iter()
        .find(|e| e["amqp_method"] == "channel.close")
        .expect("close entry");
    assert_eq!(closed["error"], false, "{closed}");
    assert_eq!(closed["amqp_reply"], "channel.close-ok");
    assert_eq!(
        es.iter().filter(|e| e["error"] == true).count(),
        1,
        "{es:#?}"
    );
}
