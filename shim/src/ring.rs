//! The flight recorder: a bounded ring of whole eventlog blocks.
//!
//! RTS threads push blocks (one `writeEventLog` call each); the I/O thread copies
//! them out for each consumer at that consumer's own position. When full, the
//! oldest whole blocks are evicted and counted; nothing is ever split. All memory
//! is allocated at start-up: a push never allocates.
//!
//! Positions are absolute block numbers (`u64`), so a consumer can tell that the
//! block it wants was evicted and how much it missed.
//!
//! A push is reserve, copy, publish: under the lock a writer takes the next span
//! of bytes (evicting as needed) and a block number; it copies its block into that
//! span with the lock released, so writers never wait for each other's copy; then
//! it takes the lock again to mark the block done. A reader likewise pins the
//! block under the lock, copies a chunk of it outside, and unpins it. The lock is
//! only ever held for bookkeeping, never for a copy, so a thread preempted while
//! copying holds nobody up. The invariants:
//!
//! - Blocks are numbered in reservation order and sit back to back in the bytes.
//! - Readers see only blocks below `published`: the longest run of done blocks
//!   from the oldest one. A block done before an older one waits, unseen, for it.
//! - Only blocks below `published` and not pinned by a reader are evicted. A
//!   writer needing the room of a block still being copied into or out of waits
//!   for that copy: only when the blocks in flight fill the ring (a ring smaller
//!   than writers × block), or when a reader a whole ring behind is copying a
//!   chunk of the oldest block.
//! - So the bytes of a reserved, unpublished block are touched by its writer
//!   alone, and the bytes of a pinned block are only read; writers never reserve
//!   bytes a reader reads. The lock orders a writer's copy before any read of it.
//! - A resize waits until no block is in flight or pinned, and holds new
//!   reservations and pins back.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::Error;

/// Where one block sits in the byte ring, by absolute byte offset.
#[derive(Clone, Copy, Debug)]
struct BlockSpan {
    start: u64,
    len: u32,
    /// Its writer has finished copying.
    done: bool,
    /// Readers copying out of it now.
    readers: u32,
}

/// Counters of everything that went through the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    pub blocks_written: u64,
    pub bytes_written: u64,
    pub blocks_evicted: u64,
    pub bytes_evicted: u64,
}

/// The ring's bytes, addressed by absolute offset modulo the capacity. Raw, so a
/// writer can fill its reserved span while readers copy other, published spans.
#[derive(Clone, Copy)]
struct Storage {
    ptr: NonNull<u8>,
    cap: usize,
}

/// The owner of a [`Storage`]'s allocation.
struct Bytes(Storage);

// SAFETY: which thread may touch which span of the storage is the ring's
// protocol (see the module comment), not the type's.
unsafe impl Send for Storage {}
// SAFETY: as above.
unsafe impl Sync for Storage {}

impl Bytes {
    fn new(cap: usize) -> Result<Bytes, Error> {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(cap)
            .map_err(|_| Error::Config(format!("cannot allocate a ring of {cap} bytes")))?;
        // Touch every page now, so the RTS's first writes do not pay page faults
        // (not with zeros: malloc + memset 0 may become a lazy calloc).
        // SAFETY: `cap` bytes were reserved; all are written before set_len.
        unsafe {
            std::ptr::write_bytes(v.as_mut_ptr(), 0xee, cap);
            v.set_len(cap);
        }
        let raw = Box::into_raw(v.into_boxed_slice()) as *mut u8;
        Ok(Bytes(Storage {
            ptr: NonNull::new(raw).expect("Box::into_raw is never null"),
            cap,
        }))
    }
}

impl Storage {
    /// The one or two pieces of storage `[at, at + len)` maps to.
    fn pieces(&self, at: u64, len: usize) -> [(usize, usize); 2] {
        if len == 0 {
            return [(0, 0); 2];
        }
        let off = (at % self.cap as u64) as usize;
        let first = len.min(self.cap - off);
        [(off, first), (0, len - first)]
    }

