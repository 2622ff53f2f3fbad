//! Consumers that see the proxy's stream off the loop thread: plugins and the
//! recorder. Each runs on its own thread behind a queue bounded in bytes; when
//! it is full the newest blocks are dropped for that sink (counted, and told
//! to it through `on_drop` before its next block), so a slow sink never slows
//! the proxy or its subscribers.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a sink sees, in stream order.
pub enum Item {
    /// A session starts: the header (`hdrb` .. `datb`).
    Header(Arc<Vec<u8>>),
    /// One whole block.
    Block(Arc<Vec<u8>>),
    /// The session ended (the data end was seen or synthesized).
    Stop,
}

/// A consumer of the stream. Errors disable the sink (with a message); the
/// proxy carries on.
pub trait Consumer: Send {
    fn name(&self) -> String;
    fn on_header(&mut self, header: &[u8]) -> Result<(), String>;
    fn on_block(&mut self, block: &[u8]) -> Result<(), String>;
    /// `blocks` blocks (`bytes` bytes) were dropped just before the next block.
    fn on_drop(&mut self, blocks: u64, bytes: u64) -> Result<(), String>;
    fn on_stop(&mut self) -> Result<(), String>;
    /// Called about once a second while idle (e.g. rotation by age).
    fn on_idle(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Last call, on the sink's thread.
    fn finish(&mut self) {}
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    closed: bool,
    dropped_blocks: u64,
    dropped_bytes: u64,
}

struct Shared {
    q: Mutex<Queue>,
    cv: Condvar,
}

/// The loop thread's handle on one sink thread.
pub struct ConsumerThread {
    pub name: String,
    shared: Arc<Shared>,
    limit: usize,
    thread: Option<JoinHandle<()>>,
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl ConsumerThread {
    pub fn spawn(mut sink: Box<dyn Consumer>, limit: usize) -> std::io::Result<ConsumerThread> {
        let name = sink.name();
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue::default()),
            cv: Condvar::new(),
        });
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let (s2, d2, n2) = (shared.clone(), done.clone(), name.clone());
        let thread = std::thread::Builder::new()
            .name(format!("sink {name}"))
            .spawn(move || {
                run_sink(&mut *sink, &s2, &n2);
                sink.finish();
                let (m, cv) = &*d2;
                *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_all();
            })?;
        Ok(ConsumerThread {
            name,
            shared,
            limit,
            thread: Some(thread),
            done,
        })
    }

    /// Queues an item without waiting; a block that does not fit is dropped.
    pub fn send(&self, item: Item) {
        let mut q = self.shared.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            return;
        }
        if let Item::Block(b) = &item {
            if q.bytes + b.len() > self.limit && !q.items.is_empty() {
                q.dropped_blocks += 1;
                q.dropped_bytes += b.len() as u64;
                return;
            }
            q.bytes += b.len();
        }
        q.items.push_back(item);
        drop(q);
        self.shared.cv.notify_one();
    }

    /// Closes the queue and waits at most `wait` for the sink to finish.
    pub fn close(mut self, wait: Duration) {
        {
            let mut q = self.shared.q.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
        }
        self.shared.cv.notify_all();
        let (m, cv) = &*self.done;
        let deadline = Instant::now() + wait;
        let mut done = m.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(sink = %self.name, "sink still busy at exit; leaving it");
                return;
            }
            done = cv
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(done);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_sink(sink: &mut dyn Consumer, shared: &Shared, name: &str) {
    loop {
        let (item, dropped) = {
            let mut q = shared.q.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(item) = q.items.pop_front() {
                    if let Item::Block(b) = &item {
                        q.bytes -= b.len();
                    }
                    let d = (q.dropped_blocks, q.dropped_bytes);
                    (q.dropped_blocks, q.dropped_bytes) = (0, 0);
                    break (Some(item), d);
                }
                if q.closed {
                    break (None, (0, 0));
                }
                let (g, t) = shared
                    .cv
                    .wait_timeout(q, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
                if t.timed_out() && q.items.is_empty() && !q.closed {
                    break (None, (u64::MAX, 0));
                }
            }
        };
        let r = match item {
            None if dropped.0 == u64::MAX => sink.on_idle(),
            None => return,
            Some(item) => {
                let r = if dropped.0 > 0 {
                    sink.on_drop(dropped.0, dropped.1)
                } else {
                    Ok(())
                };
                r.and_then(|()| match item {
                    Item::Header(h) => sink.on_header(&h),
                    Item::Block(b) => sink.on_block(&b),
                    Item::Stop => sink.on_stop(),
                })
            }
        };
        if let Err(e) = r {
            tracing::error!(sink = %name, "{e}; sink disabled, the proxy carries on");
            let mut q = shared.q.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
            q.items.clear();
            q.bytes = 0;
            return;
        }
    }
}
