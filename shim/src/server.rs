//! The shim's I/O thread: one mio poll loop serving consumers on a UNIX socket.
//!
//! Each consumer gets the header, then whole blocks copied from the ring at its
//! own position, then the data end when the stream stops. A consumer that falls
//! more than a ring behind skips to the oldest block still held and is told so
//! in-band; a consumer that never reads costs one block of memory and nothing else.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use elstream_format::control::{reply, ControlDecoder, Status};
use elstream_format::{filter_block, user_message_block, DATA_END};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::StartAt;
use crate::error::Error;
use crate::ring::{Copied, Cursor};
use crate::stream::Stream;

pub const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const CONTROL: Token = Token(2);
const FIRST_CONSUMER: usize = 3;
/// Control connections at once; more are refused.
const MAX_CONTROL: usize = 16;

/// Binds the socket, replacing a stale one, readable by the owner only.
pub fn bind(path: &Path) -> Result<UnixListener, Error> {
    let err = |source: io::Error| Error::Socket {
        path: path.display().to_string(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to replace it",
            )));
        }
        // A live socket means another program serves it.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is serving it",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // Created 0600 from the start: no window in which others could connect.
    // The socket file appears at bind, before listen: bind a temporary name
    // and rename it into place, so a client never sees a path that refuses.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let staged = tmp.as_os_str().len() <= 107;
    let bind_at = if staged { tmp.as_path() } else { path };
    // SAFETY: umask only changes this process's file-creation mask; restored below.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(bind_at);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(err)?;
    std::fs::set_permissions(bind_at, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    if staged {
        if let Err(e) = std::fs::rename(bind_at, path) {
            let _ = std::fs::remove_file(bind_at);
            return Err(err(e));
        }
    }
    Ok(listener)
}

pub fn spawn(
    stream: Arc<Stream>,
    poll: Poll,
    listener: UnixListener,
    control: UnixListener,
) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("elstream-io".into())
        .spawn(move || Server::new(stream, poll, listener, control).run())
        .map(|_| ())
        .map_err(|e| Error::Rts(format!("cannot start the I/O thread: {e}")))
}

struct Consumer {
    socket: UnixStream,
    /// Bytes being sent: the header, one block, a notice or the data end.
    out: Vec<u8>,
    sent: usize,
    header_sent: bool,
    /// Next block to send.
    at: Cursor,
    finished: bool,
}

/// A control client: frames in, replies out.
struct ControlConn {
    socket: UnixStream,
    decoder: ControlDecoder,
    out: Vec<u8>,
}

struct Server {
    stream: Arc<Stream>,
    poll: Poll,
    listener: UnixListener,
    control: UnixListener,
    consumers: HashMap<Token, Consumer>,
    controls: HashMap<Token, ControlConn>,
    sinks: Vec<crate::sink::Sink>,
    next_token: usize,
    /// Next block the state cache has not seen yet.
    tracked: Cursor,
    scratch: Vec<u8>,
}

