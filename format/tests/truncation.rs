//! A log cut at any byte, fed in random chunk sizes, never panics and yields
//! exactly the whole events before the cut: our own programs' logs at chosen
//! and random points (always), three corpus logs at every byte (where the
//! external corpus exists; required under `CI`).

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

/// Cuts `bytes` at `cut`, feeds the prefix in random chunks and checks that
/// exactly the whole events before the cut come out, in consistent blocks.
fn check_cut(
    name: &str,
    bytes: &[u8],
    hlen: usize,
    all: &[(u16, u64, u16, usize)],
    cut: usize,
    rng: &mut Rng,
) {
    // Tiny chunks for small logs; up to 4 KiB for the multi-MB one (time).
    let max_chunk = 1 + rng.below(if bytes.len() < 1 << 20 { 64 } else { 4096 });
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
        if b.bytes.len() >= 24 && u16::from_be_bytes([b.bytes[0], b.bytes[1]]) == EVENT_BLOCK_MARKER
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

/// A corpus log cut at every byte.
fn check_log(name: &str, seed: u64) {
    let Some(dir) = testkit::logs::external_corpus() else {
        return;
    };
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let (hlen, all) = events_with_ends(&bytes);
    let mut rng = Rng(seed);
    for cut in 0..=bytes.len() {
        check_cut(name, &bytes, hlen, &all, cut, &mut rng);
    }
}

/// Each of our own programs' logs cut at chosen points (in and just after
/// the header, around the first events and the first block's end, inside
/// the last events, the data end) and at random ones; at a few of them
/// ghc-events reads the same prefix and must find the same events.
#[test]
fn truncated_own_logs() {
    let logs = testkit::logs::framed_own_logs();
    assert!(!logs.is_empty());
    for (i, log) in logs.into_iter().enumerate() {
        let name = log.label();
        let bytes = log.bytes();
        let (hlen, all) = events_with_ends(&bytes);
        let len = bytes.len();
        let mut cuts = vec![0, 1, 5, hlen / 2, hlen - 1, hlen, hlen + 1];
        for e in all.iter().take(4) {
            cuts.extend([e.3 - 1, e.3, e.3 + 1]);
        }
        let first_block = decode_all(&bytes).unwrap().blocks[0].bytes.len();
        cuts.extend([
            hlen + first_block - 1,
            hlen + first_block,
            hlen + first_block + 1,
        ]);
        cuts.extend([
            len / 3,
            len / 2,
            2 * len / 3,
            len - 30,
            len - 3,
            len - 2,
            len - 1,
            len,
        ]);
        let mut rng = Rng(100 + i as u64);
        let random = if len < 1 << 20 { 40 } else { 8 };
        cuts.extend((0..random).map(|_| rng.below(len as u64 + 1) as usize));
        for &cut in &cuts {
            check_cut(&name, &bytes, hlen, &all, cut.min(len), &mut rng);
        }
        // The independent parser on a few prefixes (block markers hidden).
        for cut in [hlen + 1, len / 3, 2 * len / 3 + 7, len - 2] {
            let ours: Vec<(u64, i32, u16)> = all
                .iter()
                .filter(|e| e.3 <= cut && e.0 != EVENT_BLOCK_MARKER)
                .map(|e| (e.1, if e.2 == 0xffff { -1 } else { i32::from(e.2) }, e.0))
                .collect();
            assert_eq!(
                testkit::event_sequence_bytes(&bytes[..cut]),
                ours,
                "{name} cut at {cut}: ghc-events"
            );
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
