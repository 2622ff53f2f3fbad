//! The GHC eventlog binary format (as written by GHC 9.0.2's rts/eventlog/EventLog.c):
//! incremental decoding into header / block / data-end frames, zero-copy event
//! iteration, trace classes, and an encoder for the blocks elstream writes itself.

mod class;
mod decoder;
mod encode;
mod fields;
mod header;

pub use class::*;
pub use decoder::{holds_state, Block, Frame, StreamDecoder, MAX_BLOCK_SIZE};
pub use encode::{
    block_without_data_end, capability_blocks, filter_block, thread_creation_blocks,
    user_message_block, BlockBuilder,
};
pub use fields::{fields, Fields, EVENT_BLOCKS_SIZE};
pub use header::{encode_header, EventTypeInfo, Header, MAX_HEADER_SIZE};

use header::{HEADER_BEGIN, SIZE_UNKNOWN, SIZE_VARIABLE};

/// The data end marker (a u16 0xffff where an event type would be).
pub const DATA_END: [u8; 2] = [0xff, 0xff];

/// Bytes of an event before its payload: u16 type + u64 time.
pub const EVENT_HEADER_SIZE: usize = 10;

/// A whole block marker event: header + u32 size + u64 end time + u16 cap.
pub const BLOCK_MARKER_SIZE: usize = EVENT_HEADER_SIZE + 14;

/// The cap number of the global (non-capability) event buffer.
pub const GLOBAL_CAP: u16 = 0xffff;

/// Errors for malformed eventlog bytes (and class letters). Offsets are in
/// bytes from the start of the stream or of the slice that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a GHC eventlog: expected 'hdrb' at byte {offset}")]
    NotEventlog { offset: u64 },
    #[error("malformed eventlog header at byte {offset}: {what}")]
    BadHeader { offset: u64, what: &'static str },
    #[error("eventlog header starting at byte {offset} is larger than {limit} bytes")]
    HeaderTooLarge { offset: u64, limit: usize },
    #[error("event type {ty} at byte {offset} is not in the header's type table")]
    UnknownEventType { ty: u16, offset: u64 },
    #[error("event of type {ty} at byte {offset}: payload of {len} bytes does not fit: {why}")]
    BadEventSize {
        ty: u16,
        offset: u64,
        len: usize,
        why: &'static str,
    },
    #[error("malformed block marker at byte {offset}: {what}")]
    BadBlockMarker { offset: u64, what: &'static str },
    #[error("{what} truncated at byte {offset}")]
    Truncated { offset: u64, what: &'static str },
    #[error(
        "unknown trace class letter {letter:?} in {input:?} (expected letters from \"sgnpfu\")"
    )]
    BadClassLetter { letter: char, input: String },
}

/// What one `writeEventLog` buffer from the RTS holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// The header; `hdrb` starts at `offset` (24 after a restart, when the
    /// global buffer's stale block marker precedes it).
    Header {
        offset: usize,
    },
    DataEnd,
    Block,
}

/// Classifies one RTS write by looking at a few bytes only (RTS thread hot path).
pub fn classify_write(bytes: &[u8]) -> WriteKind {
    if bytes.starts_with(&HEADER_BEGIN) {
        WriteKind::Header { offset: 0 }
    } else if bytes == DATA_END {
        WriteKind::DataEnd
    } else if bytes.len() >= BLOCK_MARKER_SIZE + 4
        && bytes[..2] == EVENT_BLOCK_MARKER.to_be_bytes()
        && bytes[BLOCK_MARKER_SIZE..BLOCK_MARKER_SIZE + 4] == HEADER_BEGIN
    {
        WriteKind::Header {
            offset: BLOCK_MARKER_SIZE,
        }
    } else {
        WriteKind::Block
    }
}

/// One event, borrowed from a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub ty: u16,
    pub time: u64,
    /// The payload, without the u16 size prefix of variable-size events.
    pub payload: &'a [u8],
    /// The whole event as written.
    pub raw: &'a [u8],
}

