//! Sources fed by someone else: the proxy's loop hands each session's header
//! and whole blocks to a bounded [`Queue`] (never waiting), and one thread
//! ([`spawn`]) takes them into each source's session and analysis model, as
//! a source's own reader would. Blocks are whole events, so a block the full
//! queue drops costs the model that block only; it is counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use elstream_analysis::Config;
use elstream_format::Endpoint;

use crate::model::{Family, Kind};
use crate::source::{Feeder, Source};
use crate::Hub;

/// Bytes of a frame, shared with whoever else holds them (no copy).
pub type Bytes = Arc<Vec<u8>>;

/// What the queue carries, per feed `slot` (the feeder's own numbering).
pub enum Msg {
    /// A session begins: a new model for source `name`, fed `header` first.
    Start {
        slot: usize,
        name: String,
        endpoint: Endpoint,
        header: Bytes,
    },
    Block {
        slot: usize,
        bytes: Bytes,
    },
    /// The session ended (`data_end`: with the stream's data end).
    End {
        slot: usize,
        data_end: bool,
    },
}

/// Starts and ends take no byte budget (they are per session), up to this many queued.
const MAX_CONTROL: usize = 1024;

#[derive(Default)]
struct Inner {
    q: VecDeque<Msg>,
    bytes: usize,
    control: usize,
    /// Slots whose Start was dropped: their blocks are dropped until the next Start.
    lost: HashSet<usize>,
}

