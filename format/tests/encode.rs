//! Encoder round trips: encode_header, BlockBuilder, filter_block,
//! user_message_block, all re-parsed by the decoder.

mod common;

use common::decode_all;
use elstream_format::eventlog::*;

/// Our own programs' logs and the external corpus's (see common::all_logs).
fn logs() -> Vec<(String, Vec<u8>)> {
    common::all_logs()
        .into_iter()
        .map(|(name, p)| (name, std::fs::read(p).unwrap()))
        .collect()
}

/// A 9.0.2-like table for tests that must not depend on any log.
fn small_types() -> Vec<EventTypeInfo> {
    let t = |num, size: Option<u16>, desc: &str| EventTypeInfo {
        num,
        size,
        desc: desc.into(),
    };
    vec![
        t(EVENT_CREATE_THREAD, Some(4), "Create thread"),
        t(EVENT_RUN_THREAD, Some(4), "Run thread"),
        t(EVENT_GC_START, Some(0), "Starting GC"),
        t(EVENT_BLOCK_MARKER, Some(14), "Block marker"),
        t(EVENT_USER_MSG, None, "User message"),
        t(EVENT_CAP_CREATE, Some(2), "Create capability"),
        t(EVENT_SPARK_COUNTERS, Some(56), "Spark counters"),
        t(300, Some(3), "Some future event"),
    ]
}

#[test]
fn encode_header_reproduces_log_headers() {
    for (name, bytes) in logs() {
        let d = decode_all(&bytes).unwrap();
        let h = &d.headers[0];
        assert_eq!(encode_header(&h.types), h.raw, "{name}");
        assert_eq!(Header::parse(&h.raw).unwrap(), *h, "{name}");
    }
}

#[test]
fn header_from_types_parses_back() {
    let types = small_types();
    let h = Header::from_types(&types);
    assert_eq!(h.types, types);
    assert_eq!(Header::parse(&h.raw).unwrap(), h);
    assert_eq!(h.payload_size(EVENT_USER_MSG), Some(None));
    assert_eq!(h.payload_size(EVENT_CAP_CREATE), Some(Some(2)));
    assert_eq!(h.payload_size(300), Some(Some(3)));
    assert_eq!(h.payload_size(1000), None);
    assert_eq!(h.payload_size(7), None);
}

#[test]
fn block_builder_round_trips_log_events() {
    for (name, bytes) in logs() {
        let orig = decode_all(&bytes).unwrap();
        let h = &orig.headers[0];
        let mut stream = encode_header(&h.types);
        let mut want = Vec::new();
        for b in &orig.blocks {
            let mut bb = BlockBuilder::new(b.cap);
            for e in events(h, &b.bytes) {
                let e = e.unwrap();
                if e.ty == EVENT_BLOCK_MARKER {
                    continue;
                }
                bb.push(h, e.ty, e.time, e.payload).unwrap();
                want.push((e.ty, e.time, b.cap, e.payload.to_vec()));
            }
            let out = bb.finish();
            let m = BlockMarker::parse(&out).unwrap();
            assert_eq!(m.size as usize, out.len(), "{name}");
            assert_eq!(m.cap, b.cap);
            stream.extend_from_slice(&out);
        }
        stream.extend_from_slice(&DATA_END);
        let again = decode_all(&stream).unwrap();
        assert_eq!(again.blocks.len(), orig.blocks.len(), "{name}");
        let got: Vec<_> = again
            .events
            .iter()
            .filter(|e| e.ty != EVENT_BLOCK_MARKER)
            .map(|e| {
                let h = &again.headers[0];
                let p = events(h, &e.raw).next().unwrap().unwrap().payload.to_vec();
                (e.ty, e.time, e.cap, p)
            })
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(again.data_ends, 1);
    }
}

#[test]
fn block_builder_marker_times_and_errors() {
    let h = Header::from_types(&small_types());
    let mut b = BlockBuilder::new(3);
    assert!(b.is_empty());
    b.push(&h, EVENT_RUN_THREAD, 100, &7u32.to_be_bytes())
        .unwrap();
    b.push(&h, EVENT_USER_MSG, 250, b"hello").unwrap();
    b.push(&h, EVENT_GC_START, 200, &[]).unwrap();
    assert!(matches!(
        b.push(&h, EVENT_RUN_THREAD, 1, &[1, 2]),
        Err(FormatError::BadEventSize { .. })
    ));
    assert!(matches!(
        b.push(&h, 4242, 1, &[]),
        Err(FormatError::UnknownEventType { ty: 4242, .. })
    ));
    assert!(b.push(&h, EVENT_USER_MSG, 1, &vec![0; 70000]).is_err());
    assert!(b.push(&h, EVENT_BLOCK_MARKER, 1, &[0; 14]).is_err());
    let out = b.finish();
    let m = BlockMarker::parse(&out).unwrap();
    assert_eq!(
        m,
        BlockMarker {
            time: 100,
            size: out.len() as u32,
            end_time: 250,
            cap: 3
        }
    );
    let evs: Vec<_> = events(&h, &out).map(|e| e.unwrap()).collect();
    assert_eq!(evs.len(), 4);
    assert_eq!(evs[2].payload, b"hello");
    assert_eq!(evs[2].raw.len(), 10 + 2 + 5);
}

