//! The proxy's single mio poll loop: reads the source, splits it into
//! header/blocks/data end, keeps the session's state and recent blocks, and fans
//! whole blocks out to TCP/UNIX subscribers (bounded queues, never blocking) and
//! UDP destinations. Modelled on mio's examples/tcp_server.rs: explicit tokens,
//! edge-triggered readiness, every socket non-blocking.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elstream_format::eventlog::{
    filter_block, Block, Frame, Header, StreamDecoder, BLOCK_MARKER_SIZE, DATA_END,
    EVENT_BLOCK_MARKER,
};
use elstream_format::udp::FrameKind;
use elstream_format::{ClassSet, Endpoint};
use mio::{Events, Interest, Poll, Token};

use crate::error::{Error, Result};
use crate::listen::{ListenSpec, Listener};
use crate::plugin::{Plugin, PluginSpec};
use crate::record::{RecordOpts, Recorder};
use crate::relay::{self, Relay, RelayConfig};
use crate::signals::Signals;
use crate::sink::{Item, SinkHost};
use crate::source::{ReadResult, Source, SOURCE};
use crate::state::State;
use crate::store::{Chunk, ChunkKind, Store};
use crate::subscriber::{Phase, Policy, Subscriber};
use crate::udp_out::UdpOut;

const SIGNALS: Token = Token(1);
const STATS: Token = Token(2);
const LISTENER_BASE: usize = 16;
const FIRST_SUBSCRIBER: usize = 1 << 16;
/// Bytes read from the source per loop iteration before serving sockets again.
const READ_BUDGET: usize = 4 << 20;
const READ_BUF: usize = 128 << 10;

#[derive(Clone, Debug)]
pub struct Config {
    pub source: Endpoint,
    pub listen: Vec<ListenSpec>,
    pub udp: Vec<String>,
    pub mtu: usize,
    pub udp_resend: Duration,
    pub queue_bytes: usize,
    pub policy: Policy,
    pub store_bytes: usize,
    pub stats: Option<Endpoint>,
    pub stats_interval: Option<Duration>,
    pub wait_subscribers: usize,
    pub backpressure: bool,
    pub linger: Duration,
    pub reconnect_max: Duration,
    pub plugins: Vec<PluginSpec>,
    pub record: Option<RecordOpts>,
    /// The control relay (`proxy --control-listen`).
    pub control: Option<RelayConfig>,
}

struct Session {
    id: u32,
    header: Arc<Header>,
    header_chunk: Chunk,
    state: State,
    store: Store,
    blocks: u64,
    bytes: u64,
}

struct RunChild {
    child: Child,
    status: Option<ExitStatus>,
    exited_at: Option<Instant>,
}

#[derive(Default)]
struct Totals {
    sessions: u64,
    blocks: u64,
    bytes: u64,
    subscribers: u64,
    disconnected_overflow: u64,
}

/// Why the loop ended.
pub enum Outcome {
    /// Signal or end of input.
    Done,
    /// `run`: the program's exit status.
    Child(ExitStatus),
}

pub struct Proxy {
    cfg: Config,
    poll: Poll,
    source: Source,
    decoder: StreamDecoder,
    session: Option<Session>,
    listeners: Vec<Listener>,
    stats_listener: Option<Listener>,
    subs: HashMap<Token, Subscriber>,
    stats_conns: Vec<Token>,
    relay: Option<Relay>,
    next_token: usize,
    udp: Vec<UdpOut>,
    sinks: Vec<SinkHost>,
    signals: Signals,
    child: Option<RunChild>,
    shutdown: Option<Instant>,
    source_done: bool,
    next_stats_line: Option<Instant>,
    totals: Totals,
    stream_seed: u32,
    buf: Vec<u8>,
}

