//! elstream's shim: the RTS `EventLogWriter` linked into a Haskell program.
//!
//! An event's path: `writer.rs` (the RTS hands over a block) → `ring.rs` (the
//! flight recorder) → `server.rs` (the I/O thread copies it to each consumer's
//! socket). `stream.rs` holds the state they share, `ffi.rs` the C ABI, `rts.rs`
//! (with `csrc/rts_glue.c`) what the shim asks of the RTS itself.

pub mod config;
pub mod control;
pub mod error;
pub mod ffi;
pub mod ring;
pub mod rts;
mod server;
pub mod sink;
pub mod stream;
pub mod writer;
