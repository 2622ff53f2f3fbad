//! The analysis model: one GHC eventlog session's events turned into
//! aggregates, shared by `elstream watch`, `elstream ui` and the metrics
//! exporters. Bytes are decoded by `elstream-format` only.
//!
//! Retention is bounded: per-capability intervals are kept in full detail
//! for the last [`Config::detail`] of stream time (and at most
//! [`Config::max_intervals`]); activity, GC and span figures are also summed
//! in time buckets that coarsen (double their width) so the whole run fits
//! in [`Config::max_buckets`]; samples (heap, threads, sparks, heap profile)
//! thin out to at most [`Config::max_points`]; totals and distributions are
//! kept for the whole run. [`Analysis::summary`] answers any time range at a
//! given number of columns from those structures, without the events.

mod series;
mod summary;

use std::collections::{HashMap, VecDeque};

use std::ops::ControlFlow;

use elstream_format::eventlog::{
    fields, BlockMarker, Event, Fields, EVENT_BLOCK_MARKER, GLOBAL_CAP,
};
use elstream_format::{events, Block, FormatError, Frame, Header, StreamDecoder};
use serde::Serialize;

pub use series::{Buckets, LogHist, Points, Totals};
pub use summary::*;

/// Retention bounds.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stream time for which capability intervals are kept in full detail (ns).
    pub detail: u64,
    /// At most this many intervals in full detail, over all capabilities.
    pub max_intervals: usize,
    /// Initial bucket width (ns); it doubles as the run grows.
    pub bucket: u64,
    pub max_buckets: usize,
    pub max_points: usize,
    /// Individual GC pauses, spans and markers kept (the newest).
    pub max_items: usize,
    /// Bytes of the newest blocks kept for the raw event tail (decoded only
    /// when the tail is asked for: no cost per event).
    pub tail_bytes: usize,
    /// Distinct span names; further names fold into `other`.
    pub max_span_names: usize,
    /// Count events into consecutive windows of this much stream time (ns),
    /// aligned to the first event ([`Analysis::take_windows`]); none: off.
    pub window: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            detail: 300_000_000_000,
            max_intervals: 2_000_000,
            bucket: 1_000_000,
            max_buckets: 1 << 16,
            max_points: 20_000,
            max_items: 200_000,
            tail_bytes: 8 << 20,
            max_span_names: 200,
            window: None,
        }
    }
}

/// What a capability is doing in an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    Idle,
    Running,
    Gc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub start: u64,
    pub end: u64,
    pub what: Activity,
    /// The running thread (0 for GC).
    pub thread: u32,
}

/// GHC 9.0.2 posts GCStatsGHC just after the leader's EndGC (0.3 µs in
/// Demo): a pause takes the generation of a GCStatsGHC within it or this
/// soon after it.
const GC_STATS_SLACK: u64 = 200_000;

/// Bucket quantities of a capability.
const RUN: usize = 0;
const GC: usize = 1;

#[derive(Clone, Debug)]
struct Cap {
    what: Activity,
    thread: u32,
    since: u64,
    intervals: VecDeque<Interval>,
    activity: Buckets<2>,
    sparks: Option<SparkCounters>,
    spark_points: Points<SparkCounters>,
    /// Per-spark events (create..gc) counted, when `-lf` is on.
    spark_events: [u64; 7],
}

/// The RTS's spark counters of one capability (SparkCounters, `-lp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SparkCounters {
    pub created: u64,
    pub dud: u64,
    pub overflowed: u64,
    pub converted: u64,
    pub gcd: u64,
    pub fizzled: u64,
    pub remaining: u64,
}

