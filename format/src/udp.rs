//! elstream's UDP datagram format: an eventlog stream cut into datagrams.
//!
//! The sender cuts every *frame* (the eventlog header, a state-replay block, one
//! whole eventlog block, or the data-end marker) into datagrams of at most `mtu`
//! bytes. Every datagram carries a fixed 32-byte header, all integers big-endian
//! (like the eventlog itself):
//!
//! | offset | size | field                                                        |
//! |-------:|-----:|--------------------------------------------------------------|
//! | 0      | 4    | magic `ELSU`                                                 |
//! | 4      | 1    | version (1)                                                  |
//! | 5      | 1    | flags (see below)                                            |
//! | 6      | 2    | reserved, 0                                                  |
//! | 8      | 4    | stream id: one session of one source; a new id = new session |
//! | 12     | 8    | sequence number, +1 per datagram of the stream, from 0       |
//! | 20     | 4    | block number: count of Block/DataEnd frames sent before this |
//! | 24     | 4    | frame length in bytes                                        |
//! | 28     | 4    | offset of this payload inside the frame                      |
//! | 32     | ...  | payload                                                      |
//!
//! Flags: `0x01` FRAME_START (payload starts at offset 0), `0x02` FRAME_END (last
//! datagram of the frame), `0x04` HEADER (frame is the eventlog header, `hdrb`..`datb`),
//! `0x08` STATE (frame is a state-replay block, only for receivers that start
//! mid-stream), `0x10` DATA_END (frame is the 2-byte data end). No kind flag = an
//! eventlog block.
//!
//! Header and state frames are re-sent periodically and share the sequence space
//! (so losses among them are detected too) but not the block numbering, so a
//! receiver can count exactly how many blocks it lost: the difference of block
//! numbers between the last block it delivered and the next one it completes.

use std::fmt;

/// `ELSU`.
pub const MAGIC: [u8; 4] = *b"ELSU";
pub const VERSION: u8 = 1;
/// Bytes of the fixed datagram header.
pub const HEADER_LEN: usize = 32;
/// Smallest accepted MTU (datagram size including [`HEADER_LEN`]).
pub const MIN_MTU: usize = 64;
/// Largest UDP payload over IPv4.
pub const MAX_MTU: usize = 65507;
/// Default datagram size: fits an Ethernet frame with IPv4/IPv6 + UDP headers.
pub const DEFAULT_MTU: usize = 1400;
/// Largest frame a receiver reassembles (bounded memory on hostile input).
pub const MAX_FRAME: u32 = 64 << 20;

pub const FLAG_FRAME_START: u8 = 0x01;
pub const FLAG_FRAME_END: u8 = 0x02;
pub const FLAG_HEADER: u8 = 0x04;
pub const FLAG_STATE: u8 = 0x08;
pub const FLAG_DATA_END: u8 = 0x10;
const KIND_FLAGS: u8 = FLAG_HEADER | FLAG_STATE | FLAG_DATA_END;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Header,
    State,
    Block,
    DataEnd,
}

