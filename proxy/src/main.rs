//! `elstream`: serve a GHC program's eventlog, live, to many consumers.

mod connect;
mod consumer;
mod ctl;
mod error;
mod listen;
mod plugin;
mod record;
mod recv;
mod relay;
mod run;
mod serve;
mod signals;
mod source;
mod state;
mod store;
mod subscriber;
mod tokens;
mod udp_out;
mod units;
mod watch;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use elstream_format::Endpoint;

use error::{Error, Result};
use units::parse_duration;

#[derive(Parser)]
#[command(
    name = "elstream",
    version,
    about = "Stream a running GHC program's eventlog, live, to many consumers",
    long_about = "Stream a running GHC program's eventlog, live, to many consumers.\n\n\
        Sources: the elstream shim's UNIX socket (unix:PATH), another proxy (tcp://HOST:PORT), \
        a FIFO (fifo:PATH), a growing file (PATH or file:PATH, followed like tail -f) or stdin (-). \
        Subscribers connect over TCP or UNIX sockets and each receives a plain eventlog \
        (header, state replay, whole blocks), e.g. `nc 127.0.0.1 4242 > x.eventlog`.\n\n\
        Exit codes: 0 ok, 1 runtime failure (e.g. the source is not an eventlog), 2 bad \
        command line or endpoint, 3 cannot listen (address in use), 4 the program given to \
        `run` cannot stream an eventlog, 126/127 it cannot be executed / was not found; \
        otherwise `run` exits with the program's status (128+N if killed by signal N)."
)]
struct Cli {
    /// More log output on stderr (-v: info and periodic stats lines, -vv: debug).
    /// RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read an eventlog from a source and serve it to subscribers.
    Proxy {
        /// Where the eventlog comes from: unix:PATH (the shim's socket; reconnects
        /// with backoff), tcp://HOST:PORT (another proxy; same), fifo:PATH (created
        /// 0600 if missing), a file (PATH or file:PATH, followed like tail -f) or -
        /// (stdin). Repeatable as NAME=ENDPOINT (NAME: letters, digits, . _ -):
        /// each source is a session of its own (header, state, store, reconnects,
        /// counters), and every --listen then names the one it serves. A bare
        /// ENDPOINT is named after its file (without .sock) or HOST:PORT.
        #[arg(long, value_name = "[NAME=]ENDPOINT", value_parser = units::parse_named_source, help_heading = "Source")]
        source: Vec<(Option<String>, Endpoint)>,
        /// Also serve every shim socket that appears in DIR (looked at every
        /// second; *.ctl excluded), each a session named after its file without
        /// .sock, e.g. `--listen app=4242` for DIR/app.sock. Without DIR: /tmp,
        /// where the shim puts `elstream-<pid>.sock` by default, and only
        /// sockets of that name.
        #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true, default_missing_value = "", help_heading = "Source")]
        discover: Option<PathBuf>,
        #[command(flatten)]
        serve: serve::Config,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Run a program built with -eventlog and serve its eventlog (through a FIFO).
    ///
    /// The program gets `+RTS -l<classes> -ol<fifo>` through GHCRTS; the FIFO lives in
    /// a private 0700 temporary directory removed on exit. Its stdio passes through,
    /// SIGINT/SIGTERM sent to elstream are forwarded, and its exit status becomes
    /// elstream's.
    Run {
        #[command(flatten)]
        serve: serve::Config,
        #[command(flatten)]
        run: run::RunOpts,
    },
    /// Receive a stream and write valid eventlog files (one per session).
    ///
    /// Session 1 goes to OUTPUT, session N (N >= 2) to OUTPUT with `.N` before the
    /// extension (out.eventlog, out.2.eventlog, ...). UDP losses are reported on stderr
    /// and as an `elstream: dropped N blocks (lost M datagrams)` user message in the file.
    Recv(recv::RecvOpts),
    /// Print a running proxy's counters (from its --stats socket).
    ///
    /// A `source` line per session (name=, state=, bytes, blocks, subscribers=,
    /// subscriber_dropped_blocks=, errors, last_error), a `subscriber` line
    /// per subscriber (session=, drops, queue), UDP destinations and totals.
    Stats {
        /// The proxy's --stats endpoint (unix:PATH or tcp://HOST:PORT).
        #[arg(value_name = "ENDPOINT")]
        endpoint: Endpoint,
    },
    /// Watch a stream as it arrives: user messages and markers as they come,
    /// and a summary line per interval (events, GC count and pauses, thread runs).
    Watch(watch::WatchOpts),
    /// Export the RTS's vital signs of many sources as Prometheus metrics (/metrics).
    Metrics(elstream_metrics::MetricsArgs),
    /// Serve a live web view of running programs (and saved logs) on 127.0.0.1:8080.
    Ui(elstream_monitor::Args),
    /// Send control commands to a running program's shim and print the replies.
    ///
    /// Commands: status, on, off, classes [=|+|-]LETTERS (e.g. `classes +n-s`),
    /// sync, flush, flush-interval DURATION|off, snapshot NAME, ring-size SIZE,
    /// sticky TEXT. Exit code 1 when the shim refused one.
    Ctl(ctl::CtlOpts),
}

#[derive(Args, Clone)]
struct ControlArgs {
    /// Relay control commands to the program's shim: accept control frames on
    /// tcp://HOST:PORT, a bare PORT (= tcp://127.0.0.1:PORT) or unix:PATH
    /// (created 0600). Repeatable. A TCP control listener needs --token-file.
    #[arg(long, value_name = "ENDPOINT", value_parser = listen::parse_listen, help_heading = "Control relay")]
    control_listen: Vec<Endpoint>,
    /// The shim's control socket. Default: the unix: source + `.ctl`.
    #[arg(long, value_name = "unix:PATH", help_heading = "Control relay")]
    control_to: Option<Endpoint>,
    /// File holding the token TCP control clients must send first (`auth
    /// TOKEN`). It must not be readable by group or others (chmod 600).
    #[arg(long, value_name = "FILE", help_heading = "Control relay")]
    token_file: Option<PathBuf>,
    /// How long a relayed command may wait for the shim's reply; then its
    /// client gets a `failed` reply and the relay reconnects.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Control relay")]
    control_timeout: Duration,
}

impl ControlArgs {
    /// The relay's config; `source`: the only source (several have no one shim).
    fn config(self, source: Option<&Endpoint>) -> Result<Option<relay::RelayConfig>> {
        if self.control_listen.is_empty() {
            if self.control_to.is_some() || self.token_file.is_some() {
                return Err(Error::Usage(
                    "--control-to and --token-file need --control-listen".into(),
                ));
            }
            return Ok(None);
        }
        let to = match (self.control_to, source) {
            (Some(Endpoint::Unix(p)), _) => p,
            (Some(other), _) => {
                return Err(Error::Usage(format!(
                    "--control-to {other}: expected the shim's control socket, unix:PATH"
                )))
            }
            (None, None) => {
                return Err(Error::Usage(
                    "--control-listen relays to one shim: it needs exactly one --source (or --control-to unix:PATH)".into(),
                ))
            }
            (None, Some(Endpoint::Unix(p))) => {
                let mut s = p.clone().into_os_string();
                s.push(".ctl");
                PathBuf::from(s)
            }
            (None, Some(other)) => {
                return Err(Error::Usage(format!(
                    "--control-listen needs --control-to unix:PATH (the source {other} is not a shim socket)"
                )))
            }
        };
        relay::RelayConfig::new(self.control_listen, to, self.token_file.as_deref())
            .map(|c| Some(c.reply_timeout(self.control_timeout)))
    }
}

/// `-v` turns on the periodic stats line unless --stats-interval says otherwise.
fn with_verbosity(mut cfg: serve::Config, verbose: u8) -> serve::Config {
    if cfg.stats_interval.is_none() && verbose > 0 {
        cfg.stats_interval = Some(Duration::from_secs(5));
    }
    cfg
}

/// Colour on stderr only for a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour())
        .with_target(false)
        .init();
}

