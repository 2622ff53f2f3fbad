//! `elstream`: serve a GHC program's eventlog, live, to many consumers.

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
mod sink;
mod source;
mod state;
mod store;
mod subscriber;
mod udp_out;
mod units;
mod watch;

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use elstream_format::{ClassSet, Endpoint};

use error::{Error, Result};
use listen::ListenSpec;
use subscriber::Policy;
use units::{parse_duration, parse_size};

#[derive(Parser)]
#[command(
    name = "elstream",
    version,
    about = "Stream a running GHC program's eventlog, live, to many consumers",
    long_about = "Stream a running GHC program's eventlog, live, to many consumers.\n\n\
        Sources: the elstream shim's UNIX socket (unix:PATH), another proxy (tcp:HOST:PORT), \
        a FIFO (fifo:PATH), a growing file (file:PATH, followed like tail -f) or stdin (-). \
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
        /// with backoff), tcp:HOST:PORT, fifo:PATH (created 0600 if missing),
        /// file:PATH (followed like tail -f) or - (stdin).
        #[arg(long, value_name = "ENDPOINT")]
        source: Endpoint,
        #[command(flatten)]
        serve: ServeArgs,
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
        serve: ServeArgs,
        /// Event classes to trace (RTS -l letters: s scheduler, g GC, n nonmoving GC,
        /// p sparks sampled, f sparks full, u user).
        #[arg(long, default_value = "sgpu", value_parser = parse_classes)]
        classes: ClassSet,
        /// Time allowed for the `prog +RTS --info` check.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        check_timeout: Duration,
        /// The program and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "PROG")]
        program: Vec<OsString>,
    },
    /// Receive a stream and write valid eventlog files (one per session).
    ///
    /// Session 1 goes to OUTPUT, session N (N >= 2) to OUTPUT with `.N` before the
    /// extension (out.eventlog, out.2.eventlog, ...). UDP losses are reported on stderr
    /// and as an `elstream: dropped N blocks (lost M datagrams)` user message in the file.
    Recv {
        /// tcp://HOST:PORT or unix:PATH (connect to a proxy), udp://HOST:PORT (bind
        /// and receive datagrams).
        endpoint: Endpoint,
        /// Output file, or - for stdout (one session only).
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// Stop after this many sessions (default: 1 for stdout, unlimited for files).
        #[arg(long)]
        sessions: Option<u64>,
        /// Stop when nothing arrived for this long.
        #[arg(long, value_parser = parse_duration)]
        idle_timeout: Option<Duration>,
        /// Keep trying to connect for this long.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        retry: Duration,
    },
    /// Print a running proxy's counters (from its --stats socket).
    Stats {
        /// The proxy's --stats endpoint (unix:PATH or tcp://HOST:PORT).
        endpoint: Endpoint,
    },
    /// Watch a stream as it arrives: user messages and markers as they come,
    /// and a summary line per interval (events, GC count and pauses, thread runs).
    Watch {
        /// unix:PATH (the shim's socket or a proxy's), tcp://HOST:PORT (a proxy),
        /// file:PATH, or - (stdin, e.g. from `elstream recv udp://...`).
        endpoint: Endpoint,
        /// Summary interval, in the program's own time.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        every: Duration,
        /// Print every event, not only user events and summaries.
        #[arg(long)]
        all: bool,
        /// Exit after this many user messages or markers (0: at the end of the stream).
        #[arg(long, default_value_t = 0)]
        max_user: u64,
    },
    /// Send control commands to a running program's shim and print the replies.
    ///
    /// Commands: status, on, off, classes [=|+|-]LETTERS (e.g. `classes +n-s`),
    /// sync, flush, flush-interval DURATION|off, snapshot NAME, ring-size SIZE,
    /// sticky TEXT. Exit code 1 when the shim refused one.
    Ctl {
        /// The shim's control socket: unix:PATH, normally the stream socket + `.ctl`;
        /// or a proxy's control relay (--control-listen): unix:PATH or tcp://HOST:PORT.
        #[arg(long)]
        to: Endpoint,
        /// Send `auth TOKEN` first, the token read from FILE (needed for a
        /// proxy's TCP control relay; the file must be chmod 600).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// How long to wait for each reply.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// One or more command lines, each one argument (quote them).
        #[arg(required = true)]
        commands: Vec<String>,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Listen for subscribers: tcp://HOST:PORT, a bare PORT (= tcp://127.0.0.1:PORT)
    /// or unix:PATH (created 0600). Repeatable. Append `?classes=LETTERS` (among
    /// s g n p f u) and this listener's subscribers get only those event classes
    /// plus the always-on types, still a valid eventlog: e.g.
    /// `--listen '4243?classes=gu'` serves GC and user events only.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_listen_spec)]
    listen: Vec<ListenSpec>,
    /// Send the stream as UDP datagrams to HOST:PORT. Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    udp: Vec<String>,
    /// UDP datagram size in bytes, elstream's 32-byte header included.
    #[arg(long, default_value_t = elstream_format::udp::DEFAULT_MTU)]
    mtu: usize,
    /// How often the header and state are re-sent over UDP.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    udp_resend: Duration,
    /// Bound of each subscriber's queue.
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    queue: usize,
    /// What to do when a subscriber's queue is full.
    #[arg(long, value_enum, default_value = "drop")]
    policy: Policy,
    /// Bound of the shared store of recent blocks replayed to new subscribers.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    store: usize,
    /// Serve counters on this endpoint (unix:PATH or tcp://HOST:PORT); read them
    /// with `elstream stats`.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_listen)]
    stats: Option<Endpoint>,
    /// Log a stats line this often (default 5s with -v).
    #[arg(long, value_parser = parse_duration)]
    stats_interval: Option<Duration>,
    /// Do not read the source before this many subscribers have connected.
    #[arg(long, default_value_t = 0)]
    wait_subscribers: usize,
    /// Pause reading the source while a subscriber's queue is over half full
    /// instead of dropping (replaying files only: it stalls a live program).
    #[arg(long)]
    backpressure: bool,
    /// At exit, how long to wait for subscribers to receive what is queued.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    linger: Duration,
    /// Longest wait between reconnection attempts to the source.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    reconnect_max: Duration,
    /// Load a plugin: a shared library exporting `elstream_plugin_v1`
    /// (include/elstream_plugin.h), given CONFIG. Repeatable. Each runs on its
    /// own thread behind a queue bounded by --queue (a slow plugin drops blocks
    /// for itself only). One that cannot load or refuses is reported and left
    /// out; a plugin that crashes takes the proxy down (run it in a second proxy).
    #[arg(long, value_name = "PATH.so[:CONFIG]")]
    plugin: Vec<plugin::PluginSpec>,
    /// Record the stream into DIR: self-contained eventlog files (header, state
    /// replay, blocks, data end), rotated by --record-max-bytes/--record-max-age.
    /// A full disk stops recording (logged); serving goes on.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Start a new recording file before one would exceed this size.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    record_max_bytes: Option<usize>,
    /// Start a new recording file when the current one is this old.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    record_max_age: Option<Duration>,
    /// Keep at most this many recording files (oldest removed first).
    #[arg(long, value_name = "N")]
    record_keep_files: Option<usize>,
    /// Keep at most this many bytes of recording files (oldest removed first).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    record_keep_bytes: Option<usize>,
}

