//! One TCP/UNIX subscriber: its socket, bounded queue and counters.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use elstream_format::eventlog::{user_message_block, Header};
use elstream_format::ClassSet;
use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use crate::store::{Chunk, ChunkKind};

/// What to do when a subscriber's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Drop the subscriber's oldest whole unsent blocks and tell it in-band.
    Drop,
    /// Close the subscriber's connection.
    Disconnect,
}

pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Conn::Tcp(s) => s,
            Conn::Unix(s) => s,
        }
    }
    pub fn register(&mut self, r: &Registry, t: Token) -> io::Result<()> {
        r.register(self.source(), t, Interest::READABLE | Interest::WRITABLE)
    }
    pub fn deregister(&mut self, r: &Registry) {
        let _ = r.deregister(self.source());
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write_vectored(bufs),
            Conn::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected between sessions: gets the next session from its header.
    Waiting,
    /// Receiving session `id`.
    Live(u32),
    /// Its stream ended (data end or stats report queued): close once flushed.
    Closing,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub bytes_sent: u64,
    pub blocks_sent: u64,
    pub blocks_dropped: u64,
    pub bytes_dropped: u64,
    pub notices: u64,
}

#[derive(Default)]
struct PendingDrop {
    blocks: u64,
    bytes: u64,
    time: u64,
}

pub struct Subscriber {
    pub conn: Conn,
    pub peer: String,
    pub phase: Phase,
    pub counters: Counters,
    /// Event classes this subscriber asked for (None: everything).
    pub classes: Option<ClassSet>,
    /// The source (session name) this subscriber reads, from its listener.
    pub session: String,
    queue: VecDeque<Chunk>,
    /// Bytes of `queue[0]` already written.
    front_off: usize,
    queued_bytes: usize,
    limit: usize,
    policy: Policy,
    header: Option<Arc<Header>>,
    pending: PendingDrop,
}

/// Largest number of chunks handed to one `writev`.
const MAX_IOV: usize = 64;

impl Subscriber {
    pub fn new(conn: Conn, peer: String, limit: usize, policy: Policy) -> Subscriber {
        Subscriber {
            conn,
            peer,
            phase: Phase::Waiting,
            counters: Counters::default(),
            classes: None,
            session: String::new(),
            queue: VecDeque::new(),
            front_off: 0,
            queued_bytes: 0,
            limit,
            policy,
            header: None,
            pending: PendingDrop::default(),
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }
    pub fn queued_chunks(&self) -> usize {
        self.queue.len()
    }
    pub fn is_flushed(&self) -> bool {
        self.queue.is_empty()
    }
    pub fn over_half(&self) -> bool {
        self.queued_bytes > self.limit / 2
    }

    /// Starts a session: the header (kept for drop notices), replay chunks.
    pub fn start(
        &mut self,
        session: u32,
        header: Arc<Header>,
        chunks: impl Iterator<Item = Chunk>,
    ) {
        self.phase = Phase::Live(session);
        self.header = Some(header);
        for c in chunks {
            self.push(c);
        }
    }

    /// Queues a chunk that must not be dropped (header, state, data end, text).
    pub fn push(&mut self, chunk: Chunk) {
        self.queued_bytes += chunk.len();
        self.queue.push_back(chunk);
    }

    /// Queues a block; on overflow applies the policy. Returns false when the
    /// subscriber must be disconnected.
    pub fn push_block(&mut self, chunk: Chunk) -> bool {
        self.push(chunk);
        if self.queued_bytes <= self.limit {
            return true;
        }
        if self.policy == Policy::Disconnect {
            return false;
        }
        // Oldest first; never the partly written front, never the newest (so
        // one block larger than the limit still flows).
        let mut i = usize::from(self.front_off > 0);
        while self.queued_bytes > self.limit && i + 1 < self.queue.len() {
            if self.queue[i].kind != ChunkKind::Block {
                i += 1;
                continue;
            }
            let c = self.queue.remove(i).expect("index checked");
            self.queued_bytes -= c.len();
            self.pending.blocks += 1;
            self.pending.bytes += c.len() as u64;
            self.pending.time = self.pending.time.max(c.end_time);
            self.counters.blocks_dropped += 1;
            self.counters.bytes_dropped += c.len() as u64;
        }
        true
    }

    /// Writes as much as the socket takes. `Ok(true)` when the queue is empty.
    pub fn flush(&mut self) -> io::Result<bool> {
        loop {
            if self.queue.is_empty() {
                return Ok(true);
            }
            if self.front_off == 0 && self.pending.blocks > 0 {
                if let Some(h) = &self.header {
                    let text = format!(
                        "elstream: dropped {} blocks ({} bytes)",
                        self.pending.blocks, self.pending.bytes
                    );
                    let notice = user_message_block(h, self.pending.time, &text);
                    self.counters.notices += 1;
                    self.queued_bytes += notice.len();
                    self.queue
                        .push_front(Chunk::new(ChunkKind::Notice, notice, self.pending.time));
                }
                self.pending = PendingDrop::default();
            }
            // With drops pending, write only the partly written front, so the
            // notice goes out right after it, where the dropped blocks were.
            let max_iov = if self.pending.blocks > 0 { 1 } else { MAX_IOV };
            let mut iov = Vec::with_capacity(max_iov.min(self.queue.len()));
            for (i, c) in self.queue.iter().take(max_iov).enumerate() {
                let from = if i == 0 { self.front_off } else { 0 };
                iov.push(IoSlice::new(&c.bytes[from..]));
            }
            match self.conn.write_vectored(&iov) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    self.counters.bytes_sent += n as u64;
                    self.queued_bytes -= n;
                    while n > 0 {
                        let left = self.queue[0].len() - self.front_off;
                        if n >= left {
                            n -= left;
                            let c = self.queue.pop_front().expect("non-empty");
                            if c.kind == ChunkKind::Block {
                                self.counters.blocks_sent += 1;
                            }
                            self.front_off = 0;
                        } else {
                            self.front_off += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and discards what the subscriber sends; `Ok(false)` at EOF.
    pub fn drain_input(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
