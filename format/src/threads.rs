//! What a reader needs to follow threads in a stream that does not begin at
//! the program's start (a late joiner, a snapshot, a proxy's store): each
//! thread's creation, and where a thread was running or a GC under way when
//! the stream's window opens. ghc-events' `validate threads` and ThreadScope
//! reject a thread that runs or stops without having been created.
//!
//! Two parts: [`LiveThreads`] follows creations and ends over the whole
//! stream (bounded), and [`WindowScan`] walks the blocks a reader is about
//! to get and synthesizes the events it lacks, stamped before everything in
//! the window (readers order events by time).

use std::collections::{BTreeMap, BTreeSet};

use crate::eventlog::*;

/// No thread in a [`LiveThreads::running`] slot.
const NONE: u32 = u32::MAX;
/// Capabilities followed at most (a larger number is no capability of a real RTS).
const MAX_CAPS: usize = 4096;

/// `StopThread` status for a thread that finished (EventLogFormat.h).
const THREAD_FINISHED: u16 = 5;
/// Threads followed at most; the oldest ids go first beyond it.
const MAX_LIVE: usize = 1 << 20;

/// The threads created and not yet finished, as the stream tells.
#[derive(Clone, Debug, Default)]
pub struct LiveThreads {
    live: BTreeSet<u32>,
    /// The thread each capability runs (`NONE` for none), as far as the
    /// stream tells, indexed by capability: set on every RunThread and
    /// StopThread, the commonest events, so a plain slot each.
    running: Vec<u32>,
    /// Tasks (OS threads of the RTS) created and not deleted: id → (cap,
    /// kernel thread id). ThreadScope stops loading at the first task event
    /// for a task it never saw created.
    tasks: BTreeMap<u64, (u16, u64)>,
}

