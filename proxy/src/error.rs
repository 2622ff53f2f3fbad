//! Errors of the `elstream` command and the exit codes they map to.

use std::io;

/// Exit codes (documented in the README):
/// 0 ok; 1 runtime failure (e.g. the source is not an eventlog); 2 bad command
/// line or endpoint syntax; 3 cannot listen (port or socket path in use);
/// 4 the program given to `run` cannot stream an eventlog; 126/127 the program
/// cannot be executed / was not found. `run` otherwise exits with the program's
/// own status (128+N when a signal N killed it).
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LISTEN: i32 = 3;
pub const EXIT_PROGRAM_CHECK: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("cannot listen on {endpoint}: {source}")]
    Listen { endpoint: String, source: io::Error },
    #[error("source {endpoint}: {message}")]
    Source { endpoint: String, message: String },
    #[error("{0}")]
    ProgramCheck(String),
    #[error("cannot execute {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Listen { .. } => EXIT_LISTEN,
            Error::ProgramCheck(_) => EXIT_PROGRAM_CHECK,
            Error::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            Error::Spawn { .. } => 126,
            Error::Source { .. } | Error::Io { .. } => EXIT_FAILURE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