fn stats(endpoint: &Endpoint) -> Result<i32> {
    let Some(conn) = connect::connect(endpoint) else {
        return Err(Error::Usage(format!(
            "stats: expected unix:PATH or tcp://HOST:PORT, got {endpoint}"
        )));
    };
    let mut text = String::new();
    conn.and_then(|mut c| c.read_to_string(&mut text))
        .map_err(|e| Error::io(format!("cannot read stats from {endpoint}"), e))?;
    print!("{text}");
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let verbose = cli.verbose;
    let r: Result<i32> = match cli.cmd {
        Cmd::Proxy {
            source,
            discover,
            serve,
            control,
        } => {
            let sources: Vec<(String, Endpoint)> = source
                .into_iter()
                .map(|(n, ep)| {
                    let n = n.unwrap_or_else(|| elstream_format::sources::default_name(&ep));
                    (n, ep)
                })
                .collect();
            let only = match sources.as_slice() {
                [(_, ep)] => Some(ep.clone()),
                _ => None,
            };
            control.config(only.as_ref()).and_then(|relay| {
                let mut cfg = with_verbosity(serve, verbose);
                cfg.sources = sources;
                cfg.discover = discover.map(|d| match d.as_os_str().is_empty() {
                    true => serve::Discover {
                        dir: elstream_format::sources::DEFAULT_SOCKET_DIR.into(),
                        default_names_only: true,
                    },
                    false => serve::Discover {
                        dir: d,
                        default_names_only: false,
                    },
                });
                cfg.control = relay;
                serve::Proxy::new(cfg).and_then(|p| p.run().map(|_| 0))
            })
        }
        Cmd::Run { serve, run } => run::run(with_verbosity(serve, verbose), run),
        Cmd::Recv(opts) => recv::recv(opts),
        Cmd::Stats { endpoint } => stats(&endpoint),
        Cmd::Metrics(args) => Ok(elstream_metrics::run(args)),
        Cmd::Watch(opts) => watch::watch(opts),
        Cmd::Ctl(opts) => ctl::ctl(&opts),
        Cmd::Ui(args) => Ok(elstream_monitor::main(args)),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("elstream: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
