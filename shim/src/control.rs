//! The control commands, one implementation for the control socket and the
//! C ABI: on/off, classes, sync, flush, flush interval, snapshot, ring size,
//! sticky messages, status.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use elstream_format::control::{Command, Status};
use elstream_format::{ClassSet, DATA_END};

use crate::error::Error;
use crate::ring::Copied;
use crate::rts::{Op, RtsThread};
use crate::shared::Shared;

/// What the program asked for through the control commands.
pub struct Controls {
    /// `on`/`off`.
    pub enabled: bool,
    /// The classes wanted while on.
    pub classes: ClassSet,
}

/// What the commands act on: the shared eventlog, the RTS thread, and the
/// choices made through the commands so far.
pub struct Control {
    shared: Arc<Shared>,
    rts: Arc<RtsThread>,
    controls: Mutex<Controls>,
    snapshot_busy: AtomicBool,
}

impl Control {
    /// Starts with every class in `classes` wanted, streaming on.
    pub fn new(shared: Arc<Shared>, rts: Arc<RtsThread>, classes: ClassSet) -> Control {
        Control {
            shared,
            rts,
            controls: Mutex::new(Controls {
                enabled: true,
                classes,
            }),
            snapshot_busy: AtomicBool::new(false),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn rts(&self) -> &RtsThread {
        &self.rts
    }

    pub fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Error {
    /// The reply status a control client sees for this error.
    pub fn status(&self) -> Status {
        match self {
            Error::InvalidArgument(_) | Error::Config(_) => Status::BadRequest,
            Error::Unavailable(_) => Status::Unavailable,
            _ => Status::Failed,
        }
    }
}

/// Runs one command; `Ok` carries the reply text.
pub fn execute(ctl: &Control, command: Command) -> Result<String, Error> {
    match command {
        Command::Status => Ok(status(ctl)),
        Command::On => set_enabled(ctl, true).map(|_| "on".into()),
        Command::Off => set_enabled(ctl, false).map(|_| "off".into()),
        Command::Classes(change) => {
            let mut c = ctl.controls();
            let wanted = change.apply(c.classes);
            if c.enabled {
                apply_classes(ctl, wanted)?;
            }
            c.classes = wanted;
            Ok(format!("classes={wanted}"))
        }
        Command::Sync => match ctl.rts.run(Op::Sync) {
            Ok(()) => Ok("synced".into()),
            // The cached state still reaches every late joiner.
            Err(Error::Unavailable(why)) => {
                Ok(format!("synced from the shim's cache only ({why})"))
            }
            Err(e) => Err(e),
        },
        Command::Flush => ctl.rts.run(Op::Flush).map(|_| "flushed".into()),
        Command::FlushInterval(interval) => {
            if interval.is_some() && !ctl.rts.caps.can_flush() {
                return Err(Error::Unavailable(format!(
                    "flush: {}",
                    ctl.rts.caps.flush_mechanism()
                )));
            }
            ctl.rts.set_interval(interval);
            Ok(format!("flush-interval={}", show_interval(interval)))
        }
        Command::Snapshot(name) => {
            snapshot(ctl, &name).map(|p| format!("snapshot={}", p.display()))
        }
        Command::RingSize(bytes) => {
            if bytes < 4 << 20 {
                return Err(Error::InvalidArgument(
                    "ring-size: at least 4M (two RTS buffers)".into(),
                ));
            }
            ctl.shared.ring().resize(bytes)?;
            Ok(format!("ring-size={bytes}"))
        }
        Command::Sticky(text) => sticky(ctl, &text).map(|_| "sticky".into()),
        Command::HeapCensus => ctl
            .rts
            .run(Op::HeapCensus)
            .map(|_| "heap-census requested".into()),
        Command::HeapProfile(on) => ctl
            .rts
            .run(Op::HeapTimer(on))
            .map(|_| format!("heap-profile={}", if on { "on" } else { "off" })),
        Command::Auth(_) => Ok("no token needed on this socket".into()),
    }
}

/// Parses and runs a command line.
pub fn execute_line(ctl: &Control, line: &str) -> Result<String, Error> {
    let command = Command::parse(line).map_err(Error::InvalidArgument)?;
    execute(ctl, command)
}

fn set_enabled(ctl: &Control, on: bool) -> Result<(), Error> {
    let mut c = ctl.controls();
    apply_classes(ctl, if on { c.classes } else { ClassSet::EMPTY })?;
    c.enabled = on;
    Ok(())
}

/// At the source when the RTS lets us; otherwise the shim filters (classes)
/// or discards whole blocks at the writer (off).
fn apply_classes(ctl: &Control, set: ClassSet) -> Result<(), Error> {
    match ctl.rts.run(Op::SetClasses(set)) {
        Ok(()) => Ok(()),
        Err(Error::Unavailable(_)) => {
            ctl.shared.set_discarding(set == ClassSet::EMPTY);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The classes the I/O thread must filter to, when the RTS cannot.
pub fn shim_filter(ctl: &Control) -> Option<ClassSet> {
    if ctl.rts.caps.switches || ctl.rts.caps.trace_flags || ctl.rts.caps.patched > 0 {
        return None;
    }
    let c = ctl.controls();
    (c.classes != ClassSet::ALL).then_some(c.classes)
}

fn show_interval(i: Option<Duration>) -> String {
    i.map_or("off".into(), |d| format!("{}ms", d.as_millis()))
}

pub fn sticky(ctl: &Control, text: &str) -> Result<(), Error> {
    let header = ctl
        .shared
        .parsed_header()
        .ok_or_else(|| Error::Failed("the RTS has not written the eventlog header yet".into()))?;
    let block = ctl.shared.state().add_sticky(header, text, false);
    ctl.shared.push_block(&block);
    Ok(())
}

/// Writes header, state and every block in the ring to a new file in the
/// snapshot directory, without touching the ring. One at a time.
pub fn snapshot(ctl: &Control, name: &str) -> Result<PathBuf, Error> {
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\0')
        && !name.starts_with('.')
        && name.len() <= 200;
    if !plain {
        return Err(Error::InvalidArgument(format!(
            "snapshot: `{name}` must be a plain file name (no `/`, not starting with `.`); \
             snapshots go to {}",
            ctl.shared.config().snapshot_dir.display()
        )));
    }
    let file_name = if name.ends_with(".eventlog") {
        name.to_owned()
    } else {
        format!("{name}.eventlog")
    };
    let dir = &ctl.shared.config().snapshot_dir;
    crate::config::ensure_snapshot_dir(dir, ctl.shared.config().snapshot_dir_is_default)?;
    let path = dir.join(file_name);
    if ctl.snapshot_busy.swap(true, Ordering::AcqRel) {
        return Err(Error::Failed(
            "snapshot: another snapshot is being written".into(),
        ));
    }
    let result = write_snapshot(ctl, &path);
    ctl.snapshot_busy.store(false, Ordering::Release);
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result.map(|_| path)
}

fn write_snapshot(ctl: &Control, path: &std::path::Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Failed(format!("snapshot {}: {e}", path.display()));
    let (Some(raw), Some(header)) = (ctl.shared.header(), ctl.shared.parsed_header()) else {
        return Err(Error::Failed(
            "snapshot: the RTS has not written the eventlog header yet".into(),
        ));
    };
    // Owner only: a snapshot holds everything the program traced.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(&raw).map_err(fail)?;
    let (mut at, end) = (ctl.shared.ring().oldest(), ctl.shared.ring().end());
    if at.block > 0 {
        for block in ctl.shared.state().replay(header) {
            file.write_all(&block).map_err(fail)?;
        }
        for block in ctl.shared.thread_prefix(at) {
            file.write_all(&block).map_err(fail)?;
        }
    }
    let mut buf = Vec::new();
    while at.block < end.block {
        buf.clear();
        match ctl.shared.ring().copy_block(&mut at, &mut buf) {
            Copied::Block => file.write_all(&buf).map_err(fail)?,
            // Overwritten while we copied: carry on from the oldest held block.
            Copied::Evicted { .. } => {}
            Copied::Empty => break,
        }
    }
    file.write_all(&DATA_END).map_err(fail)?;
    file.sync_all().map_err(fail)
}

fn status(ctl: &Control) -> String {
    let caps = ctl.rts.caps;
    let ring = ctl.shared.ring().counters();
    let c = ctl.shared.consumers();
    let (enabled, classes) = {
        let c = ctl.controls();
        (c.enabled, c.classes)
    };
    let (state_entries, sticky, rts_id) = {
        let s = ctl.shared.state();
        (s.len(), s.sticky_count(), s.rts_identifier())
    };
    let (panics, caught) = crate::panic::caught();
    let f = &ctl.rts.flushes;
    let flushes = f.count.load(Ordering::Relaxed);
    let interval = ctl.rts.interval_us.load(Ordering::Relaxed);
    let lines = [
        ("elstream", env!("CARGO_PKG_VERSION").to_string()),
        ("pid", std::process::id().to_string()),
        (
            "rts",
            rts_id.unwrap_or_else(|| "unknown (not seen in the stream yet)".into()),
        ),
        (
            "rts-api",
            match (caps.patched > 0, caps.public_flush) {
                (true, false) => format!("patched-{}", caps.patched),
                (true, true) => format!("patched-{},ghc-9.2-flush", caps.patched),
                (false, true) => "ghc-9.2-flush".into(),
                (false, false) => "stock".into(),
            },
        ),
        ("rts-generation", caps.generation.name().into()),
        (
            "link",
            if caps.stop_world { "static" } else { "shared" }.into(),
        ),
        ("enabled", if enabled { "on" } else { "off" }.into()),
        ("classes", classes.to_string()),
        ("classes-mechanism", caps.classes_mechanism().into()),
        (
            "onoff-mechanism",
            if caps.switches || caps.patched > 0 {
                "rts-switches"
            } else {
                "writer-discard"
            }
            .into(),
        ),
        ("flush-mechanism", caps.flush_mechanism().into()),
        ("sync-mechanism", caps.sync_mechanism().into()),
        ("threads-mechanism", caps.threads_mechanism().into()),
        (
            "threads-replayed",
            ctl.rts.threads_replayed.load(Ordering::Relaxed).to_string(),
        ),
        ("heap-census-mechanism", caps.heap_census_mechanism().into()),
        ("heap-profile-mechanism", caps.heap_timer_mechanism().into()),
        (
            "gc-stats",
            if crate::rts::gc_stats_collected() {
                "collected"
            } else {
                "off"
            }
            .into(),
        ),
        (
            "flush-interval",
            show_interval((interval > 0).then(|| Duration::from_micros(interval))),
        ),
        ("flushes", flushes.to_string()),
        (
            "flush-pause-avg-us",
            (f.total_ns.load(Ordering::Relaxed) / flushes.max(1) / 1000).to_string(),
        ),
        (
            "flush-pause-max-us",
            (f.max_ns.load(Ordering::Relaxed) / 1000).to_string(),
        ),
        ("ring-capacity", ctl.shared.ring().capacity().to_string()),
        ("ring-used", ctl.shared.ring().used().to_string()),
        ("blocks-written", ring.blocks_written.to_string()),
        ("bytes-written", ring.bytes_written.to_string()),
        ("blocks-evicted", ring.blocks_evicted.to_string()),
        ("bytes-evicted", ring.bytes_evicted.to_string()),
        ("consumers", c.consumers.load(Ordering::Relaxed).to_string()),
        (
            "bytes-delivered",
            c.bytes_delivered.load(Ordering::Relaxed).to_string(),
        ),
        (
            "bytes-replayed",
            c.bytes_replayed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "consumer-blocks-dropped",
            c.blocks_dropped.load(Ordering::Relaxed).to_string(),
        ),
        (
            "consumer-bytes-dropped",
            c.bytes_dropped.load(Ordering::Relaxed).to_string(),
        ),
        ("state-entries", state_entries.to_string()),
        ("sticky-messages", sticky.to_string()),
        ("socket", ctl.shared.config().socket.display().to_string()),
        (
            "control-socket",
            ctl.shared.config().control_socket().display().to_string(),
        ),
        (
            "snapshot-dir",
            ctl.shared.config().snapshot_dir.display().to_string(),
        ),
    ];
    let mut text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    // Panics caught on the shim's threads (it kept going; see the log).
    text += &format!("panics={panics}\n");
    for line in caught {
        text += &format!("panic={line}\n");
    }
    text
}
