//! The state a late joiner needs to make sense of a stream: which capsets and
//! capabilities exist, what program this is, thread labels, heap-profile cost
//! centres, and the application's sticky messages. Collected from the events
//! that pass by, replayed as synthesized blocks right after the header.

use std::collections::BTreeMap;

use crate::eventlog::*;
use crate::threads::LiveThreads;

/// Per kind of keyed state, how many entries are kept at most.
const MAX_ENTRIES: usize = 65_536;
/// Sticky messages kept at most (oldest go first).
const MAX_STICKY: usize = 1024;
/// Replay blocks are cut at about this size.
const REPLAY_BLOCK: usize = 512 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    time: u64,
    payload: Vec<u8>,
}

/// Replay order: what a parser needs first comes first.
const ORDER: [u16; 17] = [
    EVENT_CAPSET_CREATE,
    EVENT_CAP_CREATE,
    EVENT_CAPSET_ASSIGN_CAP,
    EVENT_CAP_DISABLE,
    EVENT_CAP_ENABLE,
    EVENT_RTS_IDENTIFIER,
    EVENT_PROGRAM_ARGS,
    EVENT_PROGRAM_ENV,
    EVENT_OSPROCESS_PID,
    EVENT_OSPROCESS_PPID,
    EVENT_WALL_CLOCK_TIME,
    EVENT_HEAP_INFO_GHC,
    EVENT_HEAP_PROF_BEGIN,
    EVENT_HEAP_PROF_COST_CENTRE,
    EVENT_THREAD_LABEL,
    EVENT_USER_MSG,
    EVENT_USER_MARKER,
];

/// [`StateCache::interested`] as one bit per event type (the decoder asks it
/// for every new type it walks): the types in `ORDER` but user messages and
/// markers, and the deletions. All are below 256.
const INTERESTED: [u64; 4] = {
    let mut m = [0u64; 4];
    // Deletions, and the thread creations and ends [`LiveThreads`] follows.
    let deletions = [
        EVENT_CAPSET_DELETE,
        EVENT_CAPSET_REMOVE_CAP,
        EVENT_CAP_DELETE,
        EVENT_CREATE_THREAD,
        EVENT_RUN_THREAD,
        EVENT_STOP_THREAD,
        EVENT_TASK_CREATE,
        EVENT_TASK_MIGRATE,
        EVENT_TASK_DELETE,
    ];
    let mut i = 0;
    while i < ORDER.len() + deletions.len() {
        let t = if i < ORDER.len() {
            ORDER[i]
        } else {
            deletions[i - ORDER.len()]
        };
        assert!(t < 256);
        if t != EVENT_USER_MSG && t != EVENT_USER_MARKER {
            m[t as usize / 64] |= 1 << (t % 64);
        }
        i += 1;
    }
    m
};

#[derive(Clone, Debug, Default)]
pub struct StateCache {
    /// (event type, key within the type) → latest event.
    entries: BTreeMap<(u16, u64), Stored>,
    /// Entries per event type, to bound each kind without counting.
    counts: BTreeMap<u16, usize>,
    sticky: Vec<(u16, Stored)>,
    /// Threads created and not finished, for [`crate::threads::WindowScan`].
    pub threads: LiveThreads,
    /// Latest timestamp seen: the time given to sticky messages.
    pub last_time: u64,
}

fn be_u32(p: &[u8], at: usize) -> Option<u64> {
    p.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
}

fn be_u16(p: &[u8], at: usize) -> Option<u64> {
    p.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as u64)
}

impl StateCache {
    pub fn new() -> StateCache {
        StateCache::default()
    }

    /// Whether an event of this type can change the state (a cheap pre-check).
    #[inline]
    pub fn interested(ty: u16) -> bool {
        (ty as usize) < 256 && INTERESTED[ty as usize / 64] >> (ty % 64) & 1 == 1
    }

    /// [`observe_block`](Self::observe_block) for a block from the decoder,
    /// which says whether it holds any state event ([`Block::state`]): one
    /// without only moves the clock, to its end time, and is not walked.
    ///
    /// [`Block::state`]: crate::eventlog::Block::state
    pub fn observe_flagged(&mut self, header: &Header, block: &[u8], state: bool, end_time: u64) {
        if state {
            self.walk(header, block);
        } else {
            self.last_time = self.last_time.max(end_time);
        }
    }

