//! The eventlog as the shim holds it: the header, the ring of blocks, the state
//! cache for late joiners and the flags of the stream's end. Shared by the
//! writer (RTS threads), the I/O thread, the control commands and the RTS
//! adapters, each through the methods below; it starts nothing itself (that
//! is `lifecycle.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use elstream_format::state::StateCache;
use elstream_format::Header;

use crate::config::Config;
use crate::ring::{Copied, Cursor, Ring};
use crate::sink::Sink;

/// Consumer-side counters, updated by the I/O thread.
#[derive(Default)]
pub struct ConsumerCounters {
    pub consumers: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub blocks_dropped: AtomicU64,
    pub bytes_dropped: AtomicU64,
    /// Bytes the shim made for readers (replays, thread and task creations).
    pub bytes_replayed: AtomicU64,
}

pub struct Shared {
    config: Config,
    ring: Ring,
    /// The eventlog header (`hdrb` .. `datb`) the RTS wrote first.
    header: Mutex<Option<Arc<[u8]>>>,
    parsed_header: OnceLock<Header>,
    /// State for late joiners, fed by the I/O thread from every block.
    state: Mutex<StateCache>,
    /// Blocks are dropped at the writer (off, without RTS switches).
    discarding: AtomicBool,
    waker: mio::Waker,
    wake_pending: AtomicBool,
    /// Set while the shim itself ends and restarts the RTS session (flush):
    /// the writer's stop and the repeated header are then not the stream's.
    restarting: AtomicBool,
    /// The RTS session ended for good, or elstream_stop was called.
    ended: AtomicBool,
    /// elstream_stop is ending the session: the writer's stop then runs with
    /// the world stopped and must not linger there.
    api_stopping: AtomicBool,
    /// The I/O thread has handed everything to every consumer (or gave up).
    drained: (Mutex<bool>, Condvar),
    /// Sinks added since the I/O thread last looked.
    new_sinks: Mutex<Vec<Sink>>,
    consumers: ConsumerCounters,
    /// Latest block end time the writer saw: the RTS's clock, for events the
    /// shim synthesizes.
    last_block_time: AtomicU64,
    /// Blocks to send right before a ring block (by number): `TaskCreate`s
    /// for tasks it uses that the stream never created.
    block_prefixes: Mutex<BTreeMap<u64, Arc<Vec<u8>>>>,
    pid: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// `waker` wakes the I/O thread.
    pub(crate) fn new(config: Config, ring: Ring, waker: mio::Waker) -> Shared {
        Shared {
            config,
            ring,
            header: Mutex::new(None),
            parsed_header: OnceLock::new(),
            state: Mutex::new(StateCache::new()),
            discarding: AtomicBool::new(false),
            waker,
            wake_pending: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            api_stopping: AtomicBool::new(false),
            drained: (Mutex::new(false), Condvar::new()),
            new_sinks: Mutex::new(Vec::new()),
            consumers: ConsumerCounters::default(),
            last_block_time: AtomicU64::new(0),
            block_prefixes: Mutex::new(BTreeMap::new()),
            pid: std::process::id(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The blocks, for reading (each reader with its own cursor).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn consumers(&self) -> &ConsumerCounters {
        &self.consumers
    }

    /// The state cache (locked).
    pub fn state(&self) -> MutexGuard<'_, StateCache> {
        lock(&self.state)
    }

    /// Appends a block to the ring and wakes the I/O thread.
    pub fn push_block(&self, block: &[u8]) {
        self.ring.push_block(block);
        self.wake();
    }

    /// A block from the RTS: also advances the RTS clock the shim stamps
    /// its own events with.
    pub(crate) fn push_rts_block(&self, block: &[u8], end_time: u64) {
        self.last_block_time.fetch_max(end_time, Ordering::AcqRel);
        self.push_block(block);
    }

    /// Latest RTS time seen in a block.
    fn rts_time(&self) -> u64 {
        self.last_block_time.load(Ordering::Acquire)
    }

    /// Hands a sink to the I/O thread.
    pub(crate) fn add_sink(&self, sink: Sink) {
        lock(&self.new_sinks).push(sink);
        self.wake();
    }

    /// The sinks added since the last call (the I/O thread's).
    pub(crate) fn take_new_sinks(&self) -> Vec<Sink> {
        std::mem::take(&mut *lock(&self.new_sinks))
    }

    pub(crate) fn is_own_process(&self) -> bool {
        std::process::id() == self.pid
    }

    /// Appends `CreateThread` events for threads that exist but that the
    /// stream never saw created (they were created before the shim became
    /// the writer), stamped with the latest RTS time seen so far, so that
    /// every later event of theirs follows a creation. Returns how many.
    pub(crate) fn replay_threads(&self, ids: &[u64], labels: &[(u64, Vec<u8>)]) -> usize {
        let Some(header) = self.parsed_header() else {
            return 0;
        };
        let blocks =
            elstream_format::eventlog::thread_creation_blocks(header, self.rts_time(), ids, labels);
        for b in &blocks {
            self.ring.push_block(b);
        }
        if !blocks.is_empty() {
            self.wake();
        }
        ids.len()
    }

    /// For a reader that starts at `from` rather than at the stream's start
    /// (a late joiner, a snapshot): the thread creations, running threads and
    /// GC under way it needs to follow what the ring holds from there
    /// (`elstream_format::threads`). Walks the ring's blocks once.
    pub(crate) fn thread_prefix(&self, from: Cursor) -> Vec<Vec<u8>> {
        let Some(header) = self.parsed_header() else {
            return Vec::new();
        };
        let mut scan = elstream_format::threads::WindowScan::new();
        let mut at = from;
        let mut scratch = Vec::new();
        loop {
            scratch.clear();
            match self.ring.copy_block(&mut at, &mut scratch) {
                Copied::Block => scan.add(header, &scratch),
                Copied::Evicted { .. } => continue,
                Copied::Empty => break,
            }
        }
        let state = lock(&self.state);
        scan.prefix(header, &state.threads, state.last_time)
    }

    /// Appends the capsets and capabilities (9.2+ does not re-post them when
    /// the shim's writer starts), stamped with the latest RTS time seen.
    pub(crate) fn post_capabilities(&self, n_caps: u16) {
        let Some(header) = self.parsed_header() else {
            return;
        };
        let block = elstream_format::eventlog::capability_blocks(header, self.rts_time(), n_caps);
        if !block.is_empty() {
            self.push_block(&block);
        }
    }

    pub(crate) fn set_block_prefix(&self, block: u64, prefix: Vec<u8>) {
        let mut p = lock(&self.block_prefixes);
        p.insert(block, Arc::new(prefix));
        // Those of blocks no longer held can go.
        let oldest = self.ring.oldest().block;
        while p.first_key_value().is_some_and(|(&b, _)| b < oldest) {
            p.pop_first();
        }
    }

    pub(crate) fn block_prefix(&self, block: u64) -> Option<Arc<Vec<u8>>> {
        let p = lock(&self.block_prefixes);
        if p.is_empty() {
            return None;
        }
        p.get(&block).cloned()
    }

    pub(crate) fn set_header(&self, header: &[u8]) {
        let mut h = lock(&self.header);
        // A restart repeats the header; the stream keeps its first one.
        if h.is_none() {
            *h = Some(header.into());
            drop(h);
            self.wake();
        }
    }

    pub fn header(&self) -> Option<Arc<[u8]>> {
        lock(&self.header).clone()
    }

    /// The header, parsed (once it has been written).
    pub fn parsed_header(&self) -> Option<&Header> {
        if let Some(h) = self.parsed_header.get() {
            return Some(h);
        }
        let raw = self.header()?;
        let h = Header::parse(&raw).ok()?;
        Some(self.parsed_header.get_or_init(|| h))
    }

    pub fn is_discarding(&self) -> bool {
        self.discarding.load(Ordering::Relaxed)
    }

    pub(crate) fn set_discarding(&self, on: bool) {
        self.discarding.store(on, Ordering::Relaxed);
    }

    /// Runs `f` (an RTS restart) with the writer told to keep the stream going.
    pub(crate) fn restarting_while<T>(&self, f: impl FnOnce() -> T) -> T {
        self.restarting.store(true, Ordering::Release);
        let r = f();
        self.restarting.store(false, Ordering::Release);
        r
    }

    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the I/O thread before it looks at the ring again.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The writer's stop (`stopEventLogWriter`): unless the shim is
    /// restarting the session, the stream ends; at program exit, wait (at
    /// most `linger`) for the tail.
    pub(crate) fn writer_stopped(&self) {
        if self.restarting.load(Ordering::Acquire) || !self.is_own_process() {
            return;
        }
        self.end();
        if !self.api_stopping.load(Ordering::Acquire) {
            self.wait_drained();
        }
    }

    /// elstream_stop is ending the session (see `writer_stopped`).
    pub(crate) fn set_api_stopping(&self) {
        self.api_stopping.store(true, Ordering::Release);
    }

    /// Waits at most `linger` for the I/O thread to hand out the tail.
    pub(crate) fn wait_drained(&self) {
        let deadline = Instant::now() + self.config.linger;
        let (lock, cvar) = &self.drained;
        let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                break;
            }
            done = cvar
                .wait_timeout(done, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Ends the stream: the I/O thread hands out the tail and the data end.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.wake_pending.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    pub(crate) fn set_drained(&self) {
        let (lock, cvar) = &self.drained;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_all();
    }
}
