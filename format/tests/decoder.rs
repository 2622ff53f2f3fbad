//! StreamDecoder edge cases that the corpus does not contain: restarts,
//! stale markers, garbage, limits; plus classify_write and classes.

mod common;

use common::Rng;
use elstream_format::eventlog::*;
use elstream_format::state::StateCache;

fn types() -> Vec<EventTypeInfo> {
    let t = |num, size: Option<u16>| EventTypeInfo {
        num,
        size,
        desc: format!("type {num}"),
    };
    vec![
        t(EVENT_RUN_THREAD, Some(4)),
        t(EVENT_GC_START, Some(0)),
        t(EVENT_BLOCK_MARKER, Some(14)),
        t(EVENT_USER_MSG, None),
    ]
}

fn block(h: &Header, cap: u16, t0: u64, n: usize) -> Vec<u8> {
    let mut b = BlockBuilder::new(cap);
    for i in 0..n {
        b.push(
            h,
            EVENT_RUN_THREAD,
            t0 + i as u64,
            &(i as u32).to_be_bytes(),
        )
        .unwrap();
        b.push(h, EVENT_USER_MSG, t0 + i as u64, b"msg").unwrap();
    }
    b.finish()
}

fn frames(bytes: &[u8]) -> Result<Vec<Frame>, FormatError> {
    let mut d = StreamDecoder::new();
    d.push(bytes);
    let mut v = Vec::new();
    while let Some(f) = d.finish()? {
        v.push(f);
    }
    Ok(v)
}

fn kinds(fs: &[Frame]) -> String {
    fs.iter()
        .map(|f| match f {
            Frame::Header(_) => 'H',
            Frame::Block(_) => 'B',
            Frame::DataEnd => 'E',
        })
        .collect()
}

/// A marker as the RTS leaves it: open, size 0, end time 0.
fn stale_marker(cap: u16) -> Vec<u8> {
    let mut m = vec![0, 18];
    m.extend_from_slice(&5u64.to_be_bytes());
    m.extend_from_slice(&[0; 12]);
    m.extend_from_slice(&cap.to_be_bytes());
    m
}

#[test]
fn restart_with_stale_marker_prefix() {
    let h = Header::from_types(&types());
    let mut s = h.raw.clone();
    s.extend(block(&h, 0, 10, 3));
    s.extend(DATA_END);
    // endEventLogging + startEventLogging: the header write is prefixed.
    s.extend(stale_marker(GLOBAL_CAP));
    s.extend(&h.raw);
    s.extend(block(&h, 1, 100, 2));
    s.extend(DATA_END);
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBEHBE");

    // Same without the data end in between (a new session mid-stream).
    let mut s = h.raw.clone();
    s.extend(block(&h, 0, 10, 3));
    s.extend(stale_marker(GLOBAL_CAP));
    s.extend(&h.raw);
    s.extend(block(&h, 1, 100, 2));
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBHB");

    // And a header right after a block, no marker, no data end.
    let mut s = h.raw.clone();
    s.extend(block(&h, 0, 10, 3));
    s.extend(&h.raw);
    assert_eq!(kinds(&frames(&s).unwrap()), "HBH");
}

#[test]
fn classify_write_kinds() {
    let h = Header::from_types(&types());
    assert_eq!(classify_write(&h.raw), WriteKind::Header { offset: 0 });
    let mut p = stale_marker(GLOBAL_CAP);
    p.extend(&h.raw);
    assert_eq!(classify_write(&p), WriteKind::Header { offset: 24 });
    assert_eq!(classify_write(&DATA_END), WriteKind::DataEnd);
    assert_eq!(classify_write(&block(&h, 0, 1, 2)), WriteKind::Block);
    assert_eq!(classify_write(&stale_marker(0)), WriteKind::Block);
}