impl FrameKind {
    fn flag(self) -> u8 {
        match self {
            FrameKind::Header => FLAG_HEADER,
            FrameKind::State => FLAG_STATE,
            FrameKind::Block => 0,
            FrameKind::DataEnd => FLAG_DATA_END,
        }
    }
    fn from_flags(flags: u8) -> Option<FrameKind> {
        match flags & KIND_FLAGS {
            0 => Some(FrameKind::Block),
            FLAG_HEADER => Some(FrameKind::Header),
            FLAG_STATE => Some(FrameKind::State),
            FLAG_DATA_END => Some(FrameKind::DataEnd),
            _ => None,
        }
    }
    /// Block and DataEnd frames are numbered; header/state re-sends are not.
    fn numbered(self) -> bool {
        matches!(self, FrameKind::Block | FrameKind::DataEnd)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UdpError {
    #[error("datagram of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("bad magic {0:02x?} (not an elstream datagram)")]
    Magic([u8; 4]),
    #[error("unsupported datagram version {0} (this build speaks {VERSION})")]
    Version(u8),
    #[error("invalid flags {0:#04x}")]
    Flags(u8),
    #[error("frame length {0} exceeds the limit {MAX_FRAME}")]
    FrameTooLarge(u32),
    #[error("payload at offset {offset} + {len} bytes exceeds frame length {frame_len}")]
    Overrun {
        offset: u32,
        len: usize,
        frame_len: u32,
    },
    #[error("MTU {0} outside {MIN_MTU}..={MAX_MTU}")]
    Mtu(usize),
}

/// One parsed datagram (borrowing its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub flags: u8,
    pub stream: u32,
    pub seq: u64,
    pub block_no: u32,
    pub frame_len: u32,
    pub offset: u32,
    pub payload: &'a [u8],
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Datagram<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Datagram<'a>, UdpError> {
        if buf.len() < HEADER_LEN {
            return Err(UdpError::Short(buf.len()));
        }
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        if magic != MAGIC {
            return Err(UdpError::Magic(magic));
        }
        if buf[4] != VERSION {
            return Err(UdpError::Version(buf[4]));
        }
        let flags = buf[5];
        if FrameKind::from_flags(flags).is_none() || flags & 0xe0 != 0 {
            return Err(UdpError::Flags(flags));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&buf[12..20]);
        let d = Datagram {
            flags,
            stream: be_u32(&buf[8..]),
            seq: u64::from_be_bytes(seq),
            block_no: be_u32(&buf[20..]),
            frame_len: be_u32(&buf[24..]),
            offset: be_u32(&buf[28..]),
            payload: &buf[HEADER_LEN..],
        };
        if d.frame_len > MAX_FRAME {
            return Err(UdpError::FrameTooLarge(d.frame_len));
        }
        if d.offset as u64 + d.payload.len() as u64 > d.frame_len as u64 {
            return Err(UdpError::Overrun {
                offset: d.offset,
                len: d.payload.len(),
                frame_len: d.frame_len,
            });
        }
        Ok(d)
    }

    pub fn kind(&self) -> FrameKind {
        FrameKind::from_flags(self.flags).unwrap_or(FrameKind::Block)
    }
    pub fn is_start(&self) -> bool {
        self.flags & FLAG_FRAME_START != 0
    }
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_FRAME_END != 0
    }
}

/// Cuts frames into datagrams for one stream.
#[derive(Debug)]
pub struct Packetizer {
    stream: u32,
    next_seq: u64,
    next_block: u32,
    mtu: usize,
    buf: Vec<u8>,
}

impl Packetizer {
    pub fn new(stream: u32, mtu: usize) -> Result<Packetizer, UdpError> {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(UdpError::Mtu(mtu));
        }
        Ok(Packetizer {
            stream,
            next_seq: 0,
            next_block: 0,
            mtu,
            buf: Vec::with_capacity(mtu),
        })
    }

    pub fn stream(&self) -> u32 {
        self.stream
    }

    /// Sequence number the next datagram will carry (= datagrams sent so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Calls `emit` once per datagram of `frame`, in order.
    pub fn packetize(&mut self, kind: FrameKind, frame: &[u8], mut emit: impl FnMut(&[u8])) {
        let room = self.mtu - HEADER_LEN;
        let frame_len = frame.len() as u32;
        let mut offset = 0usize;
        loop {
            let end = (offset + room).min(frame.len());
            let mut flags = kind.flag();
            if offset == 0 {
                flags |= FLAG_FRAME_START;
            }
            if end == frame.len() {
                flags |= FLAG_FRAME_END;
            }
            self.buf.clear();
            self.buf.extend_from_slice(&MAGIC);
            self.buf.push(VERSION);
            self.buf.push(flags);
            self.buf.extend_from_slice(&[0, 0]);
            self.buf.extend_from_slice(&self.stream.to_be_bytes());
            self.buf.extend_from_slice(&self.next_seq.to_be_bytes());
            self.buf.extend_from_slice(&self.next_block.to_be_bytes());
            self.buf.extend_from_slice(&frame_len.to_be_bytes());
            self.buf.extend_from_slice(&(offset as u32).to_be_bytes());
            self.buf.extend_from_slice(&frame[offset..end]);
            emit(&self.buf);
            self.next_seq += 1;
            offset = end;
            if offset >= frame.len() {
                break;
            }
        }
        if kind.numbered() {
            self.next_block = self.next_block.wrapping_add(1);
        }
    }
}

