//! Binding a UNIX listening socket that only its owner can reach, without
//! touching the process umask: the shim runs inside a host program whose
//! other threads create files meanwhile, and the proxy should not differ.
//!
//! The socket file appears at `bind`, with the mode the umask leaves, before
//! `listen`. So it is bound inside a new 0700 directory next to the path
//! (nobody else can reach it there), made 0600, and renamed into place: a
//! client never sees a path that refuses or is open to others.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `sun_path` holds 107 bytes and the NUL.
const MAX_SUN_PATH: usize = 107;

/// Binds `path` 0600, replacing a stale socket there (one nobody serves);
/// refuses a live socket or anything that is not a socket. The listener is
/// blocking, as `std` makes it.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to replace it",
            ));
        }
        // A live socket means another program serves it.
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "in use by another process",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let staging = private_dir_beside(path)?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged).and_then(|l| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// Makes a new 0700 directory in `path`'s directory, named short so that a
/// socket inside it fits `sun_path` whenever `path` nearly does.
fn private_dir_beside(path: &Path) -> io::Result<PathBuf> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    for _ in 0..16 {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".e{:x}{n:x}", std::process::id()));
        if dir.as_os_str().len() + 2 > MAX_SUN_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket's directory path is too long to bind privately in \
                     (at most {} bytes)",
                    MAX_SUN_PATH - 2 - dir.file_name().map_or(0, |f| f.len()) - 1
                ),
            ));
        }
        // mkdir fails on anything already there, a symlink included.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                // The umask may have taken bits off (never added any): set it whole.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "cannot make a private directory to bind in",
    ))
}

/// For tests of the callers: the process umask now, from /proc (reading it
/// with umask(2) would change it).
pub fn umask_now() -> io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .ok_or_else(|| io::Error::other("no Umask line in /proc/self/status"))
}

/// For tests of the callers: a thread that watches the process umask (as
/// another thread of the program would see it) until [`UmaskWatch::stop`].
pub struct UmaskWatch {
    before: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u32>>,
}

impl UmaskWatch {
    pub fn start() -> UmaskWatch {
        let before = umask_now().expect("read the umask");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let now = umask_now().expect("read the umask");
                if now != before {
                    seen.push(now);
                }
            }
            seen
        });
        UmaskWatch {
            before,
            stop,
            thread,
        }
    }

    /// Stops watching; a message naming the other umasks seen, if any.
    pub fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().expect("the watcher");
        match seen.first() {
            None => Ok(()),
            Some(m) => Err(format!(
                "the umask changed from {:o} to {m:o} ({} times seen)",
                self.before,
                seen.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_and_a_file_refused() {
        let dir = std::env::temp_dir().join(format!("elstream-unixsock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let live = bind_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = bind_private(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(live);
        bind_private(&path).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, b"keep me").unwrap();
        assert!(bind_private(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
        // Too long a directory for sun_path: a clear error, not a truncation.
        let long = dir.join("d".repeat(120)).join("s.sock");
        assert!(bind_private(&long).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(umask_now().is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
