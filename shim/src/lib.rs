//! elstream's shim: the RTS `EventLogWriter` linked into a Haskell program.
//!
//! An event's path: `writer.rs` (the RTS hands over a capability buffer's
//! block) → `shared.rs` (the header, the ring of blocks in `ring.rs`, the
//! state cache) → `server.rs` (the I/O thread copies each block to every
//! consumer's socket and sink, `sink.rs`). `lifecycle.rs` starts and stops it
//! all and holds the process globals, `control.rs` runs the control commands,
//! `rts/` (with `csrc/rts_glue.c`) is what the shim asks of the RTS itself,
//! and `ffi.rs` is the C ABI.
//!
//! Layers, each module using only those below it (no import cycles; the
//! `layering` test checks it):
//!
//! ```text
//! ffi
//! writer                        the RTS's EventLogWriter callbacks
//! lifecycle                     start, stop, the globals
//! server                        the I/O thread, the control worker
//! control                       the commands
//! rts                           RTS adapters and the RTS thread
//! shared                        state shared by all of the above
//! sink  ring  config            leaves
//! panic  → log, error           leaves
//! ```

pub mod config;
pub mod control;
pub mod error;
pub mod ffi;
pub mod lifecycle;
pub mod log;
pub mod panic;
pub mod ring;
pub mod rts;
mod server;
pub mod shared;
pub mod sink;
pub mod writer;

#[cfg(test)]
mod layering;
