//! What the shim asks of the RTS itself: probing what the linked RTS offers,
//! and the operations on it. Those run on one thread of the shim's own
//! ("elstream-rts"), which also drives the periodic flush.
//!
//! One adapter per RTS generation, behind [`Adapter`], chosen at start from the
//! symbols the linked RTS exports (`glue::elstream_glue_generation`):
//! `ghc90` (9.0: the shim stops the world around start/end itself),
//! `ghc92` (9.2+: start/end/flush stop the world themselves; 10.0+'s trace
//! flags for classes where present) and `patched` (ghc-patches/ on 9.0.2).

mod ghc90;
mod ghc92;
mod glue;
mod patched;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use elstream_format::{Class, ClassSet};

use crate::error::Error;
use crate::shared::Shared;

/// Layout of GHC's `EventLogWriter` (includes/rts/EventLogWriter.h).
#[repr(C)]
pub struct EventLogWriter {
    pub init_event_log_writer: Option<unsafe extern "C" fn()>,
    pub write_event_log: Option<unsafe extern "C" fn(*mut std::ffi::c_void, usize) -> bool>,
    pub flush_event_log: Option<unsafe extern "C" fn()>,
    pub stop_event_log_writer: Option<unsafe extern "C" fn()>,
}

/// The class bits shared with the C glue (and the patched RTS's flag numbers).
const CLASS_BITS: [(Class, u32); 6] = [
    (Class::Scheduler, 1),
    (Class::Gc, 2),
    (Class::NonmovingGc, 4),
    (Class::SparksSampled, 8),
    (Class::SparksFull, 16),
    (Class::User, 32),
];

fn to_mask(set: ClassSet) -> u32 {
    CLASS_BITS
        .iter()
        .filter(|(c, _)| set.contains(*c))
        .map(|(_, b)| b)
        .sum()
}

fn from_mask(mask: u32) -> ClassSet {
    let mut set = ClassSet::EMPTY;
    for (c, b) in CLASS_BITS {
        if mask & b != 0 {
            set.insert(c);
        }
    }
    set
}

/// The RTS generation the adapters are told apart by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// 9.0 (or older): no NullEventLogWriter.
    Ghc90,
    /// 9.2 to 9.x: NullEventLogWriter, start/end stop the world themselves.
    Ghc92,
    /// 10.0+: also getTraceFlag/setTraceFlag.
    Ghc100,
}

impl Generation {
    pub fn name(self) -> &'static str {
        match self {
            Generation::Ghc90 => "ghc-9.0",
            Generation::Ghc92 => "ghc-9.2+",
            Generation::Ghc100 => "ghc-10.0+",
        }
    }
}

/// What the linked RTS offers, found once at start.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// The public eventlog API is there (an RTS with the eventlog).
    pub rts: bool,
    pub generation: Generation,
    /// Hidden `TRACE_*` switches reachable (static link).
    pub switches: bool,
    /// GHC 10.0's public getTraceFlag/setTraceFlag.
    pub trace_flags: bool,
    /// Stop-the-world reachable (static link, threaded RTS).
    pub stop_world: bool,
    /// The hidden functions that re-post start-up state are reachable.
    pub post_state: bool,
    /// The thread lists can be walked for the state replay.
    pub list_threads: bool,
    /// Level of the patched RTS API (ghc-patches/), 0 on stock GHC.
    pub patched: i32,
    /// GHC 9.2's public `flushEventLog(Capability **)` (or patch 6's backport).
    pub public_flush: bool,
    /// `requestHeapCensus` (9.2+).
    pub heap_census: bool,
    /// `startHeapProfTimer`/`stopHeapProfTimer`.
    pub heap_timer: bool,
}

