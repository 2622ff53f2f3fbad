//! The shim's I/O thread: one mio poll loop serving consumers on a UNIX socket.
//!
//! Each consumer gets the header, then whole blocks copied from the ring at its
//! own position, then the data end when the stream stops. A consumer that falls
//! more than a ring behind skips to the oldest block still held and is told so
//! in-band; a consumer that never reads costs one block of memory and nothing else.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use elstream_format::control::{reply, ControlDecoder, Status};
use elstream_format::{filter_block, user_message_block, DATA_END};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::StartAt;
use crate::control::Control;
use crate::error::Error;
use crate::ring::{Copied, Cursor};
use crate::shared::Shared;
use crate::sink::Sink;

pub const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const CONTROL: Token = Token(2);
const FIRST_CONSUMER: usize = 3;
/// The I/O thread's name, in logs and `status`.
const IO_THREAD: &str = "elstream-io";
/// Panics the I/O loop survives before it gives up.
const MAX_PANICS: u32 = 3;
/// Control connections at once; more are refused.
const MAX_CONTROL: usize = 16;
/// Requests of one control connection queued at the worker; the connection
/// is not read further until replies come back.
const MAX_PENDING: usize = 16;

/// Binds the socket, replacing a stale one, readable by the owner only,
/// without touching the process umask (`elstream_unixsock`): it is shared
/// with the host program's threads.
pub fn bind(path: &Path) -> Result<UnixListener, Error> {
    elstream_unixsock::bind_private(path)
        .and_then(|l| l.set_nonblocking(true).map(|()| UnixListener::from_std(l)))
        .map_err(|source| Error::Socket {
            path: path.display().to_string(),
            source,
        })
}

/// Starts the I/O thread (serving `listener`'s consumers, the sinks and
/// `control`'s clients) and the control worker.
pub fn spawn(
    ctl: Arc<Control>,
    poll: Poll,
    listener: UnixListener,
    control: UnixListener,
) -> Result<(), Error> {
    let stream = ctl.shared().clone();
    crate::log::set_stderr(stream.config().log_stderr);
    announce_panics(&stream);
    let (jobs, replies) = spawn_control_worker(ctl.clone())?;
    std::thread::Builder::new()
        .name(IO_THREAD.into())
        .spawn(move || {
            batch_priority();
            crate::panic::thread(IO_THREAD, || {
                Server::new(ctl, poll, listener, control, jobs, replies).run()
            })
        })
        .map(|_| ())
        .map_err(|e| Error::Rts(format!("cannot start the I/O thread: {e}")))
}

/// Makes the calling thread SCHED_BATCH: same share of the CPU, but its
/// wake-ups never preempt a running thread. An RTS thread's write wakes the
/// I/O thread; as a normal thread it may take the writer's CPU at once and
/// copy a block out before the write call returns. Best effort (Linux).
fn batch_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is valid for the call.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// Consumers learn of a panic caught on any of the shim's threads from a
/// user message in the stream, like a drop notice.
fn announce_panics(stream: &Arc<Shared>) {
    let weak = Arc::downgrade(stream);
    crate::panic::set_announcer(move |text| {
        let Some(stream) = weak.upgrade() else {
            return;
        };
        let Some(header) = stream.parsed_header() else {
            return;
        };
        let time = stream.state().last_time;
        stream.push_block(&user_message_block(header, time, text));
    });
}

/// A control request for the worker: a command line to run, or a reply made
/// already (an error about the frame) that must keep its place in line.
enum Job {
    Run(Token, String),
    Ready(Token, Vec<u8>),
}

/// Control commands run on their own thread ("elstream-ctl"), in arrival
/// order: a snapshot copies the whole ring and fsyncs, a flush or sync waits
/// for the RTS thread, and the I/O thread keeps serving consumers meanwhile.
/// Replies come back through `Replies` and a wake of the I/O thread.
fn spawn_control_worker(ctl: Arc<Control>) -> Result<(mpsc::Sender<Job>, Replies), Error> {
    let (tx, rx) = mpsc::channel::<Job>();
    let replies: Replies = Arc::new(Mutex::new(Vec::new()));
    let out = replies.clone();
    std::thread::Builder::new()
        .name("elstream-ctl".into())
        .spawn(move || {
            batch_priority();
            // Ends when the I/O thread drops its sender.
            crate::panic::thread("elstream-ctl", || {
                for job in rx {
                    let (token, bytes) = match job {
                        Job::Ready(token, bytes) => (token, bytes),
                        Job::Run(token, line) => (token, run_command(&ctl, &line)),
                    };
                    lock(&out).push((token, bytes));
                    ctl.shared().wake();
                }
            })
        })
        .map_err(|e| Error::Rts(format!("cannot start the control thread: {e}")))?;
    Ok((tx, replies))
}