    /// Takes note of every state event in one block. A block that opens
    /// with a marker and holds no state event (most of them) only moves the
    /// clock, to the marker's end time, after a fast walk.
    pub fn observe_block(&mut self, header: &Header, block: &[u8]) {
        match BlockMarker::parse(block) {
            Some(m) if !holds_state(header, block) => {
                self.last_time = self.last_time.max(m.end_time);
            }
            _ => self.walk(header, block),
        }
    }

    fn walk(&mut self, header: &Header, block: &[u8]) {
        self.walk_needing(header, block, None);
    }

    /// [`observe_block`](Self::observe_block), and in the same walk the block
    /// to send before this one for readers that have followed the stream
    /// from its start ([`LiveThreads::needs`]: tasks it uses that the stream
    /// never created); `None` almost always.
    pub fn observe_block_needing(&mut self, header: &Header, block: &[u8]) -> Option<Vec<u8>> {
        match BlockMarker::parse(block) {
            Some(m) if !holds_state(header, block) => {
                self.last_time = self.last_time.max(m.end_time);
                None
            }
            _ => {
                let mut need = None;
                self.walk_needing(header, block, Some(&mut need));
                need.map(BlockBuilder::finish)
            }
        }
    }

    fn walk_needing(
        &mut self,
        header: &Header,
        block: &[u8],
        mut need: Option<&mut Option<BlockBuilder>>,
    ) {
        let marker = BlockMarker::parse(block);
        let cap = marker.map_or(GLOBAL_CAP, |m| m.cap);
        for ev in events(header, block).map_while(Result::ok) {
            self.last_time = self.last_time.max(ev.time);
            if LiveThreads::interested(ev.ty) {
                if let (Some(need), Some(m)) = (need.as_deref_mut(), marker) {
                    self.threads.needs(header, &m, &ev, need);
                }
                self.threads.observe(ev.ty, cap, ev.payload);
            } else if Self::interested(ev.ty) {
                self.observe(ev.ty, ev.time, ev.payload);
            }
        }
    }

    /// One event outside any block (its capability unknown).
    pub fn observe(&mut self, ty: u16, time: u64, payload: &[u8]) {
        if LiveThreads::interested(ty) {
            self.threads.observe(ty, GLOBAL_CAP, payload);
            return;
        }
        let p = payload;
        let key = match ty {
            // u32 capset first.
            EVENT_CAPSET_CREATE
            | EVENT_RTS_IDENTIFIER
            | EVENT_PROGRAM_ARGS
            | EVENT_PROGRAM_ENV
            | EVENT_OSPROCESS_PID
            | EVENT_OSPROCESS_PPID
            | EVENT_WALL_CLOCK_TIME
            | EVENT_HEAP_INFO_GHC
            | EVENT_THREAD_LABEL
            | EVENT_HEAP_PROF_COST_CENTRE => be_u32(p, 0),
            EVENT_CAPSET_ASSIGN_CAP => be_u32(p, 0).zip(be_u16(p, 4)).map(|(s, c)| s << 16 | c),
            EVENT_CAP_CREATE | EVENT_CAP_DISABLE | EVENT_CAP_ENABLE => be_u16(p, 0),
            EVENT_HEAP_PROF_BEGIN => p.first().map(|b| *b as u64),
            EVENT_CAPSET_DELETE => {
                if let Some(capset) = be_u32(p, 0) {
                    let gone: Vec<(u16, u64)> = self
                        .entries
                        .keys()
                        .filter(|(t, k)| match *t {
                            EVENT_CAPSET_ASSIGN_CAP => k >> 16 == capset,
                            EVENT_CAP_CREATE
                            | EVENT_CAP_DISABLE
                            | EVENT_CAP_ENABLE
                            | EVENT_HEAP_PROF_BEGIN
                            | EVENT_HEAP_PROF_COST_CENTRE
                            | EVENT_THREAD_LABEL => false,
                            _ => *k == capset,
                        })
                        .copied()
                        .collect();
                    for k in gone {
                        self.remove(k);
                    }
                }
                return;
            }
            EVENT_CAPSET_REMOVE_CAP => {
                if let Some(k) = be_u32(p, 0).zip(be_u16(p, 4)).map(|(s, c)| s << 16 | c) {
                    self.remove((EVENT_CAPSET_ASSIGN_CAP, k));
                }
                return;
            }
            EVENT_CAP_DELETE => {
                if let Some(cap) = be_u16(p, 0) {
                    for t in [EVENT_CAP_CREATE, EVENT_CAP_DISABLE, EVENT_CAP_ENABLE] {
                        self.remove((t, cap));
                    }
                }
                return;
            }
            _ => None,
        };
        let Some(key) = key else { return };
        // Enable and disable replace each other.
        match ty {
            EVENT_CAP_DISABLE => self.remove((EVENT_CAP_ENABLE, key)),
            EVENT_CAP_ENABLE => self.remove((EVENT_CAP_DISABLE, key)),
            _ => {}
        }
        let stored = Stored {
            time,
            payload: payload.to_vec(),
        };
        if self.entries.insert((ty, key), stored).is_none() {
            let n = self.counts.entry(ty).or_default();
            *n += 1;
            // Bound each kind: forget the lowest keys (oldest threads, first cost centres).
            if *n > MAX_ENTRIES {
                let first = *self
                    .entries
                    .range((ty, 0)..=(ty, u64::MAX))
                    .next()
                    .unwrap()
                    .0;
                self.remove(first);
            }
        }
    }

