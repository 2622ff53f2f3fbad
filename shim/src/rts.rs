//! What the shim asks of the RTS itself, through `csrc/rts_glue.c`: probing
//! what the linked RTS offers, and the operations that need every capability
//! stopped. Those run on one thread of the shim's own ("elstream-rts"), which
//! also drives the periodic flush.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elstream_format::{Class, ClassSet};

use crate::error::Error;
use crate::stream::Stream;
use crate::writer::{EventLogWriter, WRITER};

mod glue {
    use std::ffi::{c_int, c_uint, c_void};
    extern "C" {
        pub fn elstream_glue_rts_present() -> c_int;
        pub fn elstream_glue_eventlog_running() -> c_int;
        pub fn elstream_glue_has_switches() -> c_int;
        pub fn elstream_glue_can_stop_world() -> c_int;
        pub fn elstream_glue_can_post_state() -> c_int;
        pub fn elstream_glue_patched_api() -> c_int;
        pub fn elstream_glue_scheduler_running() -> c_int;
        pub fn elstream_glue_get_classes() -> c_uint;
        pub fn elstream_glue_set_classes(classes: c_uint) -> c_int;
        pub fn elstream_glue_stopped_world(
            ops: c_uint,
            writer: *const c_void,
            classes: c_uint,
        ) -> c_int;
        pub fn elstream_glue_start_unlocked(writer: *const c_void) -> c_int;
        pub fn elstream_glue_end_unlocked();
        pub fn elstream_glue_public_flush_api() -> c_int;
        pub fn elstream_glue_public_flush();
        pub fn elstream_glue_patched_flush();
        pub fn elstream_glue_patched_set_classes(classes: c_uint) -> c_int;
        pub fn elstream_glue_patched_resync();
        pub fn elstream_glue_thread_done();
    }
}

const OP_END: u32 = 1;
const OP_START: u32 = 2;
const OP_SET_CLASSES: u32 = 4;
const OP_POST_STATE: u32 = 8;
const OP_FLUSH: u32 = 16;

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

/// What the linked RTS offers, found once at start.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// The public eventlog API is there (an `-eventlog` RTS).
    pub rts: bool,
    /// Hidden `TRACE_*` switches reachable (static link).
    pub switches: bool,
    /// Stop-the-world reachable (static link, threaded RTS).
    pub stop_world: bool,
    /// The hidden functions that re-post start-up state are reachable.
    pub post_state: bool,
    /// Level of the patched RTS API (ghc-patches/), 0 on stock GHC.
    pub patched: i32,
    /// GHC 9.2's public `flushEventLog(Capability **)` (or patch 6's backport).
    pub public_flush: bool,
}

impl Capabilities {
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

    pub fn classes_mechanism(&self) -> &'static str {
        match (self.patched > 0, self.switches) {
            (true, _) => "patched-rts",
            (false, true) => "rts-switches",
            _ => "shim-filter",
        }
    }

    pub fn sync_mechanism(&self) -> &'static str {
        match (self.patched > 0, self.stop_world && self.post_state) {
            (true, _) => "patched-rts",
            (false, true) => "stop-the-world-repost",
            _ => "shim-cache",
        }
    }
}

