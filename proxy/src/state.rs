//! What a subscriber that joins mid-session needs besides the header: the
//! "sticky" events (capsets, RTS identifier, program args/env, pids, wall
//! clock, capability creation, thread labels) from blocks it will not receive.
//!
//! Hook for extending replay: [`State::observe`] sees every block of the
//! session in order (with its sequence number) and [`State::replay`] builds the
//! block(s) sent after the header to a subscriber whose first regular block has
//! sequence number `since`. Whatever else needs replaying (e.g. the live
//! threads' state) belongs here.

use std::collections::HashMap;
use std::sync::Arc;

use elstream_format::eventlog::{
    events, BlockBuilder, Header, EVENT_CAPSET_ASSIGN_CAP, EVENT_CAPSET_CREATE, EVENT_CAP_CREATE,
    EVENT_OSPROCESS_PID, EVENT_OSPROCESS_PPID, EVENT_PROGRAM_ARGS, EVENT_PROGRAM_ENV,
    EVENT_RTS_IDENTIFIER, EVENT_THREAD_LABEL, EVENT_WALL_CLOCK_TIME,
};

/// Event types kept for replay.
const STICKY: &[u16] = &[
    EVENT_CAPSET_CREATE,
    EVENT_CAPSET_ASSIGN_CAP,
    EVENT_RTS_IDENTIFIER,
    EVENT_PROGRAM_ARGS,
    EVENT_PROGRAM_ENV,
    EVENT_OSPROCESS_PID,
    EVENT_OSPROCESS_PPID,
    EVENT_WALL_CLOCK_TIME,
    EVENT_CAP_CREATE,
    EVENT_THREAD_LABEL,
];

/// Bound on the bytes of kept events (thread labels can be many).
const MAX_STATE_BYTES: usize = 1 << 20;

struct Sticky {
    seq: u64,
    ty: u16,
    time: u64,
    payload: Vec<u8>,
}

pub struct State {
    header: Arc<Header>,
    kept: Vec<Option<Sticky>>,
    /// Key (type, identity bytes) -> index in `kept`, to replace e.g. a relabelled thread.
    index: HashMap<(u16, Vec<u8>), usize>,
    bytes: usize,
}

impl State {
    pub fn new(header: Arc<Header>) -> State {
        State {
            header,
            kept: Vec::new(),
            index: HashMap::new(),
            bytes: 0,
        }
    }

    /// Sees block number `seq` of the session (every block, in order).
    pub fn observe(&mut self, seq: u64, block: &[u8]) {
        for ev in events(&self.header, block) {
            let Ok(ev) = ev else { break };
            if !STICKY.contains(&ev.ty) {
                continue;
            }
            // A thread label is identified by its thread id; others by their content.
            let key = if ev.ty == EVENT_THREAD_LABEL && ev.payload.len() >= 4 {
                (ev.ty, ev.payload[..4].to_vec())
            } else {
                (ev.ty, ev.payload.to_vec())
            };
            let sticky = Sticky {
                seq,
                ty: ev.ty,
                time: ev.time,
                payload: ev.payload.to_vec(),
            };
            if let Some(&i) = self.index.get(&key) {
                if let Some(old) = self.kept[i].take() {
                    self.bytes -= old.payload.len();
                }
            }
            if self.bytes + sticky.payload.len() > MAX_STATE_BYTES {
                continue;
            }
            self.bytes += sticky.payload.len();
            self.index.insert(key, self.kept.len());
            self.kept.push(Some(sticky));
        }
    }

    /// The replay block for a subscriber whose first regular block is `since`
    /// (kept events from earlier blocks); `None` when there is nothing to replay.
    pub fn replay(&self, since: u64) -> Option<Vec<u8>> {
        let mut b = BlockBuilder::new(elstream_format::eventlog::GLOBAL_CAP);
        for s in self.kept.iter().flatten().filter(|s| s.seq < since) {
            if b.push(&self.header, s.ty, s.time, &s.payload).is_err() {
                continue;
            }
        }
        if b.is_empty() {
            None
        } else {
            Some(b.finish())
        }
    }
}