impl Event<'_> {
    pub fn class(&self) -> Class {
        class_of(self.ty)
    }
}

/// A block marker's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMarker {
    /// Time the block was opened (the marker event's own timestamp).
    pub time: u64,
    /// Bytes from the marker's first byte to the block's end (a hint: 0 when stale).
    pub size: u32,
    pub end_time: u64,
    /// Capability number, [`GLOBAL_CAP`] for the global buffer.
    pub cap: u16,
}

impl BlockMarker {
    /// Reads the marker at the start of `bytes`, if it starts with a whole one.
    pub fn parse(bytes: &[u8]) -> Option<BlockMarker> {
        if bytes.len() < BLOCK_MARKER_SIZE || be16(bytes, 0) != EVENT_BLOCK_MARKER {
            return None;
        }
        Some(BlockMarker {
            time: be64(bytes, 2),
            size: be32(bytes, 10),
            end_time: be64(bytes, 14),
            cap: be16(bytes, 22),
        })
    }
}

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[inline(always)]
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Length of the event starting at `bytes[0]`.
/// `Ok(None)`: more bytes are needed to know or to hold it.
#[inline(always)]
pub(crate) fn event_len(
    header: &Header,
    bytes: &[u8],
    offset: u64,
) -> Result<Option<usize>, FormatError> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let ty = be16(bytes, 0);
    let len = match header.size_code(ty) {
        SIZE_UNKNOWN => return Err(FormatError::UnknownEventType { ty, offset }),
        SIZE_VARIABLE => {
            if bytes.len() < EVENT_HEADER_SIZE + 2 {
                return Ok(None);
            }
            let declared = be16(bytes, EVENT_HEADER_SIZE) as usize;
            if ty == EVENT_IPE {
                return Ok(ipe_len(&bytes[EVENT_HEADER_SIZE + 2..], declared)
                    .map(|n| EVENT_HEADER_SIZE + 2 + n));
            }
            EVENT_HEADER_SIZE + 2 + declared
        }
        fixed => EVENT_HEADER_SIZE + fixed as usize,
    };
    Ok((bytes.len() >= len).then_some(len))
}

/// The payload length of an `EVENT_IPE` whose size field says `declared`,
/// `None` until the bytes are there. GHC 9.4 to 9.10 (at least: seen on 9.6.6
/// and 9.10.3) count a NUL after the source file that `postIPE` never writes
/// (it writes `file:span` as one string), so the field is one more than the
/// payload: the info word and six NUL-terminated strings. ghc-events reads the
/// strings and never notices; a walk by the size field would land one byte
/// into the next event. The payload's own length is used when it is exactly
/// one short of the field, the field otherwise.
fn ipe_len(payload: &[u8], declared: usize) -> Option<usize> {
    const INFO_WORD: usize = 8;
    const STRINGS: usize = 6;
    let room = payload.len().min(declared);
    let mut at = INFO_WORD;
    for _ in 0..STRINGS {
        match payload.get(at..room)?.iter().position(|&b| b == 0) {
            Some(nul) => at += nul + 1,
            None if room < declared => return None,
            None => return Some(declared),
        }
    }
    if at + 1 == declared {
        Some(at)
    } else {
        (payload.len() >= declared).then_some(declared)
    }
}

/// The types and payload sizes of the last two fixed-size events of a walk.
///
/// Walking events is a chain: each event's offset depends on the previous
/// event's size, which takes two dependent loads (type, then size table).
/// GHC's scheduler events mostly come in pairs (run thread, stop thread), so
/// an event's type usually equals the one two events back: comparing against
/// it lets the CPU predict the branch and run ahead with a known size instead
/// of waiting on the loads. When that guess fails often (more than once per
/// 64 bytes walked, about four small events), the mispredicted branches cost
/// more than the loads they save: then it stops guessing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SizeHistory {
    /// `type << 16 | payload size`; `u64::MAX` matches no type. (Packed:
    /// the iterator is inlined into its callers' loops, keep it in registers.)
    last: u64,
    before: u64,
    /// Events that `hit` did not know.
    misses: usize,
}

