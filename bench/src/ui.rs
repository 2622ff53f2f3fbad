//! Bench 6 (issue 12): `elstream ui`.
//! Live: Ping (yield-heavy, `flush=100ms`) streams to the UI; a client does
//! what the page does (reads `/api/live`'s server-sent events and, on each
//! tick whose event count moved, fetches summary at 1400 columns, totals,
//! the raw tail filtered by `ping` and the threads table) and takes a ping as
//! visible when the tail response holding it has arrived: latency is that
//! moment minus the ping's CLOCK_MONOTONIC stamp. Also the server's CPU and
//! peak RSS, the eventlog rate, and the bytes/s the page's requests receive.
//! Upload: a large log POSTed as the page does, time to the response and to
//! the first complete view's requests, the server's peak RSS; ThreadScope
//! opening the same file under Xvfb beside it (loaded = its CPU idle for 2 s;
//! capped at 300 s and 12 GiB).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flush::monotonic_ns;
use crate::stats::{percentile, Table};

/// utime + stime (s) and (VmRSS, VmHWM) in KiB of a live process.
fn proc_figures(pid: u32) -> (f64, u64, u64) {
    let cpu = crate::metrics::cpu(pid);
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kb("VmRSS:"), kb("VmHWM:"))
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ui(sources: &[String]) -> Server {
    let ready =
        std::env::temp_dir().join(format!("elstream-bench-ui-{}.ready", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(testkit::release_bin("elstream"))
        .arg("ui")
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .args(["--socket-dir", "/nonexistent-elstream-bench"])
        .args(sources)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn elstream ui");
    let addr = testkit::ready_addr(&ready, "ui http://", Duration::from_secs(20))
        .expect("ui did not listen");
    let _ = std::fs::remove_file(&ready);
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    Server { child, port }
}

/// One request, accepting gzip as a browser does; (decoded body, bytes
/// received including headers).
fn request(port: u16, method: &str, path: &str, body: Option<&Path>) -> (Vec<u8>, u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let len = body.map_or(0, |p| std::fs::metadata(p).unwrap().len());
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Accept-Encoding: gzip\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    if let Some(p) = body {
        std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut s).unwrap();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let n = out.len() as u64;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i + 4);
    let gz = String::from_utf8_lossy(&out[..split])
        .to_ascii_lowercase()
        .contains("content-encoding: gzip");
    let mut body = out.split_off(split);
    if gz {
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut d)
            .unwrap();
        body = d;
    }
    (body, n)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

/// The page's requests for one view of session `id`; bytes received.
fn view(port: u16, id: u64, filter: &str) -> (u64, serde_json::Value) {
    let mut n = 0;
    for p in ["summary?cols=1400", "totals", "threads?n=500"] {
        n += request(port, "GET", &format!("/api/sessions/{id}/{p}"), None).1;
    }
    let (tail, k) = request(
        port,
        "GET",
        &format!("/api/sessions/{id}/tail?n=200&filter={filter}"),
        None,
    );
    (n + k, json(&tail))
}

/// One live run of Ping with `busy` threads only yielding: table rows.
fn live_run(dir: &Path, busy: u32, t: &mut Table) {
    let prog = testkit::example("Ping");
    let sock = dir.join(format!("ui-ping{busy}.sock"));
    let pings = 500u32;
    let mut ping = Command::new(&prog)
        .arg(format!("unix:{},flush=100ms", sock.display()))
        .args([pings.to_string(), "20".into(), busy.to_string()])
        .args(["+RTS", "-N2", "-RTS"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn Ping");
    assert!(testkit::wait_for_path(&sock, Duration::from_secs(30)));
    let ui = start_ui(&[format!("unix:{}", sock.display())]);
    let pid = ui.child.id();
    // The page's server-sent events: (arrival, sessions JSON) per tick.
    let sse_bytes = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let sb = sse_bytes.clone();
    let port = ui.port;
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        for line in BufReader::new(s).lines().map_while(Result::ok) {
            sb.fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
            if let Some(d) = line.strip_prefix("data:") {
                if tx.send(json(d.trim().as_bytes())).is_err() {
                    break;
                }
            }
        }
    });
    let (cpu0, _, _) = proc_figures(pid);
    let t0 = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut lat = Vec::new();
    let mut fetched = 0u64;
    let mut last_events = u64::MAX;
    let mut stream_bytes = 0u64;
    let mut rss_max = 0u64;
    while let Ok(list) = rx.recv_timeout(Duration::from_secs(30)) {
        let Some(s) = list.as_array().and_then(|a| a.first()).cloned() else {
            continue;
        };
        let (id, events) = (s["id"].as_u64().unwrap(), s["events"].as_u64().unwrap());
        stream_bytes = s["bytes"].as_u64().unwrap_or(0);
        rss_max = rss_max.max(proc_figures(pid).1);
        if events != last_events {
            last_events = events;
            let (n, tail) = view(ui.port, id, "ping");
            let now = monotonic_ns();
            fetched += n;
            for e in tail.as_array().into_iter().flatten() {
                let Some(t) = e["text"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("ping "))
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                if seen.insert(t) {
                    lat.push(now.saturating_sub(t));
                }
            }
        }
        if s["live"] == false || ping.try_wait().ok().flatten().is_some() {
            break;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, _, hwm) = proc_figures(pid);
    let _ = ping.wait();
    lat.sort_unstable();
    let ms = |ns: u64| format!("{:.0}", ns as f64 / 1e6);
    let sse = sse_bytes.load(Ordering::Relaxed);
    t.row(vec![
        format!("{busy} yielding threads: eventlog into the UI"),
        format!(
            "{:.1} MB in {wall:.1} s = {:.1} MB/s",
            stream_bytes as f64 / 1e6,
            stream_bytes as f64 / 1e6 / wall
        ),
    ]);
    t.row(vec![
        format!("{busy} yielding threads: ping → visible in the page, of {pings}"),
        format!(
            "{} seen; p50 {} / p99 {} / max {} ms",
            lat.len(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0)),
            ms(*lat.last().unwrap_or(&0))
        ),
    ]);
    t.row(vec![
        format!("{busy} yielding threads: server CPU (utime + stime ÷ wall)"),
        format!("{:.2} core", (cpu1 - cpu0) / wall),
    ]);
    t.row(vec![
        format!("{busy} yielding threads: server RSS, max sampled / peak (VmHWM)"),
        format!(
            "{:.0} / {:.0} MiB",
            rss_max as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
    ]);
    t.row(vec![
        format!("{busy} yielding threads: bytes/s to one page (SSE + fetches)"),
        format!(
            "{:.1} KB/s ({:.1} KB/s SSE)",
            (sse + fetched) as f64 / 1e3 / wall,
            sse as f64 / 1e3 / wall
        ),
    ]);
}

/// The yield log served over TCP at 120 MB/s to `elstream ui tcp://...`
/// with a page's client polling (no pings: CPU, RSS, bytes/s at that rate).
fn replay_run(log: &Path, t: &mut Table) {
    let bytes = Arc::new(std::fs::read(log).unwrap());
    let (port, pacer) = crate::metrics::pace(bytes.clone());
    let ui = start_ui(&[format!("tcp://127.0.0.1:{port}")]);
    let pid = ui.child.id();
    let (cpu0, _, _) = proc_figures(pid);
    let t0 = Instant::now();
    let mut fetched = 0;
    let mut id = None;
    let done = loop {
        std::thread::sleep(Duration::from_millis(250));
        let (list, n) = request(ui.port, "GET", "/api/sessions", None);
        fetched += n;
        let s = json(&list);
        id = id.or(s[0]["id"].as_u64());
        if let Some(id) = id {
            fetched += view(ui.port, id, "").0;
        }
        if s[0]["bytes"].as_u64() == Some(bytes.len() as u64)
            || t0.elapsed() > Duration::from_secs(60)
        {
            break s[0]["bytes"].as_u64().unwrap_or(0);
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let send = pacer.join().unwrap().as_secs_f64();
    let (cpu1, _, hwm) = proc_figures(pid);
    t.row(vec![
        "120 MB/s replay of the yield log over TCP: taken in".into(),
        format!(
            "{:.0} of {:.0} MB in {wall:.2} s (sent in {send:.2} s)",
            done as f64 / 1e6,
            bytes.len() as f64 / 1e6
        ),
    ]);
    t.row(vec![
        "same: server CPU (utime + stime ÷ wall) / peak RSS".into(),
        format!(
            "{:.2} core / {:.0} MiB",
            (cpu1 - cpu0) / wall,
            hwm as f64 / 1024.0
        ),
    ]);
    t.row(vec![
        "same: bytes/s to one page (its fetches every 250 ms)".into(),
        format!("{:.1} KB/s", fetched as f64 / 1e3 / wall),
    ]);
}

pub fn live(dir: &Path, log: &Path) -> String {
    let pings = 500;
    let mut t = Table::new(&["measure", "result"]);
    for busy in [0, 2] {
        live_run(dir, busy, &mut t);
    }
    replay_run(log, &mut t);
    format!(
        "#### 6a. `elstream ui` live (issue 12)\n\n\
         `examples/haskell/Ping.hs` (`flush=100ms`, {pings} pings 20 ms apart, with 0 and 2 threads \
         only yielding) streams to `elstream ui unix:SOCK`. A client does what the page does: \
         reads `/api/live` (server-sent events, a tick every 250 ms) and on each tick whose \
         event count moved fetches summary (1400 columns), totals, threads and the raw tail \
         filtered by `ping` (accepting gzip, as Chromium does); a ping is visible when that tail \
         response has arrived.\n\n{}\n",
        t.render()
    )
}

/// The largest corpus log if it is large (≥ 100 MB), else none.
pub fn corpus_log() -> (Option<PathBuf>, String) {
    // `$ELSTREAM_CORPUS` or ../shared/corpus, as the tests read it.
    let gh = testkit::logs::external_corpus_dir();
    let dir = gh.parent().map_or(gh.clone(), Path::to_path_buf);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return (None, format!("corpus {} absent", dir.display()));
    };
    let mut all: Vec<(u64, PathBuf)> = Vec::new();
    let mut stack: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if p.extension().is_some_and(|e| e == "eventlog") {
            all.push((std::fs::metadata(&p).map_or(0, |m| m.len()), p));
        }
    }
    all.sort();
    match all.last() {
        Some((n, p)) if *n >= 100_000_000 => {
            (Some(p.clone()), format!("corpus log {}", p.display()))
        }
        Some((n, p)) => (
            None,
            format!(
                "the corpus's largest log is {} ({n} bytes): too small",
                p.display()
            ),
        ),
        None => (None, format!("no .eventlog in {}", dir.display())),
    }
}

/// Opens `log` in ThreadScope under Xvfb: (seconds to idle, peak RSS KiB, hit the cap).
fn threadscope(log: &Path) -> (f64, u64, bool) {
    const CAP: Duration = Duration::from_secs(300);
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x1024x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb");
    let mut line = String::new();
    BufReader::new(xvfb.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let display = format!(":{}", line.trim());
    let mut ts = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 12582912; exec threadscope \"$0\"")
        .arg(log)
        .env("DISPLAY", &display)
        .env("NO_AT_BRIDGE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("threadscope");
    let t0 = Instant::now();
    let pid = ts.id();
    let (mut last_cpu, mut last_change, mut hwm) = (0.0, 0.0, 0);
    let hit = loop {
        std::thread::sleep(Duration::from_millis(250));
        if ts.try_wait().ok().flatten().is_some() {
            break false;
        }
        let (cpu, _, h) = proc_figures(pid);
        hwm = hwm.max(h);
        let now = t0.elapsed().as_secs_f64();
        if cpu - last_cpu > 0.02 {
            last_cpu = cpu;
            last_change = now;
        }
        if last_cpu > 0.5 && now - last_change > 2.0 {
            break false;
        }
        if t0.elapsed() > CAP {
            break true;
        }
    };
    let _ = ts.kill();
    let _ = ts.wait();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    (if hit { CAP.as_secs_f64() } else { last_change }, hwm, hit)
}

pub fn upload(own: &Path, rounds: usize, with_threadscope: bool) -> String {
    let (corpus, why) = corpus_log();
    let (log, which) = match corpus {
        Some(p) => (p, why),
        None => (
            own.to_path_buf(),
            format!("{why}; the bench's own yield log instead"),
        ),
    };
    eprintln!("bench ui: upload {} ({which})", log.display());
    let size = std::fs::metadata(&log).unwrap().len();
    let mut t = Table::new(&[
        "run",
        "upload answered s",
        "first complete view s",
        "server peak RSS MiB",
    ]);
    for r in 0..rounds {
        let ui = start_ui(&[]);
        let t0 = Instant::now();
        let (body, _) = request(ui.port, "POST", "/api/upload?name=big.eventlog", Some(&log));
        let up = t0.elapsed().as_secs_f64();
        let id = json(&body)["id"].as_u64().expect("upload answered an id");
        view(ui.port, id, "");
        let full = t0.elapsed().as_secs_f64();
        let (_, _, hwm) = proc_figures(ui.child.id());
        t.row(vec![
            format!("elstream ui #{}", r + 1),
            format!("{up:.2}"),
            format!("{full:.2}"),
            format!("{:.0}", hwm as f64 / 1024.0),
        ]);
    }
    if with_threadscope {
        let (secs, hwm, hit) = threadscope(&log);
        t.row(vec![
            "ThreadScope (Xvfb)".into(),
            "–".into(),
            format!("{secs:.1}{}", if hit { " (hit the 300 s cap)" } else { "" }),
            format!("{:.0}", hwm as f64 / 1024.0),
        ]);
    }
    format!(
        "#### 6b. `elstream ui` upload of a large log (issue 12)\n\n\
         {} ({:.0} MB; {which}) POSTed to `/api/upload` as the page does; the first complete \
         view is the upload's answer plus the page's requests (summary at 1400 columns, totals, \
         threads, raw tail). ThreadScope opens the same file under Xvfb: loaded when its CPU \
         stays idle for 2 s (capped at 300 s, 12 GiB of address space).\n\n{}\n",
        log.display(),
        size as f64 / 1e6,
        t.render()
    )
}