/// Runs one command line; a panic in it becomes a failed reply.
fn run_command(ctl: &Control, line: &str) -> Vec<u8> {
    let r = crate::panic::catch("elstream-ctl", || {
        if line == "test-panic ctl" && test_panics() {
            panic!("test panic on the control thread");
        }
        crate::control::execute_line(ctl, line)
    })
    .unwrap_or_else(|text| Err(Error::Panic(format!("`{line}` panicked: {text}"))));
    match r {
        Ok(text) => reply(Status::Ok, &text),
        Err(e) => reply(e.status(), &e.to_string()),
    }
}

/// Fault injection for the tests: with `ELSTREAM_TEST_PANICS=1` in the
/// environment, the control lines `test-panic io` and `test-panic ctl` panic
/// on that thread. Off otherwise.
fn test_panics() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ELSTREAM_TEST_PANICS").is_some_and(|v| v == "1"))
}

/// Replies made by the control worker, by connection.
type Replies = Arc<Mutex<Vec<(Token, Vec<u8>)>>>;

/// What the I/O loop keeps from one round to the next.
#[derive(Default)]
struct Rounds {
    ended_at: Option<std::time::Instant>,
    sinks_behind: bool,
}

struct Consumer {
    socket: UnixStream,
    /// Its next piece is being put together (see [`Server::close_torn`]).
    filling: bool,
    /// Bytes being sent: the header, one block, a notice or the data end.
    out: Vec<u8>,
    sent: usize,
    header_sent: bool,
    /// Next block to send.
    at: Cursor,
    /// Blocks below this one came with the joiner's own replay (which
    /// already creates their tasks): no block prefixes for them.
    replayed_until: u64,
    finished: bool,
}

/// A control client: frames in, replies out.
struct ControlConn {
    socket: UnixStream,
    decoder: ControlDecoder,
    out: Vec<u8>,
    /// Requests at the worker, replies not back yet.
    pending: usize,
    /// The client hung up or sent a malformed frame: close once the
    /// pending replies are written.
    closing: bool,
}

struct Server {
    stream: Arc<Shared>,
    ctl: Arc<Control>,
    poll: Poll,
    listener: UnixListener,
    control: UnixListener,
    consumers: HashMap<Token, Consumer>,
    controls: HashMap<Token, ControlConn>,
    sinks: Vec<Sink>,
    jobs: mpsc::Sender<Job>,
    replies: Replies,
    next_token: usize,
    /// Next block the state cache has not seen yet.
    tracked: Cursor,
    scratch: Vec<u8>,
}

impl Server {
    fn new(
        ctl: Arc<Control>,
        poll: Poll,
        listener: UnixListener,
        control: UnixListener,
        jobs: mpsc::Sender<Job>,
        replies: Replies,
    ) -> Server {
        Server {
            jobs,
            replies,
            stream: ctl.shared().clone(),
            ctl,
            poll,
            listener,
            control,
            consumers: HashMap::new(),
            controls: HashMap::new(),
            sinks: Vec::new(),
            next_token: FIRST_CONSUMER,
            tracked: Cursor::default(),
            scratch: Vec::new(),
        }
    }

    /// Feeds blocks the state cache has not seen yet into it, once each.
    fn track_state(&mut self) {
        let Some(header) = self.stream.parsed_header() else {
            return;
        };
        loop {
            self.scratch.clear();
            match self
                .stream
                .ring()
                .copy_block(&mut self.tracked, &mut self.scratch)
            {
                Copied::Block => {
                    let need = self
                        .stream
                        .state()
                        .observe_block_needing(header, &self.scratch);
                    if let Some(pre) = need {
                        self.stream.set_block_prefix(self.tracked.block - 1, pre);
                    }
                }
                Copied::Evicted { .. } => {}
                Copied::Empty => break,
            }
        }
    }

