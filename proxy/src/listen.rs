//! Listening sockets for subscribers (and the stats socket). TCP binds where
//! told (the CLI defaults to 127.0.0.1); UNIX sockets are created 0600
//! (without touching the umask) and removed on exit.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use elstream_format::{ClassSet, Endpoint};
use mio::net::{TcpListener, UnixListener};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::subscriber::Conn;

/// A `--listen` argument: which session (`NAME=` before the endpoint; none =
/// the only one), where, and which event classes its subscribers get
/// (`?classes=gu` after the endpoint; none = everything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub session: Option<String>,
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

impl ListenSpec {
    /// A `--listen` argument (clap value parser).
    pub fn parse_arg(s: &str) -> std::result::Result<ListenSpec, String> {
        let (session, rest) = elstream_format::sources::split_name(s)?;
        let (base, classes) = ListenSpec::split(rest)?;
        Ok(ListenSpec {
            session: session.map(str::to_string),
            endpoint: parse_listen(base)?,
            classes,
        })
    }
}

/// Where to listen: tcp://HOST:PORT, a bare PORT (= tcp://127.0.0.1:PORT) or unix:PATH.
pub fn parse_listen(s: &str) -> std::result::Result<Endpoint, String> {
    let port = s.strip_prefix(':').unwrap_or(s);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return format!("tcp://127.0.0.1:{port}")
            .parse()
            .map_err(|e: elstream_format::endpoint::EndpointError| e.to_string());
    }
    match s.parse::<Endpoint>() {
        Ok(ep @ (Endpoint::Tcp(_) | Endpoint::Unix(_))) => Ok(ep),
        Ok(other) => Err(format!(
            "cannot listen on {other}: expected tcp://HOST:PORT, PORT or unix:PATH"
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl std::fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = &self.session {
            write!(f, "{n}=")?;
        }
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

/// Bound inside a private directory and renamed into place (see
/// `elstream_unixsock`): 0600 from the start, and the process umask, shared
/// with the proxy's other threads, is left alone.
fn bind_unix(endpoint: &Endpoint, path: &Path) -> Result<UnixListener> {
    let listener = elstream_unixsock::bind_private(path)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| listen_err(endpoint, e))?;
    Ok(UnixListener::from_std(listener))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unix_listeners_leave_the_umask_alone_and_are_private() {
        // Another thread of the proxy watches the process umask while UNIX
        // listeners are bound: it must never change.
        let dir = tempfile::tempdir().unwrap();
        let watch = elstream_unixsock::UmaskWatch::start();
        for i in 0..300 {
            let path = dir.path().join(format!("l{i}.sock"));
            let listener = Listener::bind(&Endpoint::Unix(path.clone())).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            drop(listener);
            assert!(!path.exists(), "removed when the listener goes");
        }
        watch.stop().unwrap();
        // Nothing left behind (no staging directories).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A live socket is refused, a stale one replaced, a file kept.
        let path = dir.path().join("s.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(Listener::bind(&Endpoint::Unix(path.clone())).is_err());
        drop(live);
        assert!(path.exists(), "a stale socket is left");
        drop(Listener::bind(&Endpoint::Unix(path.clone())).unwrap());
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(Listener::bind(&Endpoint::Unix(file.clone())).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
