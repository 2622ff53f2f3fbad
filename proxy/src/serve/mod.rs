//! The proxy's single mio poll loop: reads the source, splits it into
//! header/blocks/data end, keeps the session's state and recent blocks, and fans
//! whole blocks out to TCP/UNIX subscribers (bounded queues, never blocking) and
//! UDP destinations. Modelled on mio's examples/tcp_server.rs: explicit tokens
//! (`tokens.rs`), edge-triggered readiness, every socket non-blocking.
//!
//! Several sources may feed one loop (`--source NAME=ENDPOINT`, `--discover`):
//! each is a [`Feed`] in a slot of its own (its poll tokens: tokens.rs) with
//! its own decoder, session (header, state, store), backoff and counters; a
//! subscriber belongs to one feed, named by its listener.
//!
//! This file is the loop (readiness, timers, signals, shutdown, discovery);
//! `session.rs` the sources and their sessions, `fanout.rs` the subscribers,
//! `outputs.rs` UDP and the off-loop consumers, `stats.rs` the stats text.
//! `run`'s program is supervised by run.rs through [`Supervisor`].

mod exporter;
mod fanout;
mod outputs;
mod session;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use clap::Args;
use elstream_format::Endpoint;
use mio::{Events, Interest, Poll, Token};

use crate::error::{Error, Result};
use crate::listen::{ListenSpec, Listener};
use crate::plugin::PluginSpec;
use crate::record::RecordOpts;
use crate::relay::{self, Relay, RelayConfig};
use crate::signals::Signals;
use crate::source::Source;
use crate::subscriber::{Policy, Subscriber};
use crate::tokens::{
    source_slot, source_tokens, FIRST_SUBSCRIBER, LISTENER_BASE, MAX_SOURCES, SIGNALS, SOURCE_BASE,
    STATS,
};
use crate::units::{parse_duration, parse_size};
use outputs::Outputs;
use session::Feed;

/// Bytes read from each source per loop iteration before serving sockets again.
const READ_BUDGET: usize = 4 << 20;
const READ_BUF: usize = 128 << 10;