/// What the [`Reassembler`] tells its user.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// Datagrams of a stream id not seen before: a new session starts.
    NewStream(u32),
    /// A complete frame.
    Frame(FrameKind, Vec<u8>),
    /// Datagrams were lost; the frames they touched are dropped. `blocks` is the
    /// exact number of Block/DataEnd frames that will never be delivered (known
    /// once the next numbered frame completes, so it is reported then).
    Loss(Loss),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub datagrams: u64,
    pub blocks: u64,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost {} datagrams, dropped {} blocks",
            self.datagrams, self.blocks
        )
    }
}

/// Rebuilds frames from datagrams, detecting gaps by sequence number: a frame
/// with a missing piece is dropped and reassembly resumes at the next frame start.
#[derive(Debug, Default)]
pub struct Reassembler {
    stream: Option<u32>,
    expected_seq: u64,
    /// Frame being rebuilt: kind, block number, bytes so far, announced length.
    current: Option<(FrameKind, u32, Vec<u8>, u32)>,
    /// Next block number expected to complete, once one block was delivered.
    next_block: Option<u32>,
    /// Lost datagrams not yet reported.
    lost_datagrams: u64,
    /// Stale (older than expected) datagrams ignored.
    pub late: u64,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Feeds one datagram; appends what it produced to `out`.
    pub fn push(&mut self, buf: &[u8], out: &mut Vec<Reassembled>) -> Result<(), UdpError> {
        let d = Datagram::parse(buf)?;
        if self.stream != Some(d.stream) {
            self.stream = Some(d.stream);
            self.current = None;
            self.next_block = None;
            self.lost_datagrams = 0;
            self.expected_seq = d.seq;
            out.push(Reassembled::NewStream(d.stream));
        }
        if d.seq < self.expected_seq {
            self.late += 1;
            return Ok(());
        }
        if d.seq > self.expected_seq {
            self.lost_datagrams += d.seq - self.expected_seq;
            self.current = None;
        }
        // Saturating: a (hostile) seq of u64::MAX must not wrap to 0.
        self.expected_seq = d.seq.saturating_add(1);

        if d.is_start() {
            if d.offset != 0 {
                return Err(UdpError::Flags(d.flags));
            }
            // An unfinished frame followed by a new start means a lost end.
            self.current = Some((
                d.kind(),
                d.block_no,
                // Grows as data arrives: a tiny datagram claiming a huge frame
                // reserves little.
                Vec::with_capacity((d.frame_len as usize).min(1 << 20)),
                d.frame_len,
            ));
        }
        let Some((kind, _, bytes, frame_len)) = self.current.as_mut() else {
            return Ok(()); // skipping to the next frame start
        };
        if *frame_len != d.frame_len || bytes.len() != d.offset as usize || *kind != d.kind() {
            self.current = None;
            return Ok(());
        }
        bytes.extend_from_slice(d.payload);
        if !d.is_end() {
            return Ok(());
        }
        if bytes.len() != *frame_len as usize {
            self.current = None;
            return Ok(());
        }
        let (kind, block_no, bytes, _) = self.current.take().expect("checked above");
        if kind.numbered() {
            let blocks = match self.next_block {
                // A number behind the expected one (a late or repeated frame)
                // is not a loss of ~4e9 blocks.
                Some(n) => match block_no.wrapping_sub(n) {
                    d if d > u32::MAX / 2 => 0,
                    d => d as u64,
                },
                None => 0,
            };
            self.next_block = Some(block_no.wrapping_add(1));
            if blocks > 0 || self.lost_datagrams > 0 {
                out.push(Reassembled::Loss(Loss {
                    datagrams: std::mem::take(&mut self.lost_datagrams),
                    blocks,
                }));
            }
        }
        out.push(Reassembled::Frame(kind, bytes));
        Ok(())
    }

