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

/// Events per block of [`thread_creation_blocks`] (about 14 bytes each).
const THREADS_PER_BLOCK: usize = 32 * 1024;

/// Blocks on capability 0 with one `EVENT_CREATE_THREAD` at `time` per id,
/// then one `EVENT_THREAD_LABEL` per label: what the shim adds for threads
/// created before it became the writer, so a reader (ghc-events' thread
/// validator, ThreadScope) meets every thread's creation before its other
/// events. Empty if the header lacks the types.
pub fn thread_creation_blocks(
    header: &Header,
    time: u64,
    ids: &[u64],
    labels: &[(u64, Vec<u8>)],
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = BlockBuilder::new(0);
    let mut n = 0;
    let events = ids
        .iter()
        .map(|&id| {
            (
                super::EVENT_CREATE_THREAD,
                (id as u32).to_be_bytes().to_vec(),
            )
        })
        .chain(labels.iter().map(|(id, text)| {
            let mut p = (*id as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&text[..text.len().min(u16::MAX as usize - 4)]);
            (super::EVENT_THREAD_LABEL, p)
        }));
    for (ty, payload) in events {
        if b.push(header, ty, time, &payload).is_err() {
            if ty == super::EVENT_CREATE_THREAD {
                return Vec::new();
            }
            continue;
        }
        n += 1;
        if n == THREADS_PER_BLOCK {
            out.push(std::mem::replace(&mut b, BlockBuilder::new(0)).finish());
            n = 0;
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}

/// A copy of `block` without the data end the RTS put at its end, with the
/// marker's size fixed; `None` when the block does not end with one. Since
/// GHC 9.2 `endEventLogging` writes the data end inside the global buffer's
/// last block instead of on its own: a stream that goes on (a restart) or
/// ends with its own data end must not carry it.
pub fn block_without_data_end(header: &Header, block: &[u8]) -> Option<Vec<u8>> {
    if !block.ends_with(&super::DATA_END) || block.len() < BLOCK_MARKER_SIZE + 2 {
        return None;
    }
    let mut walk = events(header, block);
    for ev in walk.by_ref() {
        if let Err(FormatError::UnknownEventType { ty: 0xffff, offset }) = ev {
            if offset as usize == block.len() - 2 {
                let mut out = block[..block.len() - 2].to_vec();
                if out[..2] == EVENT_BLOCK_MARKER.to_be_bytes() {
                    let size = out.len() as u32;
                    out[10..14].copy_from_slice(&size.to_be_bytes());
                }
                return Some(out);
            }
            return None;
        }
    }
    None
}

/// A global block with the capsets and capabilities the RTS posts at start
/// (initCapabilities): the OS process capset (0) and clock domain (1), then
/// each capability created and assigned to both. 9.2+ does not re-post them
/// when a writer starts. Empty if the header lacks the types.
pub fn capability_blocks(header: &Header, time: u64, n_caps: u16) -> Vec<u8> {
    const CAPSET_OSPROCESS: (u32, u16) = (0, 2);
    const CAPSET_CLOCKDOMAIN: (u32, u16) = (1, 3);
    let mut b = BlockBuilder::new(GLOBAL_CAP);
    let mut ok = true;
    for (capset, ty) in [CAPSET_OSPROCESS, CAPSET_CLOCKDOMAIN] {
        let mut p = capset.to_be_bytes().to_vec();
        p.extend_from_slice(&ty.to_be_bytes());
        ok &= b.push(header, super::EVENT_CAPSET_CREATE, time, &p).is_ok();
    }
    for cap in 0..n_caps {
        ok &= b
            .push(header, super::EVENT_CAP_CREATE, time, &cap.to_be_bytes())
            .is_ok();
        for (capset, _) in [CAPSET_OSPROCESS, CAPSET_CLOCKDOMAIN] {
            let mut p = capset.to_be_bytes().to_vec();
            p.extend_from_slice(&cap.to_be_bytes());
            ok &= b
                .push(header, super::EVENT_CAPSET_ASSIGN_CAP, time, &p)
                .is_ok();
        }
    }
    if ok {
        b.finish()
    } else {
        Vec::new()
    }
}
