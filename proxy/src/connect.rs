//! The one way the command's clients (ctl, recv, stats, watch) connect to a
//! stream endpoint: unix:PATH or tcp://HOST:PORT, blocking, with a read timeout.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use elstream_format::Endpoint;

/// A connected stream socket.
pub enum Connection {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// Connects to `endpoint`; `None` for an endpoint that is not a stream socket
/// (the caller says what it expected).
pub fn connect(endpoint: &Endpoint) -> Option<io::Result<Connection>> {
    Some(match endpoint {
        Endpoint::Unix(p) => UnixStream::connect(p).map(Connection::Unix),
        Endpoint::Tcp(hp) => TcpStream::connect(hp.as_str()).map(|s| {
            // Requests and replies are small: no Nagle delay.
            let _ = s.set_nodelay(true);
            Connection::Tcp(s)
        }),
        _ => return None,
    })
}

impl Connection {
    /// A read waiting longer than `timeout` fails with WouldBlock/TimedOut.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Connection::Unix(s) => s.set_read_timeout(timeout),
            Connection::Tcp(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Unix(s) => s.read(buf),
            Connection::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Unix(s) => s.write(buf),
            Connection::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Unix(s) => s.flush(),
            Connection::Tcp(s) => s.flush(),
        }
    }
}