fn be_u64(p: &[u8], at: usize) -> Option<u64> {
    p.get(at..at + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// A `TaskCreate` payload: task id, capability, kernel thread id.
fn task_create_payload(task: u64, cap: u16, tid: u64) -> Vec<u8> {
    let mut p = task.to_be_bytes().to_vec();
    p.extend_from_slice(&cap.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p
}

/// The task a task event is about, and the capability it was on.
fn task_of(ty: u16, payload: &[u8], block_cap: u16) -> Option<(u64, u16)> {
    let task = be_u64(payload, 0)?;
    match ty {
        EVENT_TASK_MIGRATE => Some((task, be_u16(payload, 8)?)),
        EVENT_TASK_DELETE => Some((
            task,
            if block_cap == GLOBAL_CAP {
                0
            } else {
                block_cap
            },
        )),
        _ => None,
    }
}

fn be_u32(p: &[u8], at: usize) -> Option<u32> {
    p.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_u16(p: &[u8], at: usize) -> Option<u16> {
    p.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

impl LiveThreads {
    /// Whether an event of this type changes the set.
    #[inline]
    pub fn interested(ty: u16) -> bool {
        matches!(
            ty,
            EVENT_CREATE_THREAD
                | EVENT_STOP_THREAD
                | EVENT_RUN_THREAD
                | EVENT_TASK_CREATE
                | EVENT_TASK_MIGRATE
                | EVENT_TASK_DELETE
        )
    }

    /// One event of a block of capability `cap`.
    pub fn observe(&mut self, ty: u16, cap: u16, payload: &[u8]) {
        match ty {
            EVENT_TASK_CREATE => {
                if let (Some(task), Some(c), Some(tid)) =
                    (be_u64(payload, 0), be_u16(payload, 8), be_u64(payload, 10))
                {
                    self.tasks.insert(task, (c, tid));
                    if self.tasks.len() > MAX_LIVE {
                        self.tasks.pop_first();
                    }
                }
            }
            EVENT_TASK_MIGRATE => {
                if let (Some(task), Some(new)) = (be_u64(payload, 0), be_u16(payload, 10)) {
                    if let Some(t) = self.tasks.get_mut(&task) {
                        t.0 = new;
                    }
                }
            }
            EVENT_TASK_DELETE => {
                if let Some(task) = be_u64(payload, 0) {
                    self.tasks.remove(&task);
                }
            }
            EVENT_RUN_THREAD => {
                let c = cap as usize;
                if let (Some(id), true) = (be_u32(payload, 0), c < MAX_CAPS) {
                    if self.running.len() <= c {
                        self.running.resize(c + 1, NONE);
                    }
                    self.running[c] = id;
                }
            }
            EVENT_CREATE_THREAD => {
                if let Some(id) = be_u32(payload, 0) {
                    self.live.insert(id);
                    if self.live.len() > MAX_LIVE {
                        self.live.pop_first();
                    }
                }
            }
            EVENT_STOP_THREAD => {
                let id = be_u32(payload, 0);
                if let Some(slot) = self.running.get_mut(cap as usize) {
                    if Some(*slot) == id {
                        *slot = NONE;
                    }
                }
                if let (Some(id), Some(THREAD_FINISHED)) = (id, be_u16(payload, 4)) {
                    self.live.remove(&id);
                }
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.live.iter().copied()
    }

    /// For an event of a block (`marker`) about to follow everything this
    /// tracker has seen, before it is observed: a `TaskMigrate` or
    /// `TaskDelete` of a task the stream never created (the RTS created it
    /// before the shim became its writer) adds a `TaskCreate` to `need`, the
    /// block to send first, stamped with the block's start. The task's kernel
    /// thread id is not known; the task id stands in (unique, as readers
    /// require).
    pub fn needs(
        &mut self,
        header: &Header,
        marker: &BlockMarker,
        ev: &Event<'_>,
        need: &mut Option<BlockBuilder>,
    ) {
        if ev.ty != EVENT_TASK_MIGRATE && ev.ty != EVENT_TASK_DELETE {
            return;
        }
        let Some((task, cap)) = task_of(ev.ty, ev.payload, marker.cap) else {
            return;
        };
        if self.tasks.contains_key(&task) {
            return;
        }
        let b = need.get_or_insert_with(|| BlockBuilder::new(marker.cap));
        if b.push(
            header,
            EVENT_TASK_CREATE,
            marker.time,
            &task_create_payload(task, cap, task),
        )
        .is_ok()
        {
            // Created now, as far as readers go (the event itself follows).
            self.tasks.insert(task, (cap, task));
        }
    }
}

/// The first event that matters to a thread's state within the window.
#[derive(Clone, Copy, Debug)]
struct First {
    time: u64,
    ty: u16,
    cap: u16,
}

/// GC phases, for the GC that may be under way when the window opens.
fn gc_phase(ty: u16) -> Option<bool> {
    match ty {
        EVENT_GC_START => Some(true),
        EVENT_GC_END => Some(false),
        _ => None,
    }
}

/// Walks the blocks a reader is about to get (in stream order, one
/// [`add`](Self::add) each) and then, in [`prefix`](Self::prefix), gives the
/// blocks to send right before them so that the reader can follow every
/// thread: `CreateThread` for each thread the window uses without creating,
/// and for each still live thread the window does not create; `RunThread`
/// where a thread's first event in the window stops it (it was running as
/// the window opened); and `StartGC` for a capability whose first GC event
/// ends a GC. Stamped with the window's earliest time.
#[derive(Debug, Default)]
pub struct WindowScan {
    tasks_created: BTreeSet<u64>,
    /// Tasks the window migrates or deletes first, and their capability.
    tasks_used: BTreeMap<u64, u16>,
    created: BTreeSet<u32>,
    first: BTreeMap<u32, First>,
    gc_first: BTreeMap<u16, (u64, bool)>,
    earliest: Option<u64>,
}

impl WindowScan {
    pub fn new() -> WindowScan {
        WindowScan::default()
    }

    pub fn add(&mut self, header: &Header, block: &[u8]) {
        let cap = BlockMarker::parse(block).map_or(GLOBAL_CAP, |m| m.cap);
        for ev in events(header, block).map_while(Result::ok) {
            if ev.ty == EVENT_BLOCK_MARKER {
                continue;
            }
            self.earliest = Some(self.earliest.map_or(ev.time, |t| t.min(ev.time)));
            match ev.ty {
                EVENT_CREATE_THREAD => {
                    if let Some(id) = be_u32(ev.payload, 0) {
                        self.created.insert(id);
                    }
                }
                EVENT_RUN_THREAD | EVENT_STOP_THREAD | EVENT_THREAD_WAKEUP => {
                    if let Some(id) = be_u32(ev.payload, 0) {
                        let e = First {
                            time: ev.time,
                            ty: ev.ty,
                            cap,
                        };
                        let f = self.first.entry(id).or_insert(e);
                        if e.time < f.time {
                            *f = e;
                        }
                    }
                }
                ty => {
                    if let (Some(start), true) = (gc_phase(ty), cap != GLOBAL_CAP) {
                        let f = self.gc_first.entry(cap).or_insert((ev.time, start));
                        if ev.time < f.0 {
                            *f = (ev.time, start);
                        }
                    }
                }
            }
        }
    }

    /// The blocks to send before the window; `fallback_time` stamps them when
    /// the window is empty (a reader that starts now).
    pub fn prefix(&self, header: &Header, live: &LiveThreads, fallback_time: u64) -> Vec<Vec<u8>> {
        let time = self.earliest.unwrap_or(fallback_time);
        // Per capability, at most one thread can have been running as the
        // window opened: the one that stops there first.
        let mut running: BTreeMap<u16, (u64, u32)> = BTreeMap::new();
        for (&id, f) in &self.first {
            if f.ty == EVENT_STOP_THREAD && !self.created.contains(&id) && f.cap != GLOBAL_CAP {
                let e = running.entry(f.cap).or_insert((f.time, id));
                if f.time < e.0 {
                    *e = (f.time, id);
                }
            }
        }
        let mut need: BTreeSet<u32> = self
            .first
            .keys()
            .copied()
            .filter(|id| !self.created.contains(id))
            .collect();
        need.extend(live.ids().filter(|id| !self.created.contains(id)));
        // A capability the window says nothing of keeps the thread the stream
        // last ran there (a reader that starts now).
        for (cap, &id) in live.running.iter().enumerate() {
            if id != NONE && !self.first.contains_key(&id) && !self.created.contains(&id) {
                running.entry(cap as u16).or_insert((0, id));
            }
        }
        let mut by_cap: BTreeMap<u16, BlockBuilder> = BTreeMap::new();
        let mut ok = true;
        let mut push = |cap: u16, ty: u16, payload: &[u8]| {
            let b = by_cap.entry(cap).or_insert_with(|| BlockBuilder::new(cap));
            ok &= b.push(header, ty, time, payload).is_ok();
        };
        for id in &need {
            push(0, EVENT_CREATE_THREAD, &id.to_be_bytes());
        }
        // Tasks: those the window uses without creating, and the live ones it
        // does not create (their real kernel thread id where the stream said).
        let mut tasks: BTreeMap<u64, (u16, u64)> = self
            .tasks_used
            .iter()
            .map(|(&t, &c)| (t, live.tasks.get(&t).copied().unwrap_or((c, t))))
            .collect();
        for (&t, &v) in &live.tasks {
            if !self.tasks_created.contains(&t) {
                tasks.entry(t).or_insert(v);
            }
        }
        for (task, (cap, tid)) in tasks {
            push(0, EVENT_TASK_CREATE, &task_create_payload(task, cap, tid));
        }
        for (&cap, &(_, id)) in &running {
            push(cap, EVENT_RUN_THREAD, &id.to_be_bytes());
        }
        for (&cap, &(_, start)) in &self.gc_first {
            if !start {
                push(cap, EVENT_GC_START, &[]);
            }
        }
        if !ok {
            return Vec::new();
        }
        by_cap
            .into_values()
            .filter(|b| !b.is_empty())
            .map(BlockBuilder::finish)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        let t = |num, size: u16| EventTypeInfo {
            num,
            size: Some(size),
            desc: format!("type {num}"),
        };
        Header::from_types(&[
            t(EVENT_CREATE_THREAD, 4),
            t(EVENT_RUN_THREAD, 4),
            t(EVENT_STOP_THREAD, 10),
            t(EVENT_GC_START, 0),
            t(EVENT_GC_END, 0),
            t(EVENT_BLOCK_MARKER, 14),
        ])
    }

    fn stop(id: u32, status: u16) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&status.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p
    }

    fn types(header: &Header, blocks: &[Vec<u8>]) -> Vec<(u16, u16, Vec<u8>)> {
        blocks
            .iter()
            .flat_map(|b| {
                let cap = BlockMarker::parse(b).unwrap().cap;
                events(header, b)
                    .map(|e| e.unwrap())
                    .filter(|e| e.ty != EVENT_BLOCK_MARKER)
                    .map(move |e| (cap, e.ty, e.payload.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_window_gets_what_it_lacks_and_nothing_it_has() {
        let h = header();
        let mut b = BlockBuilder::new(1);
        b.push(&h, EVENT_STOP_THREAD, 10, &stop(7, 3)).unwrap(); // was running on cap 1
        b.push(&h, EVENT_RUN_THREAD, 11, &8u32.to_be_bytes())
            .unwrap(); // queued before
        b.push(&h, EVENT_GC_END, 12, &[]).unwrap(); // a GC under way
        b.push(&h, EVENT_CREATE_THREAD, 13, &9u32.to_be_bytes())
            .unwrap();
        b.push(&h, EVENT_RUN_THREAD, 14, &9u32.to_be_bytes())
            .unwrap();
        let window = [b.finish()];
        let mut live = LiveThreads::default();
        for id in [3u32, 9] {
            live.observe(EVENT_CREATE_THREAD, 0, &id.to_be_bytes());
        }
        let mut scan = WindowScan::new();
        for block in &window {
            scan.add(&h, block);
        }
        let prefix = scan.prefix(&h, &live, 0);
        let got = types(&h, &prefix);
        let creates: Vec<u32> = got
            .iter()
            .filter(|e| e.1 == EVENT_CREATE_THREAD)
            .map(|e| u32::from_be_bytes(e.2[..4].try_into().unwrap()))
            .collect();
        assert_eq!(creates, vec![3, 7, 8], "9 is created in the window");
        assert!(got.contains(&(1, EVENT_RUN_THREAD, 7u32.to_be_bytes().to_vec())));
        assert!(got.contains(&(1, EVENT_GC_START, vec![])));
        for b in &prefix {
            assert_eq!(BlockMarker::parse(b).unwrap().time, 10, "before the window");
        }
    }

    #[test]
    fn finished_threads_leave_the_live_set() {
        let mut live = LiveThreads::default();
        live.observe(EVENT_CREATE_THREAD, 0, &5u32.to_be_bytes());
        live.observe(EVENT_STOP_THREAD, 0, &stop(5, 3));
        assert_eq!(live.len(), 1);
        live.observe(EVENT_STOP_THREAD, 0, &stop(5, THREAD_FINISHED));
        assert!(live.is_empty());
    }
}
