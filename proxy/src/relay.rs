//! The control relay: clients send control frames to the proxy
//! (`--control-listen`), the proxy passes each request to the shim's control
//! socket (`--control-to`) and the reply back. It runs inside the proxy's mio
//! loop: non-blocking sockets, one request in flight per client, bounded
//! buffers, and one shared connection to the shim (replies come back in
//! request order, so a FIFO of waiting clients matches them up).
//!
//! Security: a TCP control listener needs a token (`--token-file`, a file
//! nobody but its owner can read); the first request on a TCP connection must
//! be `auth TOKEN`, anything else gets `Unauthorized` and the connection is
//! closed. UNIX listeners are created 0600 and need no token. `auth` is
//! answered here, never passed to the shim.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elstream_format::control::{reply, request, Command, ControlDecoder, Kind, Status};
use elstream_format::Endpoint;
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use crate::error::{Error, Result};
use crate::listen::Listener;
use crate::subscriber::Conn;

/// Relay connections (and the shim connection) use tokens from here up,
/// far above the subscribers'.
pub use crate::tokens::RELAY_CONN_BASE as CONN_BASE;
/// Relay listeners use tokens `LISTENER_BASE..LISTENER_BASE + MAX_LISTENERS`.
pub use crate::tokens::RELAY_LISTENER_BASE as LISTENER_BASE;
pub use crate::tokens::RELAY_MAX_LISTENERS as MAX_LISTENERS;
/// Control clients at once; more get a `Failed` reply and are closed.
pub const MAX_CONNS: usize = 64;
/// A TCP client must authenticate within this long.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A relayed request's wait for the shim (a snapshot of a big ring can take seconds).
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// A client's unsent replies; above this its requests wait.
const OUT_LIMIT: usize = 256 << 10;
const READ_CHUNK: usize = 16 << 10;
/// Longest token file accepted.
const MAX_TOKEN: usize = 4096;

#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub listen: Vec<Endpoint>,
    /// The shim's control socket.
    pub to: PathBuf,
    /// From `--token-file`; required when a listener is TCP.
    pub token: Option<String>,
    /// How long a relayed request may wait for the shim's reply.
    pub reply_timeout: Duration,
}

impl RelayConfig {
    /// Checks the rules that do not need a socket: a TCP listener needs a token.
    pub fn new(listen: Vec<Endpoint>, to: PathBuf, token_file: Option<&Path>) -> Result<Self> {
        if listen.len() > MAX_LISTENERS {
            return Err(Error::Usage(format!(
                "at most {MAX_LISTENERS} --control-listen endpoints"
            )));
        }
        let token = token_file.map(load_token).transpose()?;
        if token.is_none() {
            if let Some(tcp) = listen.iter().find(|e| matches!(e, Endpoint::Tcp(_))) {
                return Err(Error::Usage(format!(
                    "--control-listen {tcp}: a TCP control listener needs --token-file FILE \
                     (remote control requires a token; UNIX control sockets are 0600 and need none)"
                )));
            }
        }
        Ok(RelayConfig {
            listen,
            to,
            token,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        })
    }

    pub fn reply_timeout(self, t: Duration) -> Self {
        RelayConfig {
            reply_timeout: t,
            ..self
        }
    }
}

/// Reads a token file, refusing one that group or others may read or write.
pub fn load_token(path: &Path) -> Result<String> {
    let what = || format!("token file {}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| Error::Usage(format!("{}: {e}", what())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Usage(format!(
            "{}: mode {mode:04o} lets group or others read or change it; \
             refusing to use it (run `chmod 600 {}`)",
            what(),
            path.display()
        )));
    }
    if !meta.is_file() || meta.len() > MAX_TOKEN as u64 {
        return Err(Error::Usage(format!(
            "{}: not a regular file of at most {MAX_TOKEN} bytes",
            what()
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{}: {e}", what())))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "{}: must hold one token (no spaces), e.g. from `head -c 32 /dev/urandom | base64`",
            what()
        )));
    }
    Ok(token.to_owned())
}

