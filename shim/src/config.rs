//! The config string given to `elstream_start`:
//! `ENDPOINT[,key=value]...`, e.g. `unix:/tmp/app.sock,ring=64M,start=now`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use elstream_format::control::{parse_duration, parse_size};
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
    /// Periodic flush (stock 9.0.2 writes a capability's buffer only when full).
    pub flush_interval: Option<Duration>,
    /// The control socket; default `<socket>.ctl`.
    pub control: Option<PathBuf>,
    /// Where `snapshot NAME` writes; names cannot leave it.
    pub snapshot_dir: PathBuf,
    /// `snapshot_dir` is the default, private one (checked before each use).
    pub snapshot_dir_is_default: bool,
    /// `log=stderr` (true, the default) or `log=off`: where the shim's own
    /// messages go when the host set no callback.
    pub log_stderr: bool,
}

pub const ENV_VAR: &str = "ELSTREAM";
pub const DEFAULT_RING: usize = 64 << 20;
const OPTIONS: &str =
    "ring, start, linger, classes, max-consumers, flush, control, snapshot-dir, log";
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
            flush_interval: None,
            control: None,
            snapshot_dir: default_snapshot_dir(),
            snapshot_dir_is_default: true,
            log_stderr: true,
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
                "flush" => {
                    config.flush_interval = match value {
                        "off" | "0" => None,
                        _ => Some(
                            parse_duration(value)
                                .filter(|d| *d >= Duration::from_millis(1))
                                .ok_or_else(|| bad("expected a duration such as 100ms, or off"))?,
                        ),
                    }
                }
                "control" => config.control = Some(PathBuf::from(value)),
                "log" => {
                    config.log_stderr = match value {
                        "stderr" => true,
                        "off" => false,
                        _ => return Err(bad("expected stderr or off")),
                    }
                }
                "snapshot-dir" => {
                    config.snapshot_dir = PathBuf::from(value);
                    config.snapshot_dir_is_default = false;
                }
                _ => {
                    return Err(Error::Config(format!(
                        "unknown option `{key}` (options: {OPTIONS})"
                    )))
                }
            }
        }
        let control = config.control_socket();
        if control.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::Config(format!(
                "control socket path {} is longer than {MAX_SOCKET_PATH} bytes; set control=PATH",
                control.display()
            )));
        }
        Ok(config)
    }

    pub fn control_socket(&self) -> PathBuf {
        self.control.clone().unwrap_or_else(|| {
            let mut p = self.socket.clone().into_os_string();
            p.push(".ctl");
            PathBuf::from(p)
        })
    }
}

/// The user's own directory for snapshots: `$XDG_RUNTIME_DIR/elstream`, else
/// `$TMPDIR/elstream-<uid>` (made 0700 at the first snapshot).
pub fn default_snapshot_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("elstream"),
        None => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            std::env::temp_dir().join(format!("elstream-{uid}"))
        }
    }
}

/// Makes the snapshot directory (and missing parents) 0700. The default one,
/// in a shared place, must also be ours and closed to others, or a snapshot
/// could land where another user reads it.
pub fn ensure_snapshot_dir(dir: &Path, is_default: bool) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let fail =
        |what: String| Error::Failed(format!("snapshot directory {}: {what}", dir.display()));
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    if !is_default {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(fail(format!(
            "not a directory of this user (uid {uid}); set snapshot-dir=DIR"
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(format!("cannot make it private: {e}")))?;
    }
    Ok(())
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
    fn flush_control_and_snapshot_options() {
        let c = Config::parse("unix:/tmp/a.sock").unwrap();
        assert!(c.snapshot_dir_is_default);
        assert_ne!(
            c.snapshot_dir,
            std::env::temp_dir(),
            "the default is private"
        );
        let c = Config::parse("unix:/tmp/a.sock,flush=100ms,snapshot-dir=/var/tmp").unwrap();
        assert!(!c.snapshot_dir_is_default);
        assert_eq!(c.flush_interval, Some(Duration::from_millis(100)));
        assert_eq!(c.control_socket(), PathBuf::from("/tmp/a.sock.ctl"));
        assert_eq!(c.snapshot_dir, PathBuf::from("/var/tmp"));
        let c = Config::parse("unix:/tmp/a.sock,control=/tmp/c,flush=off").unwrap();
        assert_eq!(
            (c.control_socket(), c.flush_interval),
            (PathBuf::from("/tmp/c"), None)
        );
        assert!(Config::parse("unix:/tmp/a.sock,flush=often").is_err());
        assert!(Config::parse("unix:/tmp/a.sock").unwrap().log_stderr);
        assert!(
            !Config::parse("unix:/tmp/a.sock,log=off")
                .unwrap()
                .log_stderr
        );
        let e = Config::parse("unix:/tmp/a.sock,log=syslog")
            .unwrap_err()
            .to_string();
        assert!(e.contains("stderr or off"), "{e}");
    }

    #[test]
    fn the_snapshot_dir_is_made_private_and_a_foreign_default_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("elstream-cfg-{}", std::process::id()));
        let dir = base.join("a/b");
        ensure_snapshot_dir(&dir, true).unwrap();
        for d in [&base.join("a"), &dir] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // A default dir someone left open is closed again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_snapshot_dir(&dir, true).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A symlink in the default's place (someone else's trap) is refused.
        let link = base.join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert!(ensure_snapshot_dir(&link, true).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
