//! The one error type of the shim, and its C error codes.

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

/// What every `elstream_*` function returns: 0 or a negative code, with the
/// text in `elstream_last_error()` (the functions are declared `int`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum elstream_result {
    ELSTREAM_OK = 0,
    /// The config string is malformed (key, value or endpoint).
    ELSTREAM_ERR_CONFIG = -1,
    /// `elstream_start` was called before.
    ELSTREAM_ERR_ALREADY_STARTED = -2,
    /// The stream is not started (or was stopped).
    ELSTREAM_ERR_NOT_STARTED = -3,
    /// The socket could not be made or bound.
    ELSTREAM_ERR_SOCKET = -4,
    /// The RTS refused (no eventlog support, another writer, shutting down).
    ELSTREAM_ERR_RTS = -5,
    /// An argument is NULL, not UTF-8 or out of range.
    ELSTREAM_ERR_INVALID_ARGUMENT = -6,
    /// Not available with this RTS or link (see `status`).
    ELSTREAM_ERR_UNAVAILABLE = -7,
    /// The operation failed (e.g. a snapshot could not be written).
    ELSTREAM_ERR_FAILED = -8,
    /// An internal error (a panic) was contained; the program continues.
    ELSTREAM_ERR_PANIC = -99,
}

impl Error {
    /// The C ABI's code for this error.
    pub fn result(&self) -> elstream_result {
        use elstream_result::*;
        match self {
            Error::Config(_) => ELSTREAM_ERR_CONFIG,
            Error::AlreadyStarted => ELSTREAM_ERR_ALREADY_STARTED,
            Error::NotStarted => ELSTREAM_ERR_NOT_STARTED,
            Error::Socket { .. } => ELSTREAM_ERR_SOCKET,
            Error::Rts(_) => ELSTREAM_ERR_RTS,
            Error::InvalidArgument(_) => ELSTREAM_ERR_INVALID_ARGUMENT,
            Error::Unavailable(_) => ELSTREAM_ERR_UNAVAILABLE,
            Error::Failed(_) => ELSTREAM_ERR_FAILED,
            Error::Panic(_) => ELSTREAM_ERR_PANIC,
        }
    }

    /// The negative code returned through the C ABI.
    pub fn code(&self) -> i32 {
        self.result() as i32
    }
}
