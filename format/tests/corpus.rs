//! Every corpus log decodes, and what we decode matches what `ghc-events show`
//! printed for it (the `.reference` files).
//!
//! What is compared, per log with a reference:
//! - the header's event type table (number, size, description) exactly;
//! - the number of events;
//! - the (timestamp, cap) sequence exactly: `ghc-events show` prints events
//!   stably sorted by time, so our file-order events are stably sorted first;
//!   cap is the block's cap, or none for the global block (cap 0xffff);
//! - the event type of every line whose description we recognise (see
//!   `KNOWN`, which covers scheduler, GC, capset, heap, spark, task, heap
//!   profiling, nonmoving and marker events); a line we do not recognise
//!   must be an event of a type outside `KNOWN` (user/log messages, newer
//!   or older types), and the per-type counts of recognised types match.
//!
//! Logs without a reference only have to decode without error. The corpus
//! is external (required under `CI`, a loud skip elsewhere); own_logs.rs
//! makes the same comparisons on logs our own programs write.

mod common;

use std::collections::BTreeMap;

use elstream_format::eventlog::{Header, StreamDecoder};

/// Description prefixes (after an optional `cap N: `) and their types.
/// Order matters: longer prefixes that share a start come first.
const KNOWN: &[(&str, u16)] = &[
    ("event block: cap ", 18),
    ("creating thread ", 0),
    ("running thread ", 1),
    ("stopping thread ", 2),
    ("waking up thread ", 8),
    ("starting GC", 9),
    ("finished GC", 10),
    ("requesting sequential GC", 11),
    ("requesting parallel GC", 12),
    ("GC idle", 20),
    ("GC working", 21),
    ("GC done", 22),
    ("created capset ", 25),
    ("deleted capset ", 26),
    ("assigned cap ", 27),
    ("removed cap ", 28),
    ("spark stats: ", 34),
    ("created cap ", 45),
    ("deleted cap ", 46),
    ("allocated on heap capset ", 49),
    ("size of heap capset ", 50),
    ("live data in heap capset ", 51),
    ("heap stats for heap capset ", 52),
    ("GC stats for heap capset ", 53),
    ("all caps stopped for GC", 54),
    ("start heap profiling ", 160),
    ("cost centre ", 161),
    ("start heap prof sample ", 162),
    ("concurrent mark began", 200),
    ("concurrent mark ended", 201),
    ("post-mark synchronization began", 202),
    ("post-mark synchronization ended", 203),
    ("concurrent sweep began", 204),
    ("concurrent sweep ended", 205),
    ("update remembered set flushed by ", 206),
    ("nonmoving heap census ", 207),
    ("binary message ", 181),
];

/// Descriptions that need more than a prefix.
fn recognise(desc: &str) -> Option<u16> {
    if let Some(rest) = desc.strip_prefix("capset ") {
        let after = rest.split_once(": ").map(|x| x.1).unwrap_or("");
        for (p, t) in [
            ("RTS version ", 29),
            ("args: ", 30),
            ("env: ", 31),
            ("pid ", 32),
            ("parent pid ", 33),
            ("wall clock time ", 43),
        ] {
            if after.starts_with(p) {
                return Some(t);
            }
        }
    }
    if desc.starts_with("thread ") && desc.contains(" has label ") {
        return Some(44);
    }
    if desc.starts_with("task 0x") {
        if desc.contains(" created on cap ") {
            return Some(55);
        }
        if desc.ends_with(" deleted") {
            return Some(57);
        }
    }
    if let Some(r) = desc.strip_prefix("heap prof sample ") {
        if r.contains(", cost centre stack ") {
            return Some(163);
        }
        if r.contains(", label ") {
            return Some(164);
        }
    }
    KNOWN
        .iter()
        .find(|(p, _)| desc.starts_with(p))
        .map(|&(_, t)| t)
}

fn known_types() -> Vec<u16> {
    let mut v: Vec<u16> = KNOWN.iter().map(|k| k.1).collect();
    v.extend([29, 30, 31, 32, 33, 43, 44, 55, 57, 163, 164]);
    v
}

struct RefLog {
    types: Vec<(u16, Option<u16>, String)>,
    events: Vec<(u64, Option<u16>, String)>,
}

fn parse_reference(text: &str) -> RefLog {
    let mut types = Vec::new();
    let mut events = Vec::new();
    let mut in_events = false;
    for line in text.lines() {
        if line == "Events:" {
            in_events = true;
            continue;
        }
        if !in_events {
            // `NUM: DESC (size N)` or `(size variable)`
            let Some((num, rest)) = line.split_once(": ") else {
                continue;
            };
            let Ok(num) = num.trim().parse::<u16>() else {
                continue;
            };
            let (desc, size) = rest.rsplit_once(" (size ").expect("type line has a size");
            let size = size.trim_end_matches(')');
            let size = if size == "variable" {
                None
            } else {
                Some(size.parse().unwrap())
            };
            types.push((num, size, desc.to_string()));
            continue;
        }
        let t = line.trim_start();
        let Some((ts, rest)) = t.split_once(": ") else {
            continue;
        };
        let Ok(ts) = ts.parse::<u64>() else {
            continue;
        };
        let (cap, desc) = match rest.strip_prefix("cap ").and_then(|r| r.split_once(": ")) {
            Some((c, d)) if c.parse::<u16>().is_ok() => (Some(c.parse().unwrap()), d),
            _ => (None, rest),
        };
        events.push((ts, cap, desc.to_string()));
    }
    RefLog { types, events }
}

