//! Bench 1: how long the RTS's `writeEventLog` call takes in the shim, for
//! real 2 MiB capability-buffer blocks.
//!
//! Each scenario runs in a child process (the shim has one stream per
//! process): the child starts the real writer the way a C main's RTS would
//! (`init_event_log_writer` with `$ELSTREAM` set), connects a consumer to its
//! UNIX socket that reads everything or never reads, then hands the writer a
//! real header and real blocks from one or two threads, timing every call.

use std::ffi::c_void;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use elstream::writer::WRITER;
use elstream_format::{Frame, StreamDecoder, DATA_END};

use crate::stats::{percentile, Table};

/// A real block counts as a full capability buffer from this size on
/// (9.0.2's buffers are 2 MiB; the RTS writes one out when the next event
/// does not fit).
const FULL_BLOCK: usize = 2_000_000;
/// Distinct blocks in the sample; the writers cycle through them.
const SAMPLE_BLOCKS: usize = 16;
/// The yield load's eventlog rate (ghc-rts-notes: ~120 MB/s with -N2).
const PACE_MBPS: f64 = 120.0;
const RING: &str = "64M";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consumer {
    /// Reads and discards everything as fast as it can.
    Reading,
    /// Connected, never reads.
    Stalled,
}

#[derive(Args, Debug)]
pub struct ChildArgs {
    /// Eventlog holding the header and the sample blocks.
    #[arg(long)]
    sample: PathBuf,
    #[arg(long, value_enum)]
    consumer: Consumer,
    #[arg(long)]
    writers: usize,
    /// Total write calls (split between the writers).
    #[arg(long)]
    calls: usize,
    /// Total rate in MB/s the writers are paced at; 0 = back to back.
    #[arg(long, default_value_t = 0.0)]
    pace_mbps: f64,
}

/// Writes a small eventlog (header, the first full-size blocks, data end)
/// taken from a real log, for the child processes to load.
pub fn write_sample(log: &Path, out: &Path) -> (usize, f64) {
    let mut file =
        std::fs::File::open(log).unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let mut dec = StreamDecoder::new();
    let mut header = None;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 4 << 20];
    'read: loop {
        let n = file.read(&mut buf).expect("read eventlog");
        if n == 0 {
            break;
        }
        dec.push(&buf[..n]);
        while let Some(frame) = dec.next_frame().expect("decode eventlog") {
            match frame {
                Frame::Header(h) => header = Some(h.raw),
                Frame::Block(b) if b.bytes.len() >= FULL_BLOCK => {
                    blocks.push(b.bytes);
                    if blocks.len() == SAMPLE_BLOCKS {
                        break 'read;
                    }
                }
                _ => {}
            }
        }
    }
    let header = header.expect("the log has a header");
    assert!(
        !blocks.is_empty(),
        "no full-size (>= {FULL_BLOCK} B) blocks in {}",
        log.display()
    );
    let mean = blocks.iter().map(Vec::len).sum::<usize>() as f64 / blocks.len() as f64;
    let mut bytes = header;
    for b in &blocks {
        bytes.extend_from_slice(b);
    }
    bytes.extend_from_slice(&DATA_END);
    std::fs::write(out, bytes).expect("write sample");
    (blocks.len(), mean)
}

fn load_sample(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = std::fs::read(path).expect("read sample");
    let mut dec = StreamDecoder::new();
    dec.push(&bytes);
    let mut header = None;
    let mut blocks = Vec::new();
    while let Some(frame) = dec.next_frame().expect("decode sample") {
        match frame {
            Frame::Header(h) => header = Some(h.raw),
            Frame::Block(b) => blocks.push(b.bytes),
            Frame::DataEnd => {}
        }
    }
    (header.expect("sample header"), blocks)
}

/// The GHC RTS's call into the writer, as the RTS makes it.
fn rts_write(bytes: &[u8]) {
    let write = WRITER.write_event_log.expect("writeEventLog");
    // SAFETY: the FFI edge: the writer reads `len` bytes at `ptr`, valid for the
    // call, and never writes through the pointer (the RTS's type is `void *`).
    unsafe { write(bytes.as_ptr() as *mut c_void, bytes.len()) };
}

