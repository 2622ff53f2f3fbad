//! The decoder on the logs our own GHC programs write (testkit::logs: user
//! messages, markers, binary messages, labels and sparks; `-hT` and `-hi`
//! heap profiles; the nonmoving GC), judged by ghc-events at test time, so a
//! clone without the external corpus tests all of it on the GHC at hand.
//!
//! Per log: the header's type table (number, size, description), every event
//! as (time, cap, type) in file order, the per-type counts and the block
//! count equal ghc-events'; the payload fields of user, binary, label, heap
//! profile, info-table and nonmoving events equal what ghc-events decoded;
//! and what the program says it posted is in the log, byte for byte.

mod common;

use std::collections::BTreeMap;

use common::decode_all;
use elstream_format::eventlog::{events, Frame, StreamDecoder, EVENT_BLOCK_MARKER};
use testkit::logs::{detail, framed_own_logs, own_log, own_logs, DetailEvent, OwnLog};

const DETAIL_TYPES: &[u16] = &[19, 44, 58, 160, 162, 164, 165, 169, 181, 201, 207];

fn be(p: &[u8], at: usize, n: usize) -> u64 {
    p[at..at + n].iter().fold(0, |a, &b| a << 8 | u64::from(b))
}

fn dec(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// NUL-terminated strings from `p`, `n` of them.
fn strings(p: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = p;
    for _ in 0..n {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        out.push(rest[..end].to_vec());
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    out
}

/// Our reading of a payload, field by field as EventlogDetail.hs prints it.
fn fields(ty: u16, p: &[u8]) -> Vec<Vec<u8>> {
    match ty {
        19 | 58 | 181 => vec![p.to_vec()],
        44 => vec![dec(be(p, 0, 4)), p[4..].to_vec()],
        160 => vec![dec(be(p, 0, 1)), dec(be(p, 1, 8)), dec(be(p, 9, 4))],
        162 | 165 => vec![dec(be(p, 0, 8))],
        164 => {
            let mut v = vec![dec(be(p, 0, 1)), dec(be(p, 1, 8))];
            v.extend(strings(&p[9..], 1));
            v
        }
        169 => {
            let mut v = vec![dec(be(p, 0, 8))];
            v.extend(strings(&p[8..], 6));
            v
        }
        201 => vec![dec(be(p, 0, 4))],
        207 => vec![
            dec(be(p, 0, 1)),
            dec(be(p, 1, 4)),
            dec(be(p, 5, 4)),
            dec(be(p, 9, 4)),
        ],
        _ => unreachable!(),
    }
}

/// Our decoding of a whole log: (time, cap or -1, type, payload), markers excluded.
fn our_events(log: &OwnLog) -> Vec<(u64, i32, u16, Vec<u8>)> {
    let d = decode_all(&log.bytes()).unwrap_or_else(|e| panic!("{}: {e}", log.label()));
    assert_eq!(d.headers.len(), 1, "{}", log.label());
    assert_eq!(d.data_ends, 1, "{}: data end", log.label());
    let h = &d.headers[0];
    d.events
        .iter()
        .filter(|e| e.ty != EVENT_BLOCK_MARKER)
        .map(|e| {
            let p = events(h, &e.raw).next().unwrap().unwrap().payload.to_vec();
            (
                e.time,
                if e.cap == 0xffff {
                    -1
                } else {
                    i32::from(e.cap)
                },
                e.ty,
                p,
            )
        })
        .collect()
}

#[test]
fn own_logs_match_ghc_events() {
    let logs = framed_own_logs();
    assert!(logs.len() >= 3, "own logs: {logs:?}");
    for log in logs {
        let name = log.label();
        let bytes = log.bytes();
        let d = decode_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let det = detail(&log.path);
        assert_eq!(det.error, None, "{name}: ghc-events");
        let ours: Vec<_> = d.headers[0]
            .types
            .iter()
            .map(|t| (t.num, t.size, t.desc.as_bytes().to_vec()))
            .collect();
        assert_eq!(ours, det.types, "{name}: event type table");

        let evs = our_events(log);
        let seq: Vec<(u64, i32, u16)> = evs.iter().map(|e| (e.0, e.1, e.2)).collect();
        assert_eq!(seq, testkit::event_sequence(&log.path), "{name}: events");
        let check = testkit::check(&log.path);
        check.assert_ok();
        let mut counts = BTreeMap::new();
        for e in &seq {
            *counts.entry(e.2).or_insert(0u64) += 1;
        }
        assert_eq!(counts, check.per_type, "{name}: per type");
        let blocks = d.blocks.iter().filter(|b| b.has_marker()).count() as u64;
        assert_eq!(blocks, check.blocks, "{name}: blocks");

        let ours: Vec<DetailEvent> = evs
            .iter()
            .filter(|e| DETAIL_TYPES.contains(&e.2))
            .map(|(time, cap, ty, p)| DetailEvent {
                time: *time,
                cap: *cap,
                ty: *ty,
                fields: fields(*ty, p),
            })
            .collect();
        assert!(!ours.is_empty(), "{name}: no detailed events");
        for (i, (o, r)) in ours.iter().zip(&det.events).enumerate() {
            assert_eq!(o, r, "{name}: detailed event {i}");
        }
        assert_eq!(ours.len(), det.events.len(), "{name}: detailed events");
    }
}

/// `(type, payload)` of our decoding, for one type.
fn payloads(log: &OwnLog, ty: u16) -> Vec<Vec<u8>> {
    our_events(log)
        .into_iter()
        .filter(|e| e.2 == ty)
        .map(|e| e.3)
        .collect()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn user_log_holds_every_message_marker_binary_and_label() {
    let log = own_log("user");
    let name = log.label();
    let p = &log.posted;
    assert!(
        p.messages.iter().any(|m| !m.is_ascii()),
        "{name}: no non-ASCII message"
    );
    assert!(p.binaries.iter().any(|b| std::str::from_utf8(b).is_err()));
    // Worker threads post concurrently with main: compare as multisets.
    assert_eq!(
        sorted(payloads(log, 19)),
        sorted(p.messages.clone()),
        "{name}: messages"
    );
    assert_eq!(payloads(log, 58), p.markers, "{name}: markers");
    assert_eq!(payloads(log, 181), p.binaries, "{name}: binary messages");
    // The RTS labels threads of its own too (the I/O and timer managers).
    let labels: Vec<Vec<u8>> = payloads(log, 44)
        .into_iter()
        .map(|l| l[4..].to_vec())
        .collect();
    for l in &p.labels {
        let n = labels.iter().filter(|x| *x == l).count();
        assert_eq!(
            n,
            1,
            "{name}: label {:?} in {labels:?}",
            String::from_utf8_lossy(l)
        );
    }
    // ghc-events reads the texts the same way.
    let check = testkit::check(&log.path);
    let text = |v: &[Vec<u8>]| -> Vec<String> {
        v.iter()
            .map(|b| String::from_utf8(b.clone()).unwrap())
            .collect()
    };
    let mut msgs = check.user_messages.clone();
    msgs.sort();
    let mut want = text(&p.messages);
    want.sort();
    assert_eq!(msgs, want, "{name}: ghc-events' messages");
    assert_eq!(
        check.markers,
        text(&p.markers),
        "{name}: ghc-events' markers"
    );
    // Sparks (-lf): `par` creates them (whether the other cap runs some
    // varies from run to run, so only creation is certain).
    assert!(check.count(35) > 0, "{name}: no sparks: {check:#?}");
}

/// Heap profile samples, census by census, as our decoder reads them.
#[derive(Debug)]
struct Census {
    time: u64,
    /// The LDV era: 0 unless profiling by biography.
    era: u64,
    bands: Vec<(u64, Vec<u8>)>,
}

fn censuses(log: &OwnLog) -> (u64, Vec<Census>) {
    let name = log.label();
    let evs = our_events(log);
    let begins: Vec<_> = evs.iter().filter(|e| e.2 == 160).collect();
    assert_eq!(begins.len(), 1, "{name}: heap profile begins");
    let id = be(&begins[0].3, 0, 1);
    let breakdown = be(&begins[0].3, 9, 4);
    let mut out: Vec<Census> = Vec::new();
    let mut open = false;
    for (time, _, ty, p) in &evs {
        match *ty {
            162 => {
                assert!(!open, "{name}: census inside a census");
                open = true;
                out.push(Census {
                    time: *time,
                    era: be(p, 0, 8),
                    bands: Vec::new(),
                });
            }
            164 => {
                assert!(open, "{name}: sample outside a census");
                assert_eq!(be(p, 0, 1), id, "{name}: sample's profile id");
                let f = fields(164, p);
                out.last_mut()
                    .unwrap()
                    .bands
                    .push((be(p, 1, 8), f[2].clone()));
            }
            165 => {
                assert!(open, "{name}: census end without a begin");
                assert_eq!(be(p, 0, 8), out.last().unwrap().era, "{name}: end era");
                open = false;
            }
            _ => {}
        }
    }
    assert!(!open, "{name}: census not ended");
    (breakdown, out)
}

#[test]
fn heap_profiles_have_censuses_with_bands() {
    // -hT: by closure type (RTS code 7); -hi: by info table (8), GHC 9.2+.
    for (name, want) in [("heap-hT", 7), ("heap-hi", 8)] {
        let Some(log) = own_logs().iter().find(|l| l.name == name) else {
            eprintln!("note: no {name} log on this GHC (needs 9.2+)");
            continue;
        };
        let label = log.label();
        let (breakdown, cs) = censuses(log);
        assert_eq!(breakdown, want, "{label}: breakdown");
        assert!(cs.len() >= 3, "{label}: {} censuses", cs.len());
        let times: Vec<u64> = cs.iter().map(|c| c.time).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{label}: census times {times:?}"
        );
        for c in &cs {
            assert!(!c.bands.is_empty(), "{label}: census at {} empty", c.time);
            assert!(
                c.bands.iter().all(|b| !b.1.is_empty()),
                "{label}: empty band label"
            );
        }
        // The program's live data grows for ten rounds and then shrinks.
        let total = |c: &Census| c.bands.iter().map(|b| b.0).sum::<u64>();
        let peak = cs.iter().map(total).max().unwrap();
        assert!(peak > total(&cs[0]), "{label}: residency never grew");
        if want == 8 {
            // Every band names an info table that an IPE event describes.
            let ipe = payloads(log, 169).len();
            assert!(ipe > 0, "{label}: no info-table events");
        }
    }
}

#[test]
fn nonmoving_log_has_marks_sweeps_and_censuses() {
    let log = own_log("nonmoving");
    let check = testkit::check(&log.path);
    for ty in [200u16, 201, 202, 203, 204, 205, 206, 207] {
        assert!(
            check.count(ty) > 0,
            "{}: no events of type {ty}: {check:#?}",
            log.label()
        );
    }
    assert_eq!(
        check.count(200),
        check.count(201),
        "{}: mark begin/end",
        log.label()
    );
    assert_eq!(
        check.count(204),
        check.count(205),
        "{}: sweep begin/end",
        log.label()
    );
}

/// GHC 9.6.6 and 9.10.3 write `-hi`'s info-table events (type 169) with a size
/// field one more than their payload (format's `ipe_len`): the decoder reads
/// them by content, so every event comes out as ghc-events reads it.
#[test]
fn info_table_events_with_a_size_one_too_big_are_read_whole() {
    for log in own_logs().iter().filter(|l| l.size_mismatch.is_some()) {
        let name = log.label();
        let bytes = log.bytes();
        let mut d = StreamDecoder::new();
        d.push(&bytes);
        let mut seen = Vec::new();
        while let Some(frame) = d.next_frame().unwrap_or_else(|e| panic!("{name}: {e}")) {
            if let Frame::Block(b) = frame {
                let h = d.header().unwrap();
                let cap = if b.cap == 0xffff {
                    -1
                } else {
                    i32::from(b.cap)
                };
                for e in events(h, &b.bytes) {
                    let e = e.unwrap_or_else(|e| panic!("{name}: {e}"));
                    if e.ty != EVENT_BLOCK_MARKER {
                        seen.push((e.time, cap, e.ty));
                    }
                }
            }
        }
        let reference = testkit::event_sequence(&log.path);
        assert!(
            reference.iter().any(|e| e.2 == 169),
            "{name}: no info-table events"
        );
        assert_eq!(seen, reference, "{name}: events");
    }
}
