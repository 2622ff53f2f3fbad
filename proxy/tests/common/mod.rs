//! Helpers shared by the proxy's integration tests: real processes, real
//! sockets; every output is judged by ghc-events through testkit.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
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

/// The ready file a child started by [`elstream_cmd`] as `label` writes.
pub fn ready_file(dir: &TempDir, label: &str) -> PathBuf {
    dir.join(format!("{label}.ready"))
}

/// The port of the proxy `label`'s first TCP listener, from its ready file.
pub fn ready_port(dir: &TempDir, label: &str) -> u16 {
    ready_tcp_port(&ready_file(dir, label))
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

/// `elstream proxy --source SOURCE --listen LISTEN --stats unix:STATS
/// --ready-file DIR/LABEL.ready EXTRA`, stderr into `dir/<label>.stderr`.
/// With LISTEN `0` the system picks the port: read it with [`ready_port`].
pub fn proxy_cmd(
    dir: &TempDir,
    label: &str,
    source: &str,
    listen: &str,
    extra: &[&str],
) -> Command {
    let stats = format!("unix:{}", stats_sock(dir).display());
    let ready = ready_file(dir, label);
    let _ = std::fs::remove_file(&ready);
    let ready = ready.display().to_string();
    let mut args = vec![
        "proxy",
        "--source",
        source,
        "--listen",
        listen,
        "--stats",
        &stats,
        "--ready-file",
        &ready,
    ];
    args.extend_from_slice(extra);
    elstream_cmd(dir, label, &args)
}

/// [`proxy_cmd`] labelled "proxy" from `unix:SOCK` to a TCP port the system
/// picks, up and answering; and that port.
pub fn proxy_up(dir: &TempDir, sock: &Path, extra: &[&str]) -> (ChildGuard, u16) {
    let source = format!("unix:{}", sock.display());
    let mut p = ChildGuard::spawn(&mut proxy_cmd(dir, "proxy", &source, "0", extra));
    wait_stats_of(dir, &mut p, "proxy");
    let port = ready_port(dir, "proxy");
    (p, port)
}

fn recv_udp_cmd(dir: &TempDir, label: &str, port: u16, out: &Path) -> ChildGuard {
    let ready = ready_file(dir, label);
    let _ = std::fs::remove_file(&ready);
    ChildGuard::spawn(&mut elstream_cmd(
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
            "--ready-file",
            ready.to_str().unwrap(),
        ],
    ))
}

/// `elstream recv udp://127.0.0.1:PORT -o OUT` for one session, once it is
/// bound (its ready file says so).
pub fn udp_recv(dir: &TempDir, label: &str, port: u16, out: &Path) -> ChildGuard {
    let g = recv_udp_cmd(dir, label, port, out);
    ready_lines(&ready_file(dir, label));
    g
}

/// `elstream recv udp://127.0.0.1:0 -o OUT` for one session, once bound; and
/// the port the system gave it.
pub fn udp_recv_any(dir: &TempDir, label: &str, out: &Path) -> (ChildGuard, u16) {
    let g = recv_udp_cmd(dir, label, 0, out);
    let ports = ready_ports(&ready_file(dir, label), "recv");
    (g, ports[0])
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

/// The lines of a `--ready-file`, once the child wrote it (every socket bound).
pub fn ready_lines(path: &Path) -> Vec<String> {
    assert!(
        wait_for_path(path, LONG),
        "no ready file {} (the child did not come up)",
        path.display()
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Ports of the `KIND tcp://HOST:PORT` (or `KIND udp://...`) lines of a ready
/// file, in order; `KIND` is `listen`, `stats`, `control` or `recv`.
pub fn ready_ports(path: &Path, kind: &str) -> Vec<u16> {
    ready_lines(path)
        .iter()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
        .filter_map(|a| a.split('?').next()?.rsplit(':').next()?.parse().ok())
        .collect()
}

/// The port of the first TCP `listen` line of a ready file.
pub fn ready_tcp_port(path: &Path) -> u16 {
    let ports = ready_ports(path, "listen");
    *ports
        .first()
        .unwrap_or_else(|| panic!("no listen line in {:?}", ready_lines(path)))
}