/// A queue bounded by bytes; pushing never waits (a full queue drops).
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
    max_bytes: usize,
    pub dropped_blocks: AtomicU64,
    pub dropped_bytes: AtomicU64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub fn new(max_bytes: usize) -> Arc<Queue> {
        Arc::new(Queue {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            max_bytes,
            dropped_blocks: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `m` unless the queue is full (then it is dropped and counted).
    /// The lock is held only for the push: the taker holds it only to pop.
    pub fn push(&self, m: Msg) {
        let mut g = self.lock();
        let ok = match &m {
            Msg::Block { slot, bytes } => {
                // An empty queue takes any block, so one bigger than the bound still passes.
                let fits = g.bytes == 0 || g.bytes + bytes.len() <= self.max_bytes;
                let ok = !g.lost.contains(slot) && fits;
                if ok {
                    g.bytes += bytes.len();
                } else {
                    self.dropped_blocks.fetch_add(1, Ordering::Relaxed);
                    self.dropped_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                ok
            }
            Msg::Start { slot, .. } => {
                let ok = g.control < MAX_CONTROL;
                if ok {
                    g.lost.remove(slot);
                } else {
                    g.lost.insert(*slot);
                }
                ok
            }
            Msg::End { .. } => g.control < MAX_CONTROL,
        };
        if !ok {
            return;
        }
        if !matches!(m, Msg::Block { .. }) {
            g.control += 1;
        }
        g.q.push_back(m);
        drop(g);
        self.ready.notify_one();
    }

    /// Waits for the next message.
    fn pop(&self) -> Msg {
        let mut g = self.lock();
        loop {
            if let Some(m) = g.q.pop_front() {
                match &m {
                    Msg::Block { bytes, .. } => g.bytes -= bytes.len(),
                    _ => g.control -= 1,
                }
                return m;
            }
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Bytes of blocks waiting.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The queue's own families (in `/metrics` and OTLP).
    pub fn families(&self, start: f64) -> Vec<Family> {
        let rows: [(&'static str, &'static str, Option<&'static str>, Kind, f64); 3] = [
            (
                "elstream_feed_dropped_blocks",
                "Blocks the proxy could not hand to its metrics thread (its queue was full); \
                 the models miss them, subscribers do not.",
                None,
                Kind::Counter,
                self.dropped_blocks.load(Ordering::Relaxed) as f64,
            ),
            (
                "elstream_feed_dropped",
                "Bytes of the blocks in elstream_feed_dropped_blocks.",
                Some("bytes"),
                Kind::Counter,
                self.dropped_bytes.load(Ordering::Relaxed) as f64,
            ),
            (
                "elstream_feed_queued",
                "Bytes of blocks waiting for the proxy's metrics thread.",
                Some("bytes"),
                Kind::Gauge,
                self.queued_bytes() as f64,
            ),
        ];
        rows.into_iter()
            .map(|(name, help, unit, kind, v)| {
                let mut f = Family::new(name, help, unit, kind);
                f.push(Vec::new(), v, start);
                f
            })
            .collect()
    }
}

/// Takes `queue`'s messages into `hub`'s sources until the process ends.
pub fn spawn(hub: Arc<Hub>, queue: Arc<Queue>, cfg: Config) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("metrics feed".into())
        .spawn(move || {
            let mut feeds: HashMap<usize, (Arc<Source>, Feeder)> = HashMap::new();
            loop {
                match queue.pop() {
                    Msg::Start {
                        slot,
                        name,
                        endpoint,
                        header,
                    } => {
                        let src = hub.add_fed(name, endpoint);
                        {
                            let mut st = src.lock();
                            st.connects += 1;
                            st.connected = true;
                        }
                        let mut f = Feeder::new();
                        if take(&src, &mut f, &header, &cfg) {
                            feeds.insert(slot, (src, f));
                        }
                    }
                    Msg::Block { slot, bytes } => {
                        if let Some((src, f)) = feeds.get_mut(&slot) {
                            if !take(&src.clone(), f, &bytes, &cfg) {
                                feeds.remove(&slot);
                            }
                        }
                    }
                    Msg::End { slot, data_end } => {
                        if let Some((src, mut f)) = feeds.remove(&slot) {
                            if data_end {
                                take(&src, &mut f, &elstream_format::eventlog::DATA_END, &cfg);
                            }
                            src.lock().connected = false;
                        }
                    }
                }
            }
        })
        .expect("spawn the metrics feed thread")
}

/// Feeds `bytes` to `src`'s session; false (counted) if they do not decode:
/// the session's later blocks are then left out.
fn take(src: &Source, f: &mut Feeder, bytes: &[u8], cfg: &Config) -> bool {
    match f.push(src, bytes, cfg) {
        Ok(()) => true,
        Err(e) => {
            let mut st = src.lock();
            st.errors += 1;
            st.garbage += 1;
            st.last_error = Some(format!("not an eventlog: {e}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(slot: usize, n: usize) -> Msg {
        Msg::Block {
            slot,
            bytes: Arc::new(vec![0; n]),
        }
    }

    fn start(slot: usize) -> Msg {
        Msg::Start {
            slot,
            name: "a".into(),
            endpoint: Endpoint::File("x".into()),
            header: Arc::new(Vec::new()),
        }
    }

    /// With nobody taking (a stalled metrics thread) pushes return at once;
    /// blocks past the bound are dropped and counted, starts and ends are not.
    #[test]
    fn a_full_queue_drops_blocks_and_counts_them() {
        let q = Queue::new(100);
        let t = std::time::Instant::now();
        q.push(start(0));
        q.push(block(0, 60));
        q.push(block(0, 60));
        q.push(block(0, 40));
        q.push(Msg::End {
            slot: 0,
            data_end: true,
        });
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(q.dropped_blocks.load(Ordering::Relaxed), 1);
        assert_eq!(q.dropped_bytes.load(Ordering::Relaxed), 60);
        assert_eq!(q.queued_bytes(), 100);
        let kinds: Vec<&str> = (0..4)
            .map(|_| match q.pop() {
                Msg::Start { .. } => "start",
                Msg::Block { .. } => "block",
                Msg::End { .. } => "end",
            })
            .collect();
        assert_eq!(kinds, ["start", "block", "block", "end"]);
        assert_eq!(q.queued_bytes(), 0);
        // An empty queue takes a block bigger than the bound.
        q.push(block(0, 500));
        assert_eq!(q.queued_bytes(), 500);
    }

    /// A session whose start was dropped gets none of its blocks (they would
    /// not decode without the header) until the next start.
    #[test]
    fn blocks_after_a_lost_start_are_dropped() {
        let q = Queue::new(1 << 20);
        for _ in 0..MAX_CONTROL {
            q.push(Msg::End {
                slot: 9,
                data_end: false,
            });
        }
        q.push(start(1));
        q.push(block(1, 10));
        assert_eq!(q.dropped_blocks.load(Ordering::Relaxed), 1);
        for _ in 0..MAX_CONTROL {
            q.pop();
        }
        q.push(block(1, 10));
        assert_eq!(q.dropped_blocks.load(Ordering::Relaxed), 2);
        q.push(start(1));
        q.push(block(1, 10));
        assert_eq!(q.dropped_blocks.load(Ordering::Relaxed), 2);
        assert_eq!(q.queued_bytes(), 10);
    }
}
