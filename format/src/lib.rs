//! The GHC eventlog binary format and elstream's wire protocols.
//! This crate is the only code in elstream that knows byte layouts.

pub mod control;
pub mod endpoint;
pub mod eventlog;
pub mod sources;
pub mod state;
pub mod threads;

pub use endpoint::Endpoint;
pub use eventlog::{
    class_of, classify_write, encode_header, events, filter_block, user_message_block, Block,
    BlockBuilder, Class, ClassSet, Event, EventTypeInfo, FormatError, Frame, Header, StreamDecoder,
    WriteKind, DATA_END,
};
pub mod udp;
