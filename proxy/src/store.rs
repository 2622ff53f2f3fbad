//! The session's shared store of recent whole blocks, bounded by bytes.
//! Subscribers' queues hold clones of the same `Arc`s, so a block is in
//! memory once however many subscribers have it queued.

use std::collections::VecDeque;
use std::sync::Arc;

use elstream_format::eventlog::Block;

/// What a queued piece of stream is (only blocks may be dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    Header,
    State,
    Block,
    Notice,
    DataEnd,
    /// A stats report (stats connections only).
    Text,
}

#[derive(Clone, Debug)]
pub struct Chunk {
    /// `Arc<Vec>` rather than `Arc<[u8]>`: taking the decoder's Vec costs no copy.
    pub bytes: Arc<Vec<u8>>,
    pub kind: ChunkKind,
    /// Block end time (for the time stamp of a drop notice).
    pub end_time: u64,
    /// The block may hold state events (false only when the decoder said it
    /// holds none: the state cache then skips it).
    pub state: bool,
}

impl Chunk {
    pub fn new(kind: ChunkKind, bytes: Vec<u8>, end_time: u64) -> Chunk {
        Chunk {
            bytes: Arc::new(bytes),
            kind,
            end_time,
            state: true,
        }
    }

    /// A block from the decoder, with its state flag.
    pub fn block(b: Block) -> Chunk {
        Chunk {
            state: b.state,
            ..Chunk::new(ChunkKind::Block, b.bytes, b.end_time)
        }
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

pub struct Store {
    blocks: VecDeque<(u64, Chunk)>,
    bytes: usize,
    max_bytes: usize,
    next_seq: u64,
}

impl Store {
    pub fn new(max_bytes: usize) -> Store {
        Store {
            blocks: VecDeque::new(),
            bytes: 0,
            max_bytes,
            next_seq: 0,
        }
    }

    /// Adds a block, evicting the oldest beyond the bound (each shown to
    /// `evicted`, oldest first); returns its sequence number.
    pub fn push(&mut self, chunk: Chunk, mut evicted: impl FnMut(&Chunk)) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += chunk.len();
        self.blocks.push_back((seq, chunk));
        while self.bytes > self.max_bytes {
            match self.blocks.pop_front() {
                Some((_, c)) => {
                    self.bytes -= c.len();
                    evicted(&c);
                }
                None => break,
            }
        }
        seq
    }

    /// Sequence number of the oldest stored block (= next one when empty).
    #[cfg(test)]
    pub fn oldest_seq(&self) -> u64 {
        self.blocks.front().map_or(self.next_seq, |(s, _)| *s)
    }

    #[cfg(test)]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn blocks(&self) -> impl Iterator<Item = &Chunk> {
        self.blocks.iter().map(|(_, c)| c)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_bytes() {
        let mut s = Store::new(100);
        let mut gone = Vec::new();
        for i in 0..10u8 {
            s.push(Chunk::new(ChunkKind::Block, vec![i; 30], 0), |c| {
                gone.push(c.bytes[0])
            });
        }
        assert_eq!(gone, (0..7).collect::<Vec<u8>>());
        assert_eq!(s.len(), 3);
        assert_eq!(s.bytes(), 90);
        assert_eq!(s.oldest_seq(), 7);
        assert_eq!(s.next_seq(), 10);
    }
}
