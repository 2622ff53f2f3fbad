//! Where the shim's own messages go: stderr by default, nowhere with the
//! config's `log=off`, or to the host's callback (`elstream_set_log_callback`).

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How much a message matters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum elstream_log_level {
    /// Something failed: a feature or the stream itself stopped.
    ELSTREAM_LOG_ERROR = 1,
    /// Something the host should know: a refused client, an option ignored.
    ELSTREAM_LOG_WARN = 2,
}

/// The host's log callback: `message` is NUL-terminated UTF-8 without the
/// "elstream: " prefix, valid only during the call. It may run on any thread
/// (the shim's own or the RTS's), so it must be thread-safe and short, and
/// must not call back into elstream.
#[allow(non_camel_case_types)]
pub type elstream_log_callback = Option<
    unsafe extern "C" fn(ctx: *mut c_void, level: elstream_log_level, message: *const c_char),
>;

/// The callback and its `ctx` (as an address, so the pair is `Send`).
type Callback = (
    unsafe extern "C" fn(*mut c_void, elstream_log_level, *const c_char),
    usize,
);
static CALLBACK: Mutex<Option<Callback>> = Mutex::new(None);
static STDERR: AtomicBool = AtomicBool::new(true);

/// `log=stderr` (true) or `log=off` (false): what happens without a callback.
pub fn set_stderr(on: bool) {
    STDERR.store(on, Ordering::Relaxed);
}

/// Sets (or with `None` removes) the host's callback.
pub fn set_callback(cb: elstream_log_callback, ctx: *mut c_void) {
    *CALLBACK.lock().unwrap_or_else(|p| p.into_inner()) = cb.map(|f| (f, ctx as usize));
}

pub fn log(level: elstream_log_level, message: &str) {
    let cb = *CALLBACK.lock().unwrap_or_else(|p| p.into_inner());
    match cb {
        Some((f, ctx)) => {
            let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: the host's callback, with a string valid for the call.
            unsafe { f(ctx as *mut c_void, level, text.as_ptr()) };
        }
        None if STDERR.load(Ordering::Relaxed) => eprintln!("elstream: {message}"),
        None => {}
    }
}

pub fn error(message: &str) {
    log(elstream_log_level::ELSTREAM_LOG_ERROR, message)
}

pub fn warn(message: &str) {
    log(elstream_log_level::ELSTREAM_LOG_WARN, message)
}
