//! The control commands, one implementation for the control socket and the
//! C ABI: on/off, classes, sync, flush, flush interval, snapshot, ring size,
//! sticky messages, status.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use elstream_format::control::{Command, Status};
use elstream_format::{ClassSet, DATA_END};

use crate::error::Error;
use crate::ring::Copied;
use crate::rts::Op;
use crate::stream::Stream;

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
pub fn execute(stream: &Stream, command: Command) -> Result<String, Error> {
    match command {
        Command::Status => Ok(status(stream)),
        Command::On => set_enabled(stream, true).map(|_| "on".into()),
        Command::Off => set_enabled(stream, false).map(|_| "off".into()),
        Command::Classes(change) => {
            let mut c = stream.controls.lock().unwrap_or_else(|p| p.into_inner());
            let wanted = change.apply(c.classes);
            if c.enabled {
                apply_classes(stream, wanted)?;
            }
            c.classes = wanted;
            Ok(format!("classes={wanted}"))
        }
        Command::Sync => match stream.rts.run(Op::Sync) {
            Ok(()) => Ok("synced".into()),
            // The cached state still reaches every late joiner.
            Err(Error::Unavailable(why)) => {
                Ok(format!("synced from the shim's cache only ({why})"))
            }
            Err(e) => Err(e),
        },
        Command::Flush => stream.rts.run(Op::Flush).map(|_| "flushed".into()),
        Command::FlushInterval(interval) => {
            if interval.is_some() && !stream.caps.can_flush() {
                return Err(Error::Unavailable(format!(
                    "flush: {}",
                    stream.caps.flush_mechanism()
                )));
            }
            stream.rts.set_interval(interval);
            Ok(format!("flush-interval={}", show_interval(interval)))
        }
        Command::Snapshot(name) => {
            snapshot(stream, &name).map(|p| format!("snapshot={}", p.display()))
        }
        Command::RingSize(bytes) => {
            if bytes < 4 << 20 {
                return Err(Error::InvalidArgument(
                    "ring-size: at least 4M (two RTS buffers)".into(),
                ));
            }
            stream.ring.resize(bytes)?;
            Ok(format!("ring-size={bytes}"))
        }
        Command::Sticky(text) => sticky(stream, &text).map(|_| "sticky".into()),
        Command::Auth(_) => Ok("no token needed on this socket".into()),
    }
}

/// Parses and runs a command line.
pub fn execute_line(stream: &Stream, line: &str) -> Result<String, Error> {
    let command = Command::parse(line).map_err(Error::InvalidArgument)?;
    execute(stream, command)
}

fn set_enabled(stream: &Stream, on: bool) -> Result<(), Error> {
    let mut c = stream.controls.lock().unwrap_or_else(|p| p.into_inner());
    apply_classes(stream, if on { c.classes } else { ClassSet::EMPTY })?;
    c.enabled = on;
    Ok(())
}

/// At the source when the RTS lets us; otherwise the shim filters (classes)
/// or discards whole blocks at the writer (off).
fn apply_classes(stream: &Stream, set: ClassSet) -> Result<(), Error> {
    match stream.rts.run(Op::SetClasses(set)) {
        Ok(()) => Ok(()),
        Err(Error::Unavailable(_)) => {
            stream.set_discarding(set == ClassSet::EMPTY);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The classes the I/O thread must filter to, when the RTS cannot.
pub fn shim_filter(stream: &Stream) -> Option<ClassSet> {
    if stream.caps.switches || stream.caps.patched > 0 {
        return None;
    }
    let c = stream.controls.lock().unwrap_or_else(|p| p.into_inner());
    (c.classes != ClassSet::ALL).then_some(c.classes)
}

fn show_interval(i: Option<Duration>) -> String {
    i.map_or("off".into(), |d| format!("{}ms", d.as_millis()))
}

pub fn sticky(stream: &Stream, text: &str) -> Result<(), Error> {
    let header = stream
        .parsed_header()
        .ok_or_else(|| Error::Failed("the RTS has not written the eventlog header yet".into()))?;
    let block = stream
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add_sticky(header, text, false);
    stream.ring.push_block(&block);
    stream.wake();
    Ok(())
}

/// Writes header, state and every block in the ring to a new file in the
/// snapshot directory, without touching the ring. One at a time.
pub fn snapshot(stream: &Stream, name: &str) -> Result<PathBuf, Error> {
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\0')
        && !name.starts_with('.')
        && name.len() <= 200;
    if !plain {
        return Err(Error::InvalidArgument(format!(
            "snapshot: `{name}` must be a plain file name (no `/`, not starting with `.`); \
             snapshots go to {}",
            stream.config.snapshot_dir.display()
        )));
    }
    let file_name = if name.ends_with(".eventlog") {
        name.to_owned()
    } else {
        format!("{name}.eventlog")
    };
    let path = stream.config.snapshot_dir.join(file_name);
    if stream.snapshot_busy.swap(true, Ordering::AcqRel) {
        return Err(Error::Failed(
            "snapshot: another snapshot is being written".into(),
        ));
    }
    let result = write_snapshot(stream, &path);
    stream.snapshot_busy.store(false, Ordering::Release);
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result.map(|_| path)
}

fn write_snapshot(stream: &Stream, path: &std::path::Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Failed(format!("snapshot {}: {e}", path.display()));
    let (Some(raw), Some(header)) = (stream.header(), stream.parsed_header()) else {
        return Err(Error::Failed(
            "snapshot: the RTS has not written the eventlog header yet".into(),
        ));
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(&raw).map_err(fail)?;
    let (mut at, end) = (stream.ring.oldest(), stream.ring.end());
    if at.block > 0 {
        for block in stream
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replay(header)
        {
            file.write_all(&block).map_err(fail)?;
        }
    }
    let mut buf = Vec::new();
    while at.block < end.block {
        buf.clear();
        match stream.ring.copy_block(&mut at, &mut buf) {
            Copied::Block => file.write_all(&buf).map_err(fail)?,
            // Overwritten while we copied: carry on from the oldest held block.
            Copied::Evicted { .. } => {}
            Copied::Empty => break,
        }
    }
    file.write_all(&DATA_END).map_err(fail)?;
    file.sync_all().map_err(fail)
}

fn status(stream: &Stream) -> String {
    let caps = stream.caps;
    let ring = stream.ring.counters();
    let c = &stream.consumers;
    let (enabled, classes) = {
        let c = stream.controls.lock().unwrap_or_else(|p| p.into_inner());
        (c.enabled, c.classes)
    };
    let (state_entries, sticky, rts_id) = {
        let s = stream.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.len(), s.sticky_count(), s.rts_identifier())
    };
    let f = &stream.rts.flushes;
    let flushes = f.count.load(Ordering::Relaxed);
    let interval = stream.rts.interval_us.load(Ordering::Relaxed);
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
        ("ring-capacity", stream.ring.capacity().to_string()),
        ("ring-used", stream.ring.used().to_string()),
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
            "consumer-blocks-dropped",
            c.blocks_dropped.load(Ordering::Relaxed).to_string(),
        ),
        (
            "consumer-bytes-dropped",
            c.bytes_dropped.load(Ordering::Relaxed).to_string(),
        ),
        ("state-entries", state_entries.to_string()),
        ("sticky-messages", sticky.to_string()),
        ("socket", stream.config.socket.display().to_string()),
        (
            "control-socket",
            stream.config.control_socket().display().to_string(),
        ),
        (
            "snapshot-dir",
            stream.config.snapshot_dir.display().to_string(),
        ),
    ];
    lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}
