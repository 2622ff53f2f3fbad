//! The flight recorder: a bounded ring of whole eventlog blocks.
//!
//! RTS threads push blocks (one `writeEventLog` call each); the I/O thread copies
//! them out for each consumer at that consumer's own position. When full, the
//! oldest whole blocks are evicted and counted; nothing is ever split. All memory
//! is allocated at start-up: a push never allocates.
//!
//! Positions are absolute block numbers (`u64`), so a consumer can tell that the
//! block it wants was evicted and how much it missed.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use ringbuf::storage::Heap;
use ringbuf::traits::Observer;
use ringbuf::LocalRb;

use crate::error::Error;

/// Where one block sits in the byte ring, by absolute byte offset.
#[derive(Clone, Copy, Debug)]
struct BlockSpan {
    start: u64,
    len: u32,
}

/// Counters of everything that went through the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    pub blocks_written: u64,
    pub bytes_written: u64,
    pub blocks_evicted: u64,
    pub bytes_evicted: u64,
}

struct Inner {
    bytes: LocalRb<Heap<u8>>,
    capacity: usize,
    spans: VecDeque<BlockSpan>,
    max_spans: usize,
    /// Absolute number of the oldest block still held (`spans[0]`).
    first_block: u64,
    /// Absolute byte offset just past the newest block.
    end_byte: u64,
    counters: RingCounters,
}

/// A reader's place in the ring: the next block to read, by absolute block
/// number and byte offset (the two let a reader count what it missed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub block: u64,
    pub byte: u64,
}

/// What [`Ring::copy_block`] found at a reader's cursor.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// The block was appended to the buffer; the cursor is past it.
    Block,
    /// These were evicted before the reader got to them; the cursor is now
    /// at the oldest block held.
    Evicted { blocks: u64, bytes: u64 },
    /// Nothing new yet.
    Empty,
}

pub struct Ring {
    inner: Mutex<Inner>,
}

/// Bookkeeping per block is 16 bytes; bound it so that a flood of tiny blocks
/// (empty capability buffers after a flush) cannot grow it without limit.
const SPANS_PER_MIB: usize = 1024;

/// Bytes copied out per hold of the lock (a 2 MiB block takes 16 holds).
const COPY_CHUNK: usize = 128 << 10;

impl Ring {
    pub fn new(capacity: usize) -> Result<Ring, Error> {
        let (bytes, max_spans) = allocate(capacity)?;
        Ok(Ring {
            inner: Mutex::new(Inner {
                bytes,
                capacity,
                spans: VecDeque::with_capacity(max_spans),
                max_spans,
                first_block: 0,
                end_byte: 0,
                counters: RingCounters::default(),
            }),
        })
    }