pub fn probe() -> Capabilities {
    // SAFETY: the probes only compare weak symbol addresses with NULL and call
    // RTS functions that are safe at any time after hs_init.
    unsafe {
        Capabilities {
            rts: glue::elstream_glue_rts_present() != 0,
            switches: glue::elstream_glue_has_switches() != 0,
            stop_world: glue::elstream_glue_can_stop_world() != 0,
            post_state: glue::elstream_glue_can_post_state() != 0,
            patched: glue::elstream_glue_patched_api(),
            public_flush: glue::elstream_glue_public_flush_api() != 0,
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

/// The classes the RTS traces now, if its switches are reachable.
pub fn classes() -> Option<ClassSet> {
    // SAFETY: plain reads of RTS ints, NULL-checked in C.
    unsafe {
        (glue::elstream_glue_has_switches() != 0)
            .then(|| from_mask(glue::elstream_glue_get_classes()))
    }
}

/// Set once hs_exit has begun: no more operations on the RTS.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Held for the length of each operation, so shutdown can wait one out.
static BUSY: Mutex<()> = Mutex::new(());

/// Called by the RTS (through `OnExitHook`) first thing in `hs_exit`.
#[no_mangle]
pub extern "C" fn elstream_rts_exiting() {
    crate::ffi::guard((), || {
        EXITING.store(true, Ordering::SeqCst);
        drop(BUSY.lock().unwrap_or_else(|p| p.into_inner()));
    })
}

/// An operation on the RTS.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Become the RTS's writer (replacing a `+RTS -l` file writer), set the
    /// classes if given, post the start-up state.
    TakeOver(Option<ClassSet>),
    /// End the RTS's eventlog session.
    End,
    /// Write out every capability buffer now.
    Flush,
    SetClasses(ClassSet),
    /// Post the start-up state again, and flush.
    Sync,
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
    tx: Mutex<mpsc::Sender<Request>>,
    /// Periodic flush interval in µs; 0 = off.
    pub interval_us: AtomicU64,
    pub flushes: FlushStats,
}

impl RtsThread {
    pub fn new() -> (RtsThread, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel();
        (
            RtsThread {
                tx: Mutex::new(tx),
                interval_us: AtomicU64::new(0),
                flushes: FlushStats::default(),
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

pub fn spawn(stream: Arc<Stream>, rx: mpsc::Receiver<Request>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("elstream-rts".into())
        .spawn(move || {
            let mut next_flush: Option<Instant> = None;
            loop {
                let us = stream.rts.interval_us.load(Ordering::Acquire);
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
                        let _ = reply.send(execute(&stream, op));
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // Fixed rate: the flush's own time does not stretch the period.
                        let now = Instant::now();
                        next_flush = match (interval, next_flush) {
                            (Some(i), Some(t)) if t + i > now => Some(t + i),
                            _ => None,
                        };
                        if execute(&stream, Op::Flush).is_err() && EXITING.load(Ordering::Acquire) {
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if EXITING.load(Ordering::Acquire) {
                    break;
                }
            }
            // SAFETY: frees the RTS task rts_lock made for this thread, if any.
            if !EXITING.load(Ordering::Acquire) {
                unsafe { glue::elstream_glue_thread_done() };
            }
        })
        .map(|_| ())
        .map_err(|e| Error::Rts(format!("cannot start the RTS thread: {e}")))
}

fn writer_ptr(w: &'static EventLogWriter) -> *const std::ffi::c_void {
    w as *const EventLogWriter as *const std::ffi::c_void
}

fn stopped_world(ops: u32, classes: ClassSet) -> Result<(), Error> {
    // SAFETY: runs on the shim's RTS thread, which holds no capability; the glue
    // checks that the scheduler runs and the hidden functions exist first.
    let rc =
        unsafe { glue::elstream_glue_stopped_world(ops, writer_ptr(&WRITER), to_mask(classes)) };
    match rc {
        0 => Ok(()),
        -1 => Err(Error::Unavailable(
            "the RTS cannot be stopped from here (needs a static -threaded -eventlog link)".into(),
        )),
        -2 => Err(Error::Rts("the RTS is shutting down".into())),
        _ => Err(Error::Rts(
            "startEventLogging refused (another writer is running)".into(),
        )),
    }
}

/// Runs one operation; called on the RTS thread only.
fn execute(stream: &Stream, op: Op) -> Result<(), Error> {
    let _busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
    if EXITING.load(Ordering::Acquire) || !scheduler_running() {
        return Err(Error::Rts("the RTS is shutting down".into()));
    }
    let caps = stream.caps;
    match op {
        Op::Wake => Ok(()),
        Op::TakeOver(classes) => {
            if caps.stop_world {
                let mut ops = OP_END | OP_START;
                if classes.is_some() {
                    ops |= OP_SET_CLASSES;
                }
                if caps.post_state {
                    ops |= OP_POST_STATE | OP_FLUSH;
                }
                return stream
                    .restarting_while(|| stopped_world(ops, classes.unwrap_or(ClassSet::EMPTY)));
            }
            if eventlog_running() {
                return Err(Error::Rts(
                    "the eventlog is already being written (+RTS -l) and this link cannot stop the \
                     RTS to take over safely; link libelstream.a statically, or use \
                     RtsConfig.eventlog_writer = elstream_writer() from a C main"
                        .into(),
                ));
            }
            // SAFETY: startEventLogging with a writer that lives as long as the program.
            match unsafe { glue::elstream_glue_start_unlocked(writer_ptr(&WRITER)) } {
                0 => Ok(()),
                _ => Err(Error::Rts("startEventLogging failed".into())),
            }
        }
        Op::End => {
            if caps.stop_world {
                return stopped_world(OP_END, ClassSet::EMPTY);
            }
            // SAFETY: racy only against capabilities posting events, which a
            // shared-library link cannot prevent (documented).
            unsafe { glue::elstream_glue_end_unlocked() };
            Ok(())
        }
        Op::Flush => {
            let t0 = Instant::now();
            let r = if caps.public_flush {
                // SAFETY: GHC 9.2's public flush, from a thread holding no capability.
                unsafe { glue::elstream_glue_public_flush() };
                Ok(())
            } else if caps.patched > 0 {
                // SAFETY: the patched RTS's public, thread-safe flush.
                unsafe { glue::elstream_glue_patched_flush() };
                Ok(())
            } else if caps.stop_world {
                stream.restarting_while(|| stopped_world(OP_FLUSH, ClassSet::EMPTY))
            } else {
                Err(Error::Unavailable(format!(
                    "flush: {}",
                    caps.flush_mechanism()
                )))
            };
            if r.is_ok() {
                let ns = t0.elapsed().as_nanos() as u64;
                let f = &stream.rts.flushes;
                f.count.fetch_add(1, Ordering::Relaxed);
                f.total_ns.fetch_add(ns, Ordering::Relaxed);
                f.max_ns.fetch_max(ns, Ordering::Relaxed);
            }
            r
        }
        Op::SetClasses(set) => {
            // SAFETY: plain stores to RTS ints read racily by design (as -l's are),
            // or the patched RTS's public setter.
            let rc = unsafe {
                if caps.patched > 0 {
                    glue::elstream_glue_patched_set_classes(to_mask(set))
                } else {
                    glue::elstream_glue_set_classes(to_mask(set))
                }
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(Error::Unavailable(
                    "the RTS's class switches are out of reach".into(),
                ))
            }
        }
        Op::Sync => {
            if caps.patched > 0 {
                // SAFETY: the patched RTS's public resync, then its flush.
                unsafe {
                    glue::elstream_glue_patched_resync();
                    glue::elstream_glue_patched_flush();
                }
                Ok(())
            } else if caps.stop_world && caps.post_state {
                stream.restarting_while(|| stopped_world(OP_POST_STATE | OP_FLUSH, ClassSet::EMPTY))
            } else {
                Err(Error::Unavailable(
                    "sync: the RTS's start-up state cannot be re-posted from this link; \
                     late joiners get the shim's cached state only"
                        .into(),
                ))
            }
        }
    }
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
    }
}
