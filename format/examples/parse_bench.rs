//! Parser throughput on a real eventlog: `cargo run --release -p elstream-format
//! --example parse_bench -- FILE [ROUNDS]`. Prints MB/s for splitting the
//! stream into frames (64 KiB pushes), for iterating the events of every
//! block, and for both together. Plain std::time: no bench framework needed.

use std::time::{Duration, Instant};

use elstream_format::eventlog::{events, Frame, StreamDecoder};

fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut d = StreamDecoder::new();
    let mut blocks = Vec::new();
    d.push(bytes);
    while let Some(f) = d.next_frame().expect("decode") {
        if let Frame::Block(b) = f {
            blocks.push(b.bytes);
        }
    }
    blocks
}

fn best<F: FnMut() -> u64>(rounds: usize, mut f: F) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        out = std::hint::black_box(f());
        best = best.min(t.elapsed());
    }
    (best, out)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_bench FILE [ROUNDS]");
    let rounds: usize = args.next().map(|r| r.parse().expect("ROUNDS")).unwrap_or(5);
    let bytes = std::fs::read(&path).expect("read eventlog");
    let mb = bytes.len() as f64 / 1e6;

    // Blocks are dropped as they come, as a relay would after forwarding them.
    let (split_t, nblocks) = best(rounds, || {
        let mut d = StreamDecoder::new();
        let mut n = 0u64;
        for c in bytes.chunks(64 << 10) {
            d.push(c);
            while let Some(f) = d.next_frame().expect("decode") {
                n += matches!(f, Frame::Block(_)) as u64;
            }
        }
        n
    });

    let mut d = StreamDecoder::new();
    d.push(&bytes);
    let Some(Frame::Header(header)) = d.next_frame().expect("decode") else {
        panic!("no header")
    };
    let blocks = split(&bytes);
    let (iter_t, nevents) = best(rounds, || {
        let mut n = 0u64;
        let mut t = 0u64;
        for b in &blocks {
            for e in events(&header, b) {
                let e = e.expect("event");
                n += 1;
                t ^= e.time;
            }
        }
        std::hint::black_box(t);
        n
    });
    let (both_t, _) = best(rounds, || {
        let mut d = StreamDecoder::new();
        let mut n = 0u64;
        for c in bytes.chunks(64 << 10) {
            d.push(c);
            while let Some(f) = d.next_frame().expect("decode") {
                if let Frame::Block(b) = f {
                    let h = d.header().expect("header");
                    n += events(h, &b.bytes).count() as u64;
                }
            }
        }
        n
    });
    let rate = |t: Duration| mb / t.as_secs_f64();
    println!(
        "{path}: {mb:.1} MB, {nblocks} blocks, {nevents} events ({:.1} B/event)",
        bytes.len() as f64 / nevents as f64
    );
    println!("split into frames:  {:8.0} MB/s", rate(split_t));
    println!(
        "iterate events:     {:8.0} MB/s ({:.0} Mevents/s)",
        rate(iter_t),
        nevents as f64 / iter_t.as_secs_f64() / 1e6
    );
    println!("split + iterate:    {:8.0} MB/s", rate(both_t));
}
