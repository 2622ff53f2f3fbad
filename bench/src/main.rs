//! elstream's benchmarks (issue 2), printed as markdown tables:
//! 1. the shim's write-call latency for real 2 MiB blocks;
//! 2. the yield load's wall time streaming through the shim vs `+RTS -l` vs none;
//! 3. parser throughput on a large real eventlog vs the ghc-events checker.
//!
//! Run through `scripts/bench.sh` (builds the release shim first: the Haskell
//! programs link `target/release/libelstream.a`). Progress goes to stderr,
//! the tables to stdout.

mod flush;
mod latency;
mod load;
mod metrics;
mod parse;
mod stats;
mod ui;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "elstream benchmarks; markdown tables on stdout")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(clap::Args, Debug, Clone)]
struct Opts {
    /// Counted rounds of each yield-load variant (plus one warm-up round).
    #[arg(long, default_value_t = 9, global = true)]
    rounds: usize,
    /// Rounds of our parser on the large log.
    #[arg(long, default_value_t = 9, global = true)]
    parse_rounds: usize,
    /// Runs of the ghc-events checker on the large log.
    #[arg(long, default_value_t = 3, global = true)]
    checker_rounds: usize,
    /// Use this real eventlog for benches 1 and 3 instead of making one.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Fewer calls per latency scenario (a smoke run, not for figures).
    #[arg(long, global = true)]
    quick: bool,
    /// The ui bench without ThreadScope beside it (it takes minutes).
    #[arg(long, global = true)]
    no_threadscope: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// All three benches (the default).
    All,
    /// Bench 1 only.
    Latency,
    /// Bench 2 only.
    Load,
    /// Bench 3 only.
    Parse,
    /// Bench 4 only (flush latency, issue 4).
    Flush,
    /// Bench 5 only (elstream metrics: CPU vs a plain consumer, scrape time).
    Metrics,
    /// Bench 6 only (elstream ui: live latency, CPU, RSS, bytes/s; upload of a large log vs ThreadScope).
    Ui,
    /// One latency scenario in this process (run by `latency`).
    #[command(hide = true)]
    LatencyChild(latency::ChildArgs),
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// nproc, CPU model, kernel, date: the line every figure goes with.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    format!(
        "Machine: nproc {}, CPU {cpu}, kernel {}, {}; load average at start {}",
        first_line("nproc", &[]),
        first_line("uname", &["-r"]),
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into()),
    )
}

/// A scratch directory under /tmp, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("elstream-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn need_log(opts: &Opts, dir: &Path, made: &mut Option<PathBuf>) -> PathBuf {
    if let Some(l) = &opts.log {
        return l.clone();
    }
    if let Some(l) = made {
        return l.clone();
    }
    let l = dir.join("yield-file.eventlog");
    load::make_log(&l);
    *made = Some(l.clone());
    l
}

fn main() {
    let cli = Cli::parse();
    let cmd = cli.cmd.unwrap_or(Cmd::All);
    if let Cmd::LatencyChild(a) = cmd {
        return latency::child(a);
    }
    if let Cmd::Metrics = cmd {
        let scratch = Scratch::new();
        let log = need_log(&cli.opts, &scratch.0, &mut None);
        println!(
            "{}\n\n{}",
            machine(),
            metrics::run(&log, &scratch.0, cli.opts.rounds.min(5))
        );
        return;
    }
    if let Cmd::Ui = cmd {
        let scratch = Scratch::new();
        let log = need_log(&cli.opts, &scratch.0, &mut None);
        let live = ui::live(&scratch.0, &log);
        let up = ui::upload(&log, cli.opts.rounds.min(3), !cli.opts.no_threadscope);
        println!("{}\n\n{live}\n{up}", machine());
        return;
    }
    let opts = cli.opts;
    let scratch = Scratch::new();
    let dir = &scratch.0;
    let all = matches!(cmd, Cmd::All);
    let do_flush = all || matches!(cmd, Cmd::Flush);
    let (do_lat, do_load, do_parse) = match cmd {
        Cmd::All | Cmd::Flush => (false, false, false),
        Cmd::Latency => (true, false, false),
        Cmd::Load => (false, true, false),
        Cmd::Parse => (false, false, true),
        Cmd::LatencyChild(_) | Cmd::Metrics | Cmd::Ui => unreachable!("handled above"),
    };
    let (do_lat, do_load, do_parse) = (do_lat || all, do_load || all, do_parse || all);
    let machine = machine();
    eprintln!("{machine}");
    let mut made = None;
    // The yield load first: its last `-l` file is the large real log the
    // other two benches use.
    let load_md = do_load.then(|| {
        let log = dir.join("yield-file.eventlog");
        let md = load::run(dir, opts.rounds, &log);
        made = Some(log);
        md
    });
    let lat_md = do_lat.then(|| latency::run(&need_log(&opts, dir, &mut made), dir, opts.quick));
    let parse_md = do_parse.then(|| {
        parse::run(
            &need_log(&opts, dir, &mut made),
            opts.parse_rounds,
            opts.checker_rounds,
        )
    });
    let flush_md = do_flush.then(|| flush::run(dir, opts.rounds.min(5)));
    println!("{machine}\n");
    for md in [lat_md, load_md, parse_md, flush_md].into_iter().flatten() {
        println!("{md}");
    }
}