/// Compares a given token with the expected one in time that depends on the
/// expected token's length only, not on where they differ.
/// Sends what is queued for the shim, as far as the socket takes it; the
/// reason when the connection is broken.
fn write_upstream(up: &mut Upstream) -> Option<String> {
    while !up.out.is_empty() {
        match up.sock.write(&up.out) {
            Ok(n) => drop(up.out.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(format!("sending to the shim failed: {e}")),
        }
    }
    None
}

fn token_matches(expected: &str, given: &str) -> bool {
    let (e, g) = (expected.as_bytes(), given.as_bytes());
    let mut diff = u8::from(e.len() != g.len());
    for (i, x) in e.iter().enumerate() {
        diff |= x ^ g.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

struct Client {
    conn: Conn,
    peer: String,
    tcp: bool,
    authed: bool,
    auth_deadline: Option<Instant>,
    decoder: ControlDecoder,
    out: Vec<u8>,
    in_flight: bool,
    /// Close once `out` is sent.
    closing: bool,
}

/// The one connection to the shim's control socket.
struct Upstream {
    sock: UnixStream,
    token: Token,
    decoder: ControlDecoder,
    out: Vec<u8>,
    /// Clients waiting for a reply, in request order, with when they asked.
    waiting: VecDeque<(Token, Instant)>,
}

#[derive(Default, Clone, Copy)]
pub struct Counters {
    pub accepted: u64,
    pub refused: u64,
    pub relayed: u64,
    pub unauthorized: u64,
    pub failed: u64,
    pub bad_frames: u64,
}

pub struct Relay {
    listeners: Vec<Listener>,
    to: PathBuf,
    token: Option<String>,
    reply_timeout: Duration,
    clients: HashMap<Token, Client>,
    upstream: Option<Upstream>,
    next_token: usize,
    pub counters: Counters,
}

impl Relay {
    /// Binds every control listener (UNIX ones 0600).
    pub fn bind(cfg: &RelayConfig, registry: &Registry) -> Result<Relay> {
        let mut listeners = Vec::new();
        for (i, ep) in cfg.listen.iter().enumerate() {
            let mut l = Listener::bind(ep)?;
            registry
                .register(l.source(), Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| Error::io("cannot poll control listener", e))?;
            tracing::info!(listen = %l.local(), to = %cfg.to.display(), "relaying control");
            listeners.push(l);
        }
        Ok(Relay {
            listeners,
            to: cfg.to.clone(),
            token: cfg.token.clone(),
            reply_timeout: cfg.reply_timeout,
            clients: HashMap::new(),
            upstream: None,
            next_token: CONN_BASE,
            counters: Counters::default(),
        })
    }

    pub fn listening(&self) -> Vec<String> {
        self.listeners.iter().map(|l| l.local()).collect()
    }

    pub fn owns(&self, tok: Token) -> bool {
        tok.0 >= CONN_BASE
    }

    pub fn deadline(&self) -> Option<Instant> {
        let reply = self.reply_deadline();
        self.clients
            .values()
            .filter_map(|c| c.auth_deadline)
            .chain(reply)
            .min()
    }

    fn reply_deadline(&self) -> Option<Instant> {
        let up = self.upstream.as_ref()?;
        up.waiting.front().map(|(_, t)| *t + self.reply_timeout)
    }

    /// Closes TCP clients that did not authenticate in time; fails requests
    /// the shim did not answer in time.
    pub fn timers(&mut self, registry: &Registry, now: Instant) {
        if self.reply_deadline().is_some_and(|d| now >= d) {
            let why = format!("the shim did not answer within {:?}", self.reply_timeout);
            let answered = self.drop_upstream(registry, &why);
            self.deliver(registry, answered);
        }
        let late: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| c.auth_deadline.is_some_and(|d| now >= d))
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            if let Some(c) = self.clients.get_mut(&t) {
                tracing::warn!(peer = %c.peer, "control client sent no `auth` in time; closing");
                c.auth_deadline = None;
                c.out.extend(reply(
                    Status::Unauthorized,
                    &format!("no `auth TOKEN` within {}s", AUTH_TIMEOUT.as_secs()),
                ));
                c.closing = true;
                self.counters.unauthorized += 1;
            }
            self.pump(registry, t);
        }
    }

    pub fn accept(&mut self, registry: &Registry, index: usize) {
        if index >= self.listeners.len() {
            return;
        }
        loop {
            let (mut conn, peer) = match self.listeners[index].accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("control accept failed: {e}");
                    return;
                }
            };
            if self.clients.len() >= MAX_CONNS {
                self.counters.refused += 1;
                tracing::warn!(%peer, "refused a control client: {MAX_CONNS} already connected");
                // Best effort: a fresh socket's buffer takes one small frame.
                let _ = conn.write(&reply(
                    Status::Failed,
                    &format!("too many control connections (at most {MAX_CONNS}); try again later"),
                ));
                continue;
            }
            let tok = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = conn.register(registry, tok) {
                tracing::warn!("cannot poll control client: {e}");
                continue;
            }
            let tcp = matches!(conn, Conn::Tcp(_));
            self.counters.accepted += 1;
            tracing::debug!(%peer, "control client connected");
            self.clients.insert(
                tok,
                Client {
                    conn,
                    peer,
                    tcp,
                    authed: false,
                    auth_deadline: tcp.then(|| Instant::now() + AUTH_TIMEOUT),
                    decoder: ControlDecoder::new(),
                    out: Vec::new(),
                    in_flight: false,
                    closing: false,
                },
            );
            self.pump(registry, tok);
        }
    }

    /// A readiness event on a relay connection (a client or the shim).
    pub fn on_event(&mut self, registry: &Registry, tok: Token) {
        if self.upstream.as_ref().is_some_and(|u| u.token == tok) {
            self.on_upstream(registry);
        } else {
            self.pump(registry, tok);
        }
    }

    /// Moves one client along: sends its replies, then takes its next
    /// request (only when none is in flight and its replies are not piling up).
    fn pump(&mut self, registry: &Registry, tok: Token) {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(c) = self.clients.get_mut(&tok) else {
                return;
            };
            while !c.out.is_empty() {
                match c.conn.write(&c.out) {
                    Ok(n) => drop(c.out.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(registry, tok),
                }
            }
            if c.closing {
                if c.out.is_empty() {
                    self.close(registry, tok);
                }
                return;
            }
            if c.in_flight || c.out.len() > OUT_LIMIT {
                return;
            }
            match c.decoder.next_frame() {
                Ok(Some(frame)) => {
                    if frame.kind != Kind::Request {
                        self.counters.bad_frames += 1;
                        c.out
                            .extend(reply(Status::BadRequest, "expected a request frame"));
                        c.closing = true;
                    } else {
                        self.handle(registry, tok, frame.text);
                    }
                }
                Err(e) => {
                    // Say why, then hang up (as the shim does).
                    self.counters.bad_frames += 1;
                    tracing::debug!(peer = %c.peer, "bad control frame: {e}");
                    c.out.extend(reply(Status::BadRequest, &e.to_string()));
                    c.closing = true;
                }
                Ok(None) => match c.conn.read(&mut buf) {
                    Ok(0) => {
                        if c.out.is_empty() {
                            return self.close(registry, tok);
                        }
                        c.closing = true;
                    }
                    Ok(n) => c.decoder.push(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(registry, tok),
                },
            }
        }
    }

    /// One request: authentication here, everything else to the shim.
    fn handle(&mut self, registry: &Registry, tok: Token, line: String) {
        let Some(c) = self.clients.get_mut(&tok) else {
            return;
        };
        let auth = match Command::parse(&line) {
            Ok(Command::Auth(given)) => Some(given),
            _ => None,
        };
        if let Some(given) = auth {
            match &self.token {
                Some(expected) if !token_matches(expected, &given) => {
                    self.counters.unauthorized += 1;
                    tracing::warn!(peer = %c.peer, "control client sent a wrong token; closing");
                    c.out.extend(reply(Status::Unauthorized, "wrong token"));
                    c.closing = true;
                }
                Some(_) => {
                    c.authed = true;
                    c.auth_deadline = None;
                    c.out.extend(reply(Status::Ok, "authenticated"));
                }
                None => c
                    .out
                    .extend(reply(Status::Ok, "no token needed on this socket")),
            }
            return;
        }
        if c.tcp && !c.authed {
            self.counters.unauthorized += 1;
            tracing::warn!(peer = %c.peer, "control client did not authenticate; closing");
            c.out.extend(reply(
                Status::Unauthorized,
                "this control endpoint needs `auth TOKEN` first (elstream ctl --token-file FILE)",
            ));
            c.closing = true;
            return;
        }
        // Unknown commands too: the shim's own error reply is relayed.
        if let Err(msg) = self.connect_upstream(registry) {
            self.counters.failed += 1;
            if let Some(c) = self.clients.get_mut(&tok) {
                c.out.extend(reply(Status::Failed, &msg));
            }
            return;
        }
        let up = self.upstream.as_mut().expect("connected");
        up.out.extend(request(&line));
        up.waiting.push_back((tok, Instant::now()));
        // Only send here: replies (and a broken connection) are taken up on
        // the shim connection's own readiness events. Reading them here would
        // deliver them, whose clients send more, and so on: a recursion as
        // deep as the traffic (it overflowed the stack under a flood).
        let _ = write_upstream(up);
        if let Some(c) = self.clients.get_mut(&tok) {
            c.in_flight = true;
        }
        self.counters.relayed += 1;
    }

    fn connect_upstream(&mut self, registry: &Registry) -> std::result::Result<(), String> {
        if self.upstream.is_some() {
            return Ok(());
        }
        let unreachable = |e: io::Error| {
            format!(
                "cannot reach the shim's control socket {}: {e} (is the program running?)",
                self.to.display()
            )
        };
        let mut sock = UnixStream::connect(&self.to).map_err(unreachable)?;
        let token = Token(self.next_token);
        self.next_token += 1;
        registry
            .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(unreachable)?;
        self.upstream = Some(Upstream {
            sock,
            token,
            decoder: ControlDecoder::new(),
            out: Vec::new(),
            waiting: VecDeque::new(),
        });
        Ok(())
    }

    /// Sends queued requests to the shim, hands its replies to their clients.
    fn on_upstream(&mut self, registry: &Registry) {
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        let mut broken = write_upstream(up);
        // Read even with nothing asked: a shim that went away is noticed
        // now, and the next request reconnects.
        let mut buf = [0u8; READ_CHUNK];
        let mut idle_eof = false;
        while broken.is_none() {
            match up.sock.read(&mut buf) {
                Ok(0) if up.waiting.is_empty() => {
                    idle_eof = true;
                    break;
                }
                Ok(0) => broken = Some("the shim closed its control connection".to_string()),
                Ok(n) => up.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => broken = Some(format!("reading from the shim failed: {e}")),
            }
        }
        let mut answered = Vec::new();
        loop {
            match up.decoder.next_frame() {
                Ok(Some(f)) => match up.waiting.pop_front() {
                    Some((tok, _)) => answered.push((tok, reply(f.status, &f.text))),
                    None => {
                        broken = Some("the shim sent a reply nobody asked for".into());
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    broken = Some(format!("the shim sent a malformed reply: {e}"));
                    break;
                }
            }
        }
        if idle_eof && broken.is_none() {
            let mut up = self.upstream.take().expect("present");
            let _ = registry.deregister(&mut up.sock);
        } else if let Some(why) = &broken {
            answered.extend(self.drop_upstream(registry, why));
        }
        self.deliver(registry, answered);
    }

    /// Closes the shim connection; every waiting client gets a `Failed` reply.
    fn drop_upstream(&mut self, registry: &Registry, why: &str) -> Vec<(Token, Vec<u8>)> {
        let Some(mut up) = self.upstream.take() else {
            return Vec::new();
        };
        tracing::warn!(to = %self.to.display(), "control relay: {why}; reconnecting at the next request");
        let _ = registry.deregister(&mut up.sock);
        let text = format!("{why} (the command may or may not have run)");
        self.counters.failed += up.waiting.len() as u64;
        up.waiting
            .into_iter()
            .map(|(tok, _)| (tok, reply(Status::Failed, &text)))
            .collect()
    }

    fn deliver(&mut self, registry: &Registry, answered: Vec<(Token, Vec<u8>)>) {
        for (tok, bytes) in answered {
            if let Some(c) = self.clients.get_mut(&tok) {
                c.out.extend(bytes);
                c.in_flight = false;
                self.pump(registry, tok);
            }
        }
    }

    fn close(&mut self, registry: &Registry, tok: Token) {
        if let Some(mut c) = self.clients.remove(&tok) {
            c.conn.deregister(registry);
            tracing::debug!(peer = %c.peer, "control client closed");
        }
        // A reply still due to it is dropped when it arrives.
    }

    /// The `control` lines of the stats report.
    pub fn report(&self) -> String {
        let mut r = String::new();
        for l in &self.listeners {
            r.push_str(&format!("control {}\n", l.local()));
        }
        let c = self.counters;
        r.push_str(&format!(
            "relay to=unix:{} connected={} clients={} accepted={} refused={} relayed={} unauthorized={} failed={} bad_frames={}\n",
            self.to.display(),
            self.upstream.is_some(),
            self.clients.len(),
            c.accepted,
            c.refused,
            c.relayed,
            c.unauthorized,
            c.failed,
            c.bad_frames
        ));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("s3cret", "s3cret"));
        for wrong in ["", "s3cre", "s3crex", "s3cret!", "S3cret", "x"] {
            assert!(!token_matches("s3cret", wrong), "{wrong}");
        }
    }
}