/// What `proxy` and `run` serve, and how: the command line's options (clap
/// derives them from this struct; the help headings group them).
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Set by the command (`proxy --source`, or `run`'s FIFO): each a session
    /// of its own, by name.
    #[arg(skip)]
    pub sources: Vec<(String, Endpoint)>,
    /// `proxy --discover`: shim sockets in this directory become sources.
    #[arg(skip)]
    pub discover: Option<Discover>,
    /// Listen for subscribers: tcp://HOST:PORT, a bare PORT (= tcp://127.0.0.1:PORT;
    /// 0 lets the system pick, see --ready-file) or unix:PATH (created 0600).
    /// Repeatable. Append `?classes=LETTERS` (among s g n p f u) and this
    /// listener's subscribers get only those event classes plus the always-on
    /// types, still a valid eventlog: e.g. `--listen '4243?classes=gu'`.
    /// With several sources (or --discover) each listener serves one session,
    /// named before the endpoint: `--listen app=4242` (an unnamed listener is
    /// then refused); with one source, a listener serves it.
    #[arg(long, value_name = "[NAME=]ENDPOINT", value_parser = ListenSpec::parse_arg, help_heading = "Subscribers")]
    pub listen: Vec<ListenSpec>,
    /// Bound of each subscriber's queue.
    #[arg(long = "queue", value_name = "SIZE", default_value = "16M", value_parser = parse_size, help_heading = "Subscribers")]
    pub queue_bytes: usize,
    /// What to do when a subscriber's queue is full.
    #[arg(long, value_enum, default_value = "drop", help_heading = "Subscribers")]
    pub policy: Policy,
    /// Bound of the shared store of recent blocks replayed to new subscribers.
    #[arg(long = "store", value_name = "SIZE", default_value = "8M", value_parser = parse_size, help_heading = "Subscribers")]
    pub store_bytes: usize,
    /// Do not read the source before this many subscribers have connected
    /// (default: read at once). With several sources: subscribers of all
    /// sessions count, and no source is read before.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Subscribers"
    )]
    pub wait_subscribers: usize,
    /// Pause reading the source while a subscriber's queue is over half full
    /// instead of dropping (replaying files only: it stalls a live program).
    #[arg(long, help_heading = "Subscribers")]
    pub backpressure: bool,
    /// Send the stream as UDP datagrams to HOST:PORT (udp:// optional). Repeatable.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_udp_dest, help_heading = "UDP")]
    pub udp: Vec<String>,
    /// UDP datagram size, elstream's 32-byte header included.
    #[arg(long, value_name = "BYTES", default_value_t = elstream_format::udp::DEFAULT_MTU, help_heading = "UDP")]
    pub mtu: usize,
    /// How often the header and state are re-sent over UDP.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "UDP")]
    pub udp_resend: Duration,
    /// Longest wait between reconnection attempts to a source.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "Source")]
    pub reconnect_max: Duration,
    /// At exit, how long to wait for subscribers to receive what is queued.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Source")]
    pub linger: Duration,
    /// Serve counters on this endpoint (unix:PATH or tcp://HOST:PORT); read them
    /// with `elstream stats`.
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::listen::parse_listen, help_heading = "Stats")]
    pub stats: Option<Endpoint>,
    /// Log a stats line this often (default: 5s with -v, else never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Stats")]
    pub stats_interval: Option<Duration>,
    /// Once every socket is bound, write the bound addresses to FILE, one per
    /// line (`listen tcp://127.0.0.1:40123`, `stats ...`, `control ...`,
    /// `metrics http://127.0.0.1:9464`):
    /// with `--listen tcp://127.0.0.1:0` the system picks a free port.
    #[arg(long, value_name = "FILE", help_heading = "Stats")]
    pub ready_file: Option<PathBuf>,
    /// Load a plugin: a shared library exporting `elstream_plugin_v1`
    /// (include/elstream_plugin.h), given CONFIG. Repeatable. Each runs on its
    /// own thread behind a queue bounded by --queue (a slow plugin drops blocks
    /// for itself only). One that cannot load or refuses is reported and left
    /// out; a plugin that crashes takes the proxy down (run it in a second proxy).
    #[arg(
        long = "plugin",
        value_name = "PATH.so[:CONFIG]",
        help_heading = "Plugins and recording"
    )]
    pub plugins: Vec<PluginSpec>,
    #[command(flatten)]
    pub record: RecordOpts,
    /// Serve Prometheus text at /metrics on HOST:PORT for every session of
    /// this proxy (the families and labels of `elstream metrics`; port 0: the
    /// system picks one, see --ready-file). A metrics thread runs each session
    /// through the analysis model behind a queue bounded by --queue (when it
    /// falls behind, it drops blocks for itself only, counted in
    /// elstream_feed_dropped_blocks_total). Triggers are `elstream metrics`' only.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Metrics")]
    pub metrics: Option<String>,
    /// Export the same over OTLP HTTP/protobuf, configured by the OTEL_*
    /// variables as for `elstream metrics` (default http://localhost:4318).
    #[arg(long, help_heading = "Metrics")]
    pub otlp: bool,
    /// Distinct user span names per session in the metrics; later names are
    /// folded into `other`.
    #[arg(long, default_value_t = 20, value_name = "N", help_heading = "Metrics")]
    pub top_spans: usize,
    /// The control relay (`proxy --control-listen`), from its own options.
    #[arg(skip)]
    pub control: Option<RelayConfig>,
}

/// `--discover[=DIR]`: where to look for shim sockets, and which.
#[derive(Clone, Debug)]
pub struct Discover {
    pub dir: PathBuf,
    /// Only the shim's default names (`elstream-<pid>.sock`): for /tmp.
    pub default_names_only: bool,
}

/// How often `--discover` looks at its directory.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