    /// Copies `src` to absolute offset `at`.
    ///
    /// # Safety
    /// `src.len() <= cap`, and no other thread touches `[at, at + src.len())`
    /// meanwhile (the caller's reserved span).
    unsafe fn write(&self, at: u64, src: &[u8]) {
        let mut done = 0;
        for (off, n) in self.pieces(at, src.len()) {
            // SAFETY: off + n <= cap (pieces); the span is the caller's alone.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr().add(done), self.ptr.as_ptr().add(off), n)
            };
            done += n;
        }
    }

    /// Appends `[at, at + len)` to `out`.
    ///
    /// # Safety
    /// `len <= cap`, and no thread writes that span meanwhile (a published block,
    /// read under the ring's lock).
    unsafe fn read(&self, at: u64, len: usize, out: &mut Vec<u8>) {
        for (off, n) in self.pieces(at, len) {
            // SAFETY: off + n <= cap; nobody writes these bytes meanwhile.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(self.ptr.as_ptr().add(off), n)
            });
        }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.0.ptr.as_ptr(), self.0.cap);
        // SAFETY: made by Box::into_raw in `new`, freed once, here; no span is
        // in flight (a resize waits for them, and the ring outlives its writers).
        drop(unsafe { Box::from_raw(slice) });
    }
}

struct Inner {
    bytes: Bytes,
    spans: VecDeque<BlockSpan>,
    max_spans: usize,
    /// Absolute number of the oldest block still held (`spans[0]`).
    first_block: u64,
    /// Blocks below this number are done and visible to readers.
    published: u64,
    /// Absolute byte offset just past the newest block reserved.
    end_byte: u64,
    /// Blocks reserved and not yet published.
    in_flight: usize,
    /// Reader pins held now, over all blocks.
    pinned: usize,
    /// A resize is waiting for the blocks in flight: no new reservations.
    resizing: bool,
    /// Threads waiting on `Ring::room`.
    waiting: usize,
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
    /// Signalled when a block is published or a resize ends.
    room: Condvar,
}

/// A span reserved for one block: its writer's alone until [`Ring::publish`].
struct Reservation {
    block: u64,
    start: u64,
    bytes: Storage,
}

/// Bookkeeping per block is 24 bytes; bound it so that a flood of tiny blocks
/// (empty capability buffers after a flush) cannot grow it without limit.
const SPANS_PER_MIB: usize = 1024;

/// Bytes copied out per hold of the lock (a 2 MiB block takes 16 holds).
/// Small under Miri, so its tests can copy blocks of several chunks in time.
const COPY_CHUNK: usize = if cfg!(miri) { 1 << 10 } else { 128 << 10 };

impl Ring {
    pub fn new(capacity: usize) -> Result<Ring, Error> {
        Ok(Ring {
            inner: Mutex::new(Inner {
                bytes: Bytes::new(capacity)?,
                spans: VecDeque::with_capacity(max_spans(capacity)),
                max_spans: max_spans(capacity),
                first_block: 0,
                published: 0,
                end_byte: 0,
                in_flight: 0,
                pinned: 0,
                resizing: false,
                waiting: 0,
                counters: RingCounters::default(),
            }),
            room: Condvar::new(),
        })
    }

    /// Gives the ring a new size, keeping the newest blocks that fit (the
    /// others count as evicted). Waits for the blocks in flight; writers wait
    /// for the copy: an admin action.
    pub fn resize(&self, capacity: usize) -> Result<(), Error> {
        let bytes = Bytes::new(capacity)?;
        let max_spans = max_spans(capacity);
        let mut g = self.lock();
        g = self.wait_while(g, |i| i.resizing);
        g.resizing = true;
        g = self.wait_while(g, |i| i.in_flight > 0 || i.pinned > 0);
        let inner = &mut *g;
        while inner.end_byte - inner.start_byte() > capacity as u64 || inner.spans.len() > max_spans
        {
            inner.evict_oldest();
        }
        let (start, len) = (
            inner.start_byte(),
            (inner.end_byte - inner.start_byte()) as usize,
        );
        let mut held = Vec::with_capacity(len);
        // SAFETY: nothing is in flight or pinned and the lock is held.
        unsafe { inner.bytes.0.read(start, len, &mut held) };
        // SAFETY: `bytes` is new and not shared yet; len <= capacity.
        unsafe { bytes.0.write(start, &held) };
        inner.bytes = bytes;
        inner.spans.shrink_to(max_spans);
        inner
            .spans
            .reserve(max_spans.saturating_sub(inner.spans.len()));
        inner.max_spans = max_spans;
        inner.resizing = false;
        drop(g);
        self.room.notify_all();
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the ring inconsistent in a
        // way that matters more than losing the stream, so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for one notification on `room` (the caller loops on its condition).
    fn wait<'a>(&self, mut g: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        g.waiting += 1;
        g = self.room.wait(g).unwrap_or_else(|p| p.into_inner());
        g.waiting -= 1;
        g
    }

