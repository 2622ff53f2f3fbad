//! Endpoint syntax shared by the shim's config string and the proxy's CLI.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a stream comes from or goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp://HOST:PORT` or `tcp:HOST:PORT`; holds `HOST:PORT`.
    Tcp(String),
    /// `udp://HOST:PORT` or `udp:HOST:PORT`; holds `HOST:PORT`.
    Udp(String),
    /// `fifo:PATH`
    Fifo(PathBuf),
    /// `file:PATH`
    File(PathBuf),
    /// `-`
    Stdin,
}

/// Why an endpoint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("empty endpoint (expected unix:PATH, tcp://HOST:PORT, udp://HOST:PORT, fifo:PATH, file:PATH or -)")]
    Empty,
    #[error("unknown endpoint {0:?} (expected unix:PATH, tcp://HOST:PORT, udp://HOST:PORT, fifo:PATH, file:PATH or -)")]
    UnknownScheme(String),
    #[error("endpoint {0:?} has an empty path")]
    EmptyPath(String),
    #[error("endpoint {input:?}: expected HOST:PORT with a port number 0-65535, got {addr:?}")]
    BadHostPort { input: String, addr: String },
}

fn host_port(input: &str, addr: &str) -> Result<String, EndpointError> {
    let bad = || EndpointError::BadHostPort {
        input: input.to_string(),
        addr: addr.to_string(),
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    port.parse::<u16>().map_err(|_| bad())?;
    // An IPv6 host must be bracketed so the last ':' is the port's.
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad());
    }
    if host.contains('/') || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(addr.to_string())
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(EndpointError::Empty);
        }
        if s == "-" {
            return Ok(Endpoint::Stdin);
        }
        let path = |p: &str| -> Result<PathBuf, EndpointError> {
            if p.is_empty() {
                Err(EndpointError::EmptyPath(s.to_string()))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        if let Some(a) = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("tcp:")) {
            return host_port(s, a).map(Endpoint::Tcp);
        }
        if let Some(a) = s.strip_prefix("udp://").or_else(|| s.strip_prefix("udp:")) {
            return host_port(s, a).map(Endpoint::Udp);
        }
        if let Some(p) = s.strip_prefix("unix:") {
            return path(p).map(Endpoint::Unix);
        }
        if let Some(p) = s.strip_prefix("fifo:") {
            return path(p).map(Endpoint::Fifo);
        }
        if let Some(p) = s.strip_prefix("file:") {
            return path(p).map(Endpoint::File);
        }
        Err(EndpointError::UnknownScheme(s.to_string()))
    }
}

impl Endpoint {
    /// Like `parse`, but where a file is meant: a bare path (no `scheme:`
    /// before its first `/`, e.g. `run.eventlog`, `./x`, `/tmp/a:b`) is `file:PATH`.
    pub fn parse_or_file(s: &str) -> Result<Endpoint, EndpointError> {
        match s.parse() {
            Err(EndpointError::UnknownScheme(_)) if !has_scheme(s) => Ok(Endpoint::File(s.into())),
            r => r,
        }
    }
}

/// Whether `s` starts like `word:` (a scheme), not like a path.
fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) => !s[..i].contains('/'),
        None => false,
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Udp(a) => write!(f, "udp://{a}"),
            Endpoint::Fifo(p) => write!(f, "fifo:{}", p.display()),
            Endpoint::File(p) => write!(f, "file:{}", p.display()),
            Endpoint::Stdin => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_paths_are_files_where_a_file_is_meant() {
        let file = |p: &str| Ok(Endpoint::File(p.into()));
        assert_eq!(
            Endpoint::parse_or_file("run.eventlog"),
            file("run.eventlog")
        );
        assert_eq!(Endpoint::parse_or_file("./a/b"), file("./a/b"));
        assert_eq!(Endpoint::parse_or_file("/tmp/a:b"), file("/tmp/a:b"));
        assert_eq!(
            Endpoint::parse_or_file("tcp://h:1"),
            Ok(Endpoint::Tcp("h:1".into()))
        );
        assert_eq!(Endpoint::parse_or_file("-"), Ok(Endpoint::Stdin));
        assert!(matches!(
            Endpoint::parse_or_file("bogus:x"),
            Err(EndpointError::UnknownScheme(_))
        ));
        assert!("run.eventlog".parse::<Endpoint>().is_err());
    }
}
