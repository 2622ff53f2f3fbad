//! The shim's one stream: state shared by the RTS writer, the I/O thread, the
//! RTS thread and the C API. Started once per process; lives until it exits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use elstream_format::state::StateCache;
use elstream_format::{ClassSet, Header};

use crate::config::Config;
use crate::error::Error;
use crate::ring::Ring;
use crate::rts::{self, Capabilities, Op, RtsThread};
use crate::server;

/// Consumer-side counters, updated by the I/O thread.
#[derive(Default)]
pub struct ConsumerCounters {
    pub consumers: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub blocks_dropped: AtomicU64,
    pub bytes_dropped: AtomicU64,
}

/// What the program asked for through the control commands.
pub struct Controls {
    /// `on`/`off`.
    pub enabled: bool,
    /// The classes wanted while on.
    pub classes: ClassSet,
}

pub struct Stream {
    pub config: Config,
    pub ring: Ring,
    pub caps: Capabilities,
    pub rts: RtsThread,
    header: Mutex<Option<Arc<[u8]>>>,
    parsed_header: OnceLock<Header>,
    /// State for late joiners, fed by the I/O thread from every block.
    pub state: Mutex<StateCache>,
    pub controls: Mutex<Controls>,
    /// Blocks are dropped at the writer (off, without RTS switches).
    discarding: AtomicBool,
    waker: mio::Waker,
    wake_pending: AtomicBool,
    /// Set while the shim itself ends and restarts the RTS session (flush):
    /// the writer's stop and the repeated header are then not the stream's.
    restarting: AtomicBool,
    /// The RTS session ended for good, or elstream_stop was called.
    ended: AtomicBool,
    /// elstream_stop is ending the session: the writer's stop then runs with
    /// the world stopped and must not linger there.
    api_stopping: AtomicBool,
    /// The I/O thread has handed everything to every consumer (or gave up).
    drained: (Mutex<bool>, Condvar),
    pub snapshot_busy: AtomicBool,
    /// Sinks added since the I/O thread last looked.
    pub(crate) new_sinks: Mutex<Vec<crate::sink::Sink>>,
    pub consumers: ConsumerCounters,
    pid: u32,
}

