//! The eventlog source: the shim's UNIX socket, a TCP stream, a FIFO, a file
//! followed like `tail -f`, or stdin. Sockets and FIFOs are polled by mio;
//! regular files cannot be (epoll refuses them), so they are read on a timer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use elstream_format::Endpoint;
use mio::net::{TcpStream, UnixStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Waker};

use crate::error::{Error, Result};

/// How often a followed file is checked for growth at its end.
const FILE_POLL: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Pipe buffer asked for on the FIFO, so a busy loop iteration does not block the RTS.
const PIPE_SIZE: libc::c_int = 1 << 20;

use mio::Token;

/// A name lookup (`HOST:PORT` to addresses). It blocks, so it runs on a
/// thread of its own, never on the loop.
pub type Resolve = fn(&str) -> io::Result<Vec<SocketAddr>>;

fn resolve_system(hp: &str) -> io::Result<Vec<SocketAddr>> {
    hp.to_socket_addrs().map(Iterator::collect)
}

/// A lookup running on its thread; the waker wakes the loop when it is done.
struct Lookup {
    rx: mpsc::Receiver<io::Result<Vec<SocketAddr>>>,
}

enum Conn {
    Down,
    Unix(UnixStream),
    Tcp(TcpStream),
    /// A FIFO or a non-regular stdin.
    Pipe(File),
    /// A regular file (or stdin redirected from one), read on a timer.
    Timed {
        file: File,
        pos: u64,
        ino: u64,
        follow: bool,
    },
}

#[derive(Clone, Debug, Default)]
pub struct SourceStats {
    pub bytes: u64,
    pub connects: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Damaged blocks whose valid prefix was delivered (the rest dropped).
    pub damaged_blocks: u64,
    /// Bytes dropped from damaged or cut-off input.
    pub dropped_bytes: u64,
}

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    Data(usize),
    /// Nothing to read now.
    Empty,
    /// This connection/writer ended (the session is over); the source will
    /// reconnect or reopen by itself.
    Ended,
    /// No more data, ever (stdin at EOF, or the `run` program exited).
    Finished,
}

pub struct Source {
    pub endpoint: Endpoint,
    conn: Conn,
    pub stats: SourceStats,
    backoff: Duration,
    reconnect_max: Duration,
    retry_at: Option<Instant>,
    /// Readiness seen and not yet consumed up to WouldBlock.
    pub ready: bool,
    /// Bytes read since the current connection/open.
    since_open: u64,
    /// A FIFO we created (removed on drop).
    created_fifo: Option<PathBuf>,
    /// `run` mode: the writer is gone for good once the FIFO reports EOF.
    pub final_eof: bool,
    warned: bool,
    resolve: Resolve,
    lookup: Option<Lookup>,
    waker: Option<Arc<Waker>>,
    /// This source's poll tokens (tokens.rs: its slot's read and waker tokens).
    token: Token,
    waker_token: Token,
}

fn is_regular(file: &File) -> bool {
    file.metadata().map(|m| m.is_file()).unwrap_or(false)
}

fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own; F_GETFL/F_SETFL take and return plain ints.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Creates a FIFO with mode 0600.
pub fn mkfifo(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open_fifo(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    grow_pipe(&f);
    Ok(f)
}

/// A bigger pipe buffer: fewer wake-ups for both ends, and a writer (the RTS,
/// with `-ol<fifo>`) blocks less often.
fn grow_pipe(f: &File) {
    // SAFETY: F_SETPIPE_SZ on our own fd; failure (not a pipe, or above the
    // system's pipe-max-size) only leaves the size as it was.
    unsafe {
        libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}

impl Source {
    /// Checks the endpoint and prepares the source (a missing FIFO is created).
    pub fn new(
        endpoint: Endpoint,
        reconnect_max: Duration,
        (token, waker_token): (Token, Token),
    ) -> Result<Source> {
        let mut created_fifo = None;
        match &endpoint {
            Endpoint::Fifo(p) => match std::fs::metadata(p) {
                Ok(m) if m.file_type().is_fifo() => {}
                Ok(_) => {
                    return Err(Error::Source {
                        endpoint: endpoint.to_string(),
                        message: "exists and is not a FIFO (use file:PATH for a regular file)"
                            .into(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    mkfifo(p)
                        .map_err(|e| Error::io(format!("cannot create FIFO {}", p.display()), e))?;
                    created_fifo = Some(p.clone());
                }
                Err(e) => return Err(Error::io(format!("source {endpoint}"), e)),
            },
            Endpoint::Udp(_) => {
                return Err(Error::Usage(format!(
                    "{endpoint} cannot be a source (use `elstream recv` for UDP)"
                )))
            }
            _ => {}
        }
        Ok(Source {
            endpoint,
            conn: Conn::Down,
            stats: SourceStats::default(),
            backoff: BACKOFF_MIN,
            reconnect_max,
            retry_at: Some(Instant::now()),
            ready: false,
            since_open: 0,
            created_fifo,
            final_eof: false,
            warned: false,
            resolve: resolve_system,
            lookup: None,
            waker: None,
            token,
            waker_token,
        })
    }

    pub fn is_connected(&self) -> bool {
        !matches!(self.conn, Conn::Down)
    }

    /// When the loop must wake up for this source.
    pub fn deadline(&self) -> Option<Instant> {
        match self.conn {
            Conn::Down | Conn::Timed { .. } => self.retry_at,
            _ => None,
        }
    }

    /// Timer work: reconnect when due; timed files become ready.
    pub fn tick(&mut self, now: Instant, reg: &Registry) -> Result<()> {
        if let Conn::Down = self.conn {
            if self.lookup.is_some() {
                self.lookup_done(reg)?;
            } else if self.retry_at.is_some_and(|t| now >= t) {
                self.open(reg)?;
            }
        }
        Ok(())
    }

    /// Uses another name lookup (tests: a slow or empty one).
    #[cfg(test)]
    pub fn with_resolver(mut self, resolve: Resolve) -> Source {
        self.resolve = resolve;
        self
    }

    /// Starts looking up a `tcp:` source's name on a thread.
    fn start_lookup(&mut self, reg: &Registry, hp: &str) -> Result<()> {
        let waker = match &self.waker {
            Some(w) => w.clone(),
            None => {
                let w = Arc::new(
                    Waker::new(reg, self.waker_token)
                        .map_err(|e| Error::io("cannot create a waker", e))?,
                );
                self.waker = Some(w.clone());
                w
            }
        };
        let (tx, rx) = mpsc::channel();
        let resolve = self.resolve;
        let hp = hp.to_string();
        std::thread::Builder::new()
            .name("elstream-resolve".into())
            .spawn(move || {
                let _ = tx.send(resolve(&hp));
                let _ = waker.wake();
            })
            .map_err(|e| Error::io("cannot start a thread for the name lookup", e))?;
        self.lookup = Some(Lookup { rx });
        Ok(())
    }

    /// Takes up a finished lookup: connect, or a logged error retried later.
    fn lookup_done(&mut self, reg: &Registry) -> Result<()> {
        let Some(l) = &self.lookup else { return Ok(()) };
        let r = match l.rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(io::Error::other("the lookup thread died"))
            }
        };
        self.lookup = None;
        let addr = match r {
            Ok(addrs) => match addrs.first() {
                Some(a) => *a,
                None => {
                    self.fail("cannot resolve: the name has no address".into());
                    return Ok(());
                }
            },
            Err(e) => {
                self.fail(format!("cannot resolve: {e}"));
                return Ok(());
            }
        };
        // Non-blocking connect: a refused connection shows up as a read error.
        match TcpStream::connect(addr) {
            Ok(s) => {
                self.conn = Conn::Tcp(s);
                self.opened(reg)
            }
            Err(e) => {
                self.fail(format!("cannot connect: {e}"));
                Ok(())
            }
        }
    }

    /// Whether a read may be due: pollable and ready, or a timed file.
    pub fn wants_read(&self) -> bool {
        match self.conn {
            Conn::Down => false,
            Conn::Timed { .. } => self.retry_at.is_none_or(|t| Instant::now() >= t),
            _ => self.ready,
        }
    }

    fn fail(&mut self, what: String) {
        self.stats.errors += 1;
        if !self.warned {
            tracing::warn!(source = %self.endpoint, "{what}; retrying");
            self.warned = true;
        } else {
            tracing::debug!(source = %self.endpoint, "{what}");
        }
        self.stats.last_error = Some(what);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.reconnect_max);
    }

    fn open(&mut self, reg: &Registry) -> Result<()> {
        self.retry_at = None;
        self.since_open = 0;
        let ep = self.endpoint.clone();
        let conn = match &ep {
            Endpoint::Unix(p) => match UnixStream::connect(p) {
                Ok(s) => Conn::Unix(s),
                Err(e) => {
                    self.fail(format!("cannot connect: {e}"));
                    return Ok(());
                }
            },
            Endpoint::Tcp(hp) => return self.start_lookup(reg, hp),
            Endpoint::Fifo(p) => match open_fifo(p) {
                Ok(f) => Conn::Pipe(f),
                Err(e) => {
                    return Err(Error::io(format!("cannot open FIFO {}", p.display()), e));
                }
            },
            Endpoint::File(p) => match File::open(p) {
                Ok(f) => {
                    let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                    Conn::Timed {
                        file: f,
                        pos: 0,
                        ino,
                        follow: true,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // tail -F: wait for the file to appear.
                    self.fail(format!("{} does not exist yet", p.display()));
                    return Ok(());
                }
                Err(e) => return Err(Error::io(format!("cannot open {}", p.display()), e)),
            },
            Endpoint::Stdin => {
                let fd = io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("cannot use stdin", e))?;
                let file = File::from(fd);
                if is_regular(&file) {
                    Conn::Timed {
                        file,
                        pos: 0,
                        ino: 0,
                        follow: false,
                    }
                } else {
                    set_nonblocking(&file).map_err(|e| Error::io("stdin", e))?;
                    grow_pipe(&file);
                    Conn::Pipe(file)
                }
            }
            Endpoint::Udp(_) => unreachable!("rejected in Source::new"),
        };
        self.conn = conn;
        self.opened(reg)
    }

    /// Registers a fresh connection with the loop.
    fn opened(&mut self, reg: &Registry) -> Result<()> {
        let ep = self.endpoint.clone();
        let token = self.token;
        self.stats.connects += 1;
        let r = match &mut self.conn {
            Conn::Unix(s) => reg.register(s, token, Interest::READABLE),
            Conn::Tcp(s) => reg.register(s, token, Interest::READABLE),
            Conn::Pipe(f) => reg.register(&mut SourceFd(&f.as_raw_fd()), token, Interest::READABLE),
            _ => Ok(()),
        };
        if let Err(e) = r {
            if let (Endpoint::Stdin, Conn::Pipe(_)) = (&self.endpoint, &self.conn) {
                if e.raw_os_error() == Some(libc::EPERM) {
                    // epoll refuses /dev/null and the like: read it like a file.
                    let Conn::Pipe(file) = std::mem::replace(&mut self.conn, Conn::Down) else {
                        unreachable!()
                    };
                    self.conn = Conn::Timed {
                        file,
                        pos: 0,
                        ino: 0,
                        follow: false,
                    };
                    self.ready = true;
                    return Ok(());
                }
            }
            self.conn = Conn::Down;
            return Err(Error::io(format!("cannot poll source {ep}"), e));
        }
        tracing::debug!(source = %self.endpoint, "source open");
        // Read at once: data may already be there. Not for a FIFO: registering
        // reports data already there, and reading a writer-less FIFO would
        // spin on EOF.
        self.ready = !matches!(self.endpoint, Endpoint::Fifo(_));
        Ok(())
    }

    fn close(&mut self, reg: &Registry) {
        match &mut self.conn {
            Conn::Unix(s) => {
                let _ = reg.deregister(s);
            }
            Conn::Tcp(s) => {
                let _ = reg.deregister(s);
            }
            Conn::Pipe(f) => {
                let _ = reg.deregister(&mut SourceFd(&f.as_raw_fd()));
            }
            _ => {}
        }
        self.conn = Conn::Down;
        self.ready = false;
    }

    /// Whether the end of this input is the end for good (stdin): then bad
    /// or cut-off input is an error for the whole run, not a retry.
    pub fn is_once(&self) -> bool {
        matches!(self.endpoint, Endpoint::Stdin)
    }

    /// Called after a session was read without errors: reconnect quickly next time.
    fn reset_backoff(&mut self) {
        self.backoff = BACKOFF_MIN;
        self.warned = false;
    }

    /// Drops the connection after a format error and retries later (sockets,
    /// FIFOs) or reports that the source is unusable (files, stdin).
    pub fn reject(&mut self, reg: &Registry, why: &str) -> bool {
        self.close(reg);
        match self.endpoint {
            Endpoint::Unix(_) | Endpoint::Tcp(_) => {
                self.fail(why.to_string());
                true
            }
            Endpoint::Fifo(_) => {
                // The writer's data is useless until it reopens: reopen at once.
                self.stats.errors += 1;
                self.stats.last_error = Some(why.to_string());
                self.retry_at = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    pub fn read(&mut self, reg: &Registry, buf: &mut [u8]) -> ReadResult {
        let now = Instant::now();
        let r = match &mut self.conn {
            Conn::Down => return ReadResult::Empty,
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Pipe(f) => f.read(buf),
            Conn::Timed { file, pos, .. } => {
                let r = file.read(buf);
                if let Ok(n) = r {
                    *pos += n as u64;
                }
                r
            }
        };
        match r {
            Ok(0) => self.at_eof(reg, now),
            Ok(n) => {
                if let Conn::Timed { .. } = self.conn {
                    self.retry_at = None;
                }
                self.since_open += n as u64;
                self.stats.bytes += n as u64;
                if self.since_open == n as u64 {
                    self.reset_backoff();
                }
                ReadResult::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ready = false;
                ReadResult::Empty
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadResult::Empty,
            Err(e) => {
                self.close(reg);
                self.fail(format!("read error: {e}"));
                ReadResult::Ended
            }
        }
    }

    fn at_eof(&mut self, reg: &Registry, now: Instant) -> ReadResult {
        let had_data = self.since_open > 0;
        match &mut self.conn {
            Conn::Timed {
                file,
                pos,
                ino,
                follow,
            } => {
                if !*follow {
                    self.close(reg);
                    return ReadResult::Finished;
                }
                let Endpoint::File(path) = &self.endpoint else {
                    unreachable!("only file: sources are followed")
                };
                match std::fs::metadata(path) {
                    Ok(m) if m.ino() != *ino => {
                        tracing::info!(source = %self.endpoint, "file replaced; reopening");
                        self.close(reg);
                        self.retry_at = Some(now);
                        ReadResult::Ended
                    }
                    Ok(m) if m.len() < *pos => {
                        tracing::info!(source = %self.endpoint, "file truncated; reading it from the start");
                        let _ = file.seek(SeekFrom::Start(0));
                        *pos = 0;
                        self.since_open = 0;
                        ReadResult::Ended
                    }
                    _ => {
                        self.retry_at = Some(now + FILE_POLL);
                        ReadResult::Empty
                    }
                }
            }
            Conn::Pipe(_) if matches!(self.endpoint, Endpoint::Stdin) || self.final_eof => {
                self.close(reg);
                ReadResult::Finished
            }
            Conn::Pipe(_) => {
                // FIFO writer closed: reopen for the next writer.
                self.close(reg);
                self.retry_at = Some(now);
                if had_data {
                    ReadResult::Ended
                } else {
                    ReadResult::Empty
                }
            }
            Conn::Unix(_) | Conn::Tcp(_) => {
                self.close(reg);
                self.fail("connection closed".into());
                ReadResult::Ended
            }
            Conn::Down => ReadResult::Empty,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(p) = &self.created_fifo {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_and_empty(_: &str) -> io::Result<Vec<SocketAddr>> {
        std::thread::sleep(Duration::from_millis(500));
        Ok(Vec::new())
    }

    /// A lookup never blocks the loop, and a name without addresses is a
    /// logged, retried error (it ended the proxy with a usage error before).
    #[test]
    fn name_lookup_runs_off_the_loop_and_an_empty_one_is_retried() {
        let mut poll = mio::Poll::new().unwrap();
        let mut src = Source::new(
            Endpoint::Tcp("slow.invalid:1".into()),
            Duration::from_secs(1),
            crate::tokens::source_tokens(0),
        )
        .unwrap()
        .with_resolver(slow_and_empty);
        let t0 = Instant::now();
        src.tick(Instant::now(), poll.registry()).unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "tick waited for the lookup"
        );
        assert!(!src.is_connected());
        let mut events = mio::Events::with_capacity(8);
        let mut woken = false;
        while !woken && t0.elapsed() < Duration::from_secs(10) {
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            woken = events
                .iter()
                .any(|e| e.token() == crate::tokens::source_tokens(0).1);
        }
        assert!(woken, "the lookup did not wake the loop");
        src.tick(Instant::now(), poll.registry()).unwrap();
        assert_eq!(src.stats.errors, 1);
        let err = src.stats.last_error.clone().unwrap_or_default();
        assert!(err.contains("no address"), "{err}");
        // Retried: a new lookup starts once the backoff is over.
        assert!(src.deadline().is_some());
        src.tick(src.deadline().unwrap(), poll.registry()).unwrap();
        assert!(src.lookup.is_some(), "no retry");
    }
}