#[test]
fn user_message_block_decodes() {
    let h = Header::from_types(&small_types());
    let text = "elstream: dropped 3 blocks (6291456 bytes)";
    let blk = user_message_block(&h, 12345, text);
    let mut stream = h.raw.clone();
    stream.extend_from_slice(&blk);
    let mut d = StreamDecoder::new();
    d.push(&stream);
    assert!(matches!(d.next_frame().unwrap(), Some(Frame::Header(_))));
    // Complete by its marker size: out without any further byte.
    let Some(Frame::Block(b)) = d.next_frame().unwrap() else {
        panic!("no block")
    };
    assert_eq!(b.cap, GLOBAL_CAP);
    assert_eq!(b.events, 1);
    assert_eq!((b.start_time, b.end_time), (12345, 12345));
    let evs: Vec<_> = events(&h, &b.bytes).map(|e| e.unwrap()).collect();
    assert_eq!(evs[1].ty, EVENT_USER_MSG);
    assert_eq!(evs[1].payload, text.as_bytes());

    // Over-long text is cut at a char boundary below 64 KiB.
    let long = "é".repeat(40000);
    let blk = user_message_block(&h, 1, &long);
    let ev = events(&h, &blk).nth(1).unwrap().unwrap();
    assert_eq!(ev.payload.len(), 65534);
    assert!(std::str::from_utf8(ev.payload).is_ok());
}

#[test]
fn filter_block_keeps_exactly_the_kept_classes() {
    let sets = [
        ClassSet::EMPTY,
        ClassSet::DEFAULT,
        ClassSet::ALL,
        ClassSet::parse("s").unwrap(),
        ClassSet::parse("g").unwrap(),
        ClassSet::parse("n").unwrap(),
        ClassSet::parse("u").unwrap(),
        ClassSet::parse("pf").unwrap(),
    ];
    let mut dropped_any = false;
    for (name, bytes) in logs() {
        let orig = decode_all(&bytes).unwrap();
        let h = &orig.headers[0];
        for keep in sets {
            let mut stream = h.raw.clone();
            let mut want = Vec::new();
            for b in &orig.blocks {
                let out = filter_block(h, &b.bytes, keep);
                let evs: Vec<_> = events(h, &out).map(|e| e.unwrap()).collect();
                if let Some(m) = BlockMarker::parse(&out) {
                    assert_eq!(m.size as usize, out.len(), "{name} {keep}");
                }
                for (i, e) in events(h, &b.bytes).map(|e| e.unwrap()).enumerate() {
                    let is_marker = i == 0 && e.ty == EVENT_BLOCK_MARKER;
                    if is_marker || keep.contains(class_of(e.ty)) {
                        want.push((e.ty, e.time, e.payload.to_vec()));
                    } else {
                        dropped_any = true;
                    }
                }
                for e in &evs {
                    assert!(
                        e.ty == EVENT_BLOCK_MARKER || keep.keeps(e.ty),
                        "{name} {keep}: type {} kept",
                        e.ty
                    );
                }
                if keep == ClassSet::ALL && b.has_marker() {
                    assert_eq!(out, b.bytes, "{name}: filtering with ALL changed the block");
                }
                stream.extend_from_slice(&out);
            }
            stream.extend_from_slice(&DATA_END);
            let again = decode_all(&stream).unwrap();
            let got: Vec<_> = again
                .events
                .iter()
                .map(|e| {
                    let p = events(h, &e.raw).next().unwrap().unwrap().payload.to_vec();
                    (e.ty, e.time, p)
                })
                .collect();
            // Marker payloads change (sizes), so compare them by type and time only.
            let strip = |v: Vec<(u16, u64, Vec<u8>)>| -> Vec<(u16, u64, Vec<u8>)> {
                v.into_iter()
                    .map(|(t, ti, p)| (t, ti, if t == EVENT_BLOCK_MARKER { vec![] } else { p }))
                    .collect()
            };
            assert_eq!(strip(got), strip(want), "{name} {keep}");
        }
    }
    assert!(dropped_any, "no filter dropped anything: test is vacuous");
}

#[test]
fn filter_block_keeps_always_events() {
    let h = Header::from_types(&small_types());
    let mut b = BlockBuilder::new(0);
    b.push(&h, EVENT_CAP_CREATE, 1, &[0, 0]).unwrap();
    b.push(&h, EVENT_RUN_THREAD, 2, &[0, 0, 0, 1]).unwrap();
    b.push(&h, EVENT_USER_MSG, 3, b"x").unwrap();
    b.push(&h, 300, 4, &[1, 2, 3]).unwrap();
    b.push(&h, EVENT_SPARK_COUNTERS, 5, &[0; 56]).unwrap();
    let blk = b.finish();
    let kept = |set: &str| -> Vec<u16> {
        let out = filter_block(&h, &blk, ClassSet::parse(set).unwrap());
        events(&h, &out).map(|e| e.unwrap().ty).collect()
    };
    assert_eq!(kept(""), vec![18, EVENT_CAP_CREATE, 300]);
    assert_eq!(kept("u"), vec![18, EVENT_CAP_CREATE, EVENT_USER_MSG, 300]);
    assert_eq!(
        kept("sp"),
        vec![
            18,
            EVENT_CAP_CREATE,
            EVENT_RUN_THREAD,
            300,
            EVENT_SPARK_COUNTERS
        ]
    );
}
