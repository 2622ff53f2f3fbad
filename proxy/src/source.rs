//! The eventlog source: the shim's UNIX socket, a TCP stream, a FIFO, a file
//! followed like `tail -f`, or stdin. Sockets and FIFOs are polled by mio;
//! regular files cannot be (epoll refuses them), so they are read on a timer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elstream_format::Endpoint;
use mio::net::{TcpStream, UnixStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::error::{Error, Result};

/// How often a followed file is checked for growth at its end.
const FILE_POLL: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Pipe buffer asked for on the FIFO, so a busy loop iteration does not block the RTS.
const PIPE_SIZE: libc::c_int = 1 << 20;

pub const SOURCE: Token = Token(0);

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
    pub fn new(endpoint: Endpoint, reconnect_max: Duration) -> Result<Source> {
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
            if self.retry_at.is_some_and(|t| now >= t) {
                self.open(reg)?;
            }
        }
        Ok(())
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
            Endpoint::Tcp(hp) => {
                let addr = match hp.to_socket_addrs().map(|mut a| a.next()) {
                    Ok(Some(a)) => a,
                    Ok(None) => {
                        return Err(Error::Usage(format!("{ep}: host has no address")));
                    }
                    Err(e) => {
                        self.fail(format!("cannot resolve: {e}"));
                        return Ok(());
                    }
                };
                // Non-blocking connect: a refused connection shows up as a read error.
                match TcpStream::connect(addr) {
                    Ok(s) => Conn::Tcp(s),
                    Err(e) => {
                        self.fail(format!("cannot connect: {e}"));
                        return Ok(());
                    }
                }
            }
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
        self.stats.connects += 1;
        let r = match &mut self.conn {
            Conn::Unix(s) => reg.register(s, SOURCE, Interest::READABLE),
            Conn::Tcp(s) => reg.register(s, SOURCE, Interest::READABLE),
            Conn::Pipe(f) => {
                reg.register(&mut SourceFd(&f.as_raw_fd()), SOURCE, Interest::READABLE)
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
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
