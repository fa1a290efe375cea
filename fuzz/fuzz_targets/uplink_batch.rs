//! Batches as a hostile agent (or a broken network) could post them to the hub. Odd first
//! byte: the rest is compressed as a batch's items behind a valid head, so the item decoder
//! (entries in the store codec, answers, packets) sees arbitrary content; even: the raw bytes
//! are a whole body (the head's varints and strings, then the LZ4 block, lying size headers
//! included). Either way: a batch or an error, never a panic or an allocation past the batch
//! limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wiremap_uplink::{AgentCounters, Batch, Head};

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let r = if first & 1 == 1 {
        let head = Head {
            instance: 1,
            seq: 1,
            node: "n".into(),
            counters: AgentCounters::default(),
        };
        Batch::decode(&Batch::seal(&head, rest))
    } else {
        Batch::decode(rest)
    };
    if let Ok(b) = r {
        // What decodes encodes again to something that decodes the same.
        assert_eq!(Batch::decode(&b.encode()).ok(), Some(b));
    }
});
