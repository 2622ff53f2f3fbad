//! Issue 4's bench: event → subscriber latency with a 100 ms flush interval on
//! a mostly idle and a yield-heavy program, the flush pause, and the yield
//! load's wall time with and without the periodic flush.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use elstream_format::eventlog::EVENT_USER_MSG;
use elstream_format::{events, Frame, StreamDecoder};

use crate::stats::{median, percentile, secs, Table};

pub(crate) fn monotonic_ns() -> u64 {
    // Instant has no public epoch; GHC's getMonotonicTimeNSec is CLOCK_MONOTONIC.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs Ping and returns per-ping latencies (ns) and the shim's flush lines.
fn ping_run(dir: &Path, busy: u32, pings: u32) -> (Vec<u64>, String) {
    let prog = testkit::example("Ping");
    let sock = dir.join(format!("ping{busy}.sock"));
    let child = Command::new(&prog)
        .arg(format!("unix:{},flush=100ms", sock.display()))
        .args([pings.to_string(), "20".into(), busy.to_string()])
        .args(["+RTS", "-N2", "-RTS"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn Ping");
    assert!(testkit::wait_for_path(&sock, Duration::from_secs(30)));
    let mut s = UnixStream::connect(&sock).expect("connect");
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut lat = Vec::new();
    let mut header = None;
    loop {
        use std::io::Read;
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        let now = monotonic_ns();
        decoder.push(&buf[..n]);
        while let Ok(Some(f)) = decoder.next_frame() {
            match f {
                Frame::Header(h) => header = Some(h),
                Frame::Block(b) => {
                    let Some(h) = header.as_ref() else { continue };
                    for e in events(h, &b.bytes).map_while(Result::ok) {
                        if e.ty == EVENT_USER_MSG {
                            if let Some(t) = std::str::from_utf8(e.payload)
                                .ok()
                                .and_then(|t| t.strip_prefix("ping "))
                                .and_then(|t| t.parse::<u64>().ok())
                            {
                                lat.push(now.saturating_sub(t));
                            }
                        }
                    }
                }
                Frame::DataEnd => {}
            }
        }
    }
    let out = child.wait_with_output().expect("wait Ping");
    (lat, String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(dir: &Path, rounds: usize) -> String {
    let mut t = Table::new(&[
        "program",
        "pings",
        "received",
        "p50 ms",
        "p99 ms",
        "max ms",
        "flushes / pause avg / max µs",
    ]);
    for (label, busy) in [
        ("mostly idle", 0u32),
        ("yield-heavy (2 threads only yielding)", 2),
    ] {
        let (mut lat, status) = ping_run(dir, busy, 200);
        lat.sort_unstable();
        let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
        let get = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("?")
                .to_string()
        };
        t.row(vec![
            label.into(),
            "200".into(),
            lat.len().to_string(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0)),
            ms(*lat.last().unwrap_or(&0)),
            format!(
                "{} / {} / {}",
                get("flushes="),
                get("flush-pause-avg-us="),
                get("flush-pause-max-us=")
            ),
        ]);
    }
    // Yield load wall time, flush=100ms vs no periodic flush, interleaved.
    let prog = testkit::example("Yield");
    let mut walls: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        for k in [r % 2, 1 - r % 2] {
            let sock = dir.join(format!("y{k}.sock"));
            let cfg = if k == 0 {
                format!("unix:{}", sock.display())
            } else {
                format!("unix:{},flush=100ms", sock.display())
            };
            let t0 = Instant::now();
            let mut child = Command::new(&prog)
                .args([
                    "4",
                    "1000000",
                    &format!("--stream={cfg}"),
                    "--wait-consumers=1",
                ])
                .args(["+RTS", "-N2", "-RTS"])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn Yield");
            assert!(testkit::wait_for_path(&sock, Duration::from_secs(30)));
            let mut s = UnixStream::connect(&sock).expect("connect");
            std::io::copy(&mut s, &mut std::io::sink()).ok();
            child.wait().expect("wait Yield");
            walls[k].push(t0.elapsed());
        }
    }
    let (a, b) = (median(&walls[0]), median(&walls[1]));
    let mut w = Table::new(&[
        "yield load (4 × 1M yields, -N2), 1 consumer",
        "median wall s",
        "ratio",
    ]);
    w.row(vec!["no periodic flush".into(), secs(a), "1.000".into()]);
    w.row(vec![
        "flush=100ms".into(),
        secs(b),
        format!("{:.3}", b.as_secs_f64() / a.as_secs_f64()),
    ]);
    format!(
        "#### 4. Event → subscriber latency with `flush=100ms` (issue 4)\n\n\
         `examples/haskell/Ping.hs` posts `ping <CLOCK_MONOTONIC ns>` every 20 ms (200 pings, `-N2`); \
         one consumer on the shim's socket decodes as bytes arrive and subtracts. \
         Flush pause: the shim's own measure (stop-the-world on stock 9.0.2).\n\n{}\n{}\n",
        t.render(),
        w.render()
    )
}
