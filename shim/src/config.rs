//! The config string given to `elstream_start`:
//! `ENDPOINT[,key=value]...`, e.g. `unix:/tmp/app.sock,ring=64M,start=now`.

use std::path::PathBuf;
use std::time::Duration;

use elstream_format::endpoint::Endpoint;
use elstream_format::ClassSet;

use crate::error::Error;

/// Which blocks a newly connected consumer receives first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest block still in the ring: nothing still in memory is missed.
    Oldest,
    /// Only blocks written after the connection.
    Now,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub socket: PathBuf,
    pub ring_bytes: usize,
    pub start_at: StartAt,
    /// How long the RTS's final stop waits for consumers to receive the tail.
    pub linger: Duration,
    /// Classes switched on when the program was not started with `+RTS -l`.
    pub classes: ClassSet,
    pub max_consumers: usize,
}

pub const ENV_VAR: &str = "ELSTREAM";
pub const DEFAULT_RING: usize = 64 << 20;
const OPTIONS: &str = "ring, start, linger, classes, max-consumers";
/// `sun_path` is 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

impl Config {
    /// Parses `text`; an empty text means `$ELSTREAM`, then the defaults.
    pub fn resolve(text: &str) -> Result<Config, Error> {
        if !text.trim().is_empty() {
            return Config::parse(text);
        }
        match std::env::var(ENV_VAR) {
            Ok(env) if !env.trim().is_empty() => Config::parse(&env),
            _ => Config::parse(&format!("unix:/tmp/elstream-{}.sock", std::process::id())),
        }
    }

    pub fn parse(text: &str) -> Result<Config, Error> {
        let mut parts = text.trim().split(',');
        let endpoint = parts.next().unwrap_or_default().trim();
        let socket = match endpoint
            .parse::<Endpoint>()
            .map_err(|e| Error::Config(e.to_string()))?
        {
            Endpoint::Unix(path) => path,
            other => {
                return Err(Error::Config(format!(
                    "the shim serves a UNIX socket (unix:PATH), not {other}; \
                     use `elstream proxy` to serve TCP or UDP"
                )))
            }
        };
        let len = socket.as_os_str().len();
        if len == 0 || len > MAX_SOCKET_PATH {
            return Err(Error::Config(format!(
                "socket path must be 1 to {MAX_SOCKET_PATH} bytes, {} is {len}",
                socket.display()
            )));
        }
        let mut config = Config {
            socket,
            ring_bytes: DEFAULT_RING,
            start_at: StartAt::Oldest,
            linger: Duration::from_secs(2),
            classes: ClassSet::DEFAULT,
            max_consumers: 64,
        };
        for opt in parts {
            let opt = opt.trim();
            let (key, value) = opt.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "option `{opt}` is not key=value (options: {OPTIONS})"
                ))
            })?;
            let bad = |what: &str| Error::Config(format!("{key}={value}: {what}"));
            match key.trim() {
                "ring" => {
                    config.ring_bytes =
                        parse_size(value).ok_or_else(|| bad("expected a size such as 64M"))?;
                    if config.ring_bytes < 4 << 20 {
                        return Err(bad("the ring must hold at least 4M (two RTS buffers)"));
                    }
                }
                "start" => {
                    config.start_at = match value {
                        "oldest" => StartAt::Oldest,
                        "now" => StartAt::Now,
                        _ => return Err(bad("expected oldest or now")),
                    }
                }
                "linger" => {
                    config.linger = parse_duration(value)
                        .ok_or_else(|| bad("expected a duration such as 2s or 500ms"))?
                }
                "classes" => {
                    config.classes = ClassSet::parse(value).map_err(|e| bad(&e.to_string()))?
                }
                "max-consumers" => {
                    config.max_consumers = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("expected a positive number"))?
                }
                _ => {
                    return Err(Error::Config(format!(
                        "unknown option `{key}` (options: {OPTIONS})"
                    )))
                }
            }
        }
        Ok(config)
    }
}

/// `64M`, `512K`, `1G`, `65536` (bytes); the `iB` forms too.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix('B'))
        .unwrap_or(s);
    let (num, shift) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 10),
        'M' | 'm' => (&s[..s.len() - 1], 20),
        'G' | 'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<usize>().ok()?.checked_mul(1 << shift)
}

/// `2s`, `500ms`, `1m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(sec) = s.strip_suffix('s') {
        return sec
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0 && v.is_finite())
            .map(Duration::from_secs_f64);
    }
    if let Some(min) = s.strip_suffix('m') {
        return min.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_and_options() {
        let c =
            Config::parse("unix:/tmp/a.sock,ring=8M,start=now,linger=250ms,classes=gu").unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/a.sock"));
        assert_eq!(c.ring_bytes, 8 << 20);
        assert_eq!(c.start_at, StartAt::Now);
        assert_eq!(c.linger, Duration::from_millis(250));
        assert_eq!(c.classes.to_string(), "gu");
    }

    #[test]
    fn rejects_bad_configs_with_reasons() {
        for (text, needle) in [
            ("bogus", ""),
            ("tcp://127.0.0.1:1", "UNIX socket"),
            ("unix:/tmp/a.sock,ring", "key=value"),
            ("unix:/tmp/a.sock,ring=lots", "size"),
            ("unix:/tmp/a.sock,ring=1K", "at least"),
            ("unix:/tmp/a.sock,colour=red", "unknown option"),
            ("unix:/tmp/a.sock,start=later", "oldest or now"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let long = format!("unix:/tmp/{}", "x".repeat(200));
        assert!(Config::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("bytes"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), None);
    }
}