    /// Gives the ring a new size, keeping the newest blocks that fit (the
    /// others count as evicted). Writers wait for the copy: an admin action.
    pub fn resize(&self, capacity: usize) -> Result<(), Error> {
        let (mut bytes, max_spans) = allocate(capacity)?;
        let mut spans = VecDeque::with_capacity(max_spans);
        let mut g = self.lock();
        let inner = &mut *g;
        while inner.spans.iter().map(|s| s.len as usize).sum::<usize>() > capacity
            || inner.spans.len() > max_spans
        {
            inner.evict_oldest();
        }
        let (a, b) = inner.bytes.as_slices();
        bytes.push_slice(a);
        bytes.push_slice(b);
        spans.extend(inner.spans.iter().copied());
        inner.bytes = bytes;
        inner.spans = spans;
        inner.capacity = capacity;
        inner.max_spans = max_spans;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the ring inconsistent in a
        // way that matters more than losing the stream, so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Appends one whole block, evicting the oldest blocks as needed.
    /// Returns false when the block alone is larger than the ring (it is dropped).
    pub fn push_block(&self, block: &[u8]) -> bool {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.counters.blocks_written += 1;
        inner.counters.bytes_written += block.len() as u64;
        if block.len() > inner.capacity || block.len() > u32::MAX as usize {
            inner.counters.blocks_evicted += 1;
            inner.counters.bytes_evicted += block.len() as u64;
            return false;
        }
        while inner.bytes.vacant_len() < block.len() || inner.spans.len() >= inner.max_spans {
            inner.evict_oldest();
        }
        let pushed = inner.bytes.push_slice(block);
        debug_assert_eq!(pushed, block.len());
        inner.spans.push_back(BlockSpan {
            start: inner.end_byte,
            len: block.len() as u32,
        });
        inner.end_byte += block.len() as u64;
        true
    }

    /// Copies the block at `at` onto the end of `out` and moves `at` on,
    /// [`COPY_CHUNK`] bytes per hold of the lock so an RTS thread's push never
    /// waits for a whole block's copy. A block evicted halfway through is
    /// reported as evicted and `out` left as it was.
    pub fn copy_block(&self, at: &mut Cursor, out: &mut Vec<u8>) -> Copied {
        let out_len = out.len();
        let mut done = 0usize;
        loop {
            let mut g = self.lock();
            if at.block < g.first_block {
                out.truncate(out_len);
                let oldest = g.oldest();
                let missed = Copied::Evicted {
                    blocks: oldest.block - at.block,
                    bytes: oldest.byte - at.byte,
                };
                *at = oldest;
                return missed;
            }
            let idx = (at.block - g.first_block) as usize;
            let Some(span) = g.spans.get(idx).copied() else {
                return Copied::Empty;
            };
            let start = (span.start - g.spans[0].start) as usize;
            let from = start + done;
            let to = (start + span.len as usize).min(from + COPY_CHUNK);
            let (a, b) = g.bytes.as_slices();
            if to <= a.len() {
                out.extend_from_slice(&a[from..to]);
            } else if from >= a.len() {
                out.extend_from_slice(&b[from - a.len()..to - a.len()]);
            } else {
                out.extend_from_slice(&a[from..]);
                out.extend_from_slice(&b[..to - a.len()]);
            }
            done += to - from;
            if done == span.len as usize {
                *at = Cursor {
                    block: at.block + 1,
                    byte: span.start + span.len as u64,
                };
                return Copied::Block;
            }
        }
    }

    /// The oldest block held.
    pub fn oldest(&self) -> Cursor {
        self.lock().oldest()
    }

    /// Just past the newest block: where the next block written will be.
    pub fn end(&self) -> Cursor {
        let g = self.lock();
        Cursor {
            block: g.first_block + g.spans.len() as u64,
            byte: g.end_byte,
        }
    }

    pub fn used(&self) -> usize {
        self.lock().bytes.occupied_len()
    }

    pub fn counters(&self) -> RingCounters {
        self.lock().counters
    }
}

fn allocate(capacity: usize) -> Result<(LocalRb<Heap<u8>>, usize), Error> {
    let mut bytes = LocalRb::<Heap<u8>>::try_new(capacity)
        .map_err(|_| Error::Config(format!("cannot allocate a ring of {capacity} bytes")))?;
    // Touch every page now, so the RTS's first writes do not pay page faults.
    let zeros = [0u8; 64 * 1024];
    while bytes.vacant_len() > 0 {
        let n = bytes.vacant_len().min(zeros.len());
        bytes.push_slice(&zeros[..n]);
    }
    bytes.clear();
    Ok((bytes, (capacity / (1 << 20)).max(1) * SPANS_PER_MIB))
}

impl Inner {
    fn oldest(&self) -> Cursor {
        Cursor {
            block: self.first_block,
            byte: self.spans.front().map_or(self.end_byte, |s| s.start),
        }
    }

    fn evict_oldest(&mut self) {
        let span = self
            .spans
            .pop_front()
            .expect("ring has no room but holds no block");
        self.bytes.skip(span.len as usize);
        self.first_block += 1;
        self.counters.blocks_evicted += 1;
        self.counters.bytes_evicted += span.len as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    #[test]
    fn keeps_whole_blocks_and_counts_evictions() {
        let ring = Ring::new(100).unwrap();
        for i in 0..5 {
            assert!(ring.push_block(&block(i, 30)));
        }
        // 100 bytes hold 3 blocks of 30: blocks 0 and 1 were evicted whole.
        let c = ring.counters();
        assert_eq!(c.blocks_written, 5);
        assert_eq!(c.blocks_evicted, 2);
        assert_eq!(c.bytes_evicted, 60);
        assert_eq!(ring.used(), 90);
        let mut out = Vec::new();
        let mut at = Cursor::default();
        assert_eq!(
            ring.copy_block(&mut at, &mut out),
            Copied::Evicted {
                blocks: 2,
                bytes: 60
            }
        );
        assert_eq!(at, Cursor { block: 2, byte: 60 });
        for i in 2..5u64 {
            out.clear();
            let r = ring.copy_block(&mut at, &mut out);
            assert_eq!(r, Copied::Block);
            assert_eq!(
                at,
                Cursor {
                    block: i + 1,
                    byte: (i + 1) * 30
                }
            );
            assert_eq!(out, block(i as u8, 30));
        }
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Empty);
        assert_eq!(
            at,
            Cursor {
                block: 5,
                byte: 150
            }
        );
    }