/// One scenario, in this (child) process: prints a `RESULT key=value...` line.
pub fn child(a: ChildArgs) {
    let (header, blocks) = load_sample(&a.sample);
    let init = WRITER.init_event_log_writer.expect("initEventLogWriter");
    // SAFETY: the FFI edge: the C-main path, where the RTS calls init once
    // before any write; with no RTS linked it starts the stream from $ELSTREAM.
    unsafe { init() };
    let stream = elstream::lifecycle::get()
        .expect("the writer started a stream from $ELSTREAM")
        .shared();

    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let socket = stream.config().socket.clone();
        let stop = stop.clone();
        let mode = a.consumer;
        std::thread::spawn(move || {
            let mut conn = UnixStream::connect(&socket).expect("connect to the shim");
            conn.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = vec![0u8; 1 << 20];
            while !stop.load(Ordering::Relaxed) {
                match mode {
                    Consumer::Reading => match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => panic!("consumer read: {e}"),
                    },
                    Consumer::Stalled => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream.consumers().consumers.load(Ordering::Relaxed) < 1 {
        assert!(Instant::now() < deadline, "the consumer never registered");
        std::thread::sleep(Duration::from_millis(1));
    }

    rts_write(&header);
    let per_writer = a.calls.div_ceil(a.writers);
    let mean_block = blocks.iter().map(Vec::len).sum::<usize>() as f64 / blocks.len() as f64;
    // Each writer writes every `interval`; the writers are spread over it.
    let interval = (a.pace_mbps > 0.0)
        .then(|| Duration::from_secs_f64(a.writers as f64 * mean_block / (a.pace_mbps * 1e6)));
    // The yardstick, timed in the same loop just before each write call (same
    // threads, pacing, consumer and machine load): a plain copy of the block
    // into a ring-sized buffer of the writer's own, touched first and cycled
    // through like the ring.
    let cap = stream.ring().capacity();
    let started = Instant::now();
    let timed = timed_calls(&blocks, a.writers, per_writer, interval, |_| {
        let mut dst = vec![1u8; cap / a.writers];
        let mut off = 0;
        move |block: &[u8]| {
            if off + block.len() > dst.len() {
                off = 0;
            }
            let t = Instant::now();
            dst[off..off + block.len()].copy_from_slice(std::hint::black_box(block));
            std::hint::black_box(&dst);
            let copy = t.elapsed().as_nanos() as u64;
            off += block.len();
            let t = Instant::now();
            rts_write(block);
            (copy, t.elapsed().as_nanos() as u64)
        }
    });
    let mut memcpy: Vec<u64> = timed.iter().map(|c| c.1 .0).collect();
    memcpy.sort_unstable();
    let mut calls: Vec<(Instant, u64)> = timed.iter().map(|c| (c.0, c.1 .1)).collect();
    let elapsed = started.elapsed();

    if a.consumer == Consumer::Reading {
        // Let the consumer take what is still in flight before counting.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = u64::MAX;
        while Instant::now() < deadline {
            let now = stream.consumers().bytes_delivered.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let ring = stream.ring().counters();
    let delivered = stream.consumers().bytes_delivered.load(Ordering::Relaxed);
    let dropped = stream.consumers().blocks_dropped.load(Ordering::Relaxed);
    // The ring's first lap touches its pages for the first time (page faults):
    // reported apart from the steady state that follows.
    calls.sort_unstable_by_key(|c| c.0);
    let lap = ((stream.ring().capacity() as f64 / mean_block).ceil() as usize).min(calls.len() / 2);
    let mut first: Vec<u64> = calls[..lap].iter().map(|c| c.1).collect();
    let mut lat: Vec<u64> = calls[lap..].iter().map(|c| c.1).collect();
    first.sort_unstable();
    lat.sort_unstable();
    let us = |ns: u64| ns as f64 / 1e3;
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e3;
    println!(
        "RESULT lap={} lap_p50={:.1} lap_max={:.1} calls={} p50={:.1} p99={:.1} max={:.1} \
         mean={:.1} written={} delivered={} evicted={} dropped={} secs={:.3} \
         memcpy_p50={:.1} memcpy_p99={:.1} memcpy_max={:.1}",
        first.len(),
        us(percentile(&first, 50.0)),
        us(percentile(&first, 100.0)),
        lat.len(),
        us(percentile(&lat, 50.0)),
        us(percentile(&lat, 99.0)),
        us(percentile(&lat, 100.0)),
        mean,
        ring.bytes_written + header.len() as u64,
        delivered,
        ring.blocks_evicted,
        dropped,
        elapsed.as_secs_f64(),
        us(percentile(&memcpy, 50.0)),
        us(percentile(&memcpy, 99.0)),
        us(percentile(&memcpy, 100.0)),
    );
    // The consumer may be blocked in read; exiting ends it (and the I/O thread).
    let _ = consumer;
    std::process::exit(0);
}

/// Runs `per_writer` calls of `make(w)`'s function on each of `writers`
/// threads (paced by `interval` when given); returns (start, what the call
/// measured) of every call.
fn timed_calls<T: Send, F: FnMut(&[u8]) -> T>(
    blocks: &[Vec<u8>],
    writers: usize,
    per_writer: usize,
    interval: Option<Duration>,
    make: impl Fn(usize) -> F + Sync,
) -> Vec<(Instant, T)> {
    let barrier = Barrier::new(writers);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (barrier, make) = (&barrier, &make);
                s.spawn(move || {
                    let mut call = make(w);
                    let mut lat = Vec::with_capacity(per_writer);
                    barrier.wait();
                    let t0 = Instant::now();
                    for i in 0..per_writer {
                        if let Some(iv) = interval {
                            let due = t0 + iv * i as u32 + iv * w as u32 / writers as u32;
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let block = &blocks[(i * writers + w) % blocks.len()];
                        lat.push((Instant::now(), call(block)));
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer thread"))
            .collect()
    })
}

fn run_child(
    sample: &Path,
    sock: &Path,
    consumer: Consumer,
    writers: usize,
    calls: usize,
    pace: f64,
) -> std::collections::BTreeMap<String, String> {
    let exe = std::env::current_exe().expect("own executable");
    let out = Command::new(exe)
        .arg("latency-child")
        .arg("--sample")
        .arg(sample)
        .arg("--consumer")
        .arg(consumer.to_possible_value().unwrap().get_name())
        .arg("--writers")
        .arg(writers.to_string())
        .arg("--calls")
        .arg(calls.to_string())
        .arg("--pace-mbps")
        .arg(pace.to_string())
        .env("ELSTREAM", format!("unix:{},ring={RING}", sock.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run latency child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "latency child failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT from the latency child: {stdout}"));
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs every scenario; returns the markdown section.
pub fn run(log: &Path, dir: &Path, quick: bool) -> String {
    let sample = dir.join("sample.eventlog");
    let (nblocks, mean) = write_sample(log, &sample);
    let (paced_calls, flat_calls) = if quick { (60, 200) } else { (300, 1000) };
    let mut table = Table::new(&[
        "writers",
        "pacing",
        "consumer",
        "calls (steady)",
        "p50 µs",
        "p99 µs",
        "max µs",
        "mean µs",
        "memcpy p50 / p99 / max µs",
        "p99 ÷ memcpy, max ÷ memcpy",
        "first ring lap: calls, p50 / max µs",
        "achieved MB/s",
        "consumer got",
    ]);
    let mut n = 0;
    for pace in [PACE_MBPS, 0.0] {
        for consumer in [Consumer::Reading, Consumer::Stalled] {
            for writers in [1, 2, 4] {
                n += 1;
                let calls = if pace > 0.0 { paced_calls } else { flat_calls };
                eprintln!(
                    "bench latency: {writers} writer(s), {}, consumer {consumer:?}, {calls} calls",
                    if pace > 0.0 { "paced" } else { "back to back" }
                );
                let sock = dir.join(format!("lat{n}.sock"));
                let r = run_child(&sample, &sock, consumer, writers, calls, pace);
                let f = |k: &str| -> f64 { r[k].parse().expect(k) };
                let written = f("written");
                let delivered = match consumer {
                    Consumer::Reading => format!(
                        "{:.1}%, {} blocks dropped",
                        100.0 * f("delivered") / written,
                        r["dropped"]
                    ),
                    Consumer::Stalled => "– (never reads)".into(),
                };
                table.row(vec![
                    writers.to_string(),
                    if pace > 0.0 {
                        format!("{pace:.0} MB/s total")
                    } else {
                        "back to back".into()
                    },
                    format!("{consumer:?}").to_lowercase(),
                    r["calls"].clone(),
                    r["p50"].clone(),
                    r["p99"].clone(),
                    r["max"].clone(),
                    r["mean"].clone(),
                    format!(
                        "{} / {} / {}",
                        r["memcpy_p50"], r["memcpy_p99"], r["memcpy_max"]
                    ),
                    format!(
                        "{:.2}, {:.2}",
                        f("p99") / f("memcpy_p50"),
                        f("max") / f("memcpy_p50")
                    ),
                    format!("{}, {} / {}", r["lap"], r["lap_p50"], r["lap_max"]),
                    format!("{:.0}", written / 1e6 / f("secs")),
                    delivered,
                ]);
            }
        }
    }
    format!(
        "### 1. Shim write-call latency (`writeEventLog`, real 2 MiB blocks)\n\n\
         Real writer in-process (C-main path: `init_event_log_writer` with \
         `ELSTREAM=unix:...,ring={RING}`), {nblocks} real blocks of {:.0} B mean from a \
         Yield `+RTS -l` log, cycled; one consumer on the UNIX socket. Each call timed \
         alone; each row is its own process. Percentiles are over the steady state: the \
         ring's first lap (the first {RING} of blocks, whose pages the process touches for \
         the first time) is reported apart. \"Paced\" spreads the writes at the yield \
         load's rate; \"back to back\" writes as fast as the calls return. The memcpy \
         columns time a plain copy of each block into a ring-sized buffer of the writer's \
         own, just before each write call in the same loop (same threads, pacing, consumer \
         and machine load); the ratios divide the write call's p99 and max by the \
         memcpy's p50.\n\n{}",
        mean,
        table.render()
    )
}
