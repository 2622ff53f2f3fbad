//! Listening sockets for subscribers (and the stats socket). TCP binds where
//! told (the CLI defaults to 127.0.0.1); UNIX sockets are created 0600 and
//! removed on exit.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use elstream_format::{ClassSet, Endpoint};
use mio::net::{TcpListener, UnixListener};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::subscriber::Conn;

/// A `--listen` argument: where, and which event classes its subscribers get
/// (`?classes=gu` after the endpoint; none = everything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub endpoint: Endpoint,
    pub classes: Option<ClassSet>,
}

impl ListenSpec {
    /// Splits the `?key=value[&...]` options off a listen argument. Only
    /// `classes` is known; anything else is an error, not a path character.
    pub fn split(s: &str) -> std::result::Result<(&str, Option<ClassSet>), String> {
        let Some((base, query)) = s.rsplit_once('?') else {
            return Ok((s, None));
        };
        let mut classes = None;
        for opt in query.split('&') {
            match opt.split_once('=') {
                Some(("classes", v)) => {
                    classes = Some(ClassSet::parse(v).map_err(|e| {
                        format!("bad classes {v:?} in {s:?}: {e} (letters among s g n p f u)")
                    })?)
                }
                _ => {
                    return Err(format!(
                        "unknown listener option {opt:?} in {s:?} (expected ?classes=LETTERS)"
                    ))
                }
            }
        }
        Ok((base, classes))
    }
}

impl std::fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.classes {
            Some(c) => write!(f, "{}?classes={c}", self.endpoint),
            None => write!(f, "{}", self.endpoint),
        }
    }
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

fn listen_err(endpoint: &Endpoint, source: io::Error) -> Error {
    Error::Listen {
        endpoint: endpoint.to_string(),
        source,
    }
}

fn bind_tcp(endpoint: &Endpoint, hp: &str) -> Result<TcpListener> {
    let addr: SocketAddr = hp
        .to_socket_addrs()
        .map_err(|e| listen_err(endpoint, e))?
        .next()
        .ok_or_else(|| Error::Usage(format!("{endpoint}: host has no address")))?;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| listen_err(endpoint, e))?;
    // Restarting the proxy must not wait for TIME_WAIT to expire.
    sock.set_reuse_address(true)
        .map_err(|e| listen_err(endpoint, e))?;
    sock.set_nonblocking(true)
        .map_err(|e| listen_err(endpoint, e))?;
    sock.bind(&addr.into())
        .map_err(|e| listen_err(endpoint, e))?;
    sock.listen(1024).map_err(|e| listen_err(endpoint, e))?;
    Ok(TcpListener::from_std(sock.into()))
}

fn bind_unix(endpoint: &Endpoint, path: &Path) -> Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A live socket is in use; a dead one is left over from a crash.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(listen_err(
                    endpoint,
                    io::Error::new(io::ErrorKind::AddrInUse, "socket in use by another process"),
                ));
            }
            std::fs::remove_file(path).map_err(|e| listen_err(endpoint, e))?;
        }
        Ok(_) => {
            return Err(listen_err(
                endpoint,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "path exists and is not a socket",
                ),
            ))
        }
        Err(_) => {}
    }
    // SAFETY: umask(2) only swaps the process's mask; we restore it at once.
    // The socket file is created 0600 (no window with wider permissions).
    let old = unsafe { libc::umask(0o177) };
    let r = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r.map_err(|e| listen_err(endpoint, e))
}

impl Listener {
    pub fn bind(endpoint: &Endpoint) -> Result<Listener> {
        match endpoint {
            Endpoint::Tcp(hp) => Ok(Listener::Tcp(bind_tcp(endpoint, hp)?)),
            Endpoint::Unix(p) => Ok(Listener::Unix(bind_unix(endpoint, p)?, p.clone())),
            other => Err(Error::Usage(format!(
                "cannot listen on {other}: expected tcp://HOST:PORT or unix:PATH"
            ))),
        }
    }

    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Listener::Tcp(l) => l,
            Listener::Unix(l, _) => l,
        }
    }

    /// The bound address (useful with port 0).
    pub fn local(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| format!("tcp://{a}"))
                .unwrap_or_default(),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    pub fn accept(&self) -> io::Result<(Conn, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, a) = l.accept()?;
                Ok((Conn::Tcp(s), format!("tcp:{a}")))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept()?;
                Ok((Conn::Unix(s), format!("unix:{}", p.display())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}