#[derive(Args, Clone)]
struct ControlArgs {
    /// Relay control commands to the program's shim: accept control frames on
    /// tcp://HOST:PORT, a bare PORT (= tcp://127.0.0.1:PORT) or unix:PATH
    /// (created 0600). Repeatable. A TCP control listener needs --token-file.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_listen)]
    control_listen: Vec<Endpoint>,
    /// The shim's control socket (unix:PATH). Default: the unix: source + `.ctl`.
    #[arg(long, value_name = "unix:PATH")]
    control_to: Option<Endpoint>,
    /// File holding the token TCP control clients must send first (`auth
    /// TOKEN`). It must not be readable by group or others (chmod 600).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How long a relayed command may wait for the shim's reply; then its
    /// client gets a `failed` reply and the relay reconnects.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    control_timeout: Duration,
}

impl ControlArgs {
    fn config(self, source: &Endpoint) -> Result<Option<relay::RelayConfig>> {
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
            (None, Endpoint::Unix(p)) => {
                let mut s = p.clone().into_os_string();
                s.push(".ctl");
                PathBuf::from(s)
            }
            (None, other) => {
                return Err(Error::Usage(format!(
                    "--control-listen needs --control-to unix:PATH (the source {other} is not a shim socket)"
                )))
            }
        };
        relay::RelayConfig::new(self.control_listen, to, self.token_file.as_deref())
            .map(|c| Some(c.reply_timeout(self.control_timeout)))
    }
}

fn parse_classes(s: &str) -> std::result::Result<ClassSet, String> {
    ClassSet::parse(s).map_err(|e| e.to_string())
}

