//! What a subscriber that joins mid-session needs besides the header: the
//! state events (capsets, capabilities, RTS identifier, program args/env,
//! pids, wall clock, thread labels, heap-profile cost centres) from blocks it
//! will not receive. The bookkeeping is the format crate's [`StateCache`]
//! (shared with the shim); this only decides which blocks it sees.
//!
//! A TCP/UNIX joiner receives the stored blocks, so its replay is the state of
//! the blocks evicted from the store ([`State::evicted`]): no duplicates, and a
//! later change in a stored block still reaches it in order. UDP receivers
//! join at any block, so they get the state of every block so far, kept only
//! when UDP destinations exist (it costs one more pass over each block).

use std::sync::Arc;

use elstream_format::eventlog::Header;
use elstream_format::state::StateCache;

use elstream_format::threads::WindowScan;

use crate::store::{Chunk, ChunkKind};

pub struct State {
    header: Arc<Header>,
    evicted: StateCache,
    /// Some block left the store: a joiner misses the session's start.
    any_evicted: bool,
    all: Option<StateCache>,
}

impl State {
    pub fn new(header: Arc<Header>, track_all: bool) -> State {
        State {
            header,
            evicted: StateCache::new(),
            any_evicted: false,
            all: track_all.then(StateCache::new),
        }
    }

    /// Sees every block of the session as it arrives.
    pub fn observe(&mut self, block: &Chunk) {
        if let Some(all) = &mut self.all {
            all.observe_flagged(&self.header, &block.bytes, block.state, block.end_time);
        }
    }

    /// Sees every block as it leaves the store (in order).
    pub fn evicted(&mut self, block: &Chunk) {
        self.any_evicted = true;
        self.evicted
            .observe_flagged(&self.header, &block.bytes, block.state, block.end_time);
    }

    /// Replay blocks for a subscriber that gets every `stored` block next:
    /// the state of the evicted blocks, then what it needs to follow the
    /// threads and GCs the stored blocks show (threads live as the store's
    /// window opens, `elstream_format::threads`).
    pub fn replay_before_store<'a>(&self, stored: impl Iterator<Item = &'a Chunk>) -> Vec<Vec<u8>> {
        let mut blocks = self.evicted.replay(&self.header);
        // A joiner that gets the session from its first block misses
        // nothing: it gets the stream as the source wrote it.
        if !self.any_evicted {
            return blocks;
        }
        let mut scan = WindowScan::new();
        for c in stored.filter(|c| c.kind == ChunkKind::Block) {
            scan.add(&self.header, &c.bytes);
        }
        blocks.extend(scan.prefix(&self.header, &self.evicted.threads, self.evicted.last_time));
        blocks
    }

    /// Replay for a receiver that gets only blocks from now on (UDP), as one
    /// frame; `None` when there is nothing to replay or it was not tracked.
    pub fn replay_all(&self) -> Option<Vec<u8>> {
        let blocks = self.all.as_ref()?.replay(&self.header);
        if blocks.is_empty() {
            None
        } else {
            Some(blocks.concat())
        }
    }
}
