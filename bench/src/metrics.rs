//! Bench 5 (issue 13): `elstream metrics`' CPU per byte against a plain
//! consumer (`elstream recv` to /dev/null) on the same eventlog served over
//! TCP at 120 MB/s, and the time of one `/metrics` scrape with 10 sessions
//! of 100 span names each. And the issue's measure: the proxy's CPU with
//! `--metrics` and `--otlp` on (a scrape and an export every second) ÷ the same proxy without it,
//! each relaying the same paced stream to one subscriber.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::stats::{percentile, Table};

const RATE: f64 = 120e6;

/// Serves `bytes` to one connection at RATE, then closes it.
pub(crate) fn pace(bytes: std::sync::Arc<Vec<u8>>) -> (u16, std::thread::JoinHandle<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let t0 = Instant::now();
        for (i, chunk) in bytes.chunks(1 << 20).enumerate() {
            let due = t0 + Duration::from_secs_f64((i << 20) as f64 / RATE);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            c.write_all(chunk).unwrap();
        }
        t0.elapsed()
    });
    (port, h)
}

/// utime + stime of a live process (seconds), from /proc.
pub(crate) fn cpu(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / unsafe_free_clk_tck()
}

fn unsafe_free_clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn metrics_child(args: &[String]) -> (Child, String) {
    let ready = std::env::temp_dir().join(format!(
        "elstream-bench-metrics-{}.ready",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(testkit::release_bin("elstream"))
        .arg("metrics")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = testkit::ready_addr(&ready, "metrics http://", Duration::from_secs(20))
        .expect("metrics did not listen");
    let _ = std::fs::remove_file(&ready);
    (child, addr)
}

/// (consumer CPU s, wall s) for `elstream recv` and `elstream metrics`.
fn cpu_round(bytes: &std::sync::Arc<Vec<u8>>) -> [(f64, f64); 2] {
    let (port, h) = pace(bytes.clone());
    let mut recv = Command::new(testkit::release_bin("elstream"))
        .args([
            "recv",
            &format!("tcp://127.0.0.1:{port}"),
            "-o",
            "/dev/null",
            "--sessions",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wall_r = h.join().unwrap().as_secs_f64();
    // Read its CPU just before it exits: poll until the stream has ended.
    let mut cpu_r = cpu(recv.id());
    while recv.try_wait().unwrap().is_none() {
        cpu_r = cpu(recv.id());
        std::thread::sleep(Duration::from_millis(5));
    }
    let (port, h) = pace(bytes.clone());
    let (mut m, addr) = metrics_child(&["--source".into(), format!("b=tcp://127.0.0.1:{port}")]);
    let wall_m = h.join().unwrap().as_secs_f64();
    let t0 = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&get(&addr, "/metrics")).into_owned();
        if value(&text, r#"elstream_source_bytes_total{session="b"}"#) == Some(bytes.len() as f64) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "metrics did not take it all"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu_m = cpu(m.id());
    let _ = m.kill();
    let _ = m.wait();
    [(cpu_r, wall_r), (cpu_m, wall_m)]
}

/// A value of `series` on the proxy's or exporter's /metrics.
fn scrape_value(addr: &str, series: &str) -> Option<f64> {
    value(&String::from_utf8_lossy(&get(addr, "/metrics")), series)
}

/// One proxy run: `elstream proxy` reading the paced stream from a TCP
/// source, relaying it to one `elstream recv` subscriber (the source is read
/// once it is there), with `--metrics`, a scrape every second and `--otlp`
/// every second when `metrics`. Returns (proxy CPU s, wall s, feed-dropped blocks).
fn proxy_round(bytes: &std::sync::Arc<Vec<u8>>, metrics: bool) -> (f64, f64, f64) {
    let (port, h) = pace(bytes.clone());
    let ready = std::env::temp_dir().join(format!(
        "elstream-bench-proxy-{}-{metrics}.ready",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new(testkit::release_bin("elstream"));
    cmd.args([
        "proxy",
        "--source",
        &format!("b=tcp://127.0.0.1:{port}"),
        "--listen",
        "tcp://127.0.0.1:0",
        "--wait-subscribers",
        "1",
        "--ready-file",
    ])
    .arg(&ready);
    if metrics {
        // OTLP on too, every second, to a port nobody listens on (each
        // export fails at once and is counted): the issue's "/metrics and OTLP on".
        cmd.args(["--metrics", "127.0.0.1:0", "--otlp"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "1000");
    }
    let mut proxy = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listen = testkit::ready_addr(&ready, "listen ", Duration::from_secs(20))
        .expect("the proxy did not listen");
    let maddr = metrics.then(|| {
        testkit::ready_addr(&ready, "metrics http://", Duration::from_secs(5))
            .expect("the proxy serves no /metrics")
    });
    let _ = std::fs::remove_file(&ready);
    let mut recv = Command::new(testkit::release_bin("elstream"))
        .args(["recv", &listen, "-o", "/dev/null", "--sessions", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = maddr.clone().map(|a| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = get(&a, "/metrics");
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    });
    let wall = h.join().unwrap().as_secs_f64();
    let t0 = Instant::now();
    while recv.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the subscriber did not get the whole stream"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut dropped = 0.0;
    if let Some(a) = &maddr {
        // The model has taken every block it was handed.
        let total = r#"elstream_source_bytes_total{session="b"}"#;
        let t0 = Instant::now();
        loop {
            dropped = scrape_value(a, "elstream_feed_dropped_bytes_total{}").unwrap_or(0.0);
            let queued = scrape_value(a, "elstream_feed_queued_bytes{}").unwrap_or(1.0);
            let taken = scrape_value(a, total).unwrap_or(0.0);
            if queued == 0.0 && taken + dropped >= bytes.len() as f64 {
                dropped = scrape_value(a, "elstream_feed_dropped_blocks_total{}").unwrap_or(0.0);
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the proxy's model did not take it all ({taken} + {dropped} of {})",
                bytes.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let c = cpu(proxy.id());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(s) = scraper {
        let _ = s.join();
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    (c, wall, dropped)
}

pub fn run(log: &Path, dir: &Path, rounds: usize) -> String {
    let bytes = std::sync::Arc::new(std::fs::read(log).unwrap());
    eprintln!(
        "bench metrics: {:.0} MB at 120 MB/s, {rounds} rounds",
        bytes.len() as f64 / 1e6
    );
    let mut ratios = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..rounds {
        let [r, m] = cpu_round(&bytes);
        ratios.push(m.0 / r.0);
        rows.push((r, m));
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = sorted[sorted.len() / 2];
    let mut t = Table::new(&[
        "round",
        "recv CPU s",
        "metrics CPU s",
        "ratio",
        "wall s (paced)",
    ]);
    for (i, (r, m)) in rows.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            format!("{:.2}", r.0),
            format!("{:.2}", m.0),
            format!("{:.2}", m.0 / r.0),
            format!("{:.2}", r.1),
        ]);
    }

    // The issue's measure: proxy CPU with /metrics on ÷ plain proxying,
    // alternating in each round.
    let mut prow = Vec::new();
    for _ in 0..rounds {
        let plain = proxy_round(&bytes, false);
        let with = proxy_round(&bytes, true);
        prow.push((plain, with));
    }
    let mut pr: Vec<f64> = prow.iter().map(|(p, w)| w.0 / p.0).collect();
    pr.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pmed = pr[pr.len() / 2];
    let mut pt = Table::new(&[
        "round",
        "plain proxy CPU s",
        "proxy --metrics CPU s",
        "ratio",
        "blocks the feed dropped",
        "wall s (paced)",
    ]);
    for (i, (p, w)) in prow.iter().enumerate() {
        pt.row(vec![
            (i + 1).to_string(),
            format!("{:.2}", p.0),
            format!("{:.2}", w.0),
            format!("{:.2}", w.0 / p.0),
            format!("{:.0}", w.2),
            format!("{:.2}", p.1),
        ]);
    }

    // Scrape: 10 sessions x 100 span names.
    let spans = testkit::build_haskell(
        &testkit::repo_root().join("bench/haskell/Spans.hs"),
        &testkit::HsBuild::program(),
    );
    let slog = dir.join("spans.eventlog");
    let st = Command::new(&spans)
        .args([
            "100",
            "20",
            "+RTS",
            "-l",
            &format!("-ol{}", slog.display()),
            "-RTS",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let mut args = vec!["--top-spans".to_string(), "100".into()];
    for i in 0..10 {
        let p = dir.join(format!("s{i}.eventlog"));
        std::fs::copy(&slog, &p).unwrap();
        args.extend(["--source".into(), format!("s{i}=file:{}", p.display())]);
    }
    let (mut m, addr) = metrics_child(&args);
    let t0 = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&get(&addr, "/metrics")).into_owned();
        let n = text
            .lines()
            .filter(|l| l.starts_with("ghc_span_seconds_count"))
            .count();
        if n == 1000 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{n} span series");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let t = Instant::now();
        size = get(&addr, "/metrics").len();
        times.push(t.elapsed().as_micros() as u64);
    }
    let _ = m.kill();
    let _ = m.wait();
    times.sort_unstable();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    format!(
        "### Metrics (bench 5)\n\n`elstream metrics` (a tcp source) vs a plain consumer (`elstream recv -o /dev/null`), \
         the same {:.0} MB yield-load eventlog served at 120 MB/s; CPU = utime + stime of the consumer.\n\n{}\n\
         Median ratio metrics ÷ plain consumer: **{med:.2}**.\n\n\
         `elstream proxy --metrics --otlp` (a scrape and an OTLP export every second, the receiver down) vs the same proxy without them, each relaying \
         the same stream at 120 MB/s from a TCP source to one `elstream recv` subscriber; CPU = utime + stime \
         of the proxy.\n\n{}\n\
         Median ratio proxy with /metrics ÷ plain proxying: **{pmed:.2}** (target ≤ 1.05: {}).\n\n\
         `/metrics` scrape (HTTP GET, response read), 10 sessions × 100 span names ({size} bytes): \
         p50 **{:.2} ms**, p99 {:.2} ms (target ≤ 10 ms: {}).\n",
        bytes.len() as f64 / 1e6,
        t.render(),
        pt.render(),
        if pmed <= 1.05 { "met" } else { "NOT met" },
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        if p99 <= 10_000 { "met" } else { "NOT met" },
    )
}