impl Capabilities {
    /// The adapter for this RTS.
    pub fn adapter(&self) -> &'static dyn Adapter {
        if self.patched > 0 {
            &patched::Patched
        } else if self.generation == Generation::Ghc90 {
            &ghc90::Ghc90
        } else {
            &ghc92::Ghc92
        }
    }

    pub fn can_flush(&self) -> bool {
        self.public_flush || self.patched > 0 || self.stop_world
    }

    /// Upstream's API first: it is what stays when the patches are gone.
    pub fn flush_mechanism(&self) -> &'static str {
        if self.public_flush {
            "ghc-9.2-api"
        } else if self.patched > 0 {
            "patched-rts"
        } else if self.stop_world {
            "stop-the-world"
        } else {
            "unavailable (not a static -threaded link, and no GHC >= 9.2 flushEventLog)"
        }
    }

    /// Upstream's API first, as for flush.
    pub fn classes_mechanism(&self) -> &'static str {
        if self.trace_flags {
            "ghc-10.0-trace-flags"
        } else if self.patched > 0 {
            "patched-rts"
        } else if self.switches {
            "rts-switches"
        } else {
            "shim-filter"
        }
    }

    pub fn sync_mechanism(&self) -> &'static str {
        if self.patched > 0 {
            "patched-rts"
        } else if self.generation != Generation::Ghc90 {
            "ghc-9.2-restart"
        } else if self.stop_world && self.post_state {
            "stop-the-world-repost"
        } else {
            "shim-cache"
        }
    }

    pub fn threads_mechanism(&self) -> &'static str {
        if self.list_threads && self.stop_world {
            "rts-thread-lists"
        } else {
            "stream-only (threads the stream never saw created are not replayed)"
        }
    }

    pub fn heap_census_mechanism(&self) -> &'static str {
        if self.heap_census {
            "requestHeapCensus"
        } else {
            "unavailable (GHC < 9.2)"
        }
    }

    pub fn heap_timer_mechanism(&self) -> &'static str {
        if self.heap_timer {
            "heap-prof-timer"
        } else {
            "unavailable"
        }
    }
}

pub fn probe() -> Capabilities {
    // SAFETY: the probes only compare weak symbol addresses with NULL and call
    // RTS functions that are safe at any time after hs_init.
    unsafe {
        let generation = match glue::elstream_glue_generation() {
            100 => Generation::Ghc100,
            92 => Generation::Ghc92,
            _ => Generation::Ghc90,
        };
        Capabilities {
            rts: glue::elstream_glue_rts_present() != 0,
            generation,
            switches: glue::elstream_glue_has_switches() != 0,
            trace_flags: glue::elstream_glue_has_trace_flags() != 0,
            stop_world: glue::elstream_glue_can_stop_world() != 0,
            post_state: glue::elstream_glue_can_post_state() != 0,
            list_threads: glue::elstream_glue_can_list_threads() != 0,
            patched: glue::elstream_glue_patched_api(),
            public_flush: glue::elstream_glue_public_flush_api() != 0,
            heap_census: glue::elstream_glue_heap_census_available() != 0,
            heap_timer: glue::elstream_glue_heap_timer_available() != 0,
        }
    }
}

pub fn eventlog_running() -> bool {
    // SAFETY: eventLogStatus reads one RTS flag.
    unsafe { glue::elstream_glue_eventlog_running() != 0 }
}

pub fn scheduler_running() -> bool {
    // SAFETY: reads the RTS's scheduler state word (NULL-checked).
    unsafe { glue::elstream_glue_scheduler_running() != 0 }
}

/// Whether the RTS collects GC statistics (which its GC events need).
pub fn gc_stats_collected() -> bool {
    // SAFETY: reads one public RtsFlags field (NULL-checked).
    unsafe { glue::elstream_glue_gc_stats_collected() != 0 }
}

/// The classes the RTS traces now, if they can be read.
pub fn classes() -> Option<ClassSet> {
    // SAFETY: plain reads of RTS flags, NULL-checked in C; getTraceFlag only
    // reads the flag cache.
    unsafe {
        if glue::elstream_glue_has_trace_flags() != 0 {
            Some(from_mask(glue::elstream_glue_get_trace_flags()))
        } else {
            (glue::elstream_glue_has_switches() != 0)
                .then(|| from_mask(glue::elstream_glue_get_classes()))
        }
    }
}

/// One RTS generation's way of doing each operation. Called on the shim's
/// RTS thread only, one at a time.
pub trait Adapter: Sync {
    /// Become the RTS's writer (replacing a `+RTS -l` file writer), with the
    /// classes if given, and replay the state a reader needs.
    fn take_over(&self, cx: &Cx, classes: Option<ClassSet>) -> Result<(), Error>;
    /// End the RTS's eventlog session.
    fn end(&self, cx: &Cx) -> Result<(), Error>;
    /// Write out every capability buffer now.
    fn flush(&self, cx: &Cx) -> Result<(), Error>;
    fn set_classes(&self, cx: &Cx, classes: ClassSet) -> Result<(), Error>;
    /// Post the start-up state again, and flush.
    fn sync(&self, cx: &Cx) -> Result<(), Error>;
}

