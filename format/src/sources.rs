//! Named sources (`NAME=ENDPOINT`) and finding shim sockets in a directory:
//! shared by `elstream proxy`, `elstream metrics` and `elstream ui`, which
//! sit on this crate (no byte layouts here, but no cycle either).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::Endpoint;

/// Where the shim puts its socket when told nothing: `unix:/tmp/elstream-<pid>.sock`
/// (shim/src/config.rs).
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";

/// Whether `file_name` is the shim's default socket name, `elstream-<pid>.sock`.
pub fn is_default_socket_name(file_name: &str) -> bool {
    file_name
        .strip_prefix("elstream-")
        .and_then(|r| r.strip_suffix(".sock"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a session name may be used: letters, digits, `.`, `_`, `-`
/// (it goes into stats lines, URLs and file names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits `NAME=REST` off an argument; `None` when it has no name (no `=`,
/// or what precedes the first `=` holds a `:`, `/` or `?`, so it is part of
/// an endpoint such as `file:/a=b` or `4243?classes=gu`). A name that is
/// there but not [`valid_name`] (`=unix:x`, `a b=unix:x`) is an error.
pub fn split_name(s: &str) -> Result<(Option<&str>, &str), String> {
    let Some((name, rest)) = s.split_once('=') else {
        return Ok((None, s));
    };
    if name.contains([':', '/', '?']) {
        return Ok((None, s));
    }
    if !valid_name(name) {
        return Err(format!(
            "bad session name {name:?} in {s:?} (expected NAME=ENDPOINT, NAME of letters, digits, '.', '_', '-')"
        ));
    }
    if rest.is_empty() {
        return Err(format!(
            "{s:?}: nothing after {name}= (expected NAME=ENDPOINT)"
        ));
    }
    Ok((Some(name), rest))
}

/// The name a source gets when none is given: its socket or file name
/// without `.sock`, `HOST:PORT`, or `stdin`.
pub fn default_name(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Unix(p) | Endpoint::File(p) | Endpoint::Fifo(p) => p
            .file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".sock").to_string())
            .unwrap_or_else(|| ep.to_string()),
        Endpoint::Tcp(a) | Endpoint::Udp(a) => a.clone(),
        Endpoint::Stdin => "stdin".into(),
    }
}

/// The shim sockets in `dir`, sorted: every UNIX socket but the control ones
/// (`*.ctl`); with `default_names_only`, only `elstream-<pid>.sock` (for a
/// shared directory such as /tmp, where other programs keep sockets too).
pub fn shim_sockets(dir: &Path, default_names_only: bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let named = if default_names_only {
                is_default_socket_name(&n)
            } else {
                !n.ends_with(".ctl")
            };
            // file_type does not follow symlinks; metadata does (a link to a socket counts).
            named && std::fs::metadata(e.path()).is_ok_and(|m| m.file_type().is_socket())
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_off_only_where_meant() {
        assert_eq!(split_name("a=unix:/x").unwrap(), (Some("a"), "unix:/x"));
        assert_eq!(split_name("unix:/x").unwrap(), (None, "unix:/x"));
        assert_eq!(split_name("file:/a=b").unwrap(), (None, "file:/a=b"));
        assert_eq!(split_name("./a=b").unwrap(), (None, "./a=b"));
        assert_eq!(
            split_name("4243?classes=gu").unwrap(),
            (None, "4243?classes=gu")
        );
        assert_eq!(
            split_name("web-1=4243?classes=gu").unwrap(),
            (Some("web-1"), "4243?classes=gu")
        );
        assert!(split_name("=unix:/x")
            .unwrap_err()
            .contains("bad session name"));
        assert!(split_name("a b=unix:/x").is_err());
        assert!(split_name("a=").unwrap_err().contains("nothing after"));
    }

    #[test]
    fn default_names_and_default_socket_names() {
        assert_eq!(default_name(&"unix:/tmp/app.sock".parse().unwrap()), "app");
        assert_eq!(default_name(&"tcp://h:1".parse().unwrap()), "h:1");
        assert_eq!(default_name(&Endpoint::Stdin), "stdin");
        assert!(is_default_socket_name("elstream-123.sock"));
        assert!(!is_default_socket_name("elstream-.sock"));
        assert!(!is_default_socket_name("elstream-123.sock.ctl"));
        assert!(!is_default_socket_name("app.sock"));
    }

    #[test]
    fn sockets_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("elstream-sources-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _a = std::os::unix::net::UnixListener::bind(dir.join("a.sock")).unwrap();
        let _c = std::os::unix::net::UnixListener::bind(dir.join("a.sock.ctl")).unwrap();
        let _d = std::os::unix::net::UnixListener::bind(dir.join("elstream-7.sock")).unwrap();
        std::fs::write(dir.join("plain.sock"), b"not a socket").unwrap();
        assert_eq!(
            shim_sockets(&dir, false),
            vec![dir.join("a.sock"), dir.join("elstream-7.sock")]
        );
        assert_eq!(shim_sockets(&dir, true), vec![dir.join("elstream-7.sock")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