/// One StartGC..EndGC pair on a capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub start: u64,
    pub end: u64,
    pub cap: u16,
    /// From the GCStatsGHC event of this GC, when the log has one (0 = minor).
    pub generation: Option<u16>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GenStats {
    /// GCStatsGHC events of this generation (one per GC).
    pub gcs: u64,
    pub copied: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeapSample {
    pub size: u64,
    pub live: u64,
    pub blocks: u64,
    pub allocated: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ThreadCounts {
    pub running: u32,
    pub runnable: u32,
    pub blocked: u32,
    /// Threads that finished since the start.
    pub finished: u64,
    pub created: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadState {
    Running,
    Runnable,
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub name: u32,
    pub start: u64,
    pub end: u64,
    pub cap: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub time: u64,
    pub cap: Option<u16>,
    pub text: String,
}

/// One raw event, for the tail view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TailEvent {
    pub time: u64,
    pub cap: Option<u16>,
    pub ty: u16,
    /// The header's description of the type.
    pub name: String,
    /// User message / marker / label text.
    pub text: Option<String>,
    /// Other fields, as text.
    pub detail: String,
}

/// A heap profile sample: residency per band (`-hT` closure type, `-hi`
/// info table, cost centre label).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProfSample {
    pub bands: Vec<(u32, u64)>,
}

/// Who the program is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Info {
    pub rts: Option<String>,
    pub args: Vec<String>,
    pub pid: Option<u32>,
    pub caps: u16,
    /// Wall clock at the stream's time 0 (unix seconds), from WallClockTime.
    pub wall_clock: Option<f64>,
}

/// The stream's own state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    pub bytes: u64,
    pub blocks: u64,
    pub events: u64,
    pub headers: u64,
    pub data_end: bool,
    /// In-band drop notices from the shim / proxy (`elstream: dropped N blocks (B bytes)`).
    pub drop_notices: u64,
    pub dropped_blocks: u64,
    pub dropped_bytes: u64,
    /// The decoder's error, after which nothing more is read.
    pub error: Option<String>,
    /// Bytes of an incomplete last event dropped at the end (a cut log).
    pub truncated: Option<u64>,
    /// Last stream time seen (ns).
    pub time: u64,
}

/// What happened in one window of stream time (`elstream watch`'s summary
/// line): events by the time they carry; a GC in the window of its EndGC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: u64,
    pub len: u64,
    pub events: u64,
    /// Capabilities (not the global buffer) with events in the window.
    pub caps: u32,
    /// StartGC..EndGC pairs ended in the window, their total and longest pause.
    pub gc_pauses: u64,
    pub gc_pause_ns: u64,
    pub gc_pause_max_ns: u64,
    /// RunThread events.
    pub runs: u64,
    /// CreateThread events.
    pub threads_created: u64,
}

/// The open window and those closed but not yet taken.
#[derive(Debug, Default)]
struct Windows {
    open: Option<Window>,
    caps: Vec<bool>,
    closed: VecDeque<Window>,
}

impl Windows {
    /// Opens the window `t` falls in, closing the open one when `t` is past it.
    fn at(&mut self, t: u64, len: u64) {
        let w = self.open.get_or_insert(Window {
            start: t,
            len,
            ..Window::default()
        });
        if t >= w.start + len {
            let start = t - (t - w.start) % len;
            let done = std::mem::replace(
                w,
                Window {
                    start,
                    len,
                    ..Window::default()
                },
            );
            self.caps.iter_mut().for_each(|c| *c = false);
            // Bounded: a taker that never takes loses the oldest.
            if self.closed.len() >= 4096 {
                self.closed.pop_front();
            }
            self.closed.push_back(done);
        }
    }
}

