//! Test support: builds the Haskell programs with GHC and judges eventlogs with
//! ghc-events (through `testkit/haskell/EventlogCheck.hs`), so every stream a
//! test receives is checked by a parser that is not ours.
//!
//! Paths: the repository root is found from this crate's manifest; build
//! outputs go under the cargo target directory (`CARGO_TARGET_DIR` if set,
//! else `<repo>/target`).

//! One module per job: `paths` (where things are), `build` (GHC programs and
//! the matrix selection), `check` (ghc-events' verdict), `judges` (thread
//! validation, ThreadScope), `logs` (the project's own eventlogs), `process`
//! (ChildGuard, waiting), `fs` (temporary directories), `net`. Everything is
//! re-exported here, so tests use `testkit::NAME`.

mod build;
mod check;
mod fs;
mod judges;
pub mod logs;
mod net;
mod paths;
mod process;

pub use build::{build_haskell, checker, example, ghc, host_ghc, Ghc, HsBuild, NATIVE_STATIC_LIBS};
pub use check::{
    check, check_bytes, event_sequence, event_sequence_bytes, parse_check_output, parse_counts,
    Check, End,
};
pub use fs::TempDir;
pub use judges::{threadscope_events, validate_threads};
pub use net::{free_tcp_port, logged_port, ready_addr};
pub use paths::{
    corpus_dir, corpus_logs, corpus_or_skip, release_bin, repo_root, shim_staticlib, target_dir,
};
pub use process::{run_to_l_file, wait_for_path, wait_until, ChildGuard};
