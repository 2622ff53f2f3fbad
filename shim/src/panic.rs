//! The panic boundary (after rustls-ffi's `panic.rs`) and the last error.
//!
//! Nothing unwinds into C or the RTS: every export runs in `guard` or
//! `status`. A panic on one of the shim's own threads (I/O, RTS, control) is
//! caught by [`thread`] or [`catch`]: the program keeps running, the panic is
//! kept for `status`, logged once per thread, and announced to consumers
//! in-band (through the announcer the I/O thread registers).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once, OnceLock};

use crate::error::Error;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Inside the boundary: the hook keeps the panic's text instead of printing it.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics caught so far: "where: message", the first few kept.
static CAUGHT: Mutex<(u64, Vec<String>)> = Mutex::new((0, Vec::new()));
const KEEP: usize = 8;
/// Tells consumers (set by the I/O thread at start).
type Announcer = Box<dyn Fn(&str) + Send + Sync>;
static ANNOUNCE: OnceLock<Announcer> = OnceLock::new();

/// Runs `f`; a panic becomes `Err(text)`, recorded as caught `where_`.
pub fn catch<T>(where_: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = INSIDE.with(|i| i.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|i| i.set(outer));
    r.map_err(|payload| {
        let text = MESSAGE
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*payload));
        record(where_, &text);
        text
    })
}

/// The body of one of the shim's threads: a panic ends the thread, not the
/// program. For the RTS thread: `std::thread::Builder::new().spawn(move ||
/// crate::panic::thread("elstream-rts", move || { ...loop... }))`.
pub fn thread(name: &str, f: impl FnOnce()) {
    let _ = catch(name, f);
}

/// Runs an export's body; a panic becomes `default`.
pub(crate) fn guard<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch("the C boundary", f).unwrap_or(default)
}

/// Runs an export that returns a status code (an `elstream_result`).
pub(crate) fn status(f: impl FnOnce() -> Result<(), Error>) -> c_int {
    match catch("the C boundary", f) {
        Ok(Ok(())) => {
            clear_last_error();
            0
        }
        Ok(Err(e)) => set_last_error(&e),
        Err(text) => set_last_error(&Error::Panic(format!(
            "contained at the C boundary: {text}"
        ))),
    }
}

/// Sets who tells consumers about a caught panic (the first caller wins).
pub(crate) fn set_announcer(f: impl Fn(&str) + Send + Sync + 'static) {
    let _ = ANNOUNCE.set(Box::new(f));
}

/// How many panics were caught, and the first few ("where: message").
pub fn caught() -> (u64, Vec<String>) {
    CAUGHT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn record(where_: &str, text: &str) {
    let line = format!("{where_}: {text}");
    let first_here = {
        let mut c = CAUGHT.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += 1;
        let first = !c.1.iter().any(|l| l.starts_with(&format!("{where_}: ")));
        if c.1.len() < KEEP {
            c.1.push(line.clone());
        }
        first
    };
    // Once per place: a panic that repeats must not flood the host's log.
    if first_here {
        crate::log::error(&format!(
            "internal error (panic) on {line}; caught, the program continues (see `status`)"
        ));
    }
    if let Some(announce) = ANNOUNCE.get() {
        // Never let the notice itself take the boundary down.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            announce(&format!("elstream: internal error (panic) on {line}"))
        }));
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Inside the boundary the hook keeps the text and location for [`record`]
/// (which logs it once, where the host chose); elsewhere the host's own hook
/// runs as before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if INSIDE.with(|i| i.get()) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{at}", payload_text(info.payload()));
                MESSAGE.with(|m| *m.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Remembers `e` as the calling thread's last error, returns its code.
pub fn set_last_error(e: &Error) -> i32 {
    let text = CString::new(e.to_string().replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = text);
    e.code()
}

pub fn clear_last_error() {
    LAST_ERROR.with(|l| *l.borrow_mut() = CString::default());
}

/// Pointer to the calling thread's last error text; valid until its next call.
pub fn last_error_ptr() -> *const std::ffi::c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_a_shim_thread_is_caught_kept_and_told_once() {
        let (before, _) = caught();
        let t = std::thread::spawn(|| {
            thread("elstream-test", || panic!("boom {}", 42));
            "still running"
        });
        assert_eq!(t.join().unwrap(), "still running");
        let (after, kept) = caught();
        assert!(after > before);
        let line = kept
            .iter()
            .find(|l| l.starts_with("elstream-test: "))
            .unwrap();
        assert!(
            line.contains("boom 42") && line.contains("panic.rs"),
            "{line}"
        );
        assert_eq!(
            status(|| panic!("at the boundary")),
            Error::Panic(String::new()).code()
        );
        assert_eq!(guard(7, || -> i32 { panic!("again") }), 7);
        // A panic outside the boundary still reaches the host's hook (unwinds).
        assert!(catch_unwind(|| panic!("the host's own")).is_err());
    }
}