fn check_types(name: &str, h: &Header, r: &RefLog) {
    let ours: Vec<(u16, Option<u16>, String)> = h
        .types
        .iter()
        .map(|t| (t.num, t.size, t.desc.clone()))
        .collect();
    assert_eq!(ours, r.types, "{name}: event type table differs");
}

#[test]
fn corpus_matches_ghc_events_reference() {
    let logs = common::corpus_logs();
    let mut compared = 0;
    for p in &logs {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(p).unwrap();
        let d = common::decode_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.headers.len(), 1, "{name}");
        assert_eq!(d.data_ends, 1, "{name}: data end");
        let reference = p.with_extension("eventlog.reference");
        if !reference.exists() {
            eprintln!("{name}: no reference, decode-only");
            continue;
        }
        let r = parse_reference(&std::fs::read_to_string(&reference).unwrap());
        check_types(&name, &d.headers[0], &r);
        assert_eq!(d.events.len(), r.events.len(), "{name}: event count");

        let mut ours: Vec<(u64, Option<u16>, u16)> = d
            .events
            .iter()
            .map(|e| (e.time, (e.cap != 0xffff).then_some(e.cap), e.ty))
            .collect();
        ours.sort_by_key(|e| e.0); // stable, like ghc-events' sortEvents
        let known = known_types();
        let mut ref_counts: BTreeMap<u16, usize> = BTreeMap::new();
        let mut our_counts: BTreeMap<u16, usize> = BTreeMap::new();
        for (i, (o, r)) in ours.iter().zip(&r.events).enumerate() {
            assert_eq!(
                (o.0, o.1),
                (r.0, r.1),
                "{name}: event {i} ({:?}) time/cap",
                r.2
            );
            match recognise(&r.2) {
                Some(t) => {
                    assert_eq!(o.2, t, "{name}: event {i} type for {:?}", r.2);
                    *ref_counts.entry(t).or_default() += 1;
                }
                None => assert!(
                    !known.contains(&o.2),
                    "{name}: event {i} {:?} unrecognised but we decoded type {}",
                    r.2,
                    o.2
                ),
            }
            if known.contains(&o.2) {
                *our_counts.entry(o.2).or_default() += 1;
            }
        }
        assert_eq!(our_counts, ref_counts, "{name}: per-type counts");
        compared += 1;
    }
    if !logs.is_empty() {
        assert!(compared >= 10, "only {compared} logs had references");
    }
}

/// Every log (ours and the corpus) fed one byte at a time gives the same
/// frames as in one push.
#[test]
fn logs_byte_at_a_time() {
    for (_, p) in common::all_logs() {
        let bytes = std::fs::read(&p).unwrap();
        let whole = common::decode_all(&bytes).unwrap();
        let bytewise = common::decode_chunked(&bytes, || 1).unwrap();
        assert_eq!(whole.blocks, bytewise.blocks, "{}", p.display());
        assert_eq!(whole.headers, bytewise.headers);
        // The decoder's blocks tile the data section exactly.
        let hlen = whole.headers[0].raw.len();
        let tiled: usize = whole.blocks.iter().map(|b| b.bytes.len()).sum();
        assert_eq!(hlen + tiled + 2, bytes.len(), "{}", p.display());
    }
}

/// Blocks come out as soon as they are whole: after each block's last byte,
/// without waiting for the next block's first byte.
#[test]
fn block_is_emitted_without_further_bytes() {
    for (_, p) in common::all_logs() {
        let bytes = std::fs::read(&p).unwrap();
        let whole = common::decode_all(&bytes).unwrap();
        let mut d = StreamDecoder::new();
        let hlen = whole.headers[0].raw.len();
        d.push(&bytes[..hlen]);
        assert!(matches!(
            d.next_frame().unwrap(),
            Some(elstream_format::Frame::Header(_))
        ));
        assert_eq!(d.next_frame().unwrap(), None);
        let mut off = hlen;
        let mut early = 0;
        let mut got = Vec::new();
        for b in &whole.blocks {
            // The marker as written (the decoder fixes stale sizes in its copy).
            let written = elstream_format::eventlog::BlockMarker::parse(&bytes[off..]);
            d.push(&bytes[off..off + b.bytes.len()]);
            off += b.bytes.len();
            while let Some(f) = d.next_frame().unwrap() {
                match f {
                    elstream_format::Frame::Block(x) => got.push(x),
                    other => panic!("{}: unexpected {other:?}", p.display()),
                }
            }
            if written.is_some_and(|m| m.size as usize == b.bytes.len()) {
                // A consistent marker: the block is out with no byte of the next.
                assert_eq!(got.last(), Some(b), "{}", p.display());
                early += 1;
            }
        }
        d.push(&bytes[off..]);
        while let Some(f) = d.next_frame().unwrap() {
            if let elstream_format::Frame::Block(x) = f {
                got.push(x);
            }
        }
        assert_eq!(got, whole.blocks, "{}", p.display());
        assert!(
            early > 0,
            "{}: no block with a consistent marker",
            p.display()
        );
    }
}
