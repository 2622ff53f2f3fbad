//! Incremental splitting of an eventlog byte stream into frames.

use super::header::{HeaderParser, HEADER_BEGIN, SIZE_UNKNOWN, SIZE_VARIABLE};
use crate::state::StateCache;

use super::{
    be16, be64, event_len, events, BlockMarker, FormatError, Header, SizeHistory,
    BLOCK_MARKER_SIZE, EVENT_BLOCK_MARKER, EVENT_HEADER_SIZE, GLOBAL_CAP,
};

/// A block longer than this is cut (bounded memory); 9.0.2's buffers are 2 MiB.
pub const MAX_BLOCK_SIZE: usize = 16 << 20;

/// A block handed out without a copy has at most 1/MAX_SLACK of its size as
/// unused capacity (consumers such as the proxy's store keep blocks and
/// count them by length).
const MAX_SLACK: usize = 16;

/// One unit of an eventlog stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Header(Header),
    Block(Block),
    DataEnd,
}

/// A block: its marker plus the events up to the block's end, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub bytes: Vec<u8>,
    /// From the marker; [`GLOBAL_CAP`] for the global buffer and for events
    /// that came without a marker.
    pub cap: u16,
    /// The marker's timestamp (first event's time when there is no marker).
    pub start_time: u64,
    /// The marker's end time. When the marker's size was stale or wrong, the
    /// decoder rewrites the marker in `bytes` with the real size and the
    /// latest event time, so downstream readers see a consistent block.
    pub end_time: u64,
    /// Events in the block, not counting the marker.
    pub events: u32,
    /// Whether the block holds an event a late joiner's state replay is made
    /// of ([`StateCache::interested`](crate::state::StateCache::interested));
    /// a block without one needs no pass through the cache.
    pub state: bool,
}

impl Block {
    /// Whether the block starts with a block marker.
    pub fn has_marker(&self) -> bool {
        BlockMarker::parse(&self.bytes).is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of the stream or after a data end.
    ExpectHeader,
    InData,
}

/// Progress through the block at the front of the buffer, kept between
/// pushes so each byte is scanned once.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Offset (from the block start) of the next unscanned event.
    off: usize,
    marker: Option<BlockMarker>,
    /// The marker's size while it is still consistent with the events seen.
    target: Option<usize>,
    events: u32,
    /// A state event was seen.
    state: bool,
}

/// Splits a byte stream, pushed in chunks of any size, into [`Frame`]s.
///
/// A block is handed out as soon as its marker's size says it is complete,
/// so a live stream never waits for the next block. When the marker's size
/// is stale or wrong the block extends to the next marker, data end or header.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    state: State,
    header: Option<Header>,
    hdr: HeaderParser,
    scan: Option<Scan>,
    failed: Option<FormatError>,
    /// The largest push so far: how far a push may run past a block's end.
    max_push: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}