/// One session's analysis.
pub struct Analysis {
    cfg: Config,
    decoder: StreamDecoder,
    header: Option<Header>,
    pub info: Info,
    pub health: Health,
    caps: Vec<Cap>,
    pub pauses: VecDeque<Pause>,
    pub pause_hist: LogHist,
    /// GC pause count and time per bucket: [count, ns].
    pause_buckets: Buckets<2>,
    pub generations: std::collections::BTreeMap<u16, GenStats>,
    /// Start of the current GC (the first StartGC, until the last EndGC).
    gc_open: HashMap<u16, u64>,
    /// Recent GCStatsGHC (time, generation).
    gc_stats: VecDeque<(u64, u16)>,
    /// Longest pause, span and marker gap: how far back a range query looks.
    max_pause: u64,
    max_span: u64,
    gen_hist: std::collections::BTreeMap<u16, LogHist>,
    pub gcs: u64,
    pub syncs: u64,
    /// Per capability, the time it asked for a GC (RequestSeqGC/ParGC).
    sync_open: HashMap<u16, u64>,
    /// Time from a capability's GC request to its own StartGC (all the
    /// others stopping: GHC's "sync" time), summed over the run.
    pub sync_ns: u64,
    heap: HeapSample,
    heap_time: [u64; 4],
    /// (time, bytes) of the latest HeapAllocated per capability (0: global).
    allocated: Vec<(u64, u64)>,
    /// HeapSize, HeapLive, BlocksSize samples.
    pub heap_series: [Points<u64>; 3],
    /// HeapAllocated per capability (index 0: the global buffer, c + 1: cap c):
    /// each capability posts its own allocation so far.
    pub alloc_series: Vec<Points<u64>>,
    pub heap_peak: HeapSample,
    pub max_heap: Option<u64>,
    /// State by thread id (GHC numbers threads from 1 upwards): a dense
    /// table, as a hash lookup per scheduler event would cost most of the time.
    threads: Vec<Option<ThreadState>>,
    /// Time of each thread's state (the latest event that set it).
    thread_time: Vec<u64>,
    pub thread_counts: ThreadCounts,
    pub thread_points: Points<ThreadCounts>,
    pub labels: HashMap<u32, String>,
    pub span_names: Vec<String>,
    span_index: HashMap<String, u32>,
    open_spans: HashMap<(u32, String), Vec<(u64, u16)>>,
    /// STOPs whose START has not been seen (yet): key -> stop times.
    orphan_stops: HashMap<String, Vec<u64>>,
    pub spans: VecDeque<Span>,
    pub span_hist: Vec<LogHist>,
    pub user_messages: u64,
    pub markers: VecDeque<Marker>,
    pub marker_count: u64,
    tail: VecDeque<(Option<u16>, Vec<u8>)>,
    tail_held: usize,
    pub bands: Vec<String>,
    band_index: HashMap<Vec<u8>, u32>,
    prof_open: Option<(u64, ProfSample)>,
    pub prof_points: Points<ProfSample>,
    pub prof_samples: u64,
    intervals_held: usize,
    windows: Windows,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The span name of a `START`/`STOP` key: the key without its numeric
/// words, so `work 3` (one of many concurrent `work` spans) is `work`.
pub fn span_name(key: &str) -> &str {
    let t = key.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '#');
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    if t.is_empty() {
        key
    } else {
        t
    }
}

fn drop_notice(msg: &str) -> Option<(u64, u64)> {
    let rest = msg.strip_prefix("elstream: dropped ")?;
    let mut w = rest.split([' ', '(']);
    let blocks = w.next()?.parse().ok()?;
    let bytes = rest.split('(').nth(1)?.split(' ').next()?.parse().ok()?;
    Some((blocks, bytes))
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis::new(Config::default())
    }
}