#[test]
fn stale_marker_size_extends_to_next_marker() {
    let h = Header::from_types(&types());
    let mut s = h.raw.clone();
    let mut b1 = block(&h, 0, 10, 3);
    b1[10..14].copy_from_slice(&0u32.to_be_bytes()); // stale size
    let b2 = block(&h, 0, 50, 1);
    s.extend(&b1);
    s.extend(&b2);
    s.extend(DATA_END);
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBBE");
    let Frame::Block(got) = &fs[1] else { panic!() };
    assert_eq!(got.bytes.len(), b1.len());
    assert_eq!(got.events, 6);
    // The decoder fixes the copy's marker so it can be relayed as is.
    assert_eq!(
        BlockMarker::parse(&got.bytes).unwrap().size as usize,
        b1.len()
    );
    assert_eq!(got.end_time, 12);

    // A size that lands mid-event is not trusted either.
    let mut b1 = block(&h, 0, 10, 3);
    b1[10..14].copy_from_slice(&30u32.to_be_bytes());
    let mut s = h.raw.clone();
    s.extend(&b1);
    s.extend(DATA_END);
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBE");
}

#[test]
fn events_without_marker_become_a_block() {
    let h = Header::from_types(&types());
    let mut s = h.raw.clone();
    let b = block(&h, 0, 10, 2);
    s.extend(&b[24..]); // events, no marker
    s.extend(block(&h, 1, 20, 1));
    s.extend(DATA_END);
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBBE");
    let Frame::Block(x) = &fs[1] else { panic!() };
    assert!(!x.has_marker());
    assert_eq!(
        (x.events, x.cap, x.start_time, x.end_time),
        (4, GLOBAL_CAP, 10, 11)
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let h = Header::from_types(&types());
    let err = frames(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!(err, FormatError::NotEventlog { offset: 0 });
    assert!(err.to_string().contains("byte 0"));

    let mut s = h.raw.clone();
    s.extend([0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0]);
    let err = frames(&s).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnknownEventType {
            ty: 0x1234,
            offset: h.raw.len() as u64
        }
    );

    // Garbage after the data end.
    let mut s = h.raw.clone();
    s.extend(DATA_END);
    s.extend(b"xxxx");
    assert!(matches!(frames(&s), Err(FormatError::NotEventlog { .. })));

    // A broken header.
    let mut bad = h.raw.clone();
    bad[9] = b'X';
    assert!(matches!(frames(&bad), Err(FormatError::BadHeader { .. })));

    // After an error, the decoder keeps failing the same way.
    let mut d = StreamDecoder::new();
    d.push(b"nope");
    let e1 = d.next_frame().unwrap_err();
    d.push(&h.raw);
    assert_eq!(d.next_frame().unwrap_err(), e1);
}

#[test]
fn oversized_header_is_rejected_early() {
    // One event type claiming a 16 MiB description: refused before buffering it.
    let mut s = b"hdrbhetbetb\0".to_vec();
    s.extend(1u16.to_be_bytes());
    s.extend(4u16.to_be_bytes());
    s.extend((16u32 << 20).to_be_bytes());
    s.extend([b'a'; 100]);
    let mut d = StreamDecoder::new();
    d.push(&s);
    assert!(matches!(
        d.next_frame(),
        Err(FormatError::HeaderTooLarge { .. })
    ));

    // Many small types adding up past the limit.
    let types: Vec<EventTypeInfo> = (0..20000u16)
        .map(|n| EventTypeInfo {
            num: n,
            size: Some(0),
            desc: "x".repeat(60),
        })
        .collect();
    let raw = encode_header(&types);
    let mut d = StreamDecoder::new();
    let mut err = None;
    for c in raw.chunks(4096) {
        d.push(c);
        if let Err(e) = d.next_frame() {
            err = Some(e);
            break;
        }
        assert!(d.buffered() <= MAX_HEADER_SIZE + 8192);
    }
    assert!(matches!(err, Some(FormatError::HeaderTooLarge { .. })));
}

/// Every log, and the same log with only its GC and user events (what a
/// class-filtered subscriber gets): scheduler events, which the state cache
/// follows threads by, are in nearly every block of a real log.
fn logs_and_filtered_copies() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (_, p) in common::all_logs() {
        let bytes = std::fs::read(&p).unwrap();
        let mut d = StreamDecoder::new();
        d.push(&bytes);
        let mut filtered = Vec::new();
        while let Ok(Some(f)) = d.next_frame() {
            match f {
                Frame::Header(h) => filtered.extend_from_slice(&h.raw),
                Frame::Block(b) => {
                    let keep = ClassSet::parse("gu").unwrap();
                    filtered.extend(filter_block(d.header().unwrap(), &b.bytes, keep));
                }
                _ => {}
            }
        }
        filtered.extend_from_slice(&DATA_END);
        out.push((format!("{} (gu)", p.display()), filtered));
        out.push((p.display().to_string(), bytes));
    }
    out
}

