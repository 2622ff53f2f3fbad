//! Bench 2: wall time of the yield load (examples/haskell/Yield.hs, `-N2`)
//! streaming through the shim to one consumer, against the same binary
//! writing `+RTS -l` to a file and against no eventlog at all. The variants
//! run interleaved, the order rotating every round.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use elstream_format::DATA_END;

use crate::stats::{all_secs, median, secs, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Stream,
    File,
    NoEventlog,
}

const VARIANTS: [Variant; 3] = [Variant::Stream, Variant::File, Variant::NoEventlog];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Stream => "shim stream → 1 consumer (`--stream=unix:…`)",
            Variant::File => "`+RTS -l -ol/tmp/…` file",
            Variant::NoEventlog => "no eventlog",
        }
    }
}

struct Run {
    wall: Duration,
    /// Eventlog bytes the consumer received or the file holds.
    bytes: u64,
}

/// Reads and discards the stream until EOF; returns the byte count and
/// whether it ended with the data end.
fn consume(sock: PathBuf) -> (u64, bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        match UnixStream::connect(&sock) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to {}: {e}",
                    sock.display()
                );
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut tail = [0u8; 2];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if n >= 2 {
                    tail.copy_from_slice(&buf[n - 2..n]);
                } else {
                    tail = [tail[1], buf[0]];
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("consumer read: {e}"),
        }
    }
    (total, tail == DATA_END)
}

fn run_once(bin: &Path, dir: &Path, variant: Variant, n: usize, log: &Path) -> Run {
    let mut cmd = Command::new(bin);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let sock = dir.join(format!("yield{n}.sock"));
    match variant {
        Variant::Stream => {
            cmd.arg(format!("--stream=unix:{}", sock.display()))
                .args(["+RTS", "-N2", "-RTS"]);
        }
        Variant::File => {
            let _ = std::fs::remove_file(log);
            cmd.args(["+RTS", "-N2", "-l"])
                .arg(format!("-ol{}", log.display()))
                .arg("-RTS");
        }
        Variant::NoEventlog => {
            cmd.args(["+RTS", "-N2", "-RTS"]);
        }
    }
    let started = Instant::now();
    let child = cmd.spawn().expect("run Yield");
    let consumer = (variant == Variant::Stream).then(|| {
        let sock = sock.clone();
        std::thread::spawn(move || consume(sock))
    });
    let out = child.wait_with_output().expect("wait for Yield");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "Yield ({variant:?}) failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = match variant {
        Variant::Stream => {
            let (bytes, ended) = consumer.unwrap().join().expect("consumer thread");
            assert!(ended, "the stream did not end with the data end");
            bytes
        }
        Variant::File => std::fs::metadata(log).expect("eventlog file").len(),
        Variant::NoEventlog => 0,
    };
    Run { wall, bytes }
}

/// Runs `rounds` interleaved rounds (plus one warm-up round that is not
/// counted); leaves the last `-l` file at `log`. Returns the markdown section.
pub fn run(dir: &Path, rounds: usize, log: &Path) -> String {
    let bin = testkit::example("Yield");
    let mut runs: Vec<Vec<Run>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    let mut n = 0;
    for round in 0..=rounds {
        for k in 0..VARIANTS.len() {
            // Rotate the order so no variant always runs first or last.
            let i = (k + round) % VARIANTS.len();
            let v = VARIANTS[i];
            n += 1;
            let r = run_once(&bin, dir, v, n, log);
            eprintln!(
                "bench yield: round {round}{} {v:?}: {:.2} s, {:.1} MB",
                if round == 0 { " (warm-up)" } else { "" },
                r.wall.as_secs_f64(),
                r.bytes as f64 / 1e6
            );
            if round > 0 {
                runs[i].push(r);
            }
        }
    }
    let walls: Vec<Vec<Duration>> = runs
        .iter()
        .map(|rs| rs.iter().map(|r| r.wall).collect())
        .collect();
    let med: Vec<Duration> = walls.iter().map(|w| median(w)).collect();
    let ratio = |a: usize, b: usize| med[a].as_secs_f64() / med[b].as_secs_f64();
    let mut table = Table::new(&[
        "variant",
        "runs",
        "median wall s",
        "min s",
        "max s",
        "all runs s (in order)",
        "eventlog MB (median)",
        "ratio to `-l` file",
        "ratio to no eventlog",
    ]);
    for (i, v) in VARIANTS.iter().enumerate() {
        let mut mb: Vec<u64> = runs[i].iter().map(|r| r.bytes).collect();
        mb.sort_unstable();
        table.row(vec![
            v.label().to_string(),
            walls[i].len().to_string(),
            secs(med[i]),
            secs(*walls[i].iter().min().unwrap()),
            secs(*walls[i].iter().max().unwrap()),
            all_secs(&walls[i]),
            if *v == Variant::NoEventlog {
                "–".into()
            } else {
                format!("{:.1}", mb[mb.len() / 2] as f64 / 1e6)
            },
            format!("{:.3}", ratio(i, 1)),
            format!("{:.3}", ratio(i, 2)),
        ]);
    }
    let target = ratio(0, 1);
    format!(
        "### 2. Yield load: streaming through the shim vs `+RTS -l` file vs no eventlog\n\n\
         `Yield` (4 threads × 2,000,000 `yield`s, `-threaded -eventlog`, one binary for all \
         variants) with `+RTS -N2`; the stream variant's consumer is a thread of the bench \
         process reading and discarding (1 MiB reads) until the data end. Wall time from \
         spawn to exit; {rounds} interleaved rounds (order rotating) after one uncounted \
         warm-up round. Ratios are ratios of medians.\n\n{}\n\
         **stream / file = {target:.3}** (target ≤ 1.00: {}); stream / none = {:.3}; \
         file / none = {:.3}.\n",
        table.render(),
        if target <= 1.0 { "met" } else { "NOT met" },
        ratio(0, 2),
        ratio(1, 2),
    )
}

/// Makes one `+RTS -l` log of the yield load (when bench 2 is not run).
pub fn make_log(log: &Path) {
    let bin = testkit::example("Yield");
    let r = run_once(&bin, log.parent().expect("log dir"), Variant::File, 0, log);
    eprintln!(
        "bench: made {} ({:.1} MB in {:.2} s)",
        log.display(),
        r.bytes as f64 / 1e6,
        r.wall.as_secs_f64()
    );
}
