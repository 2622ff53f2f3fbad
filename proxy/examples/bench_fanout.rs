//! Fan-out and `run` overhead benchmark; prints markdown tables.
//!
//! ```text
//! cargo build --release -p elstream -p elstream-shim
//! cargo run --release -p elstream --example bench_fanout -- [YIELDS_PER_THREAD] [REPEATS]
//! ```
//!
//! 1. A large real eventlog: `Yield 4 YIELDS +RTS -N2 -l` (default 500000 yields
//!    per thread, about 70 MB).
//! 2. Loopback ceiling: one TCP stream on 127.0.0.1 pushing the same bytes,
//!    measured right before each fan-out round (REPEATS rounds per row).
//! 3. `elstream proxy --source -` replaying that log to 1, 8 and 64 TCP
//!    subscribers that read as fast as they can: lossless (`--backpressure`)
//!    and live (default drop policy: what is delivered, what is dropped).
//! 4. `elstream run` wall time for Yield with 1 and 8 subscribers ÷ the same
//!    program writing `+RTS -l -ol<file>` (median of REPEATS runs, default 3).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testkit::{example, free_tcp_port, TempDir};

fn elstream() -> PathBuf {
    testkit::release_bin("elstream")
}

fn mb(bytes: f64) -> String {
    format!("{:.0}", bytes / 1e6)
}

/// One TCP stream on loopback moving `total` bytes of `data`.
fn loopback_ceiling(data: &[u8], total: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        n
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut sent = 0;
    while sent < total {
        let chunk = &data[..data.len().min(total - sent)];
        for c in chunk.chunks(1 << 20) {
            s.write_all(c).unwrap();
        }
        sent += chunk.len();
    }
    drop(s);
    let got = reader.join().unwrap();
    got as f64 / t.elapsed().as_secs_f64()
}

struct Fanout {
    rate: f64,
    delivered: u64,
    expected: u64,
}

/// Replays `log` through a proxy to `n` reading subscribers.
fn fanout(log: &Path, n: usize, lossless: bool) -> Fanout {
    let port = free_tcp_port();
    let mut args = vec![
        "proxy".to_string(),
        "--source".into(),
        "-".into(),
        "--listen".into(),
        port.to_string(),
        "--wait-subscribers".into(),
        n.to_string(),
        "--store".into(),
        "0".into(),
    ];
    if lossless {
        args.push("--backpressure".into());
    }
    let mut proxy = Command::new(elstream())
        .args(&args)
        .stdin(std::fs::File::open(log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let subs: Vec<_> = (0..n)
        .map(|_| {
            let mut s = loop {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => break s,
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            };
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 << 10];
                let mut total = 0u64;
                let mut first = None;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            first.get_or_insert_with(Instant::now);
                            total += k as u64;
                        }
                    }
                }
                (total, first.unwrap_or_else(Instant::now), Instant::now())
            })
        })
        .collect();
    let res: Vec<_> = subs.into_iter().map(|h| h.join().unwrap()).collect();
    let _ = proxy.wait();
    let start = res.iter().map(|r| r.1).min().unwrap();
    let end = res.iter().map(|r| r.2).max().unwrap();
    let delivered: u64 = res.iter().map(|r| r.0).sum();
    Fanout {
        rate: delivered as f64 / (end - start).as_secs_f64(),
        delivered,
        expected: std::fs::metadata(log).unwrap().len() * n as u64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time_file_run(prog: &Path, args: &[String], out: &Path) -> f64 {
    let t = Instant::now();
    let st = Command::new(prog)
        .args(args)
        .args(["+RTS", "-N2", "-l"])
        .arg(format!("-ol{}", out.display()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

fn time_elstream_run(prog: &Path, args: &[String], subscribers: usize) -> f64 {
    let port = free_tcp_port();
    let t = Instant::now();
    let mut child = Command::new(elstream())
        .args(["run", "--listen", &port.to_string(), "--wait-subscribers"])
        .arg(subscribers.to_string())
        .arg("--")
        .arg(prog)
        .args(args)
        .args(["+RTS", "-N2", "-RTS"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            thread::spawn(move || {
                let mut s = loop {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => break s,
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                };
                std::io::copy(&mut s, &mut std::io::sink()).unwrap_or(0)
            })
        })
        .collect();
    let st = child.wait().unwrap();
    let el = t.elapsed().as_secs_f64();
    for s in subs {
        let _ = s.join();
    }
    assert!(st.success());
    el
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let yields: u64 = argv.next().map_or(500_000, |a| a.parse().unwrap());
    let repeats: usize = argv.next().map_or(3, |a| a.parse().unwrap());
    let prog = example("Yield");
    let dir = TempDir::new("bench-fanout");
    let log = dir.join("yield.eventlog");
    let yargs = vec!["4".to_string(), yields.to_string()];
    time_file_run(&prog, &yargs, &log);
    let data = std::fs::read(&log).unwrap();
    eprintln!("log: {} MB", mb(data.len() as f64));

    println!(
        "### Fan-out (replayed {} MB Yield log, TCP on loopback)\n",
        mb(data.len() as f64)
    );
    println!(
        "Each row: {repeats} rounds, each measuring the loopback ceiling (one TCP stream \
         moving 4× the log) right before the fan-out, so every ratio compares two \
         figures taken side by side; medians.\n"
    );
    println!(
        "| subscribers | mode | ceiling MB/s | aggregate MB/s | ÷ ceiling | delivered (worst) |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for n in [1usize, 8, 64] {
        for lossless in [true, false] {
            let (mut ceilings, mut rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            let mut delivered = f64::MAX;
            for _ in 0..repeats {
                let c = loopback_ceiling(&data, data.len() * 4);
                let f = fanout(&log, n, lossless);
                ceilings.push(c);
                rates.push(f.rate);
                ratios.push(f.rate / c);
                delivered = delivered.min(100.0 * f.delivered as f64 / f.expected as f64);
            }
            println!(
                "| {n} | {} | {} | {} | {:.2} | {delivered:.1}% |",
                if lossless {
                    "lossless (--backpressure)"
                } else {
                    "live (drop policy)"
                },
                mb(median(ceilings)),
                mb(median(rates)),
                median(ratios),
            );
        }
    }

    println!("\n### `elstream run` overhead (Yield 4 {yields}, +RTS -N2; median of {repeats})\n");
    let file = dir.join("file.eventlog");
    let base = median(
        (0..repeats)
            .map(|_| time_file_run(&prog, &yargs, &file))
            .collect(),
    );
    println!("| setup | wall s | ÷ `+RTS -l -ol<file>` |");
    println!("|---|---:|---:|");
    println!("| `+RTS -l -ol<file>` | {base:.2} | 1.00 |");
    for n in [1usize, 8] {
        let t = median(
            (0..repeats)
                .map(|_| time_elstream_run(&prog, &yargs, n))
                .collect(),
        );
        println!(
            "| `elstream run`, {n} subscriber(s) | {t:.2} | {:.2} |",
            t / base
        );
    }
    println!();
}
