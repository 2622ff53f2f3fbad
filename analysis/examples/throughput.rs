//! Analysis throughput on a log file (the bench of the analysis model):
//! `cargo run --release -p elstream-analysis --example throughput -- FILE [ROUNDS]`.
//! Prints MB/s of the decoder alone and of decoder + analysis, median of the rounds.

use std::time::Instant;

use elstream_analysis::Analysis;
use elstream_format::{events, Frame, StreamDecoder};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: throughput FILE [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mb = bytes.len() as f64 / 1e6;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut dec, mut ana) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut d = StreamDecoder::new();
        let mut acc = 0u64;
        for c in bytes.chunks(128 << 10) {
            d.push(c);
            while let Some(f) = d.next_frame().expect("decode") {
                if let Frame::Block(b) = f {
                    for e in events(d.header().unwrap(), &b.bytes).flatten() {
                        acc ^= e.time ^ e.payload.len() as u64;
                    }
                }
            }
        }
        std::hint::black_box(acc);
        dec.push(mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut a = Analysis::default();
        for c in bytes.chunks(128 << 10) {
            a.push(c).expect("decode");
        }
        a.finish();
        ana.push(mb / t.elapsed().as_secs_f64());
        last = Some(a);
    }
    let a = last.unwrap();
    let t = a.totals();
    println!(
        "{path}: {mb:.1} MB, {} events; decoder + event walk {:.0} MB/s, decoder + analysis {:.0} MB/s; retained ~{:.1} MB; {} GC pauses, {} spans",
        t.health.events,
        median(dec),
        median(ana),
        a.memory() as f64 / 1e6,
        t.gc_pauses.count,
        t.spans.iter().map(|s| s.totals.count).sum::<u64>()
    );
}