    #[test]
    fn blocks_wrap_around_the_end_intact() {
        let ring = Ring::new(64).unwrap();
        let mut at = Cursor::default();
        for i in 0..50u8 {
            let b: Vec<u8> = (0..(7 + i as usize % 11)).map(|k| i ^ k as u8).collect();
            ring.push_block(&b);
            let mut out = Vec::new();
            match ring.copy_block(&mut at, &mut out) {
                Copied::Block => assert_eq!(out, b),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn resizing_keeps_the_newest_blocks_at_their_positions() {
        let ring = Ring::new(100).unwrap();
        for i in 0..3u8 {
            ring.push_block(&block(i, 30));
        }
        ring.resize(64).unwrap();
        assert_eq!(ring.capacity(), 64);
        assert_eq!(ring.counters().blocks_evicted, 1);
        let mut out = Vec::new();
        let mut at = Cursor::default();
        assert!(matches!(
            ring.copy_block(&mut at, &mut out),
            Copied::Evicted { .. }
        ));
        assert_eq!(at.block, 1);
        let mut at = Cursor { block: 2, byte: 60 };
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Block);
        assert_eq!(at, Cursor { block: 3, byte: 90 });
        assert_eq!(out, block(2, 30));
        ring.resize(1000).unwrap();
        out.clear();
        let mut at = Cursor { block: 1, byte: 30 };
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Block);
        assert_eq!(at, Cursor { block: 2, byte: 60 });
        assert_eq!(out, block(1, 30));
        assert!(ring.push_block(&block(9, 900)));
    }

    #[test]
    fn oversized_block_is_dropped_and_counted() {
        let ring = Ring::new(16).unwrap();
        assert!(!ring.push_block(&[1; 17]));
        let c = ring.counters();
        assert_eq!(
            (c.blocks_written, c.blocks_evicted, c.bytes_evicted),
            (1, 1, 17)
        );
        assert_eq!(ring.used(), 0);
    }

    #[test]
    fn concurrent_writers_lose_nothing_when_it_fits() {
        let ring = std::sync::Arc::new(Ring::new(1 << 20).unwrap());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..100u8 {
                        ring.push_block(&[t, i, 0, 0, 0, 0, 0, 0]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (mut at, end) = (ring.oldest(), ring.end());
        let mut seen = std::collections::HashSet::new();
        while at.block < end.block {
            let mut out = Vec::new();
            let Copied::Block = ring.copy_block(&mut at, &mut out) else {
                panic!("block missing")
            };
            assert_eq!(out.len(), 8);
            assert!(seen.insert((out[0], out[1])));
        }
        assert_eq!(seen.len(), 400);
    }

    #[test]
    fn a_reader_copying_in_chunks_gets_whole_blocks_or_eviction_never_a_mix() {
        // Blocks of 300 KiB (3 chunks) in a 1 MiB ring, pushed as fast as
        // possible while a reader copies: every block it gets is one block's
        // bytes, whole; the ones overwritten meanwhile come back as evicted.
        const LEN: usize = 300 << 10;
        let n: u32 = if cfg!(miri) { 12 } else { 400 };
        let ring = std::sync::Arc::new(Ring::new(1 << 20).unwrap());
        let writer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    let mut b = vec![(i % 251) as u8; LEN];
                    b[..4].copy_from_slice(&i.to_be_bytes());
                    ring.push_block(&b);
                }
            })
        };
        let mut at = Cursor::default();
        let (mut whole, mut evicted) = (0, 0);
        while at.block < n as u64 {
            let mut out = vec![7u8];
            let pos = at.block;
            match ring.copy_block(&mut at, &mut out) {
                Copied::Block => {
                    assert_eq!(out.len(), 1 + LEN);
                    let i = u32::from_be_bytes(out[1..5].try_into().unwrap());
                    assert_eq!(i as u64, pos);
                    assert!(out[5..].iter().all(|&x| x == (i % 251) as u8));
                    whole += 1;
                }
                Copied::Evicted { .. } => {
                    assert_eq!(out, [7u8], "a cut-off copy is undone");
                    evicted += 1;
                }
                Copied::Empty => std::thread::yield_now(),
            }
        }
        writer.join().unwrap();
        assert!(whole > 0, "{whole} whole, {evicted} evicted");
    }
}