impl Server {
    fn new(
        stream: Arc<Stream>,
        poll: Poll,
        listener: UnixListener,
        control: UnixListener,
    ) -> Server {
        Server {
            stream,
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
                .ring
                .copy_block(&mut self.tracked, &mut self.scratch)
            {
                Copied::Block => lock(&self.stream.state).observe_block(header, &self.scratch),
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
            eprintln!("elstream: I/O thread cannot watch its socket: {e}");
            return;
        }
        let mut events = Events::with_capacity(256);
        let mut ended_at = None;
        let mut sinks_behind = false;
        loop {
            // The timeout only bounds how late an ended stream notices drained
            // consumers; sinks with blocks waiting get another round at once.
            let timeout = if sinks_behind {
                Duration::ZERO
            } else {
                Duration::from_millis(200)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("elstream: I/O thread poll failed: {e}");
                break;
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
            }
            sinks_behind = self.serve_sinks();
            if self.stream.is_ended() {
                let since = *ended_at.get_or_insert_with(std::time::Instant::now);
                // Consumers that do not take the tail within the linger are let go.
                if self.consumers.is_empty() || since.elapsed() > self.stream.config.linger {
                    break;
                }
            }
        }
        // Sinks get the whole tail (they are in-process: no linger needed).
        while self.serve_sinks() {}
        for sink in &self.sinks {
            sink.stop();
        }
        let _ = std::fs::remove_file(&self.stream.config.socket);
        let _ = std::fs::remove_file(self.stream.config.control_socket());
        self.stream.set_drained();
    }

    /// One round for every sink; true when some still have blocks waiting.
    fn serve_sinks(&mut self) -> bool {
        self.sinks.append(&mut lock(&self.stream.new_sinks));
        let mut behind = false;
        for sink in &mut self.sinks {
            behind |= sink.serve(&self.stream, &mut self.scratch);
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
                        eprintln!(
                            "elstream: refused a control client: {MAX_CONTROL} already connected"
                        );
                        continue;
                    }
                    if let Some(token) = self.register(&mut socket) {
                        let conn = ControlConn {
                            socket,
                            decoder: ControlDecoder::new(),
                            out: Vec::new(),
                        };
                        self.controls.insert(token, conn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Reads requests, runs them, writes replies. A malformed frame closes
    /// the connection; a bad command only gets an error reply.
    fn serve_control(&mut self, token: Token) {
        let Some(conn) = self.controls.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut closed = false;
        loop {
            match conn.socket.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        loop {
            let frame = match conn.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    // Say why, then hang up.
                    conn.out.extend(reply(Status::BadRequest, &e.to_string()));
                    closed = true;
                    break;
                }
            };
            let answer = match crate::control::execute_line(&self.stream, &frame.text) {
                Ok(text) => reply(Status::Ok, &text),
                Err(e) => reply(e.status(), &e.to_string()),
            };
            conn.out.extend(answer);
        }
        while !conn.out.is_empty() {
            match conn.socket.write(&conn.out) {
                Ok(n) => drop(conn.out.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    conn.out.clear();
                }
            }
        }
        // A client that keeps sending without reading its replies is dropped.
        if closed || conn.out.len() > 1 << 20 {
            if let Some(mut c) = self.controls.remove(&token) {
                let _ = self.poll.registry().deregister(&mut c.socket);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut socket, _)) => {
                    if self.consumers.len() >= self.stream.config.max_consumers {
                        drop(socket);
                        eprintln!(
                            "elstream: refused a consumer: {} already connected (max-consumers)",
                            self.consumers.len()
                        );
                        continue;
                    }
                    let Some(token) = self.register(&mut socket) else {
                        continue;
                    };
                    let at = match self.stream.config.start_at {
                        StartAt::Oldest => self.stream.ring.oldest(),
                        StartAt::Now => self.stream.ring.end(),
                    };
                    self.consumers.insert(
                        token,
                        Consumer {
                            socket,
                            out: Vec::new(),
                            sent: 0,
                            header_sent: false,
                            at,
                            finished: false,
                        },
                    );
                    self.stream
                        .consumers
                        .consumers
                        .fetch_add(1, Ordering::Relaxed);
                    self.serve(token);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("elstream: accept failed: {e}");
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
                .consumers
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
                if !self.refill(token) {
                    return;
                }
                continue;
            }
            let c = self.consumers.get_mut(&token).expect("present");
            match c.socket.write(&c.out[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    self.stream
                        .consumers
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
                for block in lock(&stream.state).replay(header) {
                    c.out.extend_from_slice(&block);
                }
            }
            return true;
        }
        let from = c.at;
        match stream.ring.copy_block(&mut c.at, &mut c.out) {
            Copied::Block => {
                // The state cache reads the block from this copy when it is
                // the next one it needs: no second copy out of the ring.
                if self.tracked == from {
                    if let Some(header) = stream.parsed_header() {
                        lock(&stream.state).observe_block(header, &c.out);
                        self.tracked = c.at;
                    }
                }
                if let (Some(keep), Some(header)) =
                    (crate::control::shim_filter(&stream), stream.parsed_header())
                {
                    c.out = filter_block(header, &c.out, keep);
                }
                true
            }
            Copied::Evicted { blocks, bytes } => {
                let counters = &stream.consumers;
                counters.blocks_dropped.fetch_add(blocks, Ordering::Relaxed);
                counters.bytes_dropped.fetch_add(bytes, Ordering::Relaxed);
                let text = format!("elstream: dropped {blocks} blocks ({bytes} bytes)");
                if let Some(header) = stream.parsed_header() {
                    let time = lock(&stream.state).last_time;
                    c.out
                        .extend_from_slice(&user_message_block(header, time, &text));
                }
                true
            }
            Copied::Empty if stream.is_ended() => {
                c.out.extend_from_slice(&DATA_END);
                c.finished = true;
                true
            }
            Copied::Empty => false,
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