    /// Datagrams lost and not yet reported (e.g. when the stream stops).
    pub fn pending_loss(&self) -> u64 {
        self.lost_datagrams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(p: &mut Packetizer, kind: FrameKind, f: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        p.packetize(kind, f, |d| v.push(d.to_vec()));
        v
    }

    #[test]
    fn round_trip_and_sizes() {
        let mut p = Packetizer::new(7, 100).unwrap();
        let block: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let ds = frames(&mut p, FrameKind::Block, &block);
        assert_eq!(ds.len(), 1000usize.div_ceil(100 - HEADER_LEN));
        assert!(ds.iter().all(|d| d.len() <= 100));
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        for d in &ds {
            r.push(d, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Reassembled::NewStream(7),
                Reassembled::Frame(FrameKind::Block, block)
            ]
        );
    }

    #[test]
    fn gap_drops_damaged_block_and_counts_exactly() {
        let mut p = Packetizer::new(1, 64).unwrap();
        let mut all = Vec::new();
        for i in 0..5u8 {
            all.extend(frames(&mut p, FrameKind::Block, &[i; 70]));
            if i == 1 {
                all.extend(frames(&mut p, FrameKind::Header, &[9; 10]));
            }
        }
        // Each block = 3 datagrams. Drop the middle datagram of block 2.
        let lost_idx = 3 * 2 + 1 + 1;
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        for (i, d) in all.iter().enumerate() {
            if i != lost_idx {
                r.push(d, &mut out).unwrap();
            }
        }
        let blocks: Vec<u8> = out
            .iter()
            .filter_map(|o| match o {
                Reassembled::Frame(FrameKind::Block, b) => Some(b[0]),
                _ => None,
            })
            .collect();
        assert_eq!(blocks, vec![0, 1, 3, 4]);
        assert!(out.contains(&Reassembled::Loss(Loss {
            datagrams: 1,
            blocks: 1
        })));
    }

    #[test]
    fn a_block_number_going_back_is_not_a_huge_loss() {
        let mut p = Packetizer::new(1, 200).unwrap();
        let mut ds: Vec<Vec<u8>> = (0..3u8)
            .flat_map(|i| frames(&mut p, FrameKind::Block, &[i; 10]))
            .collect();
        // The third frame claims block number 0 (behind the expected 2).
        ds[2][20..24].copy_from_slice(&0u32.to_be_bytes());
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        for d in &ds {
            r.push(d, &mut out).unwrap();
        }
        assert!(
            !out.iter().any(|o| matches!(o, Reassembled::Loss(_))),
            "{out:?}"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Datagram::parse(b"short"), Err(UdpError::Short(5)));
        let mut d = vec![0u8; 40];
        assert!(matches!(Datagram::parse(&d), Err(UdpError::Magic(_))));
        d[..4].copy_from_slice(&MAGIC);
        d[4] = 2;
        assert_eq!(Datagram::parse(&d), Err(UdpError::Version(2)));
        d[4] = VERSION;
        d[5] = FLAG_HEADER | FLAG_STATE;
        assert!(matches!(Datagram::parse(&d), Err(UdpError::Flags(_))));
        d[5] = 0;
        d[24..28].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(Datagram::parse(&d), Err(UdpError::Overrun { .. })));
        assert!(Packetizer::new(1, 10).is_err());
    }

    #[test]
    fn last_sequence_number_does_not_overflow() {
        // Found by fuzz/udp: seq u64::MAX overflowed the expected sequence number
        // (a panic with overflow checks; in release it wrapped to 0, and the next
        // datagram was reported as ~2^64 lost datagrams).
        let mut p = Packetizer::new(3, 64).unwrap();
        let mut out = Vec::new();
        let mut r = Reassembler::new();
        for (i, seq) in [u64::MAX - 1, u64::MAX, u64::MAX].into_iter().enumerate() {
            let mut d = frames(&mut p, FrameKind::Block, &[i as u8; 8]).remove(0);
            d[12..20].copy_from_slice(&seq.to_be_bytes());
            r.push(&d, &mut out).unwrap();
        }
        assert_eq!(r.pending_loss(), 0);
        assert!(!out.iter().any(|o| matches!(o, Reassembled::Loss(_))));
    }

    #[test]
    fn new_stream_id_resets() {
        let mut a = Packetizer::new(1, 64).unwrap();
        let mut b = Packetizer::new(2, 64).unwrap();
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        for d in frames(&mut a, FrameKind::Block, &[1; 10]) {
            r.push(&d, &mut out).unwrap();
        }
        for d in frames(&mut b, FrameKind::Header, &[2; 10]) {
            r.push(&d, &mut out).unwrap();
        }
        assert_eq!(out.len(), 4);
        assert_eq!(out[2], Reassembled::NewStream(2));
    }
}
