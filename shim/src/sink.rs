//! In-process sinks: C callbacks that receive the stream on the shim's I/O
//! thread (never on an RTS thread), reading the same ring as the socket
//! consumers. A slow sink falls behind and is told what it missed; it never
//! stalls the program. Its callbacks also delay the socket consumers, so keep
//! them short (hand work to a thread of your own).

use std::ffi::c_void;

use crate::ring::{Copied, Cursor};
use crate::stream::Stream;

/// The version of [`elstream_sink_vtable`] this shim speaks.
pub const ELSTREAM_SINK_ABI_VERSION: u32 = 1;

/// A sink's callbacks. All run on the shim's I/O thread, one at a time, with
/// the `ctx` given to `elstream_add_sink`. Byte pointers are valid only during
/// the call. Any callback may be NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct elstream_sink_vtable {
    /// Must be `ELSTREAM_SINK_ABI_VERSION`.
    pub abi_version: u32,
    /// The eventlog header (`hdrb` .. `datb`), once, first.
    pub on_header: Option<unsafe extern "C" fn(ctx: *mut c_void, bytes: *const u8, len: usize)>,
    /// One whole block (replayed state first when the sink joined late).
    pub on_block: Option<unsafe extern "C" fn(ctx: *mut c_void, bytes: *const u8, len: usize)>,
    /// Blocks the sink missed because it fell a ring behind.
    pub on_drop: Option<unsafe extern "C" fn(ctx: *mut c_void, blocks: u64, bytes: u64)>,
    /// The stream ended; no call follows. The sink may free `ctx` here.
    pub on_stop: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

pub(crate) struct Sink {
    vt: elstream_sink_vtable,
    ctx: usize,
    header_sent: bool,
    at: Cursor,
}

/// Blocks handed to one sink per round, so one sink cannot starve the loop.
const BLOCKS_PER_ROUND: usize = 16;

impl Sink {
    pub(crate) fn new(vt: elstream_sink_vtable, ctx: *mut c_void) -> Sink {
        Sink {
            vt,
            ctx: ctx as usize,
            header_sent: false,
            at: Cursor::default(),
        }
    }

    fn ctx(&self) -> *mut c_void {
        self.ctx as *mut c_void
    }

    /// Delivers what is available; true when more is waiting.
    pub(crate) fn serve(&mut self, stream: &Stream, scratch: &mut Vec<u8>) -> bool {
        let Some(raw) = stream.header() else {
            return false;
        };
        if !self.header_sent {
            self.header_sent = true;
            self.at = stream.ring.oldest();
            if let Some(f) = self.vt.on_header {
                // SAFETY: the sink's own callback, with a pointer valid for the call.
                unsafe { f(self.ctx(), raw.as_ptr(), raw.len()) };
            }
            if let Some(header) = stream.parsed_header().filter(|_| self.at.block > 0) {
                let state = stream
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replay(header);
                for block in state {
                    self.block(&block);
                }
            }
        }
        for _ in 0..BLOCKS_PER_ROUND {
            scratch.clear();
            match stream.ring.copy_block(&mut self.at, scratch) {
                Copied::Block => self.block(scratch),
                Copied::Evicted { blocks, bytes } => {
                    if let Some(f) = self.vt.on_drop {
                        // SAFETY: the sink's own callback.
                        unsafe { f(self.ctx(), blocks, bytes) };
                    }
                }
                Copied::Empty => return false,
            }
        }
        true
    }

    fn block(&self, bytes: &[u8]) {
        if let Some(f) = self.vt.on_block {
            // SAFETY: the sink's own callback, with a pointer valid for the call.
            unsafe { f(self.ctx(), bytes.as_ptr(), bytes.len()) };
        }
    }

    pub(crate) fn stop(&self) {
        if let Some(f) = self.vt.on_stop {
            // SAFETY: the sink's own callback; nothing is called after it.
            unsafe { f(self.ctx()) };
        }
    }
}
