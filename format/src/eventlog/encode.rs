//! Writing blocks: elstream's own notices, filtered copies of RTS blocks.

use super::header::{SIZE_UNKNOWN, SIZE_VARIABLE};
use super::{
    be16, events, ClassSet, FormatError, Header, BLOCK_MARKER_SIZE, EVENT_BLOCK_MARKER,
    EVENT_USER_MSG, GLOBAL_CAP,
};

/// Builds one block (marker first) the way the RTS's `postBlockMarker` /
/// `closeBlockMarker` do.
#[derive(Debug, Clone)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    first_time: Option<u64>,
    max_time: u64,
}

impl BlockBuilder {
    /// `cap` is the capability number, [`GLOBAL_CAP`] for a global block.
    pub fn new(cap: u16) -> BlockBuilder {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&EVENT_BLOCK_MARKER.to_be_bytes());
        buf.extend_from_slice(&[0; 8 + 4 + 8]); // time, size, end time: set by finish
        buf.extend_from_slice(&cap.to_be_bytes());
        BlockBuilder {
            buf,
            first_time: None,
            max_time: 0,
        }
    }

    /// Appends one event. The payload excludes the size prefix of variable
    /// events (added here) and must match a fixed size exactly.
    pub fn push(
        &mut self,
        header: &Header,
        ty: u16,
        time: u64,
        payload: &[u8],
    ) -> Result<(), FormatError> {
        let offset = self.buf.len() as u64;
        let code = header.size_code(ty);
        if code == SIZE_UNKNOWN {
            return Err(FormatError::UnknownEventType { ty, offset });
        }
        if ty == EVENT_BLOCK_MARKER {
            return Err(FormatError::BadEventSize {
                ty,
                offset,
                len: payload.len(),
                why: "block markers are written by BlockBuilder itself",
            });
        }
        if code == SIZE_VARIABLE {
            if payload.len() > u16::MAX as usize {
                return Err(FormatError::BadEventSize {
                    ty,
                    offset,
                    len: payload.len(),
                    why: "variable payloads are at most 65535 bytes",
                });
            }
        } else if payload.len() != code as usize {
            return Err(FormatError::BadEventSize {
                ty,
                offset,
                len: payload.len(),
                why: "fixed-size payload of another length",
            });
        }
        self.buf.extend_from_slice(&ty.to_be_bytes());
        self.buf.extend_from_slice(&time.to_be_bytes());
        if code == SIZE_VARIABLE {
            self.buf
                .extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        self.buf.extend_from_slice(payload);
        self.first_time.get_or_insert(time);
        self.max_time = self.max_time.max(time);
        Ok(())
    }

    /// Bytes so far, marker included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no event has been pushed.
    pub fn is_empty(&self) -> bool {
        self.first_time.is_none()
    }

    /// The block, with the marker's time (first event's), size and end time.
    pub fn finish(mut self) -> Vec<u8> {
        let start = self.first_time.unwrap_or(0);
        let size = self.buf.len() as u32;
        self.buf[2..10].copy_from_slice(&start.to_be_bytes());
        self.buf[10..14].copy_from_slice(&size.to_be_bytes());
        self.buf[14..22].copy_from_slice(&self.max_time.to_be_bytes());
        self.buf
    }
}

/// A global block with one `EVENT_USER_MSG` (e.g. elstream's drop notices).
/// Text beyond 65535 bytes is cut at a char boundary. The event is written
/// variable-size, as every GHC header declares type 19.
pub fn user_message_block(header: &Header, time: u64, text: &str) -> Vec<u8> {
    let mut end = text.len().min(u16::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    let mut b = BlockBuilder::new(GLOBAL_CAP);
    if b.push(header, EVENT_USER_MSG, time, text).is_err() {
        // Header without a variable type 19: encode it by hand anyway.
        b.buf.extend_from_slice(&EVENT_USER_MSG.to_be_bytes());
        b.buf.extend_from_slice(&time.to_be_bytes());
        b.buf.extend_from_slice(&(text.len() as u16).to_be_bytes());
        b.buf.extend_from_slice(text);
        b.first_time = Some(time);
        b.max_time = time;
    }
    b.finish()
}

/// Copies `block` without the events whose class `keep` drops (`Always`
/// events stay) and fixes the marker's size. Bytes from an undecodable
/// event on are copied unchanged: the filter never invents or loses data.
pub fn filter_block(header: &Header, block: &[u8], keep: ClassSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len());
    let mut it = events(header, block);
    let has_marker = block.len() >= BLOCK_MARKER_SIZE && be16(block, 0) == EVENT_BLOCK_MARKER;
    loop {
        let at = it.offset();
        match it.next() {
            None => break,
            Some(Ok(ev)) => {
                if (at == 0 && has_marker) || keep.keeps(ev.ty) {
                    out.extend_from_slice(ev.raw);
                }
            }
            Some(Err(_)) => {
                out.extend_from_slice(&block[at..]);
                break;
            }
        }
    }
    if has_marker {
        let size = out.len() as u32;
        out[2 + 8..2 + 8 + 4].copy_from_slice(&size.to_be_bytes());
    }
    out
}