impl Proxy {
    /// Binds every listener (failing early on a port in use) and prepares the source.
    pub fn new(cfg: Config) -> Result<Proxy> {
        let poll = Poll::new().map_err(|e| Error::io("cannot create poll", e))?;
        let mut listeners = Vec::new();
        for (i, spec) in cfg.listen.iter().enumerate() {
            let mut l = Listener::bind(&spec.endpoint)?;
            poll.registry()
                .register(l.source(), Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| Error::io("cannot poll listener", e))?;
            tracing::info!(listen = %l.local(), classes = ?spec.classes.map(|c| c.to_string()), "listening");
            listeners.push(l);
        }
        let stats_listener = match &cfg.stats {
            Some(ep) => {
                let mut l = Listener::bind(ep)?;
                poll.registry()
                    .register(l.source(), STATS, Interest::READABLE)
                    .map_err(|e| Error::io("cannot poll stats listener", e))?;
                Some(l)
            }
            None => None,
        };
        let relay = match &cfg.control {
            Some(rc) => Some(Relay::bind(rc, poll.registry())?),
            None => None,
        };
        let mut udp = Vec::new();
        for d in &cfg.udp {
            udp.push(UdpOut::new(d, cfg.mtu)?);
        }
        let mut signals = Signals::install(&[libc::SIGINT, libc::SIGTERM, libc::SIGCHLD])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        poll.registry()
            .register(signals.receiver(), SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("cannot poll signals", e))?;
        let source = Source::new(cfg.source.clone(), cfg.reconnect_max)?;
        let mut sinks = Vec::new();
        if let Some(opts) = &cfg.record {
            let rec = Recorder::new(opts.clone())
                .map_err(|e| Error::io(format!("cannot record into {}", opts.dir.display()), e))?;
            // A file size limit (RLIMIT_FSIZE) must give EFBIG, not kill us.
            // SAFETY: setting a signal's disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            sinks.push(
                SinkHost::spawn(Box::new(rec), cfg.queue_bytes)
                    .map_err(|e| Error::io("cannot start the recorder thread", e))?,
            );
        }
        for spec in &cfg.plugins {
            match Plugin::load(spec) {
                Ok(p) => match SinkHost::spawn(Box::new(p), cfg.queue_bytes) {
                    Ok(h) => {
                        tracing::info!("{} loaded", h.name);
                        sinks.push(h)
                    }
                    Err(e) => {
                        tracing::error!("cannot start a thread for {}: {e}", spec.path.display())
                    }
                },
                Err(msg) => tracing::error!("{msg}; running without it"),
            }
        }
        let seed = std::process::id().rotate_left(16)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        Ok(Proxy {
            next_stats_line: cfg.stats_interval.map(|d| Instant::now() + d),
            cfg,
            poll,
            source,
            decoder: StreamDecoder::new(),
            session: None,
            listeners,
            stats_listener,
            subs: HashMap::new(),
            stats_conns: Vec::new(),
            relay,
            next_token: FIRST_SUBSCRIBER,
            udp,
            sinks,
            signals,
            child: None,
            shutdown: None,
            source_done: false,
            totals: Totals::default(),
            stream_seed: seed,
            buf: vec![0; READ_BUF],
        })
    }

    /// Addresses actually bound (port 0 resolved).
    pub fn listening(&self) -> Vec<String> {
        self.listeners
            .iter()
            .zip(&self.cfg.listen)
            .map(|(l, spec)| match spec.classes {
                Some(c) => format!("{}?classes={c}", l.local()),
                None => l.local(),
            })
            .collect()
    }

    /// Control relay endpoints actually bound.
    pub fn control_listening(&self) -> Vec<String> {
        self.relay
            .as_ref()
            .map(|r| r.listening())
            .unwrap_or_default()
    }

    /// Opens the source now (before `run` starts the program).
    pub fn open_source(&mut self) -> Result<()> {
        self.source.tick(Instant::now(), self.poll.registry())
    }

    /// `run` mode: the loop also waits for this child and ends with its status.
    pub fn attach_child(&mut self, child: Child) {
        self.child = Some(RunChild {
            child,
            status: None,
            exited_at: None,
        });
    }

    fn gate_open(&self) -> bool {
        self.totals.subscribers as usize >= self.cfg.wait_subscribers
    }

    fn backpressured(&self) -> bool {
        self.cfg.backpressure && self.subs.values().any(|s| s.over_half())
    }

    pub fn run(mut self) -> Result<Outcome> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            // The source opens at once (--wait-subscribers only holds back
            // reading): an RTS opens its FIFO read-write and would lose what
            // it wrote if it exited before any reader had the FIFO open.
            if !self.source_done && self.shutdown.is_none() {
                self.source.tick(now, self.poll.registry())?;
            }
            self.timers(now);
            self.check_child(now);
            if let Some(deadline) = self.shutdown {
                self.reap_closing();
                if self.subs.values().all(|s| s.is_flushed()) || now >= deadline {
                    break;
                }
            }
            let can_read = self.gate_open()
                && !self.source_done
                && self.shutdown.is_none()
                && self.source.wants_read()
                && !self.backpressured();
            if can_read {
                self.pump_source()?;
            }
            let exit_due = self.shutdown.is_some() && self.subs.values().all(|s| s.is_flushed());
            let timeout = if exit_due || (can_read && self.source.wants_read()) {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("poll", e));
            }
            for ev in events.iter() {
                match ev.token() {
                    SOURCE => self.source.ready = true,
                    SIGNALS => self.on_signals(),
                    STATS => self.accept(None),
                    Token(t) if (LISTENER_BASE..FIRST_SUBSCRIBER).contains(&t) => {
                        self.accept(Some(t - LISTENER_BASE))
                    }
                    Token(t) if (relay::LISTENER_BASE..LISTENER_BASE).contains(&t) => {
                        if let Some(r) = self.relay.as_mut() {
                            r.accept(self.poll.registry(), t - relay::LISTENER_BASE);
                        }
                    }
                    tok if self.relay.as_ref().is_some_and(|r| r.owns(tok)) => {
                        if let Some(r) = self.relay.as_mut() {
                            r.on_event(self.poll.registry(), tok);
                        }
                    }
                    tok => {
                        if ev.is_readable() {
                            // Subscribers have nothing to say. EOF only closes
                            // their sending side (`nc` does that); a hang-up
                            // shows as a write error or write_closed.
                            if let Some(s) = self.subs.get_mut(&tok) {
                                let _ = s.drain_input();
                            }
                        }
                        if ev.is_error() || ev.is_write_closed() {
                            self.drop_sub(tok, "hung up");
                        } else if ev.is_writable() {
                            self.flush_sub(tok);
                        }
                    }
                }
            }
        }
        let status = self.child.as_ref().and_then(|c| c.status);
        for s in self.sinks.drain(..) {
            s.close(self.cfg.linger);
        }
        for (_, mut s) in self.subs.drain() {
            s.conn.deregister(self.poll.registry());
        }
        Ok(match status {
            Some(st) => Outcome::Child(st),
            None => Outcome::Done,
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Option<Instant>> = vec![self.shutdown, self.next_stats_line];
        if !self.source_done {
            d.push(self.source.deadline());
        }
        d.extend(self.udp.iter().map(|u| u.next_resend));
        d.push(self.relay.as_ref().and_then(|r| r.deadline()));
        if let Some(c) = &self.child {
            // SIGCHLD wakes us; this is a fallback in case it was coalesced.
            d.push(Some(match c.exited_at {
                Some(t) => t + self.cfg.linger,
                None => Instant::now() + Duration::from_millis(500),
            }));
        }
        d.into_iter().flatten().min()
    }

    fn timers(&mut self, now: Instant) {
        if let Some(r) = self.relay.as_mut() {
            r.timers(self.poll.registry(), now);
        }
        if let Some(session) = &self.session {
            for u in &mut self.udp {
                if u.next_resend.is_some_and(|t| now >= t) {
                    u.send(FrameKind::Header, &session.header_chunk.bytes);
                    if let Some(state) = session.state.replay_all() {
                        u.send(FrameKind::State, &state);
                    }
                    u.next_resend = Some(now + self.cfg.udp_resend);
                }
            }
        }
        if let (Some(t), Some(iv)) = (self.next_stats_line, self.cfg.stats_interval) {
            if now >= t {
                for line in self.report().lines() {
                    tracing::info!("{line}");
                }
                self.next_stats_line = Some(now + iv);
            }
        }
    }

    fn check_child(&mut self, now: Instant) {
        let linger = self.cfg.linger;
        let Some(c) = self.child.as_mut() else { return };
        if c.status.is_none() {
            if let Ok(Some(st)) = c.child.try_wait() {
                tracing::info!(status = %st, "program exited");
                c.status = Some(st);
                c.exited_at = Some(now);
                // Drain what the program left in the FIFO, then finish.
                self.source.final_eof = true;
                self.source.ready = true;
                if !self.source.is_connected() {
                    self.finish_source();
                }
            }
        } else if !self.source_done && c.exited_at.is_some_and(|t| now >= t + linger) {
            // Another process keeps the FIFO open; stop waiting for it.
            tracing::warn!("FIFO still open after the program exited; finishing");
            self.finish_source();
        }
    }

    fn on_signals(&mut self) {
        for d in self.signals.drain() {
            match d.signal {
                libc::SIGCHLD => {}
                sig => {
                    if let Some(c) = &self.child {
                        if c.status.is_none() {
                            // A terminal's ^C already reached the program (same
                            // process group); forward only what kill(2) sent us.
                            if d.from_process {
                                // SAFETY: kill(2) on our own child's pid.
                                unsafe {
                                    libc::kill(c.child.id() as libc::pid_t, sig);
                                }
                            }
                            continue;
                        }
                    }
                    if self.shutdown.is_some() {
                        // A second signal exits at once.
                        self.shutdown = Some(Instant::now());
                    } else {
                        tracing::info!(signal = sig, "shutting down");
                        self.finish_source();
                        self.shutdown
                            .get_or_insert(Instant::now() + self.cfg.linger);
                    }
                }
            }
        }
    }

    /// No more source data: end the session and start lingering.
    fn finish_source(&mut self) {
        if self.source_done {
            return;
        }
        self.source_done = true;
        self.end_session();
        self.shutdown = Some(Instant::now() + self.cfg.linger);
    }

    fn pump_source(&mut self) -> Result<()> {
        let mut budget = READ_BUDGET;
        while budget > 0 && self.source.wants_read() && !self.backpressured() {
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.source.read(self.poll.registry(), &mut buf);
            match r {
                ReadResult::Data(n) => {
                    self.decoder.push(&buf[..n]);
                    self.buf = buf;
                    budget = budget.saturating_sub(n);
                    self.decode()?;
                }
                ReadResult::Empty => {
                    self.buf = buf;
                    break;
                }
                ReadResult::Ended => {
                    self.buf = buf;
                    self.end_connection();
                    break;
                }
                ReadResult::Finished => {
                    self.buf = buf;
                    self.end_connection();
                    self.finish_source();
                    break;
                }
            }
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<()> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(Frame::Header(h))) => self.start_session(h),
                Ok(Some(Frame::Block(b))) => self.on_block(b),
                Ok(Some(Frame::DataEnd)) => self.end_session(),
                Ok(None) => return Ok(()),
                Err(e) => {
                    let msg = format!("not a valid eventlog stream: {e}");
                    tracing::error!(source = %self.source.endpoint, "{msg}");
                    self.end_session();
                    self.decoder = StreamDecoder::new();
                    if !self.source.reject(self.poll.registry(), &msg) {
                        return Err(Error::Source {
                            endpoint: self.source.endpoint.to_string(),
                            message: msg,
                        });
                    }
                    return Ok(());
                }
            }
        }
    }

    /// The source connection ended: keep whole events of a cut-off block, end the session.
    fn end_connection(&mut self) {
        if self.session.is_some() {
            if let Ok(Some(Frame::Block(b))) = self.decoder.finish() {
                self.on_block(b);
            }
            tracing::info!(source = %self.source.endpoint, "source ended mid-session; ending the session");
        }
        self.end_session();
        self.decoder = StreamDecoder::new();
    }

    fn start_session(&mut self, header: Header) {
        if self.session.is_some() {
            // A new header without a data end: the source restarted.
            self.end_session();
        }
        self.totals.sessions += 1;
        let id = self
            .stream_seed
            .wrapping_add((self.totals.sessions as u32).wrapping_mul(0x9e37_79b9));
        let header_chunk = Chunk::new(ChunkKind::Header, header.raw.clone(), 0);
        let header = Arc::new(header);
        tracing::info!(
            session = self.totals.sessions,
            types = header.types.len(),
            "session starts"
        );
        let session = Session {
            id,
            state: State::new(header.clone(), !self.udp.is_empty()),
            header,
            header_chunk,
            store: Store::new(self.cfg.store_bytes),
            blocks: 0,
            bytes: 0,
        };
        for s in &self.sinks {
            s.send(Item::Header(session.header_chunk.bytes.clone()));
        }
        let now = Instant::now();
        for u in &mut self.udp {
            u.start(id);
            u.send(FrameKind::Header, &session.header_chunk.bytes);
            u.next_resend = Some(now + self.cfg.udp_resend);
        }
        let waiting: Vec<Token> = self
            .subs
            .iter()
            .filter(|(_, s)| s.phase == Phase::Waiting)
            .map(|(t, _)| *t)
            .collect();
        self.session = Some(session);
        for t in waiting {
            self.start_sub(t);
            self.flush_sub(t);
        }
    }

    /// Queues the session's replay for a subscriber: header, state, stored blocks.
    fn start_sub(&mut self, tok: Token) {
        let Some(session) = &self.session else { return };
        let Some(sub) = self.subs.get_mut(&tok) else {
            return;
        };
        let state = session
            .state
            .replay_before_store()
            .into_iter()
            .map(|b| Chunk::new(ChunkKind::State, b, 0));
        let header = &session.header;
        let keep = sub.classes;
        let replay = state
            .chain(session.store.blocks().cloned())
            .filter_map(|c| match keep {
                Some(k) => filtered(header, &c, k),
                None => Some(c),
            });
        let chunks = std::iter::once(session.header_chunk.clone()).chain(replay);
        sub.start(session.id, session.header.clone(), chunks);
    }

    fn on_block(&mut self, block: Block) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let chunk = Chunk::block(block);
        session.state.observe(&chunk);
        let state = &mut session.state;
        session.store.push(chunk.clone(), |c| state.evicted(c));
        session.blocks += 1;
        session.bytes += chunk.len() as u64;
        self.totals.blocks += 1;
        self.totals.bytes += chunk.len() as u64;
        let id = session.id;
        let header = session.header.clone();
        let mut overflow = Vec::new();
        let mut live = Vec::new();
        // Filtered once per class set, shared by the subscribers that asked for it.
        let mut per_classes: Vec<(ClassSet, Option<Chunk>)> = Vec::new();
        for (t, s) in self.subs.iter_mut() {
            if s.phase == Phase::Live(id) {
                let c = match s.classes {
                    None => chunk.clone(),
                    Some(k) => {
                        let f = match per_classes.iter().find(|(c, _)| *c == k) {
                            Some((_, f)) => f.clone(),
                            None => {
                                let f = filtered(&header, &chunk, k);
                                per_classes.push((k, f.clone()));
                                f
                            }
                        };
                        match f {
                            Some(f) => f,
                            None => continue,
                        }
                    }
                };
                if s.push_block(c) {
                    live.push(*t);
                } else {
                    overflow.push(*t);
                }
            }
        }
        for t in overflow {
            self.totals.disconnected_overflow += 1;
            if let Some(s) = self.subs.get(&t) {
                tracing::warn!(peer = %s.peer, "subscriber's queue is full: disconnecting it (policy: disconnect)");
            }
            self.drop_sub(t, "queue full (policy: disconnect)");
        }
        for t in live {
            self.flush_sub(t);
        }
        for u in &mut self.udp {
            u.send(FrameKind::Block, &chunk.bytes);
        }
        for s in &self.sinks {
            s.send(Item::Block(chunk.bytes.clone()));
        }
    }

    fn end_session(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        tracing::info!(
            session = self.totals.sessions,
            blocks = session.blocks,
            bytes = session.bytes,
            "session ends"
        );
        let end = Chunk::new(ChunkKind::DataEnd, DATA_END.to_vec(), 0);
        let toks: Vec<Token> = self
            .subs
            .iter()
            .filter(|(_, s)| s.phase == Phase::Live(session.id))
            .map(|(t, _)| *t)
            .collect();
        for t in toks {
            if let Some(s) = self.subs.get_mut(&t) {
                s.push(end.clone());
                s.phase = Phase::Closing;
            }
            self.flush_sub(t);
        }
        for s in &self.sinks {
            s.send(Item::Stop);
        }
        for u in &mut self.udp {
            // Repeated: a lost data end would leave the receiver's file open.
            for _ in 0..3 {
                u.send(FrameKind::DataEnd, &DATA_END);
            }
            u.end();
        }
    }

    fn accept(&mut self, listener: Option<usize>) {
        loop {
            let l = match listener {
                Some(i) => &self.listeners[i],
                None => match &self.stats_listener {
                    Some(l) => l,
                    None => return,
                },
            };
            let (mut conn, peer) = match l.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            let tok = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = conn.register(self.poll.registry(), tok) {
                tracing::warn!("cannot poll subscriber: {e}");
                continue;
            }
            let mut sub = Subscriber::new(conn, peer, self.cfg.queue_bytes, self.cfg.policy);
            sub.classes = listener.and_then(|i| self.cfg.listen[i].classes);
            if listener.is_none() {
                let report = self.report();
                sub.push(Chunk::new(ChunkKind::Text, report.into_bytes(), 0));
                sub.phase = Phase::Closing;
                self.stats_conns.push(tok);
                self.subs.insert(tok, sub);
            } else {
                tracing::info!(peer = %sub.peer, token = tok.0, "subscriber connected");
                self.totals.subscribers += 1;
                self.subs.insert(tok, sub);
                if self.session.is_some() && self.shutdown.is_none() {
                    self.start_sub(tok);
                }
            }
            self.flush_sub(tok);
        }
    }

    fn flush_sub(&mut self, tok: Token) {
        let Some(s) = self.subs.get_mut(&tok) else {
            return;
        };
        match s.flush() {
            Ok(true) if s.phase == Phase::Closing => self.drop_sub(tok, "stream complete"),
            Ok(_) => {}
            Err(e) => {
                let why = format!("write failed: {e}");
                self.drop_sub(tok, &why);
            }
        }
    }

    fn drop_sub(&mut self, tok: Token, why: &str) {
        if let Some(mut s) = self.subs.remove(&tok) {
            s.conn.deregister(self.poll.registry());
            if self.stats_conns.contains(&tok) {
                self.stats_conns.retain(|t| *t != tok);
                return;
            }
            let c = s.counters;
            tracing::info!(
                peer = %s.peer,
                token = tok.0,
                bytes = c.bytes_sent,
                blocks = c.blocks_sent,
                dropped_blocks = c.blocks_dropped,
                "subscriber closed: {why}"
            );
        }
    }

    /// Closing subscribers whose queue is empty, and waiting ones at shutdown.
    fn reap_closing(&mut self) {
        let done: Vec<Token> = self
            .subs
            .iter()
            .filter(|(_, s)| s.is_flushed())
            .map(|(t, _)| *t)
            .collect();
        for t in done {
            self.drop_sub(t, "shutting down");
        }
    }

    /// The text served on the stats socket and printed by `-v`.
    pub fn report(&self) -> String {
        let mut r = String::new();
        let src = &self.source.stats;
        let (blocks, bytes, store_blocks, store_bytes) = match &self.session {
            Some(s) => (s.blocks, s.bytes, s.store.len(), s.store.bytes()),
            None => (0, 0, 0, 0),
        };
        let _ = writeln!(
            r,
            "source {} state={} sessions={} bytes_read={} session_blocks={} session_bytes={} total_blocks={} total_bytes={} store_blocks={} store_bytes={} connects={} errors={}{}",
            self.source.endpoint,
            if self.session.is_some() { "live" } else if self.source.is_connected() { "idle" } else { "down" },
            self.totals.sessions,
            src.bytes,
            blocks,
            bytes,
            self.totals.blocks,
            self.totals.bytes,
            store_blocks,
            store_bytes,
            src.connects,
            src.errors,
            src.last_error.as_deref().map(|e| format!(" last_error={e:?}")).unwrap_or_default(),
        );
        for l in &self.listeners {
            let _ = writeln!(r, "listen {}", l.local());
        }
        if let Some(relay) = &self.relay {
            r.push_str(&relay.report());
        }
        let mut toks: Vec<&Token> = self.subs.keys().collect();
        toks.sort();
        for t in toks {
            if self.stats_conns.contains(t) {
                continue;
            }
            let s = &self.subs[t];
            let c = s.counters;
            let phase = match s.phase {
                Phase::Waiting => "waiting",
                Phase::Live(_) => "live",
                Phase::Closing => "closing",
            };
            let _ = writeln!(
                r,
                "subscriber {} {} state={} bytes={} blocks={} dropped_blocks={} dropped_bytes={} notices={} queue_bytes={} queue_chunks={}{}",
                t.0, s.peer, phase, c.bytes_sent, c.blocks_sent, c.blocks_dropped, c.bytes_dropped, c.notices, s.queued_bytes(), s.queued_chunks(),
                s.classes.map(|k| format!(" classes={k}")).unwrap_or_default()
            );
        }
        for u in &self.udp {
            let c = u.counters;
            let _ = writeln!(
                r,
                "udp {} frames={} datagrams={} bytes={} dropped_datagrams={}",
                u.dest, c.frames, c.datagrams, c.bytes, c.dropped
            );
        }
        let _ = writeln!(
            r,
            "totals subscribers_accepted={} disconnected_overflow={}",
            self.totals.subscribers, self.totals.disconnected_overflow
        );
        r
    }
}

/// A block or state chunk with only the events of `keep` (and the always-on
/// types); `None` when nothing but its block marker would be left.
fn filtered(header: &Header, chunk: &Chunk, keep: ClassSet) -> Option<Chunk> {
    let bytes = filter_block(header, &chunk.bytes, keep);
    let marker_only = bytes.len() == BLOCK_MARKER_SIZE
        && u16::from_be_bytes([bytes[0], bytes[1]]) == EVENT_BLOCK_MARKER;
    if bytes.is_empty() || marker_only {
        return None;
    }
    Some(Chunk::new(chunk.kind, bytes, chunk.end_time))
}
