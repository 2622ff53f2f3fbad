//! In-process sinks: C callbacks that receive the stream on the shim's I/O
//! thread (never on an RTS thread), reading the same ring as the socket
//! consumers. A slow sink falls behind and is told what it missed; it never
//! stalls the program. Its callbacks also delay the socket consumers, so keep
//! them short (hand work to a thread of your own).

use std::ffi::c_void;

use crate::ring::Cursor;

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

/// One sink; the I/O thread serves it (`server.rs`).
pub(crate) struct Sink {
    vt: elstream_sink_vtable,
    ctx: usize,
    /// The header went out (and, for a late sink, the replayed state).
    pub(crate) header_sent: bool,
    /// Next block to hand over.
    pub(crate) at: Cursor,
}

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

    pub(crate) fn header(&self, bytes: &[u8]) {
        if let Some(f) = self.vt.on_header {
            // SAFETY: the sink's own callback, with a pointer valid for the call.
            unsafe { f(self.ctx(), bytes.as_ptr(), bytes.len()) };
        }
    }

    pub(crate) fn dropped(&self, blocks: u64, bytes: u64) {
        if let Some(f) = self.vt.on_drop {
            // SAFETY: the sink's own callback.
            unsafe { f(self.ctx(), blocks, bytes) };
        }
    }

    pub(crate) fn block(&self, bytes: &[u8]) {
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