#[test]
fn blocks_say_whether_they_hold_state_events() {
    let (mut with, mut without) = (0, 0);
    for (name, bytes) in logs_and_filtered_copies() {
        let mut d = StreamDecoder::new();
        d.push(&bytes);
        while let Ok(Some(f)) = d.next_frame() {
            if let Frame::Block(b) = f {
                let h = d.header().unwrap();
                let state = events(h, &b.bytes)
                    .map_while(Result::ok)
                    .any(|e| StateCache::interested(e.ty));
                assert_eq!(b.state, state, "{name}");
                assert_eq!(holds_state(h, &b.bytes), state, "{name}");
                if state {
                    with += 1;
                } else {
                    without += 1;
                }
            }
        }
    }
    assert!(with > 0 && without > 0, "{with} with, {without} without");
}

#[test]
fn mutated_logs_never_panic_and_stay_bounded() {
    let mut rng = Rng(7);
    for (_, p) in common::all_logs() {
        let orig = std::fs::read(&p).unwrap();
        for _ in 0..200 {
            let mut b = orig.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                let cut = rng.below(b.len() as u64) as usize;
                b.truncate(cut);
            }
            let mut d = StreamDecoder::new();
            let mut i = 0;
            'feed: while i < b.len() {
                let n = (1 + rng.below(512) as usize).min(b.len() - i);
                d.push(&b[i..i + n]);
                i += n;
                loop {
                    match d.next_frame() {
                        Ok(Some(Frame::Block(blk))) => {
                            if let Some(h) = d.header() {
                                let mut state = false;
                                for e in events(h, &blk.bytes) {
                                    let e = e.expect("decoder handed out a block events() rejects");
                                    state |= StateCache::interested(e.ty);
                                }
                                assert_eq!(blk.state, state, "the block's state flag");
                                assert_eq!(holds_state(h, &blk.bytes), state);
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                assert!(d.buffered() <= MAX_BLOCK_SIZE + MAX_HEADER_SIZE);
            }
            let _ = d.finish();
        }
    }
}

#[test]
fn classes_follow_the_rts_switches() {
    assert_eq!(class_of(EVENT_RUN_THREAD), Class::Scheduler);
    assert_eq!(class_of(EVENT_THREAD_LABEL), Class::Scheduler);
    assert_eq!(class_of(EVENT_TASK_CREATE), Class::Scheduler);
    assert_eq!(class_of(EVENT_GC_START), Class::Gc);
    assert_eq!(class_of(EVENT_HEAP_LIVE), Class::Gc);
    assert_eq!(class_of(EVENT_GC_STATS_GHC), Class::Gc);
    assert_eq!(class_of(EVENT_NONMOVING_HEAP_CENSUS), Class::NonmovingGc);
    assert_eq!(class_of(EVENT_CONC_MARK_BEGIN), Class::Always); // 9.0.2: eventlog_enabled only
    assert_eq!(class_of(EVENT_SPARK_COUNTERS), Class::SparksSampled);
    assert_eq!(class_of(EVENT_SPARK_STEAL), Class::SparksFull);
    assert_eq!(class_of(EVENT_CREATE_SPARK_THREAD), Class::SparksFull);
    assert_eq!(class_of(EVENT_USER_MSG), Class::User);
    assert_eq!(class_of(EVENT_USER_MARKER), Class::User);
    assert_eq!(class_of(EVENT_USER_BINARY_MSG), Class::User);
    for always in [
        EVENT_BLOCK_MARKER,
        EVENT_CAPSET_CREATE,
        EVENT_CAP_CREATE,
        EVENT_RTS_IDENTIFIER,
        EVENT_PROGRAM_ARGS,
        EVENT_PROGRAM_ENV,
        EVENT_OSPROCESS_PID,
        EVENT_WALL_CLOCK_TIME,
        EVENT_HEAP_PROF_BEGIN,
        9999,
    ] {
        assert_eq!(class_of(always), Class::Always, "type {always}");
    }
}

#[test]
fn class_sets() {
    assert_eq!(ClassSet::DEFAULT.to_string(), "sgpu");
    assert_eq!(ClassSet::ALL.to_string(), "sgnpfu");
    assert_eq!(ClassSet::parse("sgpu").unwrap(), ClassSet::DEFAULT);
    assert_eq!(ClassSet::parse("upgs").unwrap(), ClassSet::DEFAULT);
    assert_eq!("fnusgp".parse::<ClassSet>().unwrap(), ClassSet::ALL);
    let s = ClassSet::parse("g").unwrap();
    assert!(s.contains(Class::Gc) && s.contains(Class::Always) && !s.contains(Class::User));
    assert!(ClassSet::EMPTY.contains(Class::Always));
    let err = ClassSet::parse("sx").unwrap_err();
    assert!(matches!(
        err,
        FormatError::BadClassLetter { letter: 'x', .. }
    ));
    assert!(err.to_string().contains("'x'"));
    for k in Class::SWITCHABLE {
        assert_eq!(Class::from_letter(k.letter()), Some(k));
        assert_eq!(
            ClassSet::parse(&k.letter().to_string())
                .unwrap()
                .to_string(),
            k.letter().to_string()
        );
    }
    assert_eq!(
        ClassSet::from_bits(ClassSet::DEFAULT.bits()),
        ClassSet::DEFAULT
    );
}

#[test]
fn marker_size_counting_the_data_end_keeps_its_end_time() {
    // GHC 9.2's last global block: size includes the 2-byte data end.
    let h = Header::from_types(&types());
    let mut b = block(&h, GLOBAL_CAP, 10, 2);
    let size = b.len() as u32 + 2;
    b[10..14].copy_from_slice(&size.to_be_bytes());
    b[14..22].copy_from_slice(&999u64.to_be_bytes());
    let mut s = h.raw.clone();
    s.extend(&b);
    s.extend(DATA_END);
    let fs = frames(&s).unwrap();
    assert_eq!(kinds(&fs), "HBE");
    let Frame::Block(got) = &fs[1] else { panic!() };
    assert_eq!(got.end_time, 999);
    assert_eq!(
        BlockMarker::parse(&got.bytes).unwrap().size as usize,
        b.len()
    );
}

/// (type, time, payload) of an event.
type Ev = (u16, u64, Vec<u8>);

/// Run/stop pairs (the pattern the walks are tuned for) mixed with runs of
/// one type, variable-size events and empty payloads.
fn mixed_block(h: &Header) -> (Vec<u8>, Vec<Ev>) {
    let mut want = Vec::new();
    let mut add = |ty: u16, payload: &[u8]| {
        let time = 1000 + want.len() as u64 * 7 % 13;
        want.push((ty, time, payload.to_vec()));
    };
    for i in 0..50u32 {
        add(EVENT_RUN_THREAD, &i.to_be_bytes());
        add(EVENT_STOP_THREAD, &[i as u8; 10]);
    }
    for i in 0..5u32 {
        add(EVENT_RUN_THREAD, &i.to_be_bytes());
    }
    for p in [&b"a"[..], b"", b"msg"] {
        add(EVENT_STOP_THREAD, &[7; 10]);
        add(EVENT_USER_MSG, p);
        add(EVENT_GC_START, b"");
    }
    add(EVENT_RUN_THREAD, &[1; 4]);
    add(EVENT_USER_MSG, b"last");
    let mut b = BlockBuilder::new(3);
    for (ty, time, payload) in &want {
        b.push(h, *ty, *time, payload).unwrap();
    }
    (b.finish(), want)
}

fn mixed_types() -> Vec<EventTypeInfo> {
    let mut t = types();
    t.push(EventTypeInfo {
        num: EVENT_STOP_THREAD,
        size: Some(10),
        desc: "stop".into(),
    });
    t
}

#[test]
fn events_follow_any_type_pattern_and_stop_at_a_cut() {
    let h = Header::from_types(&mixed_types());
    let (block, want) = mixed_block(&h);
    let got: Vec<_> = events(&h, &block).map(Result::unwrap).collect();
    assert_eq!(got[0].ty, EVENT_BLOCK_MARKER);
    let got: Vec<_> = got[1..]
        .iter()
        .map(|e| (e.ty, e.time, e.payload.to_vec()))
        .collect();
    assert_eq!(got, want);

    // Event boundaries, then every cut: whole events, then one error at the
    // boundary before the cut, which `offset` keeps.
    let mut ends = vec![0];
    let mut it = events(&h, &block);
    while it.next().is_some() {
        ends.push(it.offset());
    }
    assert_eq!(*ends.last().unwrap(), block.len());
    for cut in 0..=block.len() {
        let whole = ends.iter().filter(|&&e| e > 0 && e <= cut).count();
        let start = ends[whole];
        let mut it = events(&h, &block[..cut]);
        for _ in 0..whole {
            it.next().unwrap().unwrap();
        }
        assert_eq!(it.offset(), start, "cut {cut}");
        if start < cut {
            assert_eq!(
                it.next(),
                Some(Err(FormatError::Truncated {
                    offset: start as u64,
                    what: "event"
                })),
                "cut {cut}"
            );
            assert_eq!(it.offset(), start, "cut {cut}");
        }
        assert_eq!(it.next(), None, "cut {cut}");
    }
}

#[test]
fn blocks_are_the_same_for_any_push_size() {
    let h = Header::from_types(&mixed_types());
    let mut s = h.raw.clone();
    let mut blocks = Vec::new();
    for n in [400, 3, 1200] {
        let mut b = BlockBuilder::new(0);
        for i in 0..n {
            b.push(&h, EVENT_RUN_THREAD, i, &[0; 4]).unwrap();
            b.push(&h, EVENT_STOP_THREAD, i + 1, &[0; 10]).unwrap();
        }
        let b = b.finish();
        s.extend(&b);
        blocks.push((b, 2 * n as u32));
    }
    s.extend(DATA_END);
    for chunk in [1, 7, 100, 1000, 4096, s.len()] {
        let mut d = StreamDecoder::new();
        let mut got = Vec::new();
        for c in s.chunks(chunk) {
            d.push(c);
            while let Some(f) = d.next_frame().unwrap() {
                if let Frame::Block(b) = f {
                    got.push(b);
                }
            }
        }
        assert!(d.at_boundary());
        assert_eq!(d.offset(), s.len() as u64);
        assert_eq!(got.len(), blocks.len(), "chunk {chunk}");
        for (b, (want, events)) in got.iter().zip(&blocks) {
            assert_eq!(&b.bytes, want, "chunk {chunk}");
            assert_eq!(b.events, *events);
            // A block handed out without a copy carries little spare room.
            assert!(b.bytes.capacity() <= b.bytes.len() + b.bytes.len() / 16);
        }
    }
}
