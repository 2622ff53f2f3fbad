//! The RTS's `EventLogWriter`: where every eventlog byte enters the shim.
//!
//! `writeEventLog` runs on RTS threads (several at once, each flushing its own
//! capability buffer). It copies the buffer into the ring and wakes the I/O
//! thread: no socket I/O, no allocation, no waiting beyond the ring's lock.

use std::ffi::c_void;

use elstream_format::eventlog::{block_without_data_end, BlockMarker};
use elstream_format::{classify_write, WriteKind};

use crate::lifecycle;
use crate::panic::guard;
pub use crate::rts::EventLogWriter;
use crate::shared::Shared;

pub static WRITER: EventLogWriter = EventLogWriter {
    init_event_log_writer: Some(init_event_log_writer),
    write_event_log: Some(write_event_log),
    flush_event_log: Some(flush_event_log),
    stop_event_log_writer: Some(stop_event_log_writer),
};

unsafe extern "C" fn init_event_log_writer() {
    // A C main that set RtsConfig.eventlog_writer reaches us before any
    // elstream_start: start from $ELSTREAM then.
    guard((), || {
        if let Err(e) = lifecycle::get_or_start_from_env(&WRITER) {
            crate::log::error(&format!("cannot start: {e}"));
        }
    })
}

unsafe extern "C" fn write_event_log(buf: *mut c_void, size: usize) -> bool {
    if buf.is_null() || size == 0 {
        return true;
    }
    // SAFETY: the RTS hands us `size` readable bytes that stay valid for the call.
    let bytes = unsafe { std::slice::from_raw_parts(buf as *const u8, size) };
    guard(true, || {
        if let Some(started) = lifecycle::get() {
            write(started.shared(), bytes);
        }
        // Never false: the RTS would throw the buffer away and call flush.
        true
    })
}

unsafe extern "C" fn flush_event_log() {
    guard((), || {
        if let Some(started) = lifecycle::get() {
            started.shared().wake();
        }
    })
}

unsafe extern "C" fn stop_event_log_writer() {
    guard((), || {
        if let Some(started) = lifecycle::get() {
            started.shared().writer_stopped();
        }
    })
}

/// The write path proper: one `writeEventLog` call's bytes (the header, or a
/// capability buffer's block).
fn write(shared: &Shared, bytes: &[u8]) {
    if !shared.is_own_process() {
        // A forkProcess child: no I/O thread here to serve it.
        return;
    }
    match classify_write(bytes) {
        WriteKind::Header { offset } => shared.set_header(&bytes[offset..]),
        // The stream's end is the I/O thread's to write, once, at the real stop.
        WriteKind::DataEnd => {}
        WriteKind::Block if shared.is_discarding() => {}
        WriteKind::Block if ends_global_block(bytes) => {
            // 9.2+ ends a session with the data end inside the global
            // buffer's last block (small, once per end or restart).
            match shared
                .parsed_header()
                .and_then(|h| block_without_data_end(h, bytes))
            {
                Some(block) => push(shared, &block),
                None => push(shared, bytes),
            }
        }
        WriteKind::Block => push(shared, bytes),
    }
}

fn push(shared: &Shared, block: &[u8]) {
    let time = BlockMarker::parse(block).map_or(0, |m| m.end_time.max(m.time));
    shared.push_rts_block(block, time);
}

/// A global (not capability) block whose last bytes could be a data end.
fn ends_global_block(bytes: &[u8]) -> bool {
    bytes.ends_with(&elstream_format::DATA_END)
        && BlockMarker::parse(bytes).is_some_and(|m| m.cap == elstream_format::eventlog::GLOBAL_CAP)
}
