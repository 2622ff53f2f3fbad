//! Test support for the metrics tests: `elstream metrics`, a real Prometheus
//! (Debian trixie's, run in the trixie root with chroot), HTTP by hand.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{release_bin, wait_until, ChildGuard, TempDir};

pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A plain HTTP/1.0 request; returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    ctype: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    Ok((status, out[at..].to_vec()))
}

pub fn get(addr: &str, path: &str) -> Option<String> {
    match http(addr, "GET", path, b"", "text/plain") {
        Ok((200, b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `elstream metrics ARGS` on a port the system picks, learnt from its
/// --ready-file once /metrics is served.
pub struct Metrics {
    pub child: ChildGuard,
    pub addr: String,
    _dir: TempDir,
}

/// `elstream metrics ARGS --listen 127.0.0.1:0 --ready-file ...` with `env`:
/// the child and the address it serves.
pub fn spawn_metrics(args: &[&str], env: &[(&str, &str)]) -> Metrics {
    let dir = TempDir::new("metrics-ready");
    let ready = dir.join("ready");
    let child = ChildGuard::spawn(
        Command::new(release_bin("elstream"))
            .arg("metrics")
            .args(args)
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    let addr = testkit::ready_addr(&ready, "metrics http://", Duration::from_secs(20))
        .expect("elstream metrics wrote no ready file");
    Metrics {
        child,
        addr,
        _dir: dir,
    }
}

/// `elstream proxy --source demo=unix:SOCK --listen tcp://127.0.0.1:0
/// --metrics 127.0.0.1:0 ARGS` with `env`: the child and its /metrics address
/// (from the `metrics http://` line of its --ready-file).
pub fn spawn_proxy_metrics(sock: &Path, args: &[&str], env: &[(&str, &str)]) -> Metrics {
    let dir = TempDir::new("proxy-ready");
    let ready = dir.join("ready");
    let child = ChildGuard::spawn(
        Command::new(release_bin("elstream"))
            .arg("proxy")
            .arg("--source")
            .arg(format!("demo=unix:{}", sock.display()))
            .args(["--listen", "tcp://127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    let addr = testkit::ready_addr(&ready, "metrics http://", Duration::from_secs(20))
        .expect("elstream proxy wrote no metrics line in its ready file");
    Metrics {
        child,
        addr,
        _dir: dir,
    }
}

pub fn start_metrics(args: &[&str]) -> Metrics {
    start_metrics_env(args, &[])
}

pub fn start_metrics_env(args: &[&str], env: &[(&str, &str)]) -> Metrics {
    let m = spawn_metrics(args, env);
    assert!(
        get(&m.addr, "/metrics").is_some(),
        "elstream metrics did not serve /metrics on {}",
        m.addr
    );
    m
}

/// The trixie root holding Debian's prometheus (scripts/ghc-roots.sh builds
/// it and installs prometheus there).
pub fn trixie_root() -> PathBuf {
    let roots =
        std::env::var_os("ELSTREAM_ROOTS").unwrap_or_else(|| "/var/lib/elstream/roots".into());
    let root = Path::new(&roots).join("trixie");
    assert!(
        root.join("usr/bin/prometheus").exists(),
        "no prometheus in {}: run `bash scripts/ghc-roots.sh ensure trixie` (it installs it)",
        root.display()
    );
    root
}

/// A real Prometheus (trixie's 2.53) in the trixie root, its config and data
/// under `dir` (in /tmp, which the root bind-mounts).
pub struct Prometheus {
    pub child: ChildGuard,
    pub addr: String,
}

pub fn start_prometheus(dir: &TempDir, scrape: Option<&str>) -> Prometheus {
    let root = trixie_root();
    assert!(
        root.join(dir.path().strip_prefix("/").unwrap()).is_dir(),
        "{} is not visible in {} (/tmp not bind-mounted): run `bash scripts/ghc-roots.sh ensure trixie`",
        dir.path().display(),
        root.display()
    );
    let cfg = dir.join("prometheus.yml");
    let mut text = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    if let Some(target) = scrape {
        text += &format!(
            "scrape_configs:\n  - job_name: elstream\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        );
    }
    std::fs::write(&cfg, text).unwrap();
    let data = dir.join("prom-data");
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = ChildGuard::spawn(
        Command::new("chroot")
            .arg(&root)
            .arg("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(log),
    );
    // Its log names the port the system picked: `msg="Listening on" address=HOST:PORT`.
    let mut addr = String::new();
    let ok = wait_until(Duration::from_secs(60), || {
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        if let Some(a) = log.lines().find_map(|l| {
            let (_, rest) = l.split_once("msg=\"Listening on\" address=")?;
            Some(rest.split_whitespace().next()?.to_string())
        }) {
            addr = a;
        }
        !addr.is_empty() && get(&addr, "/-/ready").is_some()
    });
    if !ok {
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        panic!("prometheus did not become ready (address {addr:?}):\n{log}");
    }
    Prometheus { child, addr }
}

impl Prometheus {
    /// An instant query's single value (None: no result yet).
    pub fn value(&self, q: &str) -> Option<f64> {
        let body = get(&self.addr, &format!("/api/v1/query?query={}", urlencode(q)))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?;
        if r.len() != 1 {
            return None;
        }
        r[0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `q` has a value satisfying `ok`.
    pub fn wait_value(&self, q: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.value(q) {
                if ok(v) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {q} = {:?} after {timeout:?}",
                self.value(q)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A second consumer on the shim's socket, saving every byte until the end.
pub fn capture(sock: PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("capture: connect {}: {e}", sock.display()),
            }
        };
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("capture read");
        out
    })
}

/// ghc-events' figures of a capture: GCs (GCStatsGHC), StartGC..EndGC pairs
/// per capability and their total ns, GC requests to the requesting
/// capability's StartGC (sync), `work` spans (STOP work messages), user messages.
pub struct Judged {
    pub gcs: u64,
    pub pauses: u64,
    pub pause_ns: u64,
    pub syncs: u64,
    pub sync_ns: u64,
    pub work_spans: u64,
    pub user_messages: u64,
}

pub fn judge(path: &Path) -> Judged {
    let c = testkit::check(path);
    c.assert_ok();
    let seq = testkit::event_sequence(path);
    let mut open = std::collections::HashMap::new();
    let mut asked = std::collections::HashMap::new();
    let (mut pauses, mut pause_ns, mut syncs, mut sync_ns) = (0, 0, 0, 0);
    for &(t, cap, ty) in &seq {
        match ty {
            elstream_format::eventlog::EVENT_REQUEST_SEQ_GC
            | elstream_format::eventlog::EVENT_REQUEST_PAR_GC => {
                asked.insert(cap, t);
            }
            elstream_format::eventlog::EVENT_GC_START => {
                open.insert(cap, t);
                if let Some(a) = asked.remove(&cap) {
                    syncs += 1;
                    sync_ns += t - a;
                }
            }
            elstream_format::eventlog::EVENT_GC_END => {
                if let Some(s) = open.remove(&cap) {
                    pauses += 1;
                    pause_ns += t - s;
                }
            }
            _ => {}
        }
    }
    Judged {
        gcs: c.count(53),
        pauses,
        pause_ns,
        syncs,
        sync_ns,
        work_spans: c.user_count("STOP work"),
        user_messages: c.user_messages.len() as u64,
    }
}

/// Demo with ROUNDS rounds streaming through the shim on `sock`, held back
/// until two consumers are there (the metrics source and [`capture`]):
/// returns its printed counts and the capture's bytes.
pub fn run_demo(
    demo: &Path,
    sock: &Path,
    rounds: u32,
) -> (std::collections::BTreeMap<String, u64>, Vec<u8>) {
    let cap = capture(sock.to_path_buf());
    let out = ChildGuard::spawn(
        Command::new(demo)
            .args([rounds.to_string().as_str(), "30", "4000"])
            .arg(format!("--stream=unix:{},flush=100ms", sock.display()))
            .arg("--wait-consumers=2")
            .args(["+RTS", "-N2", "-M2G", "-RTS"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_timeout(TIMEOUT);
    assert!(
        out.status.success(),
        "Demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        testkit::parse_counts(&String::from_utf8_lossy(&out.stdout)),
        cap.join().expect("capture"),
    )
}

/// A value from /metrics text: the line starting with `series ` (exact).
pub fn scraped(addr: &str, series: &str) -> Option<f64> {
    let text = get(addr, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
