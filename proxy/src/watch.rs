//! `elstream watch`: a subscriber for people. Connects to the shim or a proxy
//! (or reads a file / stdin), decodes the eventlog as it arrives and prints
//! user messages and markers as they come, plus one summary line per interval
//! of stream time: events, GCs and their pauses, thread activity.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use elstream_format::eventlog::{
    EVENT_CREATE_THREAD, EVENT_GC_END, EVENT_GC_START, EVENT_RUN_THREAD, EVENT_USER_MARKER,
    EVENT_USER_MSG,
};
use elstream_format::{events, Endpoint, Frame, Header, StreamDecoder};

use crate::error::{Error, Result};

pub struct WatchOpts {
    pub source: Endpoint,
    /// Summary interval, in the program's own (eventlog) time.
    pub every: Duration,
    /// Print every event, not only user events and summaries.
    pub all: bool,
    /// Stop after this many user messages/markers (0 = never); for scripts.
    pub max_user: u64,
}

#[derive(Default)]
struct Window {
    events: u64,
    gcs: u64,
    gc_pause_ns: u64,
    gc_max_ns: u64,
    runs: u64,
    threads_created: u64,
    caps: std::collections::BTreeSet<u16>,
}

pub fn watch(opts: WatchOpts) -> Result<i32> {
    let mut input: Box<dyn Read> = match &opts.source {
        Endpoint::Unix(p) => Box::new(
            UnixStream::connect(p).map_err(|e| Error::io(format!("connect {}", p.display()), e))?,
        ),
        Endpoint::Tcp(a) => Box::new(
            TcpStream::connect(a.as_str()).map_err(|e| Error::io(format!("connect {a}"), e))?,
        ),
        Endpoint::File(p) | Endpoint::Fifo(p) => Box::new(
            std::fs::File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e))?,
        ),
        Endpoint::Stdin => Box::new(std::io::stdin()),
        Endpoint::Udp(_) => return Err(Error::Usage(
            "watch reads a byte stream; for UDP run `elstream recv udp://... | elstream watch -`"
                .into(),
        )),
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut decoder = StreamDecoder::new();
    let mut header: Option<Header> = None;
    let mut buf = vec![0u8; 1 << 16];
    let mut window = Window::default();
    let mut window_start: Option<u64> = None;
    let mut gc_started: HashMap<u16, u64> = HashMap::new();
    let mut user_seen = 0u64;
    let every = opts.every.as_nanos().max(1) as u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", e)),
        };
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame().map_err(|e| Error::Source {
            endpoint: opts.source.to_string(),
            message: format!("not an eventlog: {e}"),
        })? {
            match frame {
                Frame::Header(h) => {
                    let _ = writeln!(out, "── eventlog session: {} event types", h.types.len());
                    header = Some(h);
                }
                Frame::DataEnd => {
                    let _ = writeln!(out, "── data end (program stopped streaming)");
                }
                Frame::Block(block) => {
                    let Some(h) = header.as_ref() else { continue };
                    for ev in events(h, &block.bytes).map_while(|e| e.ok()) {
                        if ev.ty == elstream_format::eventlog::EVENT_BLOCK_MARKER {
                            continue;
                        }
                        let start = *window_start.get_or_insert(ev.time);
                        if ev.time >= start + every {
                            print_window(&mut out, start, every, &window);
                            window = Window::default();
                            window_start = Some(ev.time - (ev.time - start) % every);
                        }
                        window.events += 1;
                        window.caps.insert(block.cap);
                        match ev.ty {
                            EVENT_GC_START => {
                                gc_started.insert(block.cap, ev.time);
                            }
                            EVENT_GC_END => {
                                if let Some(t0) = gc_started.remove(&block.cap) {
                                    let d = ev.time.saturating_sub(t0);
                                    window.gcs += 1;
                                    window.gc_pause_ns += d;
                                    window.gc_max_ns = window.gc_max_ns.max(d);
                                }
                            }
                            EVENT_RUN_THREAD => window.runs += 1,
                            EVENT_CREATE_THREAD => window.threads_created += 1,
                            EVENT_USER_MSG | EVENT_USER_MARKER => {
                                let kind = if ev.ty == EVENT_USER_MSG {
                                    "user  "
                                } else {
                                    "marker"
                                };
                                let text = String::from_utf8_lossy(ev.payload);
                                let _ = writeln!(
                                    out,
                                    "{:>12} cap {:>5}  {kind} {text}",
                                    secs(ev.time),
                                    cap(block.cap)
                                );
                                user_seen += 1;
                                if opts.max_user > 0 && user_seen >= opts.max_user {
                                    return Ok(0);
                                }
                            }
                            _ if opts.all => {
                                let desc = h
                                    .type_info(ev.ty)
                                    .map_or("unknown event", |t| t.desc.as_str());
                                let _ = writeln!(
                                    out,
                                    "{:>12} cap {:>5}  {desc}",
                                    secs(ev.time),
                                    cap(block.cap)
                                );
                            }
                            _ => {}
                        }
                    }
                    let _ = out.flush();
                }
            }
        }
    }
    if let Some(start) = window_start {
        print_window(&mut out, start, every, &window);
    }
    Ok(0)
}

fn secs(ns: u64) -> String {
    format!("{:.6}s", ns as f64 / 1e9)
}

fn cap(c: u16) -> String {
    if c == elstream_format::eventlog::GLOBAL_CAP {
        "-".into()
    } else {
        c.to_string()
    }
}

fn print_window(out: &mut impl Write, start: u64, every: u64, w: &Window) {
    let _ = writeln!(
        out,
        "{:>12} +{:<6} {:>8} events  caps {:<3} GCs {:>3} (pause total {:.2} ms, max {:.2} ms)  runs {:>6}  new threads {}",
        secs(start),
        format!("{}ms", every / 1_000_000),
        w.events,
        w.caps.iter().filter(|c| **c != elstream_format::eventlog::GLOBAL_CAP).count(),
        w.gcs,
        w.gc_pause_ns as f64 / 1e6,
        w.gc_max_ns as f64 / 1e6,
        w.runs,
        w.threads_created,
    );
}
