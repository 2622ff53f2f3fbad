//! The stream's lifecycle: start (bind the sockets, spawn the I/O and RTS
//! threads, become the RTS's writer), stop, and the process globals. Started
//! once per process; lives until it exits.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::config::Config;
use crate::control::Control;
use crate::error::Error;
use crate::ring::Ring;
use crate::rts::{self, EventLogWriter, Op};
use crate::server;
use crate::shared::Shared;

/// The running stream: its shared state and the control over it.
pub struct Started {
    control: Arc<Control>,
}

impl Started {
    pub fn shared(&self) -> &Arc<Shared> {
        self.control.shared()
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    fn rts(&self) -> &rts::RtsThread {
        self.control.rts()
    }
}

static STARTED: OnceLock<Started> = OnceLock::new();
/// Serialises start and stop calls.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn get() -> Option<&'static Started> {
    STARTED.get()
}

/// The stream, unless it was never started or has ended.
pub fn require() -> Result<&'static Started, Error> {
    STARTED
        .get()
        .filter(|s| !s.shared().is_ended())
        .ok_or(Error::NotStarted)
}

/// Creates the stream, its I/O thread and its RTS thread (not yet the RTS's
/// writer, which is `writer`).
fn create(config: Config, writer: &'static EventLogWriter) -> Result<&'static Started, Error> {
    let ring = Ring::new(config.ring_bytes)?;
    let poll = mio::Poll::new().map_err(|e| Error::Rts(format!("cannot create a poller: {e}")))?;
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
    let remove_sockets = |config: &Config| {
        let _ = std::fs::remove_file(&config.socket);
        let _ = std::fs::remove_file(config.control_socket());
    };
    let classes = config.classes;
    let shared = Arc::new(Shared::new(config, ring, waker));
    let rts = rts::spawn(shared.clone(), writer)?;
    let started = Started {
        control: Arc::new(Control::new(shared, rts, classes)),
    };
    let ctl = started.control.clone();
    if STARTED.set(started).is_err() {
        remove_sockets(ctl.shared().config());
        return Err(Error::AlreadyStarted);
    }
    server::spawn(ctl, poll, listener, control)?;
    Ok(STARTED.get().expect("just set"))
}

/// `elstream_start`: create the stream and make `writer` the RTS's writer.
pub fn start(config_text: &str, writer: &'static EventLogWriter) -> Result<(), Error> {
    let _serial = lock(&SERIAL);
    if STARTED.get().is_some() {
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
    let started = create(config, writer)?;
    if let Some(now) = rts::classes().filter(|_| running) {
        started.control().controls().classes = now;
    }
    if let Err(e) = started.rts().run(Op::TakeOver(classes)) {
        started.shared().end();
        return Err(e);
    }
    if !caps.switches && !running && caps.patched == 0 {
        crate::log::warn(
            "linked as a shared library, the RTS's event-class switches are out of reach: \
             only the classes enabled at start-up (+RTS -l...) are streamed. Link libelstream.a \
             statically, or use a C main with RtsConfig.eventlog_writer = elstream_writer() and +RTS -l"
        );
    }
    if interval.is_some() {
        if caps.can_flush() {
            started.rts().set_interval(interval);
        } else {
            crate::log::warn(&format!("flush=... ignored: {}", caps.flush_mechanism()));
        }
    }
    Ok(())
}

/// The C-main path: the RTS starts `writer` before any elstream_start.
pub fn get_or_start_from_env(writer: &'static EventLogWriter) -> Result<&'static Started, Error> {
    // elstream_start holds SERIAL while the RTS calls back into init.
    if let Some(s) = STARTED.get() {
        return Ok(s);
    }
    let _serial = lock(&SERIAL);
    match STARTED.get() {
        Some(s) => Ok(s),
        None => create(Config::resolve("")?, writer),
    }
}

/// `elstream_stop`: end the RTS session, deliver the tail, close consumers.
pub fn stop() -> Result<(), Error> {
    let _serial = lock(&SERIAL);
    let started = require()?;
    started.rts().set_interval(None);
    started.shared().set_api_stopping();
    if rts::eventlog_running() && rts::scheduler_running() {
        started.rts().run(Op::End)?;
    }
    started.shared().end();
    started.shared().wait_drained();
    Ok(())
}
