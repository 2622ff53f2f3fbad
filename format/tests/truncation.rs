//! A log cut at any byte, fed in random chunk sizes, never panics and yields
//! exactly the whole events before the cut.

mod common;

use common::{decode_all, decode_chunked, Rng};
use elstream_format::eventlog::EVENT_BLOCK_MARKER;

/// (type, time, cap, end offset in the file) of every event, in file order.
fn events_with_ends(bytes: &[u8]) -> (usize, Vec<(u16, u64, u16, usize)>) {
    let d = decode_all(bytes).unwrap();
    let hlen = d.headers[0].raw.len();
    let mut off = hlen;
    let mut out = Vec::new();
    for e in &d.events {
        off += e.raw.len();
        out.push((e.ty, e.time, e.cap, off));
    }
    (hlen, out)
}

fn check_log(name: &str, seed: u64) {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let (hlen, all) = events_with_ends(&bytes);
    let mut rng = Rng(seed);
    for cut in 0..=bytes.len() {
        let max_chunk = 1 + rng.below(64);
        let d = decode_chunked(&bytes[..cut], || 1 + rng.below(max_chunk) as usize)
            .unwrap_or_else(|e| panic!("{name} cut at {cut}: {e}"));
        assert_eq!(
            d.headers.len(),
            usize::from(cut >= hlen),
            "{name} cut at {cut}"
        );
        let got: Vec<(u16, u64, u16)> = d.events.iter().map(|e| (e.ty, e.time, e.cap)).collect();
        let want: Vec<(u16, u64, u16)> = all
            .iter()
            .filter(|e| e.3 <= cut)
            .map(|e| (e.0, e.1, e.2))
            .collect();
        assert_eq!(got, want, "{name} cut at {cut}");
        // Every block handed out, partial or not, is itself consistent.
        for b in &d.blocks {
            if b.bytes.len() >= 24
                && u16::from_be_bytes([b.bytes[0], b.bytes[1]]) == EVENT_BLOCK_MARKER
            {
                let size = u32::from_be_bytes(b.bytes[10..14].try_into().unwrap());
                assert_eq!(
                    size as usize,
                    b.bytes.len(),
                    "{name} cut at {cut}: marker size"
                );
            }
        }
    }
}

#[test]
fn truncated_nonmoving_gc() {
    check_log("nonmoving-gc.eventlog", 1);
}

#[test]
fn truncated_trace_binary_event() {
    check_log("trace-binary-event.eventlog", 2);
}

#[test]
fn truncated_unicode() {
    check_log("unicode.eventlog", 3);
}