    fn wait_while<'a>(
        &self,
        mut g: MutexGuard<'a, Inner>,
        cond: impl Fn(&Inner) -> bool,
    ) -> MutexGuard<'a, Inner> {
        while cond(&g) {
            g.waiting += 1;
            g = self.room.wait(g).unwrap_or_else(|p| p.into_inner());
            g.waiting -= 1;
        }
        g
    }

    pub fn capacity(&self) -> usize {
        self.lock().bytes.0.cap
    }

    /// Appends one whole block, evicting the oldest blocks as needed; the copy
    /// runs outside the lock. Returns false when the block alone is larger
    /// than the ring (it is dropped).
    pub fn push_block(&self, block: &[u8]) -> bool {
        let Some(r) = self.reserve(block.len()) else {
            return false;
        };
        // SAFETY: the reserved span is this writer's alone until published, and
        // the storage outlives it (a resize waits for the blocks in flight).
        unsafe { r.bytes.write(r.start, block) };
        self.publish(r.block);
        true
    }

    /// Takes the next span for a block of `len` bytes.
    fn reserve(&self, len: usize) -> Option<Reservation> {
        let mut g = self.lock();
        g.counters.blocks_written += 1;
        g.counters.bytes_written += len as u64;
        if len > g.bytes.0.cap || len > u32::MAX as usize {
            g.counters.blocks_evicted += 1;
            g.counters.bytes_evicted += len as u64;
            return None;
        }
        loop {
            if g.resizing {
                g = self.wait_while(g, |i| i.resizing);
                continue;
            }
            let used = g.end_byte - g.start_byte();
            if g.bytes.0.cap as u64 - used >= len as u64 && g.spans.len() < g.max_spans {
                break;
            }
            if g.published > g.first_block && g.spans[0].readers == 0 {
                g.evict_oldest();
                continue;
            }
            // The oldest block is still being copied into or out of: wait for
            // that copy (a publish or an unpin notifies).
            g = self.wait(g);
        }
        let r = Reservation {
            block: g.first_block + g.spans.len() as u64,
            start: g.end_byte,
            bytes: g.bytes.0,
        };
        g.spans.push_back(BlockSpan {
            start: r.start,
            len: len as u32,
            done: false,
            readers: 0,
        });
        g.end_byte += len as u64;
        g.in_flight += 1;
        Some(r)
    }

    /// Marks a reserved block done; readers see it once the older ones are.
    fn publish(&self, block: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        // Never evicted: only published blocks are.
        inner.spans[(block - inner.first_block) as usize].done = true;
        inner.in_flight -= 1;
        while inner
            .spans
            .get((inner.published - inner.first_block) as usize)
            .is_some_and(|s| s.done)
        {
            inner.published += 1;
        }
        if inner.waiting > 0 {
            drop(g);
            self.room.notify_all();
        }
    }

    /// Copies the block at `at` onto the end of `out` and moves `at` on,
    /// `COPY_CHUNK` bytes per pin, each chunk copied outside the lock. A block
    /// evicted between chunks is reported as evicted and `out` left as it was.
    pub fn copy_block(&self, at: &mut Cursor, out: &mut Vec<u8>) -> Copied {
        let out_len = out.len();
        let mut done = 0usize;
        let mut g = self.lock();
        loop {
            if g.resizing {
                g = self.wait_while(g, |i| i.resizing);
                continue;
            }
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
            if at.block >= g.published {
                return Copied::Empty;
            }
            let idx = (at.block - g.first_block) as usize;
            let span = g.spans[idx];
            let n = (span.len as usize - done).min(COPY_CHUNK);
            g.spans[idx].readers += 1;
            g.pinned += 1;
            let bytes = g.bytes.0;
            drop(g);
            // SAFETY: a published block, pinned: no writer reserves its bytes
            // and a resize waits for the pin to go.
            unsafe { bytes.read(span.start + done as u64, n, out) };
            g = self.lock();
            // Still held: a pinned block is never evicted.
            let idx = (at.block - g.first_block) as usize;
            g.spans[idx].readers -= 1;
            g.pinned -= 1;
            if g.waiting > 0 {
                self.room.notify_all();
            }
            done += n;
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

    /// Just past the newest block published: where a reader starting now begins.
    pub fn end(&self) -> Cursor {
        let g = self.lock();
        let idx = (g.published - g.first_block) as usize;
        Cursor {
            block: g.published,
            byte: g.spans.get(idx).map_or(g.end_byte, |s| s.start),
        }
    }

    /// Bytes held, blocks in flight included.
    pub fn used(&self) -> usize {
        let g = self.lock();
        (g.end_byte - g.start_byte()) as usize
    }

    pub fn counters(&self) -> RingCounters {
        self.lock().counters
    }
}

fn max_spans(capacity: usize) -> usize {
    (capacity / (1 << 20)).max(1) * SPANS_PER_MIB
}

impl Inner {
    fn start_byte(&self) -> u64 {
        self.spans.front().map_or(self.end_byte, |s| s.start)
    }

    fn oldest(&self) -> Cursor {
        Cursor {
            block: self.first_block,
            byte: self.start_byte(),
        }
    }

    /// Drops the oldest block; it must be published.
    fn evict_oldest(&mut self) {
        debug_assert!(
            self.published > self.first_block,
            "evicting a block in flight"
        );
        debug_assert!(self.spans[0].readers == 0, "evicting a block being read");
        let span = self
            .spans
            .pop_front()
            .expect("ring has no room but holds no block");
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
        let ring = std::sync::Arc::new(Ring::new(4096).unwrap());
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
        // Blocks of 2⅓ chunks in a ring of 3½ blocks, pushed as fast as
        // possible while a reader copies: every block it gets is one block's
        // bytes, whole; the ones overwritten meanwhile come back as evicted.
        const LEN: usize = COPY_CHUNK * 2 + COPY_CHUNK / 3;
        let n: u32 = if cfg!(miri) { 12 } else { 400 };
        let ring = std::sync::Arc::new(Ring::new(LEN * 7 / 2).unwrap());
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

    #[test]
    fn a_push_does_not_wait_for_another_writers_copy() {
        // Writer A has reserved block 0 and is (slowly) copying into it: writer
        // B's whole push completes meanwhile, and readers see neither block
        // until A publishes, then both, in order.
        let ring = std::sync::Arc::new(Ring::new(4096).unwrap());
        let a = ring.reserve(4).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                assert!(ring.push_block(b"BBBB"));
                tx.send(()).unwrap();
            })
        };
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("B's push waited for A's copy");
        b.join().unwrap();
        let mut at = Cursor::default();
        let mut out = Vec::new();
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Empty);
        assert_eq!(ring.end(), Cursor::default(), "nothing published yet");
        // SAFETY: the span is this test's reservation, not yet published.
        unsafe { a.bytes.write(a.start, b"AAAA") };
        ring.publish(a.block);
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Block);
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Block);
        assert_eq!(out, b"AAAABBBB");
        assert_eq!(ring.end(), Cursor { block: 2, byte: 8 });
    }

    #[test]
    fn eviction_never_reclaims_a_block_being_copied_into() {
        // Block 0 fills 60 of 100 bytes and is still in flight: a 60-byte push
        // needs its room, so it waits for the publish instead of evicting it.
        let ring = std::sync::Arc::new(Ring::new(100).unwrap());
        let a = ring.reserve(60).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                assert!(ring.push_block(&[2; 60]));
                tx.send(()).unwrap();
            })
        };
        let wait = std::time::Duration::from_millis(if cfg!(miri) { 20 } else { 200 });
        assert!(
            rx.recv_timeout(wait).is_err(),
            "B evicted a block in flight"
        );
        assert_eq!(ring.counters().blocks_evicted, 0);
        // SAFETY: the span is this test's reservation, not yet published.
        unsafe { a.bytes.write(a.start, &[1; 60]) };
        ring.publish(a.block);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("B never got room after A's publish");
        b.join().unwrap();
        let c = ring.counters();
        assert_eq!((c.blocks_written, c.blocks_evicted), (2, 1));
        let (mut at, mut out) = (Cursor { block: 1, byte: 60 }, Vec::new());
        assert_eq!(ring.copy_block(&mut at, &mut out), Copied::Block);
        assert_eq!(out, [2; 60]);
    }

    #[test]
    fn eviction_never_reclaims_a_block_being_read() {
        // A reader a whole ring behind is copying a chunk of the oldest block
        // (pinned, outside the lock): a push needing its room waits for the unpin.
        let ring = std::sync::Arc::new(Ring::new(100).unwrap());
        assert!(ring.push_block(&[1; 60]));
        {
            let mut g = ring.lock();
            g.spans[0].readers += 1;
            g.pinned += 1;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let b = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                assert!(ring.push_block(&[2; 60]));
                tx.send(()).unwrap();
            })
        };
        let wait = std::time::Duration::from_millis(if cfg!(miri) { 20 } else { 200 });
        assert!(
            rx.recv_timeout(wait).is_err(),
            "B evicted a block being read"
        );
        {
            let mut g = ring.lock();
            g.spans[0].readers -= 1;
            g.pinned -= 1;
        }
        ring.room.notify_all();
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("B never got room after the unpin");
        b.join().unwrap();
        assert_eq!(ring.counters().blocks_evicted, 1);
    }

    #[test]
    fn concurrent_writers_readers_and_eviction_keep_blocks_whole_and_in_order() {
        // 4 writers push blocks of varied lengths into a ring that holds only a
        // few, 2 readers copy at their own pace and a resize happens midway:
        // every block a reader gets is one writer's block, whole, and each
        // writer's blocks arrive in the order it pushed them; what a reader
        // misses is reported as evicted; the counters add up.
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let (writers, per_writer, unit) = if cfg!(miri) {
            (3, 12, 40)
        } else {
            (4, 3000, 997)
        };
        let ring = Arc::new(Ring::new(unit * 24).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let content = move |w: u8, seq: u32| -> Vec<u8> {
            let len = 5 + (seq as usize * 7 + w as usize * 13) % unit;
            let mut b = vec![w; 5];
            b[1..5].copy_from_slice(&seq.to_be_bytes());
            b.extend((5..len).map(|k| (k as u32 ^ seq ^ (w as u32) << 3) as u8));
            b
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, done) = (ring.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut next = [0u32; 8];
                    let (mut at, mut whole, mut missed) = (Cursor::default(), 0u64, 0u64);
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        let mut out = Vec::new();
                        match ring.copy_block(&mut at, &mut out) {
                            Copied::Block => {
                                let w = out[0];
                                let seq = u32::from_be_bytes(out[1..5].try_into().unwrap());
                                assert_eq!(out, content(w, seq), "a torn or mixed block");
                                assert!(
                                    seq >= next[w as usize],
                                    "writer {w}'s blocks out of order"
                                );
                                next[w as usize] = seq + 1;
                                whole += 1;
                            }
                            Copied::Evicted { blocks, .. } => missed += blocks,
                            Copied::Empty if finished => return (whole, missed, at),
                            Copied::Empty => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let pushers: Vec<_> = (0..writers as u8)
            .map(|w| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for seq in 0..per_writer {
                        assert!(ring.push_block(&content(w, seq)));
                        if seq == per_writer / 2 && w == 0 {
                            ring.resize(unit * 16).unwrap();
                        }
                    }
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        done.store(true, Ordering::Release);
        let total = writers as u64 * per_writer as u64;
        for r in readers {
            let (whole, missed, at) = r.join().unwrap();
            assert_eq!(whole + missed, total, "a reader lost count");
            assert_eq!(at, ring.end());
        }
        let c = ring.counters();
        assert_eq!(c.blocks_written, total);
        assert_eq!(
            ring.end().block - ring.oldest().block,
            total - c.blocks_evicted
        );
        assert_eq!(ring.end().byte - ring.oldest().byte, ring.used() as u64);
    }
}
