//! The RTS's `EventLogWriter`: where every eventlog byte enters the shim.
//!
//! `writeEventLog` runs on RTS threads (several at once, each flushing its own
//! capability buffer). It copies the buffer into the ring and wakes the I/O
//! thread: no socket I/O, no allocation, no waiting beyond the ring's lock.

use std::ffi::c_void;

use elstream_format::{classify_write, WriteKind};

use crate::ffi::guard;
use crate::stream::Stream;

/// Layout of GHC's `EventLogWriter` (includes/rts/EventLogWriter.h).
#[repr(C)]
pub struct EventLogWriter {
    pub init_event_log_writer: Option<unsafe extern "C" fn()>,
    pub write_event_log: Option<unsafe extern "C" fn(*mut c_void, usize) -> bool>,
    pub flush_event_log: Option<unsafe extern "C" fn()>,
    pub stop_event_log_writer: Option<unsafe extern "C" fn()>,
}

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
        if let Err(e) = Stream::get_or_start_from_env() {
            eprintln!("elstream: cannot start: {e}");
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
        if let Some(stream) = Stream::get() {
            stream.write(bytes);
        }
        // Never false: the RTS would throw the buffer away and call flush.
        true
    })
}

unsafe extern "C" fn flush_event_log() {
    guard((), || {
        if let Some(stream) = Stream::get() {
            stream.wake();
        }
    })
}

unsafe extern "C" fn stop_event_log_writer() {
    guard((), || {
        if let Some(stream) = Stream::get() {
            stream.rts_stopped();
        }
    })
}

impl Stream {
    /// The write path proper.
    pub(crate) fn write(&self, bytes: &[u8]) {
        if !self.is_own_process() {
            // A forkProcess child: no I/O thread here to serve it.
            return;
        }
        match classify_write(bytes) {
            WriteKind::Header { offset } => self.set_header(&bytes[offset..]),
            // The stream's end is the I/O thread's to write, once, at the real stop.
            WriteKind::DataEnd => {}
            WriteKind::Block if self.is_discarding() => {}
            WriteKind::Block => {
                self.ring.push_block(bytes);
                self.wake();
            }
        }
    }
}