impl Default for SizeHistory {
    fn default() -> Self {
        SizeHistory {
            last: u64::MAX,
            before: u64::MAX,
            misses: 0,
        }
    }
}

impl SizeHistory {
    /// If `ty` is the type two events back, records the event and returns
    /// its payload size.
    #[inline(always)]
    pub(crate) fn hit(&mut self, ty: u16) -> Option<u16> {
        if self.before >> 16 != u64::from(ty) {
            return None;
        }
        // The new history is (this event, the last one): a swap.
        std::mem::swap(&mut self.last, &mut self.before);
        Some(self.last as u16)
    }

    /// Records an event that `hit` did not know: `Some(payload size)` for a
    /// fixed-size one. `walked`: bytes walked so far.
    #[inline(always)]
    pub(crate) fn push(&mut self, ty: u16, payload: Option<u16>, walked: usize) {
        self.misses += 1;
        if self.misses > walked / 64 + 16 {
            // Stop guessing: `before` matches nothing from now on.
            self.last = u64::MAX;
            self.before = u64::MAX;
            return;
        }
        self.before = self.last;
        self.last = match payload {
            Some(size) => u64::from(ty) << 16 | u64::from(size),
            None => u64::MAX,
        };
    }
}

/// Iterates over the events of a block (marker included), without copying.
pub fn events<'a>(header: &'a Header, block: &'a [u8]) -> Events<'a> {
    Events {
        header,
        rest: block,
        end: block.len(),
        history: SizeHistory::default(),
    }
}

/// Iterator returned by [`events`]; stops after the first error.
#[derive(Clone, Debug)]
pub struct Events<'a> {
    header: &'a Header,
    /// The events not yet returned; emptied after an error.
    rest: &'a [u8],
    /// Offset in the block of the end of `rest`.
    end: usize,
    history: SizeHistory,
}

impl<'a> Events<'a> {
    /// Offset in the block of the next event.
    pub fn offset(&self) -> usize {
        self.end - self.rest.len()
    }

    #[inline]
    fn fail(&mut self, e: FormatError) -> Option<Result<Event<'a>, FormatError>> {
        // Keep `offset()` at the bad event.
        self.end = self.offset();
        self.rest = &[];
        Some(Err(e))
    }

    /// The general case: any event type, and errors.
    #[inline]
    fn next_slow(&mut self) -> Option<Result<Event<'a>, FormatError>> {
        let offset = self.offset() as u64;
        let len = match event_len(self.header, self.rest, offset) {
            Ok(Some(len)) => len,
            Ok(None) => {
                return self.fail(FormatError::Truncated {
                    offset,
                    what: "event",
                })
            }
            Err(e) => return self.fail(e),
        };
        let (raw, rest) = self.rest.split_at(len);
        let ty = be16(raw, 0);
        let payload = match self.header.size_code(ty) {
            SIZE_VARIABLE => {
                self.history.push(ty, None, offset as usize);
                &raw[EVENT_HEADER_SIZE + 2..]
            }
            size => {
                self.history.push(ty, Some(size as u16), offset as usize);
                &raw[EVENT_HEADER_SIZE..]
            }
        };
        self.rest = rest;
        Some(Ok(Event {
            ty,
            time: be64(raw, 2),
            payload,
            raw,
        }))
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, FormatError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let Some(head) = self.rest.first_chunk::<EVENT_HEADER_SIZE>() else {
            if self.rest.is_empty() {
                return None;
            }
            return self.next_slow();
        };
        let ty = u16::from_be_bytes([head[0], head[1]]);
        let Some(size) = self.history.hit(ty) else {
            return self.next_slow();
        };
        let Some((raw, rest)) = self
            .rest
            .split_at_checked(EVENT_HEADER_SIZE + size as usize)
        else {
            return self.next_slow();
        };
        self.rest = rest;
        Some(Ok(Event {
            ty,
            time: be64(head, 2),
            payload: &raw[EVENT_HEADER_SIZE..],
            raw,
        }))
    }
}
