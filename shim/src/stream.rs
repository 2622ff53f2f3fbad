//! The shim's one stream: state shared by the RTS writer, the I/O thread and
//! the C API. Started once per process; lives until the process exits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::ring::Ring;
use crate::rts::{self, Capabilities};
use crate::server;
use crate::writer::WRITER;

/// Consumer-side counters, updated by the I/O thread.
#[derive(Default)]
pub struct ConsumerCounters {
    pub consumers: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub blocks_dropped: AtomicU64,
    pub bytes_dropped: AtomicU64,
}

pub struct Stream {
    pub config: Config,
    pub ring: Ring,
    pub caps: Capabilities,
    header: Mutex<Option<Arc<[u8]>>>,
    waker: mio::Waker,
    wake_pending: AtomicBool,
    /// Set while the shim itself ends and restarts the RTS session (flush):
    /// the writer's stop and the repeated header are then not the stream's.
    pub(crate) restarting: AtomicBool,
    /// The RTS session ended for good, or elstream_stop was called.
    ended: AtomicBool,
    /// elstream_stop is ending the session: the writer's stop runs with the
    /// world stopped and must not linger there.
    api_stopping: AtomicBool,
    /// The I/O thread has handed everything to every consumer (or gave up on it).
    drained: (Mutex<bool>, Condvar),
    pub consumers: ConsumerCounters,
    pid: u32,
}

static STREAM: OnceLock<Arc<Stream>> = OnceLock::new();
/// Serialises start and stop calls.
static CONTROL: Mutex<()> = Mutex::new(());

impl Stream {
    pub fn get() -> Option<&'static Arc<Stream>> {
        STREAM.get()
    }

    /// Creates the stream and its I/O thread (not yet attached to the RTS).
    fn create(config: Config) -> Result<&'static Arc<Stream>, Error> {
        let ring = Ring::new(config.ring_bytes)?;
        let poll =
            mio::Poll::new().map_err(|e| Error::Rts(format!("cannot create a poller: {e}")))?;
        let waker = mio::Waker::new(poll.registry(), server::WAKER)
            .map_err(|e| Error::Rts(format!("cannot create a waker: {e}")))?;
        let listener = server::bind(&config.socket)?;
        let stream = Arc::new(Stream {
            config,
            ring,
            caps: rts::probe(),
            header: Mutex::new(None),
            waker,
            wake_pending: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            api_stopping: AtomicBool::new(false),
            drained: (Mutex::new(false), Condvar::new()),
            consumers: ConsumerCounters::default(),
            pid: std::process::id(),
        });
        if STREAM.set(stream.clone()).is_err() {
            let _ = std::fs::remove_file(&stream.config.socket);
            return Err(Error::AlreadyStarted);
        }
        server::spawn(stream.clone(), poll, listener)?;
        Ok(STREAM.get().expect("just set"))
    }

    /// `elstream_start`: create the stream and make it the RTS's writer.
    pub fn start(config_text: &str) -> Result<(), Error> {
        let _serial = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
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
        // With +RTS -l the user chose the classes; otherwise switch ours on.
        let classes = (!rts::eventlog_running() && caps.switches).then_some(config.classes);
        let stream = Stream::create(config)?;
        if let Err(e) = rts::take_over(caps, &WRITER, classes) {
            stream.end_stream();
            return Err(e);
        }
        if !caps.switches && !rts::eventlog_running() {
            eprintln!(
                "elstream: linked as a shared library, the RTS's event-class switches are out of reach: \
                 only events of classes enabled at start-up are streamed. Link libelstream.a statically, \
                 or use a C main with RtsConfig.eventlog_writer = elstream_writer() and +RTS -l"
            );
        }
        Ok(())
    }

    /// The C-main path: the RTS starts our writer before any elstream_start.
    pub fn get_or_start_from_env() -> Result<&'static Arc<Stream>, Error> {
        // elstream_start holds CONTROL while the RTS calls back into init.
        if let Some(s) = STREAM.get() {
            return Ok(s);
        }
        let _serial = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
        match STREAM.get() {
            Some(s) => Ok(s),
            None => Stream::create(Config::resolve("")?),
        }
    }

    /// `elstream_stop`: end the RTS session, deliver the tail, close consumers.
    pub fn stop() -> Result<(), Error> {
        let _serial = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
        let stream = STREAM.get().ok_or(Error::NotStarted)?;
        if stream.ended.load(Ordering::Acquire) {
            return Err(Error::NotStarted);
        }
        stream.api_stopping.store(true, Ordering::Release);
        if rts::eventlog_running() && rts::scheduler_running() {
            rts::end(stream.caps)?;
        }
        stream.end_stream();
        stream.wait_drained();
        Ok(())
    }

    pub(crate) fn is_own_process(&self) -> bool {
        std::process::id() == self.pid
    }

    pub(crate) fn set_header(&self, header: &[u8]) {
        let mut h = self.header.lock().unwrap_or_else(|p| p.into_inner());
        // A restart repeats the header; the stream keeps its first one.
        if h.is_none() {
            *h = Some(header.into());
            drop(h);
            self.wake();
        }
    }

    pub fn header(&self) -> Option<Arc<[u8]>> {
        self.header
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    /// stream ends; wait (at most `linger`) for consumers to get the tail.
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
