//! Bench 3: parser throughput on a large real 9.0.2 eventlog (the yield
//! load's `+RTS -l` file), against the ghc-events checker on the same file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use elstream_format::{events, Frame, StreamDecoder};

use crate::stats::{all_secs, median, secs, Table};

/// Pushes of this size, as a relay reading a socket would.
const CHUNK: usize = 64 << 10;

/// Splits into frames, dropping each block as it comes; returns the block count.
fn split(bytes: &[u8]) -> u64 {
    let mut d = StreamDecoder::new();
    let mut n = 0u64;
    for c in bytes.chunks(CHUNK) {
        d.push(c);
        while let Some(f) = d.next_frame().expect("decode") {
            n += matches!(f, Frame::Block(_)) as u64;
        }
    }
    n
}

/// Splits and walks every event of every block (marker included), touching
/// type, time and payload; returns the event count.
fn split_and_iterate(bytes: &[u8]) -> u64 {
    let mut d = StreamDecoder::new();
    let mut n = 0u64;
    let mut acc = 0u64;
    for c in bytes.chunks(CHUNK) {
        d.push(c);
        while let Some(f) = d.next_frame().expect("decode") {
            if let Frame::Block(b) = f {
                let h = d.header().expect("header before blocks");
                for e in events(h, &b.bytes) {
                    let e = e.expect("event");
                    acc ^= e.time ^ u64::from(e.ty) ^ e.payload.len() as u64;
                    n += 1;
                }
            }
        }
    }
    std::hint::black_box(acc);
    n
}

fn timed<F: FnMut() -> u64>(rounds: usize, mut f: F) -> (Vec<Duration>, u64) {
    let mut times = Vec::with_capacity(rounds);
    let mut out = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        out = std::hint::black_box(f());
        times.push(t.elapsed());
    }
    (times, out)
}

pub fn run(log: &Path, rounds: usize, checker_rounds: usize) -> String {
    let bytes = std::fs::read(log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()));
    let mb = bytes.len() as f64 / 1e6;
    eprintln!("bench parse: {mb:.1} MB, {rounds} rounds of each of ours");
    // Interleave ours too, so a noisy moment hits both alike.
    let mut split_t = Vec::new();
    let mut iter_t = Vec::new();
    let mut blocks = 0;
    let mut nevents = 0;
    for _ in 0..rounds {
        let (t, b) = timed(1, || split(&bytes));
        split_t.extend(t);
        blocks = b;
        let (t, e) = timed(1, || split_and_iterate(&bytes));
        iter_t.extend(t);
        nevents = e;
    }
    drop(bytes);

    let checker = testkit::checker();
    let mut check_t = Vec::new();
    for i in 0..checker_rounds {
        eprintln!("bench parse: ghc-events checker round {}", i + 1);
        let t = Instant::now();
        let out = Command::new(&checker)
            .arg(log)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run the checker");
        check_t.push(t.elapsed());
        assert!(out.status.success(), "checker failed: {}", out.status);
        let c = testkit::parse_check_output(&String::from_utf8_lossy(&out.stdout));
        c.assert_ok();
        // Both parsers saw the same events (ours counts block markers too).
        assert_eq!(c.frames, nevents, "ghc-events and elstream disagree");
    }

    let rate = |t: Duration| mb / t.as_secs_f64();
    let check_med = median(&check_t);
    let mut table = Table::new(&[
        "parser",
        "runs",
        "median s",
        "all runs s",
        "MB/s (median)",
        "Mevents/s",
        "× ghc-events",
    ]);
    for (name, times) in [
        ("elstream `StreamDecoder` split into frames", &split_t),
        (
            "elstream split + iterate every event (**the measure**)",
            &iter_t,
        ),
        ("ghc-events checker (`testkit::checker()`, wall)", &check_t),
    ] {
        let med = median(times);
        table.row(vec![
            name.to_string(),
            times.len().to_string(),
            secs(med),
            all_secs(times),
            format!("{:.0}", rate(med)),
            format!("{:.1}", nevents as f64 / med.as_secs_f64() / 1e6),
            format!("{:.1}", check_med.as_secs_f64() / med.as_secs_f64()),
        ]);
    }
    let speed = rate(median(&iter_t));
    let ratio = check_med.as_secs_f64() / median(&iter_t).as_secs_f64();
    format!(
        "### 3. Parser throughput on a real 9.0.2 eventlog\n\n\
         The yield load's `+RTS -l` file: {mb:.1} MB, {blocks} blocks, {nevents} events \
         (markers included; ghc-events' count agrees). Ours: the file in memory, pushed in \
         64 KiB chunks, one thread, {rounds} rounds interleaved. ghc-events: the checker \
         program (`testkit/haskell/EventlogCheck.hs`, incremental `GHC.RTS.Events` decoder) \
         reading the file, whole-process wall time, {checker_rounds} runs.\n\n{}\n\
         **split + iterate: {speed:.0} MB/s** (target ≥ 1000: {}); \
         **{ratio:.0}× ghc-events** (target ≥ 50×: {}).\n",
        table.render(),
        if speed >= 1000.0 { "met" } else { "NOT met" },
        if ratio >= 50.0 { "met" } else { "NOT met" },
    )
}