enum Step {
    Frame(Frame),
    NeedMore,
    Continue,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder {
            buf: Vec::new(),
            pos: 0,
            base: 0,
            state: State::ExpectHeader,
            header: None,
            hdr: HeaderParser::default(),
            scan: None,
            failed: None,
            max_push: 0,
        }
    }

    /// Appends stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.max_push = self.max_push.max(bytes.len());
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The header of the current session, once seen.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Bytes pushed but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Stream offset of the first byte not yet returned in a frame.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Whether the decoder sits between frames with nothing pending (a clean
    /// place for a stream to end).
    pub fn at_boundary(&self) -> bool {
        self.buffered() == 0
    }

    /// The next whole frame; `Ok(None)` when more bytes are needed.
    /// After an error every call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FormatError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let r = match self.state {
                State::ExpectHeader => self.step_header(),
                State::InData => self.step_data(),
            };
            match r {
                Ok(Step::Frame(f)) => return Ok(Some(f)),
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Continue) => {}
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Call at the end of the input, like `next_frame`: once the whole frames
    /// are out, returns the whole events of a cut-off last block (a truncated
    /// log, as `ghc-events` tolerates) and drops the partial tail.
    pub fn finish(&mut self) -> Result<Option<Frame>, FormatError> {
        if let Some(f) = self.next_frame()? {
            return Ok(Some(f));
        }
        if let Some(scan) = self.scan {
            if scan.off > 0 {
                return Ok(Some(Frame::Block(self.take_block(scan))));
            }
        }
        self.scan = None;
        self.pos = self.buf.len();
        self.hdr = HeaderParser::default();
        Ok(None)
    }

    /// After `next_frame` failed inside a block: the block's whole events
    /// before the damage, its marker rewritten to their size (`None` when
    /// the damage is the block's first event), and how many buffered bytes
    /// are left behind from the damage on. The decoder stays failed.
    pub fn salvage(&mut self) -> (Option<Block>, usize) {
        if self.failed.is_none() {
            return (None, 0);
        }
        let block = match self.scan.take() {
            Some(scan) if scan.off > 0 && scan.events > 0 => Some(self.take_block(scan)),
            _ => None,
        };
        let left = self.buffered();
        self.pos = self.buf.len();
        (block, left)
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn step_header(&mut self) -> Result<Step, FormatError> {
        let rest = self.rest();
        let at = self.base + self.pos as u64;
        // After a restart the global buffer's stale marker precedes `hdrb`.
        if self.hdr_idle() && rest.len() >= 2 && be16(rest, 0) == EVENT_BLOCK_MARKER {
            if rest.len() < BLOCK_MARKER_SIZE + 4 {
                return Ok(Step::NeedMore);
            }
            if rest[BLOCK_MARKER_SIZE..BLOCK_MARKER_SIZE + 4] != HEADER_BEGIN {
                return Err(FormatError::NotEventlog { offset: at });
            }
            self.pos += BLOCK_MARKER_SIZE;
            return Ok(Step::Continue);
        }
        let rest = &self.buf[self.pos..];
        match self.hdr.step(rest, at)? {
            None => Ok(Step::NeedMore),
            Some(h) => {
                self.pos += h.raw.len();
                self.header = Some(h.clone());
                self.state = State::InData;
                Ok(Step::Frame(Frame::Header(h)))
            }
        }
    }

    fn hdr_idle(&self) -> bool {
        self.hdr.consumed() == 0
    }

    fn step_data(&mut self) -> Result<Step, FormatError> {
        let header = self.header.as_ref().expect("InData implies a header");
        let rest = &self.buf[self.pos..];
        let at = self.base + self.pos as u64;
        let mut scan = match self.scan {
            Some(s) => s,
            None => {
                if rest.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                let ty = be16(rest, 0);
                if ty == 0xffff {
                    self.pos += 2;
                    self.state = State::ExpectHeader;
                    return Ok(Step::Frame(Frame::DataEnd));
                }
                if is_header_start(header, rest) {
                    // A new session without a data end (legal, e.g. after a crash).
                    self.state = State::ExpectHeader;
                    return Ok(Step::Continue);
                }
                if ty == EVENT_BLOCK_MARKER {
                    if header.payload_size(EVENT_BLOCK_MARKER) != Some(Some(14)) {
                        return Err(FormatError::BadBlockMarker {
                            offset: at,
                            what: "header does not give the block marker its 14-byte payload",
                        });
                    }
                    let Some(m) = BlockMarker::parse(rest) else {
                        return Ok(Step::NeedMore);
                    };
                    let size = m.size as usize;
                    Scan {
                        off: BLOCK_MARKER_SIZE,
                        marker: Some(m),
                        target: (size >= BLOCK_MARKER_SIZE).then_some(size),
                        events: 0,
                        state: false,
                    }
                } else {
                    Scan {
                        off: 0,
                        marker: None,
                        target: None,
                        events: 0,
                        state: false,
                    }
                }
            }
        };
        if self.scan.is_none() {
            if let Some(m) = scan.marker {
                self.fit_block(m.size as usize);
            }
        }
        let header = self.header.as_ref().expect("InData implies a header");
        let rest = &self.buf[self.pos..];
        // Walk whole events until the block's end is known. `skip_plain`
        // takes the common events fast; the body below does one step of the
        // full walk for whatever it stopped at.
        let end = loop {
            let stop = scan
                .target
                .map_or(MAX_BLOCK_SIZE, |t| t.min(MAX_BLOCK_SIZE));
            let (off, n, state) = skip_plain(header, rest, scan.off, stop);
            scan.off = off;
            scan.events += n;
            scan.state |= state;
            if let Some(t) = scan.target {
                if scan.off == t {
                    break true;
                }
                if scan.off > t {
                    scan.target = None;
                }
            }
            if scan.off >= MAX_BLOCK_SIZE {
                break true;
            }
            let ev = &rest[scan.off..];
            if ev.len() < 2 {
                break false;
            }
            let ty = be16(ev, 0);
            // (A marker at offset 0 opened this scan: `off` is past it.)
            if ty == EVENT_BLOCK_MARKER && scan.off > 0 {
                break true;
            }
            if ty == 0xffff || is_header_start(header, ev) {
                break true;
            }
            match event_len(header, ev, at + scan.off as u64) {
                Ok(Some(len)) => {
                    scan.events += 1;
                    scan.state |= StateCache::interested(ty);
                    scan.off += len;
                }
                Ok(None) => break false,
                Err(e) => {
                    // 'h' 'd' of a header cut after two bytes: wait for the rest.
                    if ev.len() < 4
                        && header.size_code(ty) == SIZE_UNKNOWN
                        && HEADER_BEGIN.starts_with(ev)
                    {
                        break false;
                    }
                    // Kept for `salvage`: the whole events before the damage.
                    self.scan = Some(scan);
                    return Err(e);
                }
            }
        };
        if !end {
            // Nothing scanned yet: restart from the top next time.
            self.scan = (scan.off > 0).then_some(scan);
            return Ok(Step::NeedMore);
        }
        // A marker right before `hdrb` is the stale prefix of a restart's header.
        let next = &rest[scan.off..];
        if scan.events == 0 && scan.marker.is_some() && is_header_start(header, next) {
            self.pos += scan.off;
            self.scan = None;
            self.state = State::ExpectHeader;
            return Ok(Step::Continue);
        }
        // GHC >= 9.2 counts the data end that follows the global block in its size.
        if scan.target == Some(scan.off + 2) && next.starts_with(&[0xff, 0xff]) {
            scan.target = Some(scan.off);
            if let Some(m) = &mut scan.marker {
                m.size = scan.off as u32;
            }
            let mut b = self.take_block(scan);
            let size = b.bytes.len() as u32;
            b.bytes[10..14].copy_from_slice(&size.to_be_bytes());
            return Ok(Step::Frame(Frame::Block(b)));
        }
        Ok(Step::Frame(Frame::Block(self.take_block(scan))))
    }

    /// Makes room for a block of `size` bytes (as its marker says) at the
    /// front of the buffer, plus one push's overshoot, so that `take_block`
    /// can hand out the buffer itself. Left alone when the spare room would
    /// be large for the block (big pushes, small blocks): then blocks are
    /// copied out.
    fn fit_block(&mut self, size: usize) {
        if size > MAX_BLOCK_SIZE || self.max_push > size / MAX_SLACK {
            return;
        }
        if self.pos > 0 {
            // Move the block to the front (it has about one push buffered).
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let want = size + self.max_push;
        if self.buf.capacity() < want {
            self.buf.reserve_exact(want - self.buf.len());
        } else if self.buf.capacity() - size > size / MAX_SLACK {
            self.buf.shrink_to(want);
        }
    }

    fn take_block(&mut self, scan: Scan) -> Block {
        let end = self.pos + scan.off;
        let mut bytes = if self.pos == 0 && self.buf.capacity() - end <= end / MAX_SLACK {
            // The buffer fits the block snugly (see `fit_block`): hand it out
            // and keep only what follows, rather than copy the block.
            let mut next = Vec::with_capacity(self.buf.capacity());
            next.extend_from_slice(&self.buf[end..]);
            self.buf.truncate(end);
            self.base += end as u64;
            std::mem::replace(&mut self.buf, next)
        } else {
            let bytes = self.buf[self.pos..end].to_vec();
            self.pos = end;
            bytes
        };
        self.scan = None;
        // Times are only read here, in the rare cases that need them.
        let max_time = || {
            let header = self.header.as_ref().expect("a block implies a header");
            events(header, &bytes)
                .map_while(Result::ok)
                .fold(0, |m, e| m.max(e.time))
        };
        let (cap, start_time, end_time) = match scan.marker {
            Some(m) if scan.target == Some(scan.off) => (m.cap, m.time, m.end_time),
            Some(m) => {
                // Stale or wrong size: make the marker describe what we cut.
                let max_time = max_time();
                bytes[2 + 8..2 + 8 + 4].copy_from_slice(&(scan.off as u32).to_be_bytes());
                bytes[2 + 8 + 4..2 + 8 + 4 + 8].copy_from_slice(&max_time.to_be_bytes());
                (m.cap, m.time, max_time)
            }
            // A scan without a marker ends after at least one whole event.
            None => (GLOBAL_CAP, be64(&bytes, 2), max_time()),
        };
        Block {
            bytes,
            cap,
            start_time,
            end_time,
            events: scan.events,
            state: scan.state,
        }
    }
}

/// Walks the events from `off` on while they are plain: of a known fixed
/// size, not a block marker, whole in `bytes` and starting before `stop`.
/// Returns where it stopped, how many events it walked and whether one was a
/// state event. Each of these events is one step of `step_data`'s walk that
/// changes nothing but the offset, the count and the state flag.
#[inline]
fn skip_plain(header: &Header, bytes: &[u8], mut off: usize, stop: usize) -> (usize, u32, bool) {
    let start = off;
    let mut n = 0;
    // Checked where a type enters the history: a hit repeats a checked type.
    let mut state = false;
    let mut history = SizeHistory::default();
    let mut rest = bytes.get(off..).unwrap_or_default();
    while off < stop {
        let Some(&[a, b]) = rest.first_chunk::<2>() else {
            break;
        };
        let ty = u16::from_be_bytes([a, b]);
        let size = match history.hit(ty) {
            Some(size) => size,
            None => {
                let code = header.size_code(ty);
                if code >= SIZE_VARIABLE || ty == EVENT_BLOCK_MARKER {
                    break;
                }
                state |= StateCache::interested(ty);
                history.push(ty, Some(code as u16), off - start);
                code as u16
            }
        };
        let Some((_, after)) = rest.split_at_checked(EVENT_HEADER_SIZE + size as usize) else {
            break;
        };
        off += EVENT_HEADER_SIZE + size as usize;
        rest = after;
        n += 1;
    }
    (off, n, state)
}

/// Whether the whole events of `block` include one the state cache keeps,
/// by the decoder's fast walk (for blocks that did not come through a
/// decoder, which would have flagged them). Stops at the first one.
pub fn holds_state(header: &Header, block: &[u8]) -> bool {
    let mut off = 0;
    loop {
        let (end, _, state) = skip_plain(header, block, off, block.len());
        if state {
            return true;
        }
        // One step of the full walk for what the fast one stopped at.
        let ev = &block[end..];
        if ev.len() < 2 {
            return false;
        }
        if StateCache::interested(be16(ev, 0)) {
            return true;
        }
        match event_len(header, ev, end as u64) {
            Ok(Some(len)) => off = end + len,
            _ => return false,
        }
    }
}

/// `hdrb` where the header's table has no type 0x6864 ("hd").
fn is_header_start(header: &Header, bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes[..4] == HEADER_BEGIN
        && header.size_code(be16(bytes, 0)) == SIZE_UNKNOWN
}
