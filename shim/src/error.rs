//! The one error type of the shim, and its C error codes.

use std::cell::RefCell;
use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad config: {0}")]
    Config(String),
    #[error("elstream is already started")]
    AlreadyStarted,
    #[error("elstream is not started")]
    NotStarted,
    #[error("socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("the RTS refused: {0}")]
    Rts(String),
    #[error("not available here: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("internal error: {0}")]
    Panic(String),
}

impl Error {
    /// The negative code returned through the C ABI (see `elstream.h`).
    pub fn code(&self) -> i32 {
        match self {
            Error::Config(_) => -1,
            Error::AlreadyStarted => -2,
            Error::NotStarted => -3,
            Error::Socket { .. } => -4,
            Error::Rts(_) => -5,
            Error::InvalidArgument(_) => -6,
            Error::Unavailable(_) => -7,
            Error::Failed(_) => -8,
            Error::Panic(_) => -99,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
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
