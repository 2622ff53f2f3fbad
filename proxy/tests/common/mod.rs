//! Helpers shared by the proxy's integration tests: real processes, real
//! sockets; every output is judged by ghc-events through testkit.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use testkit::*;

/// Generous: the CI box is a noisy 2-core machine.
pub const LONG: Duration = Duration::from_secs(120);

pub fn elstream() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_elstream"))
}

/// `elstream ARGS` with stderr into `dir/<label>.stderr` (read it with [`stderr_of`]).
pub fn elstream_cmd(dir: &TempDir, label: &str, args: &[&str]) -> Command {
    let mut c = Command::new(elstream());
    c.args(args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{label}.stderr"))).unwrap());
    c
}

pub fn stderr_of(dir: &TempDir, label: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{label}.stderr"))).unwrap_or_default()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something has bound UDP `port` on 127.0.0.1.
pub fn wait_udp_bound(port: u16) {
    assert!(
        wait_until(LONG, || UdpSocket::bind(("127.0.0.1", port)).is_err()),
        "nobody bound UDP port {port}"
    );
}

fn connect_retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + LONG;
    loop {
        match f() {
            Ok(s) => return s,
            Err(e) if Instant::now() >= deadline => panic!("cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub fn connect_tcp(port: u16) -> TcpStream {
    connect_retry(|| TcpStream::connect(("127.0.0.1", port)))
}

pub fn connect_unix(path: &Path) -> UnixStream {
    connect_retry(|| UnixStream::connect(path))
}

/// A subscriber that reads everything until the proxy closes the stream.
pub fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

pub fn sub_tcp(port: u16) -> JoinHandle<Vec<u8>> {
    read_all(connect_tcp(port))
}

pub fn sub_unix(path: &Path) -> JoinHandle<Vec<u8>> {
    read_all(connect_unix(path))
}

/// Writes `bytes` to `dir/name` and judges it with ghc-events.
pub fn check_saved(dir: &TempDir, name: &str, bytes: &[u8]) -> Check {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    check(&p)
}

/// Event sequence of bytes (saved under `dir/name`).
pub fn sequence_saved(dir: &TempDir, name: &str, bytes: &[u8]) -> Vec<(u64, i32, u16)> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    event_sequence(&p)
}

#[allow(unused_imports)]
pub use testkit::corpus_logs;

/// A stats socket path in `dir`; once it exists every listener is bound.
pub fn stats_sock(dir: &TempDir) -> PathBuf {
    dir.join("stats.sock")
}

/// Waits until the proxy answers on its stats socket (bound after every listener).
pub fn wait_stats(dir: &TempDir) {
    assert!(
        wait_until(LONG, || try_stats(dir).is_some()),
        "proxy did not come up (no answer on the stats socket)"
    );
}

fn try_stats(dir: &TempDir) -> Option<String> {
    let out = Command::new(elstream())
        .arg("stats")
        .arg(format!("unix:{}", stats_sock(dir).display()))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The proxy's stats report, through `elstream stats`.
pub fn stats(dir: &TempDir) -> String {
    try_stats(dir).expect("elstream stats failed")
}

/// The port of the proxy's first TCP listener (for `--listen 0`), from its stats.
pub fn listen_port(dir: &TempDir) -> u16 {
    let r = stats(dir);
    r.lines()
        .find_map(|l| l.strip_prefix("listen tcp://"))
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no TCP listener in stats: {r}"))
}

/// Like [`wait_stats`], failing at once (with its stderr) if the proxy exited.
pub fn wait_stats_of(dir: &TempDir, proxy: &mut ChildGuard, label: &str) {
    let up = wait_until(LONG, || {
        if let Ok(Some(st)) = proxy.child().try_wait() {
            panic!("proxy exited early ({st}): {}", stderr_of(dir, label));
        }
        try_stats(dir).is_some()
    });
    assert!(up, "proxy did not come up: {}", stderr_of(dir, label));
}

/// `elstream proxy --source SOURCE --listen LISTEN --stats unix:STATS EXTRA`,
/// stderr into `dir/<label>.stderr`.
pub fn proxy_cmd(
    dir: &TempDir,
    label: &str,
    source: &str,
    listen: &str,
    extra: &[&str],
) -> Command {
    let stats = format!("unix:{}", stats_sock(dir).display());
    let mut args = vec![
        "proxy", "--source", source, "--listen", listen, "--stats", &stats,
    ];
    args.extend_from_slice(extra);
    elstream_cmd(dir, label, &args)
}

/// [`proxy_cmd`] labelled "proxy" from `unix:SOCK` to TCP `port`, up and answering.
pub fn proxy_up(dir: &TempDir, sock: &Path, port: u16, extra: &[&str]) -> ChildGuard {
    let source = format!("unix:{}", sock.display());
    let mut p = ChildGuard::spawn(&mut proxy_cmd(
        dir,
        "proxy",
        &source,
        &port.to_string(),
        extra,
    ));
    wait_stats_of(dir, &mut p, "proxy");
    p
}

/// `elstream recv udp://127.0.0.1:PORT -o OUT` for one session, once it is bound.
pub fn udp_recv(dir: &TempDir, label: &str, port: u16, out: &Path) -> ChildGuard {
    let g = ChildGuard::spawn(&mut elstream_cmd(
        dir,
        label,
        &[
            "recv",
            &format!("udp://127.0.0.1:{port}"),
            "-o",
            out.to_str().unwrap(),
            "--sessions",
            "1",
            "--idle-timeout",
            "120s",
        ],
    ));
    wait_udp_bound(port);
    g
}

/// Bytes as (lossy) text, for messages and comparisons.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sets a resource limit (`libc::RLIMIT_*`, bytes) for the child `cmd` starts.
pub fn set_rlimit(cmd: &mut Command, resource: libc::__rlimit_resource_t, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit(2) between fork and exec (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
