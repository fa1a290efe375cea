//! Batches as a hostile agent (or a broken network) could post them to the hub. Odd first
//! byte: the rest is compressed as a batch, so the decoder behind decompression (counters,
//! items, entries in the store codec) sees arbitrary content; even: the raw bytes go to the
//! decompressor itself, lying size headers included. Either way: a batch or an error, never
//! a panic or an allocation past the batch limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wiremap_uplink::Batch;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let r = if first & 1 == 1 {
        Batch::decode(&Batch::seal(rest))
    } else {
        Batch::decode(rest)
    };
    if let Ok(b) = r {
        // What decodes encodes again to something that decodes the same.
        assert_eq!(Batch::decode(&b.encode()).ok(), Some(b));
    }
});