    fn remove(&mut self, key: (u16, u64)) {
        if self.entries.remove(&key).is_some() {
            *self.counts.entry(key.0).or_default() -= 1;
        }
    }

    /// Records a message every late joiner gets; also returns the one-event
    /// block that carries it into the live stream now.
    pub fn add_sticky(&mut self, header: &Header, text: &str, marker: bool) -> Vec<u8> {
        let ty = if marker {
            EVENT_USER_MARKER
        } else {
            EVENT_USER_MSG
        };
        let stored = Stored {
            time: self.last_time,
            payload: truncate_utf8(text, u16::MAX as usize).as_bytes().to_vec(),
        };
        if self.sticky.len() >= MAX_STICKY {
            self.sticky.remove(0);
        }
        self.sticky.push((ty, stored.clone()));
        let mut b = BlockBuilder::new(GLOBAL_CAP);
        let _ = b.push(header, ty, stored.time, &stored.payload);
        b.finish()
    }

    /// The RTS identifier text (e.g. `GHC-9.0.2 rts_thr_l`), once seen.
    pub fn rts_identifier(&self) -> Option<String> {
        let s = self
            .entries
            .range((EVENT_RTS_IDENTIFIER, 0)..=(EVENT_RTS_IDENTIFIER, u64::MAX))
            .next()?
            .1;
        let text = s.payload.get(4..)?;
        let text = text.split(|b| *b == 0).next().unwrap_or(text);
        Some(String::from_utf8_lossy(text).into_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.sticky.is_empty()
    }

    pub fn sticky_count(&self) -> usize {
        self.sticky.len()
    }

    /// Number of (non-sticky) state entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The state as global blocks, in replay order (what a parser needs
    /// first: capsets and capabilities, then the program's identity, heap
    /// info, thread labels, sticky messages); types the header does not
    /// declare are left out.
    pub fn replay(&self, header: &Header) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        let mut b = BlockBuilder::new(GLOBAL_CAP);
        let mut push = |b: &mut BlockBuilder, ty: u16, s: &Stored| {
            if b.push(header, ty, s.time, &s.payload).is_ok() && b.len() >= REPLAY_BLOCK {
                blocks.push(std::mem::replace(b, BlockBuilder::new(GLOBAL_CAP)).finish());
            }
        };
        for ty in ORDER {
            for (_, s) in self.entries.range((ty, 0)..=(ty, u64::MAX)) {
                push(&mut b, ty, s);
            }
        }
        for (ty, s) in &self.sticky {
            push(&mut b, *ty, s);
        }
        if !b.is_empty() {
            blocks.push(b.finish());
        }
        blocks
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interested_is_the_state_types_and_deletions() {
        for ty in 0..=u16::MAX {
            let want = ORDER.contains(&ty) && ty != EVENT_USER_MSG && ty != EVENT_USER_MARKER
                || matches!(
                    ty,
                    EVENT_CAPSET_DELETE
                        | EVENT_CAPSET_REMOVE_CAP
                        | EVENT_CAP_DELETE
                        | EVENT_CREATE_THREAD
                        | EVENT_RUN_THREAD
                        | EVENT_STOP_THREAD
                        | EVENT_TASK_CREATE
                        | EVENT_TASK_MIGRATE
                        | EVENT_TASK_DELETE
                );
            assert_eq!(StateCache::interested(ty), want, "type {ty}");
        }
    }

    fn test_header() -> Header {
        let ty = |num, size: Option<u16>| EventTypeInfo {
            num,
            size,
            desc: format!("type {num}"),
        };
        Header::from_types(&[
            ty(EVENT_BLOCK_MARKER, Some(14)),
            ty(EVENT_CAPSET_CREATE, Some(6)),
            ty(EVENT_CAPSET_ASSIGN_CAP, Some(6)),
            ty(EVENT_CAPSET_REMOVE_CAP, Some(6)),
            ty(EVENT_CAP_CREATE, Some(2)),
            ty(EVENT_THREAD_LABEL, None),
            ty(EVENT_USER_MSG, None),
            ty(EVENT_RUN_THREAD, Some(4)),
        ])
    }

    fn payloads(header: &Header, blocks: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        blocks
            .iter()
            .flat_map(|b| {
                events(header, b)
                    .map(|e| e.unwrap())
                    .map(|e| (e.ty, e.payload.to_vec()))
                    .collect::<Vec<_>>()
            })
            .filter(|(t, _)| *t != EVENT_BLOCK_MARKER)
            .collect()
    }

    #[test]
    fn keeps_latest_state_and_forgets_removed() {
        let h = test_header();
        let mut b = BlockBuilder::new(0);
        b.push(&h, EVENT_CAPSET_CREATE, 1, &[0, 0, 0, 0, 0, 1])
            .unwrap();
        b.push(&h, EVENT_CAP_CREATE, 2, &[0, 0]).unwrap();
        b.push(&h, EVENT_CAP_CREATE, 2, &[0, 1]).unwrap();
        b.push(&h, EVENT_CAPSET_ASSIGN_CAP, 3, &[0, 0, 0, 0, 0, 0])
            .unwrap();
        b.push(&h, EVENT_CAPSET_ASSIGN_CAP, 3, &[0, 0, 0, 0, 0, 1])
            .unwrap();
        b.push(&h, EVENT_CAPSET_REMOVE_CAP, 4, &[0, 0, 0, 0, 0, 1])
            .unwrap();
        b.push(&h, EVENT_THREAD_LABEL, 5, b"\0\0\0\x07old").unwrap();
        b.push(&h, EVENT_THREAD_LABEL, 6, b"\0\0\0\x07new").unwrap();
        b.push(&h, EVENT_RUN_THREAD, 7, &[0, 0, 0, 7]).unwrap();
        let block = b.finish();
        let mut s = StateCache::new();
        s.observe_block(&h, &block);
        assert_eq!(s.last_time, 7);
        s.add_sticky(&h, "service ready", false);
        let replayed = payloads(&h, &s.replay(&h));
        assert_eq!(
            replayed,
            vec![
                (EVENT_CAPSET_CREATE, vec![0, 0, 0, 0, 0, 1]),
                (EVENT_CAP_CREATE, vec![0, 0]),
                (EVENT_CAP_CREATE, vec![0, 1]),
                (EVENT_CAPSET_ASSIGN_CAP, vec![0, 0, 0, 0, 0, 0]),
                (EVENT_THREAD_LABEL, b"\0\0\0\x07new".to_vec()),
                (EVENT_USER_MSG, b"service ready".to_vec()),
            ]
        );
    }

    #[test]
    fn big_state_is_cut_into_blocks_and_bounded() {
        let h = test_header();
        let mut s = StateCache::new();
        for t in 0..(MAX_ENTRIES as u32 + 10) {
            let mut p = t.to_be_bytes().to_vec();
            p.extend_from_slice(b"a thread label of some length");
            s.observe(EVENT_THREAD_LABEL, 1, &p);
        }
        assert_eq!(s.len(), MAX_ENTRIES);
        let blocks = s.replay(&h);
        assert!(blocks.len() > 1);
        assert_eq!(payloads(&h, &blocks).len(), MAX_ENTRIES);
        // The oldest labels went first.
        assert_eq!(&payloads(&h, &blocks)[0].1[..4], &10u32.to_be_bytes());
    }
}
