//! UDP reassembly (format::udp), two ways, picked by the first byte:
//! - even: the rest is a sequence of datagrams (u16 big-endian length + bytes)
//!   fed to a `Reassembler`, with what `elstream recv` does with its output
//!   (header parse, block marker, drop notice). Must never panic.
//! - odd: the rest describes frames; the real `Packetizer` cuts them into
//!   datagrams, which are then dropped, duplicated and swapped as the input
//!   says. Every delivered frame must be an original frame, in order, and the
//!   reported losses must be exact.
//! Run: `cargo +nightly fuzz run udp fuzz/corpus/udp`.
#![no_main]

use elstream_format::eventlog::{user_message_block, BlockMarker, Header};
use elstream_format::udp::{
    FrameKind, Packetizer, Reassembled, Reassembler, HEADER_LEN, MAX_FRAME, MIN_MTU,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((m, rest)) if m & 1 == 0 => raw_datagrams(rest),
        Some((_, rest)) => packetized(rest),
        None => {}
    }
});

fn raw_datagrams(mut data: &[u8]) {
    let mut r = Reassembler::new();
    let mut out = Vec::new();
    let mut header: Option<Header> = None;
    let mut last_time = 0u64;
    while data.len() >= 2 {
        let n = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        let (d, rest) = data[2..].split_at(n);
        data = rest;
        out.clear();
        if r.push(d, &mut out).is_err() {
            continue;
        }
        for item in out.drain(..) {
            match item {
                Reassembled::NewStream(_) => header = None,
                Reassembled::Frame(kind, bytes) => {
                    assert!(bytes.len() <= MAX_FRAME as usize);
                    match kind {
                        FrameKind::Header => header = Header::parse(&bytes).ok(),
                        FrameKind::Block | FrameKind::State => {
                            if let Some(m) = BlockMarker::parse(&bytes) {
                                last_time = last_time.max(m.end_time);
                            }
                        }
                        FrameKind::DataEnd => header = None,
                    }
                }
                Reassembled::Loss(l) => {
                    if let Some(h) = &header {
                        let _ = user_message_block(h, last_time, &l.to_string());
                    }
                }
            }
        }
    }
    let _ = r.pending_loss();
}

/// A tiny cursor over the fuzz input.
struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
}

fn packetized(data: &[u8]) {
    let mut inp = Input(data);
    let (Some(m), Some(stream)) = (inp.byte(), inp.byte()) else {
        return;
    };
    let mtu = MIN_MTU + m as usize;
    let mut p = Packetizer::new(stream as u32, mtu).expect("MTU in range");

    // Frames: kind byte, length byte (1 + 4n bytes), filled with the frame's
    // index so each is unique.
    let mut frames: Vec<(FrameKind, Vec<u8>)> = Vec::new();
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    while frames.len() < 64 {
        let (Some(k), Some(len)) = (inp.byte(), inp.byte()) else {
            break;
        };
        let kind = match k % 4 {
            0 => FrameKind::Block,
            1 => FrameKind::Header,
            2 => FrameKind::State,
            _ => FrameKind::DataEnd,
        };
        let bytes = vec![frames.len() as u8; 1 + 4 * len as usize];
        p.packetize(kind, &bytes, |d| {
            assert!(d.len() <= mtu && d.len() >= HEADER_LEN);
            datagrams.push(d.to_vec());
        });
        frames.push((kind, bytes));
    }
    if datagrams.is_empty() {
        return;
    }

    // Delivery: per datagram, 2 bits from the rest of the input (none left = deliver).
    let mut delivered: Vec<&[u8]> = Vec::new();
    let mut bits = inp
        .0
        .iter()
        .flat_map(|b| (0..4).map(move |i| (b >> (2 * i)) & 3));
    for d in &datagrams {
        match bits.next().unwrap_or(0) {
            0 => delivered.push(d),
            1 => {} // lost
            2 => {
                delivered.push(d);
                delivered.push(d); // duplicated
            }
            _ => {
                // Swapped with the one before it.
                delivered.push(d);
                let n = delivered.len();
                if n >= 2 {
                    delivered.swap(n - 1, n - 2);
                }
            }
        }
    }

    // Model of sequence acceptance: older than expected is ignored, a jump is a gap.
    let seq = |d: &[u8]| u64::from_be_bytes(d[12..20].try_into().unwrap());
    let mut expected: Option<u64> = None;
    let mut gaps = 0u64;
    for d in &delivered {
        let s = seq(d);
        match expected {
            Some(e) if s < e => continue,
            Some(e) => gaps += s - e,
            None => {}
        }
        expected = Some(s + 1);
    }

    if delivered.is_empty() {
        return;
    }
    let mut r = Reassembler::new();
    let mut out = Vec::new();
    for d in &delivered {
        r.push(d, &mut out)
            .expect("datagrams from the packetizer parse");
    }
    assert_eq!(out.first(), Some(&Reassembled::NewStream(stream as u32)));
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Reassembled::NewStream(_)))
            .count(),
        1
    );

    // Delivered frames are originals, in order; block losses are exact.
    let numbered = |k: FrameKind| matches!(k, FrameKind::Block | FrameKind::DataEnd);
    let mut next_idx = 0usize;
    let (mut lost_blocks, mut lost_datagrams) = (0u64, 0u64);
    let mut numbered_seen: Vec<usize> = Vec::new();
    for o in &out {
        match o {
            Reassembled::NewStream(_) => {}
            Reassembled::Loss(l) => {
                lost_blocks += l.blocks;
                lost_datagrams += l.datagrams;
            }
            Reassembled::Frame(kind, bytes) => {
                let idx = next_idx
                    + frames[next_idx..]
                        .iter()
                        .position(|(k, b)| k == kind && b == bytes)
                        .expect("delivered frame is not an original frame, in order");
                if numbered(*kind) {
                    numbered_seen.push(idx);
                }
                next_idx = idx + 1;
            }
        }
    }
    // Without loss, duplication or reordering, everything arrives, no loss reported.
    if delivered.len() == datagrams.len()
        && delivered
            .iter()
            .zip(&datagrams)
            .all(|(a, b)| *a == b.as_slice())
    {
        let all: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Reassembled::Frame(k, b) => Some((*k, b.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(all, frames);
        assert_eq!((lost_blocks, lost_datagrams), (0, 0));
    }
    if let (Some(first), Some(last)) = (numbered_seen.first(), numbered_seen.last()) {
        let between = frames[*first..=*last]
            .iter()
            .filter(|(k, _)| numbered(*k))
            .count();
        assert_eq!(
            lost_blocks as usize,
            between - numbered_seen.len(),
            "reported block losses are not exact"
        );
    }
    assert_eq!(
        lost_datagrams + r.pending_loss(),
        gaps,
        "datagram losses not exact"
    );
}