/// What an operation works on: the shared state (restart flag, synthesized
/// blocks) and the RTS thread's handle (what the RTS offers, counters).
pub struct Cx<'a> {
    pub shared: &'a Shared,
    pub rts: &'a RtsThread,
}

impl Cx<'_> {
    pub fn caps(&self) -> Capabilities {
        self.rts.caps
    }
}

/// The shim's writer, handed to `startEventLogging` (set once, at spawn).
static WRITER: OnceLock<&'static EventLogWriter> = OnceLock::new();

fn writer_ptr() -> *const std::ffi::c_void {
    WRITER.get().map_or(std::ptr::null(), |w| {
        *w as *const EventLogWriter as *const _
    })
}

/// Set once hs_exit has begun: no more operations on the RTS.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Held for the length of each operation, so shutdown can wait one out.
static BUSY: Mutex<()> = Mutex::new(());

/// Called by the RTS (through `OnExitHook`) first thing in `hs_exit`.
#[no_mangle]
pub extern "C" fn elstream_rts_exiting() {
    crate::panic::guard((), || {
        EXITING.store(true, Ordering::SeqCst);
        drop(BUSY.lock().unwrap_or_else(|p| p.into_inner()));
    })
}

/// An operation on the RTS.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// See [`Adapter::take_over`].
    TakeOver(Option<ClassSet>),
    /// End the RTS's eventlog session.
    End,
    /// Write out every capability buffer now.
    Flush,
    SetClasses(ClassSet),
    /// Post the start-up state again, and flush.
    Sync,
    /// Ask the RTS for a heap census now (heap profiling on, 9.2+).
    HeapCensus,
    /// Start or stop the heap profiler's timer (periodic samples).
    HeapTimer(bool),
    /// Nothing: makes the thread look at its flush interval again.
    Wake,
}

/// Pause lengths of flushes, for `status` and the benchmarks.
#[derive(Default)]
pub struct FlushStats {
    pub count: AtomicU64,
    pub total_ns: AtomicU64,
    pub max_ns: AtomicU64,
}

type Request = (Op, mpsc::SyncSender<Result<(), Error>>);

/// The handle of the "elstream-rts" thread.
pub struct RtsThread {
    /// What the linked RTS offers (probed at start).
    pub caps: Capabilities,
    tx: Mutex<mpsc::Sender<Request>>,
    /// Periodic flush interval in µs; 0 = off.
    pub interval_us: AtomicU64,
    pub flushes: FlushStats,
    /// Threads the last replay synthesized (for `status` and tests).
    pub threads_replayed: AtomicU64,
}