fn parse_listen_spec(s: &str) -> std::result::Result<ListenSpec, String> {
    let (base, classes) = ListenSpec::split(s)?;
    Ok(ListenSpec {
        endpoint: parse_listen(base)?,
        classes,
    })
}

fn parse_listen(s: &str) -> std::result::Result<Endpoint, String> {
    let port = s.strip_prefix(':').unwrap_or(s);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return format!("tcp://127.0.0.1:{port}")
            .parse()
            .map_err(|e: elstream_format::endpoint::EndpointError| e.to_string());
    }
    match s.parse::<Endpoint>() {
        Ok(ep @ (Endpoint::Tcp(_) | Endpoint::Unix(_))) => Ok(ep),
        Ok(other) => Err(format!(
            "cannot listen on {other}: expected tcp://HOST:PORT, PORT or unix:PATH"
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl ServeArgs {
    fn config(self, source: Endpoint, verbose: u8) -> serve::Config {
        serve::Config {
            source,
            listen: self.listen,
            udp: self
                .udp
                .into_iter()
                .map(|u| {
                    u.strip_prefix("udp://")
                        .or_else(|| u.strip_prefix("udp:"))
                        .unwrap_or(&u)
                        .to_string()
                })
                .collect(),
            mtu: self.mtu,
            udp_resend: self.udp_resend,
            queue_bytes: self.queue,
            policy: self.policy,
            store_bytes: self.store,
            stats: self.stats,
            stats_interval: self.stats_interval.or(if verbose > 0 {
                Some(Duration::from_secs(5))
            } else {
                None
            }),
            wait_subscribers: self.wait_subscribers,
            backpressure: self.backpressure,
            linger: self.linger,
            reconnect_max: self.reconnect_max,
            plugins: self.plugin,
            record: self.record.map(|dir| record::RecordOpts {
                dir,
                max_bytes: self.record_max_bytes.map(|b| b as u64),
                max_age: self.record_max_age,
                keep_files: self.record_keep_files,
                keep_bytes: self.record_keep_bytes.map(|b| b as u64),
            }),
            control: None,
        }
    }
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
        .with_target(false)
        .init();
}

fn stats(endpoint: &Endpoint) -> Result<i32> {
    let mut text = String::new();
    let r =
        match endpoint {
            Endpoint::Unix(p) => std::os::unix::net::UnixStream::connect(p)
                .and_then(|mut s| s.read_to_string(&mut text)),
            Endpoint::Tcp(hp) => std::net::TcpStream::connect(hp.as_str())
                .and_then(|mut s| s.read_to_string(&mut text)),
            other => {
                return Err(Error::Usage(format!(
                    "stats: expected unix:PATH or tcp://HOST:PORT, got {other}"
                )))
            }
        };
    r.map_err(|e| Error::io(format!("cannot read stats from {endpoint}"), e))?;
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
            serve,
            control,
        } => control.config(&source).and_then(|relay| {
            let mut cfg = serve.config(source, verbose);
            cfg.control = relay;
            serve::Proxy::new(cfg).and_then(|p| {
                for l in p.listening() {
                    tracing::info!("serving on {l}");
                }
                for l in p.control_listening() {
                    tracing::info!("relaying control on {l}");
                }
                p.run().map(|_| 0)
            })
        }),
        Cmd::Run {
            serve,
            classes,
            check_timeout,
            program,
        } => {
            let cfg = serve.config(Endpoint::Stdin, verbose);
            run::run(
                cfg,
                run::RunOpts {
                    classes,
                    check_timeout,
                    program,
                },
            )
        }
        Cmd::Recv {
            endpoint,
            output,
            sessions,
            idle_timeout,
            retry,
        } => {
            let sessions = match sessions {
                Some(0) => None,
                Some(n) => Some(n),
                None if output.as_os_str() == "-" => Some(1),
                None => None,
            };
            recv::recv(recv::RecvOpts {
                endpoint,
                output,
                sessions,
                idle_timeout,
                retry,
            })
        }
        Cmd::Stats { endpoint } => stats(&endpoint),
        Cmd::Watch {
            endpoint,
            every,
            all,
            max_user,
        } => watch::watch(watch::WatchOpts {
            source: endpoint,
            every,
            all,
            max_user,
        }),
        Cmd::Ctl {
            to,
            token_file,
            timeout,
            commands,
        } => ctl::ctl(&to, token_file.as_deref(), &commands, timeout),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("elstream: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