impl Analysis {
    pub fn new(cfg: Config) -> Analysis {
        Analysis {
            decoder: StreamDecoder::new(),
            header: None,
            info: Info::default(),
            health: Health::default(),
            caps: Vec::new(),
            pauses: VecDeque::new(),
            pause_hist: LogHist::default(),
            pause_buckets: Buckets::new(cfg.bucket, cfg.max_buckets),
            generations: Default::default(),
            gc_open: HashMap::new(),
            sync_open: HashMap::new(),
            sync_ns: 0,
            gc_stats: VecDeque::new(),
            max_pause: 0,
            max_span: 0,
            gen_hist: Default::default(),
            gcs: 0,
            syncs: 0,
            heap: HeapSample::default(),
            heap_time: [0; 4],
            allocated: Vec::new(),
            heap_series: std::array::from_fn(|_| Points::new(cfg.max_points)),
            alloc_series: Vec::new(),
            heap_peak: HeapSample::default(),
            max_heap: None,
            threads: Vec::new(),
            thread_time: Vec::new(),
            thread_counts: ThreadCounts::default(),
            thread_points: Points::new(cfg.max_points),
            labels: HashMap::new(),
            span_names: Vec::new(),
            span_index: HashMap::new(),
            open_spans: HashMap::new(),
            orphan_stops: HashMap::new(),
            spans: VecDeque::new(),
            span_hist: Vec::new(),
            user_messages: 0,
            markers: VecDeque::new(),
            marker_count: 0,
            tail: VecDeque::new(),
            tail_held: 0,
            bands: Vec::new(),
            band_index: HashMap::new(),
            prof_open: None,
            prof_points: Points::new(cfg.max_points),
            prof_samples: 0,
            intervals_held: 0,
            windows: Windows::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Feeds raw eventlog bytes (any chunking). A decoding error is kept in
    /// [`Health::error`] and returned; later bytes are ignored.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        if self.health.error.is_some() {
            return Ok(());
        }
        self.health.bytes += bytes.len() as u64;
        self.decoder.push(bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => self.frame(f),
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.health.error = Some(e.to_string());
                    return Err(e);
                }
            }
        }
    }

    /// The input ended: takes the whole events of a cut-off last block.
    pub fn finish(&mut self) {
        if self.health.error.is_some() {
            return;
        }
        let before = self.decoder.buffered();
        loop {
            match self.decoder.finish() {
                Ok(Some(f)) => self.frame(f),
                Ok(None) => break,
                Err(e) => {
                    self.health.error = Some(e.to_string());
                    break;
                }
            }
        }
        if before > 0 && !self.health.data_end {
            self.health.truncated = Some(before as u64);
        }
    }

    /// Feeds one decoded frame (for callers that decode themselves).
    pub fn frame(&mut self, f: Frame) {
        match f {
            Frame::Header(h) => {
                self.health.headers += 1;
                self.health.data_end = false;
                self.header = Some(h);
            }
            Frame::DataEnd => {
                self.health.data_end = true;
                self.close_all();
            }
            Frame::Block(b) => {
                self.block(&b);
                self.keep_tail(b);
            }
        }
    }

    fn keep_tail(&mut self, b: Block) {
        self.tail_held += b.bytes.len();
        self.tail
            .push_back(((b.cap != GLOBAL_CAP).then_some(b.cap), b.bytes));
        while self.tail.len() > 1 && self.tail_held > self.cfg.tail_bytes {
            let (_, old) = self.tail.pop_front().unwrap();
            self.tail_held -= old.len();
        }
    }

    /// Feeds one block of the current header's session.
    pub fn block(&mut self, b: &Block) {
        let _ = self.block_with(b, |_, _, _| ControlFlow::Continue(()));
    }

    /// Like [`block`](Self::block), calling `after` with each event once the
    /// model has taken it (a viewer that prints events as they come: the
    /// windows closed by it are in [`take_windows`](Self::take_windows)).
    /// `Break` stops the walk there.
    pub fn block_with(
        &mut self,
        b: &Block,
        mut after: impl FnMut(&mut Self, &Header, &Event<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(h) = self.header.take() else {
            return ControlFlow::Continue(());
        };
        self.health.blocks += 1;
        let cap = (b.cap != GLOBAL_CAP).then_some(b.cap);
        if let Some(c) = cap {
            self.cap_mut(c);
        }
        for ev in events(&h, &b.bytes) {
            let Ok(ev) = ev else { break };
            if ev.ty == EVENT_BLOCK_MARKER {
                if let Some(m) = BlockMarker::parse(ev.raw) {
                    self.health.time = self.health.time.max(m.time);
                }
                continue;
            }
            self.event(cap, ev.ty, ev.time, ev.payload);
            if after(self, &h, &ev).is_break() {
                self.header = Some(h);
                return ControlFlow::Break(());
            }
        }
        self.header = Some(h);
        ControlFlow::Continue(())
    }

    /// The windows closed so far (see [`Config::window`]), oldest first.
    pub fn take_windows(&mut self) -> impl Iterator<Item = Window> + '_ {
        self.windows.closed.drain(..)
    }

    /// Closes the open window (at the end of the input), if any.
    pub fn close_window(&mut self) -> Option<Window> {
        self.windows.caps.iter_mut().for_each(|c| *c = false);
        self.windows.open.take()
    }

    fn count_window(&mut self, cap: Option<u16>, t: u64) {
        let Some(len) = self.cfg.window else { return };
        let ws = &mut self.windows;
        ws.at(t, len);
        let w = ws.open.as_mut().expect("opened");
        w.events += 1;
        if let Some(c) = cap {
            let i = c as usize;
            if ws.caps.len() <= i {
                ws.caps.resize(i + 1, false);
            }
            if !std::mem::replace(&mut ws.caps[i], true) {
                w.caps += 1;
            }
        }
    }

    fn cap_mut(&mut self, c: u16) -> &mut Cap {
        let i = c as usize;
        while self.caps.len() <= i {
            self.caps.push(Cap {
                what: Activity::Idle,
                thread: 0,
                since: 0,
                intervals: VecDeque::new(),
                activity: Buckets::new(self.cfg.bucket, self.cfg.max_buckets),
                sparks: None,
                spark_points: Points::new(self.cfg.max_points),
                spark_events: [0; 7],
            });
        }
        self.info.caps = self.info.caps.max(c + 1);
        &mut self.caps[i]
    }

    /// Moves capability `c` to `what` at `t`, closing its current interval.
    fn transition(&mut self, c: u16, t: u64, what: Activity, thread: u32) {
        let detail = self.cfg.detail;
        self.cap_mut(c);
        let held = &mut self.intervals_held;
        let cap = &mut self.caps[c as usize];
        let start = cap.since.min(t);
        if cap.what != Activity::Idle && t > start {
            let k = if cap.what == Activity::Gc { GC } else { RUN };
            cap.activity.add_span(start, t, k);
            cap.intervals.push_back(Interval {
                start,
                end: t,
                what: cap.what,
                thread: cap.thread,
            });
            *held += 1;
        }
        cap.what = what;
        cap.thread = thread;
        cap.since = t;
        // Retention: drop detail older than `detail`, and the oldest beyond the bound.
        let cut = t.saturating_sub(detail);
        while cap.intervals.front().is_some_and(|i| i.end < cut) {
            cap.intervals.pop_front();
            *held -= 1;
        }
        if self.intervals_held > self.cfg.max_intervals {
            self.trim_intervals();
        }
    }

    fn trim_intervals(&mut self) {
        // Drop the oldest tenth, across capabilities, by start time.
        let target = self.cfg.max_intervals - self.cfg.max_intervals / 10;
        while self.intervals_held > target {
            let Some(c) = self
                .caps
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.intervals.front().map(|iv| (iv.start, i)))
                .min()
                .map(|(_, i)| i)
            else {
                break;
            };
            let n = (self.caps[c].intervals.len() / 10).max(1);
            self.caps[c].intervals.drain(..n);
            self.intervals_held -= n;
        }
    }

    fn close_all(&mut self) {
        let t = self.health.time;
        for c in 0..self.caps.len() as u16 {
            self.transition(c, t, Activity::Idle, 0);
        }
    }

    /// Thread `tid` is in state `s` from `t`: unless an event of a later
    /// time said otherwise (blocks of different capabilities come in file
    /// order, so a thread's CreateThread can be read after its finish).
    fn set_thread(&mut self, tid: u32, s: Option<ThreadState>, t: u64) {
        const MAX_THREADS: usize = 1 << 24;
        let i = tid as usize;
        if i >= self.threads.len() {
            if i >= MAX_THREADS {
                return;
            }
            self.threads.resize((i + 1).next_power_of_two(), None);
            self.thread_time.resize(self.threads.len(), 0);
        }
        if t < self.thread_time[i] {
            return;
        }
        self.thread_time[i] = t;
        let old = std::mem::replace(&mut self.threads[i], s);
        if old == s {
            return;
        }
        let tc = &mut self.thread_counts;
        for (st, d) in [
            (old, u32::wrapping_sub as fn(u32, u32) -> u32),
            (s, u32::wrapping_add),
        ] {
            let slot = match st {
                Some(ThreadState::Running) => &mut tc.running,
                Some(ThreadState::Runnable) => &mut tc.runnable,
                Some(ThreadState::Blocked) => &mut tc.blocked,
                None => continue,
            };
            *slot = d(*slot, 1);
        }
    }

    fn sample_threads(&mut self, t: u64) {
        let due = self
            .thread_points
            .last()
            .is_none_or(|(last, v)| *v != self.thread_counts && t >= last + self.cfg.bucket / 10);
        if due {
            self.thread_points.push(t, self.thread_counts);
        }
    }

    fn span_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.span_index.get(name) {
            return i;
        }
        let name = if self.span_names.len() >= self.cfg.max_span_names {
            "other"
        } else {
            name
        };
        if let Some(&i) = self.span_index.get(name) {
            return i;
        }
        let i = self.span_names.len() as u32;
        self.span_names.push(name.to_string());
        self.span_index.insert(name.to_string(), i);
        self.span_hist.push(LogHist::default());
        i
    }

    fn assign_generation(&mut self, t: u64, g: u16) {
        // Pauses are sorted by start: those starting at or before `t`, back
        // as far as the longest pause reaches.
        let hi = self.pauses.partition_point(|p| p.start <= t);
        let lo = self
            .pauses
            .partition_point(|p| p.start < t.saturating_sub(self.max_pause + GC_STATS_SLACK));
        for p in self.pauses.range_mut(lo..hi) {
            if p.generation.is_none() && t <= p.end + GC_STATS_SLACK {
                p.generation = Some(g);
                self.gen_hist.entry(g).or_default().record(p.end - p.start);
            }
        }
    }

    /// Records heap figure `k` (0 size, 1 live, 2 blocks, 3 allocated) at `t`.
    fn heap_sample(&mut self, t: u64, k: usize, v: u64) {
        fn field(h: &mut HeapSample, k: usize) -> &mut u64 {
            match k {
                0 => &mut h.size,
                1 => &mut h.live,
                2 => &mut h.blocks,
                _ => &mut h.allocated,
            }
        }
        if k < 3 {
            self.heap_series[k].push(t, v);
        }
        // The current figures: each the latest in time (blocks come in any order).
        if t >= self.heap_time[k] {
            self.heap_time[k] = t;
            *field(&mut self.heap, k) = v;
        }
        let pk = field(&mut self.heap_peak, k);
        *pk = (*pk).max(v);
    }

    fn close_prof(&mut self) {
        if let Some((t, s)) = self.prof_open.take() {
            self.prof_samples += 1;
            self.prof_points.push(t, s);
        }
    }

    fn user_message(&mut self, cap: Option<u16>, t: u64, m: &str) {
        self.user_messages += 1;
        if let Some((blocks, bytes)) = drop_notice(m) {
            self.health.drop_notices += 1;
            self.health.dropped_blocks += blocks;
            self.health.dropped_bytes += bytes;
            return;
        }
        // Spans pair by key and by the thread running on the capability, so
        // concurrent spans of one name on different threads do not mix.
        let thread = cap
            .and_then(|c| self.caps.get(c as usize))
            .filter(|c| c.what == Activity::Running)
            .map_or(0, |c| c.thread);
        if let Some(key) = m.strip_prefix("START ") {
            // A thread that moved capabilities may have its STOP in a block
            // that came first: pair with it.
            if let Some(v) = self.orphan_stops.get_mut(key) {
                if let Some(i) = v.iter().position(|s| *s >= t) {
                    let end = v.remove(i);
                    if v.is_empty() {
                        self.orphan_stops.remove(key);
                    }
                    self.close_span(key, t, end, cap.unwrap_or(GLOBAL_CAP));
                    return;
                }
            }
            let open = self
                .open_spans
                .entry((thread, key.to_string()))
                .or_default();
            if open.len() < 1024 {
                open.push((t, cap.unwrap_or(GLOBAL_CAP)));
            }
        } else if let Some(key) = m.strip_prefix("STOP ") {
            let k = (thread, key.to_string());
            let start = match self.open_spans.get_mut(&k).and_then(|v| v.pop()) {
                Some(s) => Some(s),
                // Stopped on another thread: the oldest open span of that key.
                None => self
                    .open_spans
                    .iter_mut()
                    .filter(|((_, kk), v)| kk == key && !v.is_empty())
                    .min_by_key(|(_, v)| v[0].0)
                    .map(|(_, v)| v.remove(0)),
            };
            if self.open_spans.get(&k).is_some_and(|v| v.is_empty()) {
                self.open_spans.remove(&k);
            }
            match start {
                Some((start, c)) => self.close_span(key, start, t, c),
                None if self.orphan_stops.len() < 4096 => self
                    .orphan_stops
                    .entry(key.to_string())
                    .or_default()
                    .push(t),
                None => {}
            }
        }
    }

    fn close_span(&mut self, key: &str, start: u64, end: u64, cap: u16) {
        let name = self.span_id(span_name(key));
        self.span_hist[name as usize].record(end.saturating_sub(start));
        self.max_span = self.max_span.max(end.saturating_sub(start));
        let sp = Span {
            name,
            start,
            end,
            cap,
        };
        Self::insert_sorted(&mut self.spans, sp, |s| s.start, self.cfg.max_items);
    }

    /// Inserts in time order: blocks of different capabilities come in file
    /// order, not time order, but each is time-ordered and mostly near the end.
    fn insert_sorted<T>(q: &mut VecDeque<T>, x: T, key: impl Fn(&T) -> u64, max: usize) {
        let k = key(&x);
        let mut at = q.len();
        while at > 0 && key(&q[at - 1]) > k {
            at -= 1;
        }
        q.insert(at, x);
        Self::bound(q, max);
    }

    fn bound<T>(q: &mut VecDeque<T>, max: usize) {
        while q.len() > max {
            q.pop_front();
        }
    }

    /// One event, on capability `cap` (`None`: the global buffer).
    pub fn event(&mut self, cap: Option<u16>, ty: u16, t: u64, payload: &[u8]) {
        self.health.events += 1;
        self.health.time = self.health.time.max(t);
        self.count_window(cap, t);
        let f = fields(ty, payload);
        if let Some(f) = f {
            match f {
                Fields::RunThread { thread } => {
                    if let Some(w) = self.windows.open.as_mut() {
                        w.runs += 1;
                    }
                    if let Some(c) = cap {
                        self.transition(c, t, Activity::Running, thread);
                    }
                    self.set_thread(thread, Some(ThreadState::Running), t);
                    self.sample_threads(t);
                }
                Fields::StopThread { thread, status, .. } => {
                    if let Some(c) = cap {
                        self.transition(c, t, Activity::Idle, 0);
                    }
                    let s = match status {
                        5 => None,
                        1..=3 | 17 => Some(ThreadState::Runnable),
                        _ => Some(ThreadState::Blocked),
                    };
                    if s.is_none() {
                        self.thread_counts.finished += 1;
                    }
                    self.set_thread(thread, s, t);
                    self.sample_threads(t);
                }
                Fields::CreateThread { thread } => {
                    if let Some(w) = self.windows.open.as_mut() {
                        w.threads_created += 1;
                    }
                    self.thread_counts.created += 1;
                    self.set_thread(thread, Some(ThreadState::Runnable), t);
                    self.sample_threads(t);
                }
                Fields::ThreadRunnable { thread } | Fields::ThreadWakeup { thread, .. }
                    if self
                        .threads
                        .get(thread as usize)
                        .is_some_and(|s| s.is_some()) =>
                {
                    self.set_thread(thread, Some(ThreadState::Runnable), t);
                    self.sample_threads(t);
                }
                Fields::ThreadLabel { thread, label } => {
                    let l = text(label);
                    if self.labels.len() < 100_000 || self.labels.contains_key(&thread) {
                        self.labels.insert(thread, l);
                    }
                }
                Fields::RequestSeqGc | Fields::RequestParGc => {
                    if let Some(c) = cap {
                        self.sync_open.insert(c, t);
                    }
                }
                Fields::StartGc => {
                    if let Some(c) = cap {
                        if let Some(asked) = self.sync_open.remove(&c) {
                            self.sync_ns += t.saturating_sub(asked);
                        }
                        self.transition(c, t, Activity::Gc, 0);
                        self.gc_open.insert(c, t);
                    }
                }
                Fields::EndGc => {
                    if let Some(c) = cap {
                        self.transition(c, t, Activity::Idle, 0);
                        if let Some(start) = self.gc_open.remove(&c) {
                            let d = t.saturating_sub(start);
                            if let Some(w) = self.windows.open.as_mut() {
                                w.gc_pauses += 1;
                                w.gc_pause_ns += d;
                                w.gc_pause_max_ns = w.gc_pause_max_ns.max(d);
                            }
                            self.pause_hist.record(d);
                            self.pause_buckets.add(start, 0, 1);
                            self.pause_buckets.add(start, 1, d);
                            let i = self.gc_stats.partition_point(|g| g.0 < start);
                            let generation = self
                                .gc_stats
                                .get(i)
                                .filter(|g| g.0 <= t + GC_STATS_SLACK)
                                .map(|g| g.1);
                            if let Some(g) = generation {
                                self.gen_hist.entry(g).or_default().record(d);
                            }
                            self.max_pause = self.max_pause.max(d);
                            let p = Pause {
                                start,
                                end: t,
                                cap: c,
                                generation,
                            };
                            Self::insert_sorted(
                                &mut self.pauses,
                                p,
                                |p| p.start,
                                self.cfg.max_items,
                            );
                        }
                    }
                }
                Fields::GlobalSync => self.syncs += 1,
                Fields::GcStats {
                    generation, copied, ..
                } => {
                    self.gcs += 1;
                    let g = self.generations.entry(generation).or_default();
                    g.gcs += 1;
                    g.copied += copied;
                    // A pause's generation is that of the GCStatsGHC posted
                    // within it or just after, on any capability; blocks of
                    // different capabilities come in any order.
                    Self::insert_sorted(&mut self.gc_stats, (t, generation), |g| g.0, 4096);
                    self.assign_generation(t, generation);
                }
                Fields::HeapSize { bytes, .. } => self.heap_sample(t, 0, bytes),
                Fields::HeapLive { bytes, .. } => self.heap_sample(t, 1, bytes),
                Fields::BlocksSize { bytes, .. } => self.heap_sample(t, 2, bytes),
                Fields::HeapAllocated { bytes, .. } => {
                    // Each capability posts its own allocation so far: the
                    // heap's is their sum (each capability's latest value).
                    let i = cap.map_or(0, |c| c as usize + 1);
                    if self.allocated.len() <= i {
                        self.allocated.resize(i + 1, (0, 0));
                    }
                    while self.alloc_series.len() <= i {
                        self.alloc_series.push(Points::new(self.cfg.max_points));
                    }
                    self.alloc_series[i].push(t, bytes);
                    if t >= self.allocated[i].0 {
                        self.allocated[i] = (t, bytes);
                    }
                    let total = self.allocated.iter().map(|a| a.1).sum();
                    self.heap_sample(t, 3, total)
                }
                Fields::HeapInfo { max_heap, .. } => {
                    self.max_heap = (max_heap > 0).then_some(max_heap);
                }
                Fields::SparkCounters { counters: k } => {
                    if let Some(c) = cap {
                        let s = SparkCounters {
                            created: k[0],
                            dud: k[1],
                            overflowed: k[2],
                            converted: k[3],
                            gcd: k[4],
                            fizzled: k[5],
                            remaining: k[6],
                        };
                        let cm = self.cap_mut(c);
                        cm.sparks = Some(s);
                        cm.spark_points.push(t, s);
                    }
                }
                Fields::Spark => {
                    if let Some(c) = cap {
                        self.cap_mut(c).spark_events
                            [(ty - elstream_format::eventlog::EVENT_SPARK_CREATE) as usize] += 1;
                    }
                }
                Fields::UserMessage { text: m } => {
                    let m = text(m);
                    self.user_message(cap, t, &m);
                }
                Fields::UserMarker { text: m } => {
                    let m = text(m);
                    self.marker_count += 1;
                    let mk = Marker {
                        time: t,
                        cap,
                        text: m.clone(),
                    };
                    Self::insert_sorted(&mut self.markers, mk, |m| m.time, self.cfg.max_items);
                }
                Fields::HeapProfSampleBegin { .. } => {
                    self.close_prof();
                    self.prof_open = Some((t, ProfSample::default()));
                }
                Fields::HeapProfSampleString {
                    residency, label, ..
                } => {
                    let band = match self.band_index.get(label) {
                        Some(&b) => b,
                        None => {
                            let b = self.bands.len() as u32;
                            self.bands.push(text(label));
                            self.band_index.insert(label.to_vec(), b);
                            b
                        }
                    };
                    if let Some((_, s)) = &mut self.prof_open {
                        s.bands.push((band, residency));
                    }
                }
                Fields::HeapProfSampleEnd { .. } => self.close_prof(),
                Fields::RtsIdentifier { text: r, .. } => self.info.rts = Some(text(r)),
                Fields::ProgramArgs { args, .. } => {
                    self.info.args = args
                        .split(|&b| b == 0)
                        .filter(|a| !a.is_empty())
                        .map(text)
                        .collect();
                }
                Fields::OsProcessPid { pid, .. } => self.info.pid = Some(pid),
                Fields::WallClockTime { secs, nsecs, .. } => {
                    self.info.wall_clock = Some(secs as f64 + nsecs as f64 / 1e9 - t as f64 / 1e9);
                }
                // Capabilities are those blocks come from: CapCreate is not
                // trusted for the count (a 9.6 stream through the shim was
                // seen to carry CapCreate 33608 and 35144).
                _ => {}
            }
        }
    }
}
