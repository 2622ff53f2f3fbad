//! `elstream watch`: a subscriber for people. Connects to the shim or a proxy
//! (or reads a file / stdin), decodes the eventlog as it arrives and prints
//! user messages and markers as they come, plus one summary line per interval
//! of stream time: events, GCs and their pauses, thread activity. The figures
//! are the analysis model's (`elstream-analysis`, as in `elstream ui` and
//! `elstream metrics`): its windows of `--every`.

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::time::Duration;

use elstream_analysis::{Analysis, Config, Window};
use elstream_format::eventlog::{EVENT_USER_MARKER, EVENT_USER_MSG};
use elstream_format::{Endpoint, Frame, StreamDecoder};

use crate::connect::connect;
use crate::error::{Error, Result};

/// `elstream watch`'s options.
#[derive(clap::Args)]
pub struct WatchOpts {
    /// unix:PATH (the shim's socket or a proxy's), tcp://HOST:PORT (a proxy),
    /// a file (PATH or file:PATH), or - (stdin, e.g. from `elstream recv udp://...`).
    #[arg(value_name = "ENDPOINT", value_parser = crate::units::parse_source)]
    pub source: Endpoint,
    /// Summary interval, in the program's own (eventlog) time.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::units::parse_duration)]
    pub every: Duration,
    /// Print every event, not only user events and summaries.
    #[arg(long)]
    pub all: bool,
    /// Exit after this many user messages or markers (default: at the end of
    /// the stream).
    #[arg(long, value_name = "N")]
    pub max_user: Option<u64>,
}

pub fn watch(opts: WatchOpts) -> Result<i32> {
    let mut input: Box<dyn Read> = match &opts.source {
        Endpoint::File(p) | Endpoint::Fifo(p) => Box::new(
            std::fs::File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e))?,
        ),
        Endpoint::Stdin => Box::new(std::io::stdin()),
        Endpoint::Udp(_) => return Err(Error::Usage(
            "watch reads a byte stream; for UDP run `elstream recv udp://... | elstream watch -`"
                .into(),
        )),
        ep @ (Endpoint::Unix(_) | Endpoint::Tcp(_)) => Box::new(
            connect(ep)
                .expect("a stream endpoint")
                .map_err(|e| Error::io(format!("cannot connect to {ep}"), e))?,
        ),
    };
    let out = std::io::stdout();
    // Only what the summary needs is retained: no raw tail, little detail.
    let cfg = Config {
        window: Some(opts.every.as_nanos().clamp(1, u64::MAX as u128) as u64),
        detail: 0,
        tail_bytes: 0,
        max_items: 1024,
        ..Config::default()
    };
    let mut w = Watcher {
        out: out.lock(),
        model: Analysis::new(cfg),
        user_seen: 0,
        opts: &opts,
    };
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 1 << 16];
    let damaged = |message: String| Error::Source {
        endpoint: opts.source.to_string(),
        message,
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", e)),
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if w.frame(frame) {
                        return Ok(0);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Show the whole events before the damage, then say so.
                    let (prefix, left) = decoder.salvage();
                    let kept = prefix.as_ref().map_or(0, |b| b.events);
                    if let Some(b) = prefix {
                        w.frame(Frame::Block(b));
                    }
                    w.end();
                    return Err(damaged(format!(
                        "not an eventlog: {e} (showed the {kept} whole events before the damage, \
                         dropped {left} bytes)"
                    )));
                }
            }
        }
    }
    // End of input: a cut-off last block still has whole events to show.
    let pending = decoder.buffered();
    let mut events = 0;
    let mut kept = 0;
    match decoder.finish() {
        Ok(Some(f)) => {
            if let Frame::Block(b) = &f {
                events = b.events;
                kept = b.bytes.len();
            }
            if w.frame(f) {
                return Ok(0);
            }
        }
        Ok(None) => {}
        Err(e) => return Err(damaged(format!("not an eventlog: {e}"))),
    }
    w.end();
    if pending > 0 && w.model.header().is_none() {
        return Err(damaged(format!(
            "not an eventlog: the input ended after {pending} bytes, inside the header"
        )));
    }
    if pending > 0 {
        return Err(damaged(format!(
            "the input ends inside a block (truncated): showed the {events} whole events of the \
             last block, dropped {} bytes of a cut-off event",
            pending - kept
        )));
    }
    Ok(0)
}

struct Watcher<'a, W: Write> {
    out: W,
    model: Analysis,
    user_seen: u64,
    opts: &'a WatchOpts,
}

impl<W: Write> Watcher<'_, W> {
    /// Shows one frame; true when `--max-user` is reached.
    fn frame(&mut self, frame: Frame) -> bool {
        let out = &mut self.out;
        match frame {
            Frame::Header(h) => {
                let _ = writeln!(out, "── eventlog session: {} event types", h.types.len());
                self.model.frame(Frame::Header(h));
            }
            Frame::DataEnd => {
                let _ = writeln!(out, "── data end (program stopped streaming)");
                self.model.frame(Frame::DataEnd);
            }
            Frame::Block(block) => {
                let c = cap(block.cap);
                let (all, max_user) = (self.opts.all, self.opts.max_user);
                let user_seen = &mut self.user_seen;
                // The model takes each event first: a summary it closes is
                // printed before the event that closed it.
                let flow = self.model.block_with(&block, |model, h, ev| {
                    for win in model.take_windows() {
                        print_window(out, &win);
                    }
                    if ev.ty == EVENT_USER_MSG || ev.ty == EVENT_USER_MARKER {
                        let kind = if ev.ty == EVENT_USER_MSG {
                            "user  "
                        } else {
                            "marker"
                        };
                        let text = String::from_utf8_lossy(ev.payload);
                        let _ = writeln!(out, "{:>12} cap {c:>5}  {kind} {text}", secs(ev.time));
                        *user_seen += 1;
                        if max_user.is_some_and(|m| *user_seen >= m) {
                            return ControlFlow::Break(());
                        }
                    } else if all {
                        let desc = h
                            .type_info(ev.ty)
                            .map_or("unknown event", |t| t.desc.as_str());
                        let _ = writeln!(out, "{:>12} cap {c:>5}  {desc}", secs(ev.time));
                    }
                    ControlFlow::Continue(())
                });
                let _ = out.flush();
                return flow.is_break();
            }
        }
        false
    }

    /// The last (partial) summary window.
    fn end(&mut self) {
        let closed: Vec<Window> = self.model.take_windows().collect();
        for win in closed.iter().chain(self.model.close_window().as_ref()) {
            print_window(&mut self.out, win);
        }
        let _ = self.out.flush();
    }
}

/// A window's length as it was typed: `1h`, `1m`, `2s`, `250ms`.
fn span(ns: u64) -> String {
    const S: u64 = 1_000_000_000;
    match ns {
        n if n % (3600 * S) == 0 => format!("{}h", n / (3600 * S)),
        n if n % (60 * S) == 0 => format!("{}m", n / (60 * S)),
        n if n % S == 0 => format!("{}s", n / S),
        n => format!("{}ms", n / 1_000_000),
    }
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

fn print_window(out: &mut impl Write, w: &Window) {
    let _ = writeln!(
        out,
        "{:>12} +{:<6} {:>8} events  caps {:<3} GCs {:>3} (pause total {:.2} ms, max {:.2} ms)  runs {:>6}  new threads {}",
        secs(w.start),
        span(w.len),
        w.events,
        w.caps,
        w.gc_pauses,
        w.gc_pause_ns as f64 / 1e6,
        w.gc_pause_max_ns as f64 / 1e6,
        w.runs,
        w.threads_created,
    );
}