fn parse_udp_dest(s: &str) -> std::result::Result<String, String> {
    let hp = s
        .strip_prefix("udp://")
        .or_else(|| s.strip_prefix("udp:"))
        .unwrap_or(s);
    Ok(hp.to_string())
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

/// `run`'s program as the loop sees it (run.rs supervises the process).
pub trait Supervisor {
    /// The program's exit status, once it has exited (asked each loop turn).
    fn poll_exit(&mut self) -> Option<ExitStatus>;
    /// SIGINT/SIGTERM arrived while the program runs: it is the program's.
    fn on_signal(&mut self, signal: libc::c_int, from_process: bool);
}

pub struct Proxy {
    cfg: Config,
    poll: Poll,
    /// Source slots (index = slot, tokens.rs); `None`: a discovered socket
    /// that went away.
    feeds: Vec<Option<Feed>>,
    listeners: Vec<Listener>,
    /// Each listener's session name (resolved: an unnamed one serves the only source).
    listener_sessions: Vec<String>,
    next_discover: Option<Instant>,
    stats_listener: Option<Listener>,
    subs: HashMap<Token, Subscriber>,
    stats_conns: Vec<Token>,
    relay: Option<Relay>,
    next_token: usize,
    outputs: Outputs,
    metrics: Option<exporter::Exporter>,
    signals: Signals,
    /// `run`'s program, and when it exited with what status.
    child: Option<Box<dyn Supervisor>>,
    child_exit: Option<(ExitStatus, Instant)>,
    shutdown: Option<Instant>,
    /// A source error that ends the run once subscribers have their data.
    fatal: Option<Error>,
    next_stats_line: Option<Instant>,
    totals: Totals,
    stream_seed: u32,
    buf: Vec<u8>,
}

impl Proxy {
    /// Binds every listener (failing early on a port in use) and prepares the source.
    pub fn new(cfg: Config) -> Result<Proxy> {
        let listener_sessions = plan(&cfg)?;
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
        let outputs = Outputs::new(&cfg)?;
        let metrics = exporter::Exporter::start(&cfg)?;
        let mut signals = Signals::install(&[libc::SIGINT, libc::SIGTERM, libc::SIGCHLD])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
        poll.registry()
            .register(signals.receiver(), SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("cannot poll signals", e))?;
        let mut feeds = Vec::new();
        for (slot, (name, ep)) in cfg.sources.iter().enumerate() {
            let source = Source::new(ep.clone(), cfg.reconnect_max, source_tokens(slot))?;
            feeds.push(Some(Feed::new(name.clone(), source, false)));
        }
        let seed = std::process::id().rotate_left(16)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        let proxy = Proxy {
            next_stats_line: cfg.stats_interval.map(|d| Instant::now() + d),
            next_discover: cfg.discover.as_ref().map(|_| Instant::now()),
            cfg,
            poll,
            feeds,
            listeners,
            listener_sessions,
            stats_listener,
            subs: HashMap::new(),
            stats_conns: Vec::new(),
            relay,
            next_token: FIRST_SUBSCRIBER,
            outputs,
            metrics,
            signals,
            child: None,
            child_exit: None,
            shutdown: None,
            fatal: None,
            totals: Totals::default(),
            stream_seed: seed,
            buf: vec![0; READ_BUF],
        };
        for l in proxy.bound() {
            tracing::info!("bound {l}");
        }
        if let Some(path) = &proxy.cfg.ready_file {
            write_ready_file(path, &proxy.bound())?;
        }
        Ok(proxy)
    }

    /// Every address bound, port 0 resolved: `listen ADDR`, `stats ADDR`,
    /// `control ADDR` (what `--ready-file` holds).
    pub fn bound(&self) -> Vec<String> {
        let listen = self.listening().into_iter().map(|l| format!("listen {l}"));
        let stats = self
            .stats_listener
            .iter()
            .map(|l| format!("stats {}", l.local()));
        let control = self
            .control_listening()
            .into_iter()
            .map(|l| format!("control {l}"));
        let udp = self.outputs.udp.iter().map(|u| format!("udp {}", u.dest));
        let metrics = self
            .metrics
            .iter()
            .filter_map(|m| m.bound.as_ref())
            .map(|b| format!("metrics {b}"));
        listen
            .chain(stats)
            .chain(control)
            .chain(udp)
            .chain(metrics)
            .collect()
    }

    /// Addresses actually bound (port 0 resolved).
    pub fn listening(&self) -> Vec<String> {
        let named = self.feeds.len() > 1 || self.cfg.discover.is_some();
        self.listeners
            .iter()
            .zip(&self.cfg.listen)
            .zip(&self.listener_sessions)
            .map(|((l, spec), name)| {
                let name = if named {
                    format!("{name}=")
                } else {
                    String::new()
                };
                match spec.classes {
                    Some(c) => format!("{name}{}?classes={c}", l.local()),
                    None => format!("{name}{}", l.local()),
                }
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

    /// Opens the sources now (before `run` starts the program).
    pub fn open_source(&mut self) -> Result<()> {
        for f in self.feeds.iter_mut().flatten() {
            f.source.tick(Instant::now(), self.poll.registry())?;
        }
        Ok(())
    }

    /// `run` mode: the loop also watches this program and ends with its status.
    pub fn supervise(&mut self, child: Box<dyn Supervisor>) {
        self.child = Some(child);
    }

    fn gate_open(&self) -> bool {
        self.totals.subscribers as usize >= self.cfg.wait_subscribers
    }

    /// Whether feed `name`'s reading pauses for its subscribers (`--backpressure`).
    fn backpressured(&self, name: &str) -> bool {
        self.cfg.backpressure
            && self
                .subs
                .values()
                .any(|s| s.session == name && s.over_half())
    }

    fn feed(&mut self, slot: usize) -> &mut Feed {
        self.feeds[slot].as_mut().expect("a live source slot")
    }

    /// Slots of the sources that may be read now.
    fn readable(&self) -> Vec<usize> {
        if !self.gate_open() || self.shutdown.is_some() {
            return Vec::new();
        }
        self.feeds
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i, f)))
            .filter(|(_, f)| !f.done && f.source.wants_read() && !self.backpressured(&f.name))
            .map(|(i, _)| i)
            .collect()
    }

    /// Reconnects and reopens what is due. A source that cannot be opened
    /// at all (a FIFO that is gone, a file it may not read) ends the run when
    /// it is the only one; among several it ends, and its subscribers get
    /// the data end, while the others go on (the run then fails at the end).
    fn tick_sources(&mut self, now: Instant) -> Result<()> {
        let alone = self.feeds.len() == 1 && self.cfg.discover.is_none();
        for slot in 0..self.feeds.len() {
            let Some(f) = self.feeds[slot].as_mut().filter(|f| !f.done) else {
                continue;
            };
            match f.source.tick(now, self.poll.registry()) {
                Ok(()) => {}
                Err(e) if alone => return Err(e),
                Err(e) => {
                    tracing::error!(session = %f.name, "{e}; this source stops, the others go on");
                    self.fail_source(slot, e.to_string());
                }
            }
        }
        Ok(())
    }

    pub fn run(mut self) -> Result<Outcome> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            // The source opens at once (--wait-subscribers only holds back
            // reading): an RTS opens its FIFO read-write and would lose what
            // it wrote if it exited before any reader had the FIFO open.
            if self.shutdown.is_none() {
                self.tick_sources(now)?;
            }
            self.timers(now);
            self.check_child(now);
            if let Some(deadline) = self.shutdown {
                self.reap_closing();
                if self.subs.values().all(|s| s.is_flushed()) || now >= deadline {
                    break;
                }
            }
            let read = self.readable();
            for &slot in &read {
                self.pump_source(slot)?;
            }
            let more = !read.is_empty() && !self.readable().is_empty();
            let exit_due = self.shutdown.is_some() && self.subs.values().all(|s| s.is_flushed());
            let timeout = if exit_due || more {
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
                    Token(t) if (SOURCE_BASE..FIRST_SUBSCRIBER).contains(&t) => {
                        // A waker's lookup result is taken up by the next tick.
                        if let Some((slot, true)) = source_slot(Token(t)) {
                            if let Some(Some(f)) = self.feeds.get_mut(slot) {
                                f.source.ready = true;
                            }
                        }
                    }
                    SIGNALS => self.on_signals(),
                    STATS => self.accept(None),
                    Token(t) if (LISTENER_BASE..SOURCE_BASE).contains(&t) => {
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
        let status = self.child_exit.map(|(st, _)| st);
        self.outputs.close(self.cfg.linger);
        for (_, mut s) in self.subs.drain() {
            s.conn.deregister(self.poll.registry());
        }
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        Ok(match status {
            Some(st) => Outcome::Child(st),
            None => Outcome::Done,
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Option<Instant>> =
            vec![self.shutdown, self.next_stats_line, self.next_discover];
        for f in self.feeds.iter().flatten().filter(|f| !f.done) {
            d.push(f.source.deadline());
        }
        d.extend(self.outputs.deadlines());
        d.push(self.relay.as_ref().and_then(|r| r.deadline()));
        if self.child.is_some() {
            // SIGCHLD wakes us; this is a fallback in case it was coalesced.
            d.push(Some(match self.child_exit {
                Some((_, t)) => t + self.cfg.linger,
                None => Instant::now() + Duration::from_millis(500),
            }));
        }
        d.into_iter().flatten().min()
    }

    fn timers(&mut self, now: Instant) {
        if let Some(r) = self.relay.as_mut() {
            r.timers(self.poll.registry(), now);
        }
        // UDP comes with one source only (plan), so at most one session here.
        for session in self
            .feeds
            .iter()
            .flatten()
            .filter_map(|f| f.session.as_ref())
        {
            self.outputs
                .resend(&session.header_chunk.bytes, &session.state, now);
        }
        if self.next_discover.is_some_and(|t| now >= t) {
            self.discover();
            self.next_discover = Some(now + DISCOVER_EVERY);
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

    /// `run`: once the program exited, drain what it left in the FIFO, then
    /// finish (at most `--linger` later if another process keeps it open).
    fn check_child(&mut self, now: Instant) {
        let Some(c) = self.child.as_mut() else { return };
        match self.child_exit {
            None => {
                if let Some(st) = c.poll_exit() {
                    tracing::info!(status = %st, "program exited");
                    self.child_exit = Some((st, now));
                    let f = self.feed(0);
                    f.source.final_eof = true;
                    f.source.ready = true;
                    if !f.source.is_connected() {
                        self.finish_source(0);
                    }
                }
            }
            Some((_, at)) => {
                if !self.feed(0).done && now >= at + self.cfg.linger {
                    tracing::warn!("FIFO still open after the program exited; finishing");
                    self.finish_source(0);
                }
            }
        }
    }

    fn on_signals(&mut self) {
        for d in self.signals.drain() {
            match d.signal {
                libc::SIGCHLD => {}
                sig => {
                    if self.child_exit.is_none() {
                        if let Some(c) = self.child.as_mut() {
                            c.on_signal(sig, d.from_process);
                            continue;
                        }
                    }
                    if self.shutdown.is_some() {
                        // A second signal exits at once.
                        self.shutdown = Some(Instant::now());
                    } else {
                        tracing::info!(signal = sig, "shutting down");
                        for slot in 0..self.feeds.len() {
                            if self.feeds[slot].is_some() {
                                self.finish_source(slot);
                            }
                        }
                        self.shutdown
                            .get_or_insert(Instant::now() + self.cfg.linger);
                    }
                }
            }
        }
    }
}

/// Checks how sources and listeners fit together; each listener's session.
/// An unnamed listener serves the only source; with several (or
/// `--discover`) every listener must name its session. Outputs that carry one
/// stream (UDP, the recorder, plugins, the control relay) need one source.
fn plan(cfg: &Config) -> Result<Vec<String>> {
    if cfg.sources.is_empty() && cfg.discover.is_none() {
        return Err(Error::Usage(
            "give a --source ENDPOINT (or several NAME=ENDPOINT), or --discover[=DIR]".into(),
        ));
    }
    if cfg.sources.len() > MAX_SOURCES {
        return Err(Error::Usage(format!("at most {MAX_SOURCES} sources")));
    }
    for (i, (name, ep)) in cfg.sources.iter().enumerate() {
        if let Some((_, other)) = cfg.sources[..i].iter().find(|(n, _)| n == name) {
            return Err(Error::Usage(format!(
                "session name {name:?} given twice ({other} and {ep}); name each source: --source NAME=ENDPOINT"
            )));
        }
    }
    let several = cfg.sources.len() > 1 || cfg.discover.is_some();
    if several {
        let one_stream = [
            (!cfg.udp.is_empty(), "--udp"),
            (cfg.record.dir.is_some(), "--record"),
            (!cfg.plugins.is_empty(), "--plugin"),
            (cfg.control.is_some(), "--control-listen"),
        ];
        if let Some((_, opt)) = one_stream.iter().find(|(on, _)| *on) {
            return Err(Error::Usage(format!(
                "{opt} serves one source's stream; with several sources (or --discover) run a \
                 second proxy for it, fed by a listener of this one"
            )));
        }
    }
    let names: Vec<&str> = cfg.sources.iter().map(|(n, _)| n.as_str()).collect();
    cfg.listen
        .iter()
        .map(|spec| match &spec.session {
            Some(n) if names.contains(&n.as_str()) || cfg.discover.is_some() => Ok(n.clone()),
            Some(n) => Err(Error::Usage(format!(
                "--listen {spec}: no source named {n:?} (the sources are {})",
                names.join(", ")
            ))),
            None if !several => Ok(names[0].to_string()),
            None => Err(Error::Usage(format!(
                "--listen {spec}: there are several sources{}; say which session it serves: \
                 --listen NAME={}",
                if cfg.discover.is_some() {
                    " (--discover)"
                } else {
                    ""
                },
                spec.endpoint
            ))),
        })
        .collect()
}

/// Writes `lines` to `path` at once (a temporary file renamed into place), so
/// whoever waits for the file never reads half of it.
pub fn write_ready_file(path: &std::path::Path, lines: &[String]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("cannot write the ready file {}", path.display()), e))
}