impl RtsThread {
    fn new() -> (RtsThread, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel();
        (
            RtsThread {
                caps: probe(),
                tx: Mutex::new(tx),
                interval_us: AtomicU64::new(0),
                flushes: FlushStats::default(),
                threads_replayed: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Runs `op` on the RTS thread and waits for it.
    pub fn run(&self, op: Op) -> Result<(), Error> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((op, reply))
            .map_err(|_| Error::Rts("the shim's RTS thread is gone".into()))?;
        answer
            .recv()
            .map_err(|_| Error::Rts("the shim's RTS thread stopped".into()))?
    }

    pub fn set_interval(&self, interval: Option<Duration>) {
        let us = interval.map_or(0, |d| d.as_micros().max(1) as u64);
        self.interval_us.store(us, Ordering::Release);
        // Wake the thread so a shorter interval takes effect now.
        let (reply, _answer) = mpsc::sync_channel(1);
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((Op::Wake, reply));
    }
}

/// Starts the "elstream-rts" thread, which restarts the RTS's session with
/// `writer` when an operation needs it.
pub fn spawn(
    shared: Arc<Shared>,
    writer: &'static EventLogWriter,
) -> Result<Arc<RtsThread>, Error> {
    let _ = WRITER.set(writer);
    let (rts, rx) = RtsThread::new();
    let rts = Arc::new(rts);
    let handle = rts.clone();
    std::thread::Builder::new()
        .name("elstream-rts".into())
        .spawn(move || {
            // A panic here is caught, reported once and in `status`; the
            // program runs on, and later operations fail instead of hanging.
            crate::panic::thread("elstream-rts", || {
                let cx = Cx {
                    shared: &shared,
                    rts: &rts,
                };
                let mut next_flush: Option<Instant> = None;
                loop {
                    let us = rts.interval_us.load(Ordering::Acquire);
                    let interval = (us > 0).then(|| Duration::from_micros(us));
                    next_flush = match (interval, next_flush) {
                        (None, _) => None,
                        (Some(i), None) => Some(Instant::now() + i),
                        (Some(i), Some(t)) => Some(t.min(Instant::now() + i)),
                    };
                    let got = match next_flush {
                        Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match got {
                        Ok((Op::Wake, _)) => {}
                        Ok((op, reply)) => {
                            let _ = reply.send(execute(&cx, op));
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            // Fixed rate: the flush's own time does not stretch the period.
                            let now = Instant::now();
                            next_flush = match (interval, next_flush) {
                                (Some(i), Some(t)) if t + i > now => Some(t + i),
                                _ => None,
                            };
                            if execute(&cx, Op::Flush).is_err() && EXITING.load(Ordering::Acquire) {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if EXITING.load(Ordering::Acquire) {
                        break;
                    }
                }
            });
            if !EXITING.load(Ordering::Acquire) {
                // SAFETY: frees the RTS task rts_lock made for this thread, if any.
                unsafe { glue::elstream_glue_thread_done() };
            }
        })
        .map(|_| handle)
        .map_err(|e| Error::Rts(format!("cannot start the RTS thread: {e}")))
}

fn stop_world_error(rc: i32) -> Result<(), Error> {
    match rc {
        0 => Ok(()),
        -1 => Err(Error::Unavailable(
            "the RTS cannot be stopped from here (needs a static -threaded link)".into(),
        )),
        -2 => Err(Error::Rts("the RTS is shutting down".into())),
        _ => Err(Error::Rts(
            "startEventLogging refused (another writer is running)".into(),
        )),
    }
}

/// Most live threads a replay lists.
const MAX_REPLAY_THREADS: usize = 1 << 20;

/// Live threads found with the world stopped: ids, and the labels of those
/// that have one (9.6+).
pub struct LiveThreads {
    pub ids: Vec<u64>,
    pub labels: Vec<(u64, Vec<u8>)>,
}

/// Bytes for copied thread labels.
const LABEL_BYTES: usize = 1 << 20;

fn parse_labels(raw: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while raw.len() >= at + 12 {
        let id = u64::from_ne_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        let len = u32::from_ne_bytes(raw[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        let Some(text) = raw.get(at + 12..at + 12 + len) else {
            break;
        };
        out.push((id, text.to_vec()));
        at += 12 + len;
    }
    out
}

/// Runs `ops` with the world stopped (through `stopped`, the generation's own
/// C entry) and, when `OP_THREADS` is among them, returns the live threads
/// (`None` when the RTS's thread lists cannot be walked here).
fn with_threads(ops: u32, stopped: impl Fn(u32) -> i32) -> Result<Option<LiveThreads>, Error> {
    if ops & glue::OP_THREADS == 0 {
        return stop_world_error(stopped(ops)).map(|()| None);
    }
    let mut buf: Vec<u64> = vec![0; 1 << 14];
    let mut labels: Vec<u8> = vec![0; LABEL_BYTES];
    let mut ops = ops;
    loop {
        // SAFETY: the buffers outlive the call that fills them; the glue writes
        // at most their lengths, and they are detached again below.
        unsafe {
            glue::elstream_glue_threads_buffer(buf.as_mut_ptr(), buf.len() as _);
            glue::elstream_glue_labels_buffer(labels.as_mut_ptr(), labels.len() as _);
        }
        let rc = stopped(ops);
        let mut ids: *const u64 = std::ptr::null();
        let mut text: *const u8 = std::ptr::null();
        // SAFETY: reads back the counts the walk stored, then detaches the buffers.
        let (n, label_len) = unsafe {
            let n = glue::elstream_glue_threads(&mut ids);
            let l = glue::elstream_glue_labels(&mut text);
            glue::elstream_glue_threads_buffer(std::ptr::null_mut(), 0);
            glue::elstream_glue_labels_buffer(std::ptr::null_mut(), 0);
            (n, l)
        };
        stop_world_error(rc)?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        if n <= buf.len() || buf.len() >= MAX_REPLAY_THREADS {
            buf.truncate(n.min(buf.len()));
            labels.truncate(label_len.max(0) as usize);
            return Ok(Some(LiveThreads {
                ids: buf,
                labels: parse_labels(&labels),
            }));
        }
        // More threads than room: list again (only the listing) with room for all.
        buf = vec![0; (n * 2).min(MAX_REPLAY_THREADS)];
        ops = glue::OP_THREADS;
    }
}

/// Runs one operation; called on the RTS thread only.
fn execute(cx: &Cx, op: Op) -> Result<(), Error> {
    let _busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
    if EXITING.load(Ordering::Acquire) || !scheduler_running() {
        return Err(Error::Rts("the RTS is shutting down".into()));
    }
    let caps = cx.caps();
    let adapter = caps.adapter();
    match op {
        Op::Wake => Ok(()),
        Op::TakeOver(classes) => adapter.take_over(cx, classes),
        Op::End => adapter.end(cx),
        Op::Flush => {
            let t0 = Instant::now();
            let r = adapter.flush(cx);
            if r.is_ok() {
                let ns = t0.elapsed().as_nanos() as u64;
                let f = &cx.rts.flushes;
                f.count.fetch_add(1, Ordering::Relaxed);
                f.total_ns.fetch_add(ns, Ordering::Relaxed);
                f.max_ns.fetch_max(ns, Ordering::Relaxed);
            }
            r
        }
        Op::SetClasses(set) => adapter.set_classes(cx, set),
        Op::Sync => adapter.sync(cx),
        Op::HeapCensus => {
            if !caps.heap_census {
                return Err(Error::Unavailable(format!(
                    "heap-census: {}",
                    caps.heap_census_mechanism()
                )));
            }
            // SAFETY: requestHeapCensus only sets a flag the RTS reads at its next GC.
            unsafe { glue::elstream_glue_heap_census() };
            Ok(())
        }
        Op::HeapTimer(on) => {
            if !caps.heap_timer {
                return Err(Error::Unavailable(
                    "heap-profile: the RTS has no heap profiler timer".into(),
                ));
            }
            // SAFETY: the RTS's public timer switches.
            unsafe { glue::elstream_glue_heap_timer(on as _) };
            Ok(())
        }
    }
}

/// Threads alive when scheduler events went off: those created while they
/// are off are the ones to replay when they come back on.
static LIVE_AT_SCHED_OFF: Mutex<Option<std::collections::BTreeSet<u64>>> = Mutex::new(None);

/// Switches classes with the world stopped (through `stopped`) when
/// scheduler events go on or off, so no thread is running across the
/// switch, and replays the threads created while they were off. `Ok(false)`
/// when nothing needed that: the caller switches the classes its usual way.
fn set_classes_following_threads(
    cx: &Cx,
    set: ClassSet,
    stopped: impl Fn(u32) -> i32,
) -> Result<bool, Error> {
    let sched_now = classes().is_some_and(|c| c.contains(Class::Scheduler));
    let sched_next = set.contains(Class::Scheduler);
    if sched_now == sched_next || !cx.caps().list_threads || !cx.caps().stop_world {
        return Ok(false);
    }
    let threads = with_threads(glue::OP_SET_CLASSES | glue::OP_THREADS, stopped)?;
    let mut saved = LIVE_AT_SCHED_OFF.lock().unwrap_or_else(|p| p.into_inner());
    match threads {
        Some(t) if !sched_next => *saved = Some(t.ids.into_iter().collect()),
        Some(t) => {
            let known = saved.take().unwrap_or_default();
            let ids: Vec<u64> = t.ids.into_iter().filter(|id| !known.contains(id)).collect();
            let labels = t
                .labels
                .into_iter()
                .filter(|(id, _)| !known.contains(id))
                .collect();
            replay_threads(cx, Some(LiveThreads { ids, labels }));
        }
        None => {}
    }
    Ok(true)
}

/// Appends a block of `CreateThread` events for `ids` (threads that exist but
/// that the stream never saw created) to the ring, so readers can follow them.
fn replay_threads(cx: &Cx, threads: Option<LiveThreads>) {
    let Some(threads) = threads else { return };
    let n = cx.shared.replay_threads(&threads.ids, &threads.labels);
    cx.rts.threads_replayed.store(n as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_masks_round_trip() {
        for letters in ["", "s", "gu", "sgpu", "sgnpfu"] {
            let set = ClassSet::parse(letters).unwrap();
            assert_eq!(from_mask(to_mask(set)), set);
        }
    }

    #[test]
    fn without_an_rts_nothing_is_available() {
        let caps = probe();
        assert!(!caps.rts && !caps.switches && !caps.stop_world && !caps.post_state);
        assert_eq!(caps.patched, 0);
        assert!(!caps.public_flush && !caps.can_flush());
        assert!(classes().is_none());
        assert_eq!(caps.classes_mechanism(), "shim-filter");
        assert_eq!(caps.generation, Generation::Ghc90);
    }
}