    fn run(mut self) {
        let registry = self.poll.registry();
        if let Err(e) = registry
            .register(&mut self.listener, LISTENER, Interest::READABLE)
            .and_then(|_| registry.register(&mut self.control, CONTROL, Interest::READABLE))
        {
            crate::log::error(&format!("I/O thread cannot watch its socket: {e}"));
            return;
        }
        let mut events = Events::with_capacity(256);
        let mut state = Rounds::default();
        let mut panics = 0;
        loop {
            // A panic costs the consumers caught mid-block (their stream
            // would be torn); the others carry on and are told in-band.
            match crate::panic::catch(IO_THREAD, || self.round(&mut events, &mut state)) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    self.close_torn();
                    panics += 1;
                    if panics >= MAX_PANICS {
                        crate::log::error(
                            "the I/O thread panicked repeatedly: streaming has stopped; \
                             the program continues",
                        );
                        break;
                    }
                }
            }
        }
        let _ = crate::panic::catch(IO_THREAD, || {
            // Sinks get the whole tail (they are in-process: no linger needed).
            while self.serve_sinks() {}
            for sink in &self.sinks {
                sink.stop();
            }
        });
        let _ = std::fs::remove_file(&self.stream.config().socket);
        let _ = std::fs::remove_file(self.stream.config().control_socket());
        self.stream.set_drained();
    }

    /// One poll and what it brought; false when the loop is done.
    fn round(&mut self, events: &mut Events, state: &mut Rounds) -> bool {
        // The timeout only bounds how late an ended stream notices drained
        // consumers; sinks with blocks waiting get another round at once.
        let timeout = if state.sinks_behind {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                return true;
            }
            crate::log::error(&format!("I/O thread poll failed: {e}"));
            return false;
        }
        let mut serve_all = false;
        for event in events.iter() {
            match event.token() {
                WAKER => serve_all = true,
                LISTENER => self.accept(),
                CONTROL => self.accept_control(),
                token if self.controls.contains_key(&token) => self.serve_control(token),
                token => {
                    if event.is_readable() {
                        self.read_and_discard(token);
                    }
                    self.serve(token);
                }
            }
        }
        if serve_all {
            self.stream.clear_wake();
            let tokens: Vec<Token> = self.consumers.keys().copied().collect();
            for token in tokens {
                self.serve(token);
            }
            // Blocks no consumer has taken yet (or no consumer at all).
            self.track_state();
            self.deliver_replies();
        }
        state.sinks_behind = self.serve_sinks();
        if self.stream.is_ended() {
            let since = *state.ended_at.get_or_insert_with(std::time::Instant::now);
            // Consumers that do not take the tail within the linger are let go.
            if self.consumers.is_empty() || since.elapsed() > self.stream.config().linger {
                return false;
            }
        }
        true
    }

    /// After a caught panic: consumers whose next piece was being made get
    /// closed (what they hold may be part of a block).
    fn close_torn(&mut self) {
        let torn: Vec<Token> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.filling)
            .map(|(t, _)| *t)
            .collect();
        for token in torn {
            self.close(token);
        }
    }

    /// One round for every sink; true when some still have blocks waiting.
    fn serve_sinks(&mut self) -> bool {
        self.sinks.append(&mut self.stream.take_new_sinks());
        let mut behind = false;
        for sink in &mut self.sinks {
            behind |= serve_sink(sink, &self.stream, &mut self.scratch);
        }
        behind
    }

    /// Watches a new connection under a fresh token.
    fn register(&mut self, socket: &mut UnixStream) -> Option<Token> {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.poll
            .registry()
            .register(socket, token, Interest::READABLE | Interest::WRITABLE)
            .ok()
            .map(|_| token)
    }

    fn accept_control(&mut self) {
        loop {
            match self.control.accept() {
                Ok((mut socket, _)) => {
                    if self.controls.len() >= MAX_CONTROL {
                        crate::log::warn(&format!(
                            "refused a control client: {MAX_CONTROL} already connected"
                        ));
                        continue;
                    }
                    if let Some(token) = self.register(&mut socket) {
                        let conn = ControlConn {
                            socket,
                            decoder: ControlDecoder::new(),
                            out: Vec::new(),
                            pending: 0,
                            closing: false,
                        };
                        self.controls.insert(token, conn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Hands the worker's replies to their connections.
    fn deliver_replies(&mut self) {
        let done = std::mem::take(&mut *lock(&self.replies));
        for (token, bytes) in done {
            // A connection closed meanwhile loses its reply (tokens are not reused).
            if let Some(conn) = self.controls.get_mut(&token) {
                conn.pending -= 1;
                conn.out.extend(bytes);
                self.serve_control(token);
            }
        }
    }

    /// Reads requests and queues them at the worker (in order, at most
    /// [`MAX_PENDING`] at once), writes the replies that came back. A
    /// malformed frame closes the connection after its error reply; a bad
    /// command only gets an error reply.
    fn serve_control(&mut self, token: Token) {
        let Some(conn) = self.controls.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut broken = false;
        loop {
            // Frames decoded already go first, then the socket, while the
            // worker has room for this connection.
            while !conn.closing && conn.pending < MAX_PENDING {
                let job = match conn.decoder.next_frame() {
                    Ok(Some(f)) if f.text == "test-panic io" && test_panics() => {
                        panic!("test panic on the I/O thread")
                    }
                    Ok(Some(f)) => Job::Run(token, f.text),
                    Ok(None) => break,
                    Err(e) => {
                        // Say why (after the replies before it), then hang up.
                        conn.closing = true;
                        Job::Ready(token, reply(Status::BadRequest, &e.to_string()))
                    }
                };
                if self.jobs.send(job).is_err() {
                    broken = true;
                    break;
                }
                conn.pending += 1;
            }
            if conn.closing || conn.pending >= MAX_PENDING || broken {
                break;
            }
            match conn.socket.read(&mut buf) {
                Ok(0) => {
                    conn.closing = true;
                    break;
                }
                Ok(n) => conn.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        while !conn.out.is_empty() && !broken {
            match conn.socket.write(&conn.out) {
                Ok(n) => drop(conn.out.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => broken = true,
            }
        }
        let done = conn.closing && conn.pending == 0 && conn.out.is_empty();
        // A client that keeps sending without reading its replies is dropped.
        if broken || done || conn.out.len() > 1 << 20 {
            if let Some(mut c) = self.controls.remove(&token) {
                let _ = self.poll.registry().deregister(&mut c.socket);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut socket, _)) => {
                    if self.consumers.len() >= self.stream.config().max_consumers {
                        drop(socket);
                        crate::log::warn(&format!(
                            "refused a consumer: {} already connected (max-consumers)",
                            self.consumers.len()
                        ));
                        continue;
                    }
                    let Some(token) = self.register(&mut socket) else {
                        continue;
                    };
                    let at = match self.stream.config().start_at {
                        StartAt::Oldest => self.stream.ring().oldest(),
                        StartAt::Now => self.stream.ring().end(),
                    };
                    self.consumers.insert(
                        token,
                        Consumer {
                            socket,
                            out: Vec::new(),
                            sent: 0,
                            header_sent: false,
                            at,
                            replayed_until: 0,
                            finished: false,
                            filling: false,
                        },
                    );
                    self.stream
                        .consumers()
                        .consumers
                        .fetch_add(1, Ordering::Relaxed);
                    self.serve(token);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::log::warn(&format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Consumers have nothing to say; reading only notices that they left.
    fn read_and_discard(&mut self, token: Token) {
        let Some(c) = self.consumers.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 512];
        loop {
            match c.socket.read(&mut buf) {
                Ok(0) => return self.close(token),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(token),
            }
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut c) = self.consumers.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.socket);
            self.stream
                .consumers()
                .consumers
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sends as much as the consumer's socket takes.
    fn serve(&mut self, token: Token) {
        loop {
            let Some(c) = self.consumers.get_mut(&token) else {
                return;
            };
            if c.sent == c.out.len() {
                c.out.clear();
                c.sent = 0;
                if c.finished {
                    return self.close(token);
                }
                c.filling = true;
                let more = self.refill(token);
                if let Some(c) = self.consumers.get_mut(&token) {
                    c.filling = false;
                }
                if !more {
                    return;
                }
                continue;
            }
            let c = self.consumers.get_mut(&token).expect("present");
            match c.socket.write(&c.out[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    self.stream
                        .consumers()
                        .bytes_delivered
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(token),
            }
        }
    }

    /// Puts the consumer's next piece into `out`; false when there is none yet.
    fn refill(&mut self, token: Token) -> bool {
        let stream = self.stream.clone();
        let Some(raw_header) = stream.header() else {
            return false;
        };
        let c = self.consumers.get_mut(&token).expect("present");
        if !c.header_sent {
            c.out.extend_from_slice(&raw_header);
            c.header_sent = true;
            // A consumer that misses the stream's first blocks gets the state
            // they carried (and the sticky messages) before anything else.
            if let Some(header) = stream.parsed_header().filter(|_| c.at.block > 0) {
                let before = c.out.len();
                for block in stream.state().replay(header) {
                    c.out.extend_from_slice(&block);
                }
                for block in stream.thread_prefix(c.at) {
                    c.out.extend_from_slice(&block);
                }
                c.replayed_until = stream.ring().end().block;
                stream
                    .consumers()
                    .bytes_replayed
                    .fetch_add((c.out.len() - before) as u64, Ordering::Relaxed);
            }
            return true;
        }
        let from = c.at;
        let start = c.out.len();
        // Read before the copy: the writer pushes the last block and then
        // ends, so an end seen here means the copy sees that block too.
        let ended = stream.is_ended();
        match stream.ring().copy_block(&mut c.at, &mut c.out) {
            Copied::Block => {
                let seq = c.at.block - 1;
                // The state cache reads the block from this copy when it is
                // the next one it needs: no second copy out of the ring.
                if self.tracked == from {
                    if let Some(header) = stream.parsed_header() {
                        let need = stream
                            .state()
                            .observe_block_needing(header, &c.out[start..]);
                        if let Some(pre) = need {
                            stream.set_block_prefix(seq, pre);
                        }
                        self.tracked = c.at;
                    }
                }
                // Tasks the stream never created come first (rare).
                if let Some(pre) = stream.block_prefix(seq).filter(|_| seq >= c.replayed_until) {
                    c.out.splice(start..start, pre.iter().copied());
                    stream
                        .consumers()
                        .bytes_replayed
                        .fetch_add(pre.len() as u64, Ordering::Relaxed);
                }
                if let (Some(keep), Some(header)) = (
                    crate::control::shim_filter(&self.ctl),
                    stream.parsed_header(),
                ) {
                    c.out = filter_block(header, &c.out, keep);
                }
                true
            }
            Copied::Evicted { blocks, bytes } => {
                let counters = stream.consumers();
                counters.blocks_dropped.fetch_add(blocks, Ordering::Relaxed);
                counters.bytes_dropped.fetch_add(bytes, Ordering::Relaxed);
                let text = format!("elstream: dropped {blocks} blocks ({bytes} bytes)");
                if let Some(header) = stream.parsed_header() {
                    let time = stream.state().last_time;
                    c.out
                        .extend_from_slice(&user_message_block(header, time, &text));
                }
                true
            }
            Copied::Empty if ended => {
                c.out.extend_from_slice(&DATA_END);
                c.finished = true;
                true
            }
            Copied::Empty => false,
        }
    }
}

/// Delivers what is available to one sink; true when more is waiting.
fn serve_sink(sink: &mut Sink, stream: &Shared, scratch: &mut Vec<u8>) -> bool {
    let Some(raw) = stream.header() else {
        return false;
    };
    if !sink.header_sent {
        sink.header_sent = true;
        sink.at = stream.ring().oldest();
        sink.header(&raw);
        // A sink that joins late gets the state the first blocks carried.
        if let Some(header) = stream.parsed_header().filter(|_| sink.at.block > 0) {
            // Not under the state's lock: a callback may post a sticky message.
            let replay = stream.state().replay(header);
            for block in replay {
                sink.block(&block);
            }
        }
    }
    for _ in 0..SINK_BLOCKS_PER_ROUND {
        scratch.clear();
        match stream.ring().copy_block(&mut sink.at, scratch) {
            Copied::Block => sink.block(scratch),
            Copied::Evicted { blocks, bytes } => sink.dropped(blocks, bytes),
            Copied::Empty => return false,
        }
    }
    true
}

/// Blocks handed to one sink per round, so one sink cannot starve the loop.
const SINK_BLOCKS_PER_ROUND: usize = 16;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn binding_leaves_the_umask_alone_and_the_socket_private() {
        // Another thread of the host program watches the process umask while
        // the shim binds sockets: it must never change.
        let dir = std::env::temp_dir().join(format!("elstream-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let watch = elstream_unixsock::UmaskWatch::start();
        for i in 0..300 {
            let path = dir.join(format!("s{i}.sock"));
            let listener = bind(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            drop(listener);
        }
        watch.stop().unwrap();
        // Nothing left behind but the sockets themselves.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".sock"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A live socket is refused, a stale one replaced.
        let path = dir.join("s0.sock");
        let live = bind(&path).unwrap();
        assert!(bind(&path).is_err());
        drop(live);
        assert!(bind(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