static STREAM: OnceLock<Arc<Stream>> = OnceLock::new();
/// Serialises start and stop calls.
static CONTROL: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stream {
    pub fn get() -> Option<&'static Arc<Stream>> {
        STREAM.get()
    }

    pub fn require() -> Result<&'static Arc<Stream>, Error> {
        STREAM
            .get()
            .filter(|s| !s.is_ended())
            .ok_or(Error::NotStarted)
    }

    /// Creates the stream, its I/O thread and its RTS thread (not yet the
    /// RTS's writer).
    fn create(config: Config) -> Result<&'static Arc<Stream>, Error> {
        let ring = Ring::new(config.ring_bytes)?;
        let poll =
            mio::Poll::new().map_err(|e| Error::Rts(format!("cannot create a poller: {e}")))?;
        let waker = mio::Waker::new(poll.registry(), server::WAKER)
            .map_err(|e| Error::Rts(format!("cannot create a waker: {e}")))?;
        let listener = server::bind(&config.socket)?;
        let control = match server::bind(&config.control_socket()) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&config.socket);
                return Err(e);
            }
        };
        let (rts, rts_rx) = RtsThread::new();
        let classes = config.classes;
        let stream = Arc::new(Stream {
            config,
            ring,
            caps: rts::probe(),
            rts,
            header: Mutex::new(None),
            parsed_header: OnceLock::new(),
            state: Mutex::new(StateCache::new()),
            controls: Mutex::new(Controls {
                enabled: true,
                classes,
            }),
            discarding: AtomicBool::new(false),
            waker,
            wake_pending: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            api_stopping: AtomicBool::new(false),
            drained: (Mutex::new(false), Condvar::new()),
            snapshot_busy: AtomicBool::new(false),
            new_sinks: Mutex::new(Vec::new()),
            consumers: ConsumerCounters::default(),
            pid: std::process::id(),
        });
        if STREAM.set(stream.clone()).is_err() {
            let _ = std::fs::remove_file(&stream.config.socket);
            let _ = std::fs::remove_file(stream.config.control_socket());
            return Err(Error::AlreadyStarted);
        }
        server::spawn(stream.clone(), poll, listener, control)?;
        rts::spawn(stream.clone(), rts_rx)?;
        Ok(STREAM.get().expect("just set"))
    }

    /// `elstream_start`: create the stream and make it the RTS's writer.
    pub fn start(config_text: &str) -> Result<(), Error> {
        let _serial = lock(&CONTROL);
        if STREAM.get().is_some() {
            return Err(Error::AlreadyStarted);
        }
        let config = Config::resolve(config_text)?;
        let caps = rts::probe();
        if !caps.rts {
            return Err(Error::Rts(
                "no eventlog support in this program: link it with `ghc -eventlog` (and -threaded)"
                    .into(),
            ));
        }
        let running = rts::eventlog_running();
        // With +RTS -l the user chose the classes; otherwise switch ours on.
        let classes = match (running, rts::classes()) {
            (false, Some(_)) => Some(config.classes),
            _ => None,
        };
        let interval = config.flush_interval;
        let stream = Stream::create(config)?;
        if let Some(now) = rts::classes().filter(|_| running) {
            lock(&stream.controls).classes = now;
        }
        if let Err(e) = stream.rts.run(Op::TakeOver(classes)) {
            stream.end_stream();
            return Err(e);
        }
        if !caps.switches && !running && caps.patched == 0 {
            eprintln!(
                "elstream: linked as a shared library, the RTS's event-class switches are out of reach: \
                 only the classes enabled at start-up (+RTS -l...) are streamed. Link libelstream.a \
                 statically, or use a C main with RtsConfig.eventlog_writer = elstream_writer() and +RTS -l"
            );
        }
        if interval.is_some() {
            if caps.can_flush() {
                stream.rts.set_interval(interval);
            } else {
                eprintln!("elstream: flush=... ignored: {}", caps.flush_mechanism());
            }
        }
        Ok(())
    }

    /// The C-main path: the RTS starts our writer before any elstream_start.
    pub fn get_or_start_from_env() -> Result<&'static Arc<Stream>, Error> {
        // elstream_start holds CONTROL while the RTS calls back into init.
        if let Some(s) = STREAM.get() {
            return Ok(s);
        }
        let _serial = lock(&CONTROL);
        match STREAM.get() {
            Some(s) => Ok(s),
            None => Stream::create(Config::resolve("")?),
        }
    }

    /// `elstream_stop`: end the RTS session, deliver the tail, close consumers.
    pub fn stop() -> Result<(), Error> {
        let _serial = lock(&CONTROL);
        let stream = Stream::require()?;
        stream.rts.set_interval(None);
        stream.api_stopping.store(true, Ordering::Release);
        if rts::eventlog_running() && rts::scheduler_running() {
            stream.rts.run(Op::End)?;
        }
        stream.end_stream();
        stream.wait_drained();
        Ok(())
    }

    /// Hands a sink to the I/O thread.
    pub(crate) fn add_sink(&self, sink: crate::sink::Sink) {
        lock(&self.new_sinks).push(sink);
        self.wake();
    }

    pub(crate) fn is_own_process(&self) -> bool {
        std::process::id() == self.pid
    }

    pub(crate) fn set_header(&self, header: &[u8]) {
        let mut h = lock(&self.header);
        // A restart repeats the header; the stream keeps its first one.
        if h.is_none() {
            *h = Some(header.into());
            drop(h);
            self.wake();
        }
    }

    pub fn header(&self) -> Option<Arc<[u8]>> {
        lock(&self.header).clone()
    }

    /// The header, parsed (once it has been written).
    pub fn parsed_header(&self) -> Option<&Header> {
        if let Some(h) = self.parsed_header.get() {
            return Some(h);
        }
        let raw = self.header()?;
        let h = Header::parse(&raw).ok()?;
        Some(self.parsed_header.get_or_init(|| h))
    }

    pub fn is_discarding(&self) -> bool {
        self.discarding.load(Ordering::Relaxed)
    }

    pub(crate) fn set_discarding(&self, on: bool) {
        self.discarding.store(on, Ordering::Relaxed);
    }

    /// Runs `f` (an RTS restart) with the writer told to keep the stream going.
    pub(crate) fn restarting_while<T>(&self, f: impl FnOnce() -> T) -> T {
        self.restarting.store(true, Ordering::Release);
        let r = f();
        self.restarting.store(false, Ordering::Release);
        r
    }

    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the I/O thread before it looks at the ring again.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The writer's stop: unless the shim is restarting the session, the
    /// stream ends; at program exit, wait (at most `linger`) for the tail.
    pub(crate) fn rts_stopped(&self) {
        if self.restarting.load(Ordering::Acquire) || !self.is_own_process() {
            return;
        }
        self.end_stream();
        if !self.api_stopping.load(Ordering::Acquire) {
            self.wait_drained();
        }
    }

    /// Waits at most `linger` for the I/O thread to hand out the tail.
    fn wait_drained(&self) {
        let deadline = Instant::now() + self.config.linger;
        let (lock, cvar) = &self.drained;
        let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                break;
            }
            done = cvar
                .wait_timeout(done, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn end_stream(&self) {
        self.ended.store(true, Ordering::Release);
        self.wake_pending.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    pub(crate) fn set_drained(&self) {
        let (lock, cvar) = &self.drained;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_all();
    }
}
