//! The checker against the corpus: its counts must match both the
//! `ghc-events show` references and a plain walk over the raw bytes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use testkit::{check, check_bytes, corpus_or_skip, event_sequence, End};

/// Event counts per type straight from the bytes: header sizes, then
/// type/time/[size]/payload until the data end. Block markers included.
fn raw_type_counts(bytes: &[u8]) -> BTreeMap<u16, u64> {
    let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(&bytes[0..8], b"hdrbhetb");
    let mut i = 8;
    let mut sizes = BTreeMap::new();
    while &bytes[i..i + 4] == b"etb\0" {
        let num = be16(i + 4);
        let size = be16(i + 6);
        let desc_len = be32(i + 8) as usize;
        i += 12 + desc_len;
        let extra_len = be32(i) as usize;
        i += 4 + extra_len;
        assert_eq!(&bytes[i..i + 4], b"ete\0");
        i += 4;
        sizes.insert(num, size);
    }
    assert_eq!(&bytes[i..i + 12], b"hetehdredatb");
    i += 12;
    let mut counts = BTreeMap::new();
    loop {
        let ty = be16(i);
        if ty == 0xffff {
            break;
        }
        let size = sizes[&ty];
        i += 10;
        let len = if size == 0xffff {
            i += 2;
            be16(i - 2)
        } else {
            size
        };
        i += len as usize;
        *counts.entry(ty).or_insert(0) += 1;
    }
    counts
}

/// Event lines of a `ghc-events show` reference (block markers excluded, as
/// ghc-events 0.17 no longer yields them), as timestamps.
fn reference_times(reference: &Path) -> Vec<u64> {
    let text = fs::read_to_string(reference).unwrap();
    let events = text.split_once("\nEvents:\n").expect("Events: section").1;
    events
        .lines()
        .filter(|l| !l.contains("event block: cap"))
        .filter_map(|l| l.split_once(": ")?.0.parse().ok())
        .collect()
}

fn corpus_logs() -> Vec<std::path::PathBuf> {
    let Some(dir) = corpus_or_skip("ghc-events") else {
        return Vec::new();
    };
    let mut logs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eventlog"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 10, "corpus looks incomplete: {logs:?}");
    logs
}

#[test]
fn known_counts_parallel_test() {
    let Some(log) = corpus_or_skip("ghc-events/parallelTest.eventlog") else {
        return;
    };
    let c = check(&log);
    c.assert_ok();
    assert_eq!(c.events, 412);
    assert_eq!(c.blocks, 2);
    assert_eq!(c.frames, 414);
    assert_eq!(c.end, End::DataEnd { trailing: 0 });
    // `grep -c` on the reference: 3 "creating thread", 25 "starting GC".
    assert_eq!(c.count(0), 3);
    assert_eq!(c.count(9), 25);
    assert_eq!(c.count(9), c.count(10));
    assert!(c.event_types.contains_key(&18));
    assert_eq!(c.event_types[&19], None, "user message is variable-sized");
}

#[test]
fn per_type_counts_match_raw_bytes_for_whole_corpus() {
    for log in corpus_logs() {
        let bytes = fs::read(&log).unwrap();
        let mut raw = raw_type_counts(&bytes);
        let blocks = raw.remove(&18).unwrap_or(0);
        let c = check(&log);
        c.assert_ok();
        assert_eq!(c.blocks, blocks, "{}", log.display());
        if log.ends_with("testlog.eventlog") {
            // A GHC 6 log: ghc-events reads the deprecated run/steal spark
            // events 5 and 6 as SparkRun/SparkSteal, reported as 38/39.
            for (old, new) in [(5, 38), (6, 39)] {
                let n = raw.remove(&old).unwrap();
                raw.insert(new, n);
            }
        }
        assert_eq!(c.per_type, raw, "{}", log.display());
        assert_eq!(c.events, raw.values().sum::<u64>());
    }
}

#[test]
fn events_match_ghc_events_show_references() {
    for log in corpus_logs() {
        let reference = log.with_extension("eventlog.reference");
        if !reference.exists() {
            continue;
        }
        let mut want = reference_times(&reference);
        let mut got: Vec<u64> = event_sequence(&log).iter().map(|e| e.0).collect();
        assert_eq!(got.len() as u64, check(&log).events);
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{}", log.display());
    }
}

#[test]
fn user_messages_and_caps() {
    let Some(log) = corpus_or_skip("ghc-events/unicode.eventlog") else {
        return;
    };
    let c = check(&log);
    c.assert_ok();
    assert_eq!(c.user_messages, vec!["こんにちは".to_string()]);
    assert!(c.markers.is_empty());
    let seq = event_sequence(&log);
    let user: Vec<_> = seq.iter().filter(|e| e.2 == 19).collect();
    assert_eq!(user, vec![&(3851573, 0, 19)]);
    // Capset events live in the global buffer, outside any capability.
    assert!(seq.iter().any(|e| e.1 == -1 && e.2 == 25));
    assert_eq!(c.per_cap.values().sum::<u64>(), c.events);
}

#[test]
fn truncation_and_garbage_are_reported() {
    let Some(log) = corpus_or_skip("ghc-events/parallelTest.eventlog") else {
        return;
    };
    let bytes = fs::read(&log).unwrap();
    let whole = check_bytes(&bytes);
    whole.assert_ok();
    assert_eq!(whole, check(&log));

    // Without the data end: a valid prefix, not a whole log.
    let cut = check_bytes(&bytes[..bytes.len() - 2]);
    cut.assert_prefix_ok();
    assert_eq!(cut.end, End::Missing { partial: 0 });
    assert_eq!(cut.events, whole.events);
    assert!(std::panic::catch_unwind(|| {
        cut.assert_ok();
    })
    .is_err());

    // Cut 5 bytes into the last event (a 12-byte "delete capability"):
    // ghc-events drops it silently, the framing walk sees the 7 bytes left.
    let mid = check_bytes(&bytes[..bytes.len() - 7]);
    assert_eq!(mid.end, End::Missing { partial: 7 });
    assert_eq!(mid.events, whole.events - 1);
    assert!(std::panic::catch_unwind(|| {
        mid.assert_prefix_ok();
    })
    .is_err());

    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk after the end");
    let t = check_bytes(&trailing);
    assert_eq!(
        t.end,
        End::DataEnd {
            trailing: b"junk after the end".len() as u64
        }
    );

    let garbage = check_bytes(b"this is not an eventlog at all, not even close");
    assert!(garbage.error.is_some());
    assert_eq!(garbage.end, End::Unknown);
    assert!(check_bytes(&bytes[..100]).error.is_some());
}

#[test]
fn output_parsing_unescapes() {
    let c = testkit::parse_check_output(
        "etype 19 -1\nuser a\\nb\\\\c\nmarker m\\r\nevents 2\ntype 19 1\ntype 58 1\n\
         cap -1 2\nbackwards 0\ntime 5 9\nframes 2 0\nnoend 0\nend\n",
    );
    assert_eq!(c.user_messages, vec!["a\nb\\c".to_string()]);
    assert_eq!(c.markers, vec!["m\r".to_string()]);
    assert_eq!(c.time_range, Some((5, 9)));
    assert_eq!(c.per_cap[&-1], 2);
    c.assert_prefix_ok();
}
