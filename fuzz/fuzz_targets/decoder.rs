//! Feeds arbitrary bytes to the eventlog decoder in varying chunk sizes and
//! runs every consumer of decoded blocks. It must never panic, and whatever
//! blocks come out must re-parse cleanly (also after filtering).
//! Run: `cargo +nightly fuzz run decoder fuzz/corpus/decoder`.
#![no_main]

use elstream_format::eventlog::{events, filter_block, ClassSet, Frame, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size, so split points get explored too.
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (1 + *c as usize, rest),
        None => return,
    };
    let mut d = StreamDecoder::new();
    let check = |f: Frame, d: &StreamDecoder| {
        if let Frame::Block(b) = f {
            let h = d.header().expect("a block comes after a header");
            for e in events(h, &b.bytes) {
                e.expect("decoder handed out a block that events() rejects");
            }
            for keep in [ClassSet::EMPTY, ClassSet::DEFAULT] {
                let out = filter_block(h, &b.bytes, keep);
                for e in events(h, &out) {
                    e.expect("filtered block does not re-parse");
                }
            }
        }
    };
    for c in data.chunks(chunk) {
        d.push(c);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => check(f, &d),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    while let Ok(Some(f)) = d.finish() {
        check(f, &d);
    }
});
