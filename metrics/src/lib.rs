//! `elstream metrics`: many eventlog sources, each session through its own
//! decoder and analysis model (`elstream-analysis`, the model the UI uses),
//! exported as Prometheus text at `/metrics`.
//!
//! Threads: one reader per source (blocking reads with a timeout, reconnect
//! with backoff), one HTTP server (tiny_http), one discovery loop. A scrape
//! takes each source's lock just long enough to read its totals.

pub mod feed;
pub mod figures;
pub mod model;
pub mod otlp;
pub mod prom;
pub mod source;
pub mod trigger;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use clap::Args;
use elstream_format::Endpoint;

pub use figures::Figures;
pub use source::Source;

/// `elstream metrics` options.
#[derive(Args, Clone, Debug)]
pub struct MetricsArgs {
    /// A source, named: NAME=ENDPOINT with ENDPOINT unix:PATH (a shim socket),
    /// tcp://HOST:PORT (a proxy subscription) or file:PATH (followed like
    /// tail -F). Repeatable. A bare ENDPOINT is named after its file or port.
    #[arg(long, value_name = "NAME=ENDPOINT", value_parser = parse_source)]
    pub source: Vec<(String, Endpoint)>,
    /// Also watch DIR for shim sockets (every socket not ending in `.ctl`),
    /// each a source named after its file name without `.sock`.
    #[arg(long, value_name = "DIR")]
    pub discover: Option<PathBuf>,
    /// A discovered source whose socket is gone is dropped (its series end)
    /// after this long, so the last scrapes still see its final figures.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub forget_after: Duration,
    /// Serve /metrics on HOST:PORT (port 0: the system picks one, see --ready-file).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "HOST:PORT")]
    pub listen: String,
    /// Once /metrics is served, write `metrics http://HOST:PORT` (the bound
    /// address) to FILE (written whole, then renamed into place).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Distinct user span names per session; later names are folded into `other`
    /// (bounds the series count).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top_spans: usize,
    /// Export over OTLP HTTP/protobuf even without OTEL_EXPORTER_OTLP_ENDPOINT
    /// (then to http://localhost:4318). The OTEL_* variables configure it:
    /// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    /// OTEL_EXPORTER_OTLP_HEADERS, OTEL_METRIC_EXPORT_INTERVAL (ms, default
    /// 60000), OTEL_EXPORTER_OTLP_TIMEOUT (ms), OTEL_SERVICE_NAME,
    /// OTEL_RESOURCE_ATTRIBUTES; OTEL_METRICS_EXPORTER=none switches it off.
    #[arg(long)]
    pub otlp: bool,
    /// A collection rule: RULE[;cooldown=DUR][;max=N][;snapshot=on|off][;session=NAME][;run=CMD],
    /// RULE one of gc-pause>DURATION, span:NAME>DURATION, heap-live>SIZE,
    /// heap-size>SIZE, drops>N (e.g. 'gc-pause>50ms;cooldown=5m'). It asks the
    /// shim for a snapshot of its ring (`snapshot NAME` on `<socket>.ctl`) and
    /// runs CMD with ELSTREAM_TRIGGER/SESSION/DETAIL/SNAPSHOT set. Repeatable.
    #[arg(long, value_name = "RULE")]
    pub trigger: Vec<trigger::Spec>,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub reconnect_max: Duration,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    elstream_format::control::parse_duration(s)
        .ok_or_else(|| format!("bad duration {s:?} (expected e.g. 250ms, 2s, 1.5s, 1m)"))
}

/// `NAME=ENDPOINT` or `ENDPOINT`.
pub fn parse_source(s: &str) -> Result<(String, Endpoint), String> {
    let (name, ep) = elstream_format::sources::split_name(s)?;
    let ep: Endpoint = ep.parse().map_err(|e| format!("{e}"))?;
    if !matches!(ep, Endpoint::Unix(_) | Endpoint::Tcp(_) | Endpoint::File(_)) {
        return Err(format!(
            "{ep}: a metrics source is unix:PATH, tcp://HOST:PORT or file:PATH"
        ));
    }
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| elstream_format::sources::default_name(&ep));
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(format!("bad source name {name:?}"));
    }
    Ok((name, ep))
}

/// Everything the exporters read: the sources (discovery adds to them).
pub struct Hub {
    sources: RwLock<Vec<Arc<Source>>>,
    opts: source::ReadOpts,
    /// Unix time the exporter started (per-source counters count from it).
    pub started: f64,
    pub otlp: OnceLock<Arc<otlp::OtlpStats>>,
    /// Set when someone else feeds the sources (the proxy): its queue's counters.
    pub feed: OnceLock<Arc<feed::Queue>>,
    pub triggers: Vec<Arc<trigger::Trigger>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(mut opts: source::ReadOpts, triggers: Vec<trigger::Spec>) -> Arc<Hub> {
        let triggers: Vec<Arc<trigger::Trigger>> = triggers
            .into_iter()
            .map(|t| Arc::new(trigger::Trigger::new(t)))
            .collect();
        if !triggers.is_empty() {
            let ts = triggers.clone();
            opts.on_data = Some(Arc::new(move |src: &Source| {
                for t in &ts {
                    t.check(src);
                }
            }));
        }
        Arc::new(Hub {
            triggers,
            sources: RwLock::new(Vec::new()),
            opts,
            started: source::now(),
            otlp: OnceLock::new(),
            feed: OnceLock::new(),
        })
    }

    /// Adds a source and starts its reader; false if the name is taken.
    pub fn add(&self, name: String, ep: Endpoint) -> bool {
        let mut v = self.sources.write().unwrap_or_else(|p| p.into_inner());
        if v.iter().any(|s| s.name == name) {
            return false;
        }
        let src = Source::new(name, ep);
        source::spawn(src.clone(), self.opts.clone());
        v.push(src);
        true
    }

    /// The source `name`, added (with no reader: someone else feeds it) if new.
    pub fn add_fed(&self, name: String, ep: Endpoint) -> Arc<Source> {
        let mut v = self.sources.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = v.iter().find(|s| s.name == name) {
            return s.clone();
        }
        let src = Source::new(name, ep);
        v.push(src.clone());
        src
    }

    pub fn sources(&self) -> Vec<Arc<Source>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn figures(&self) -> Vec<Figures> {
        self.sources().iter().map(|s| figures::figures(s)).collect()
    }

    /// Every exported family: the sources' figures, then the exporter's own.
    pub fn families(&self) -> Vec<model::Family> {
        let mut v = model::families(&self.figures(), self.started);
        if let Some(o) = self.otlp.get() {
            v.extend(o.families(self.started));
        }
        if let Some(q) = self.feed.get() {
            v.extend(q.families(self.started));
        }
        v.extend(trigger::families(&self.triggers, self.started));
        v.retain(|f| !f.rows.is_empty());
        v
    }

    /// Removes a discovered source whose socket is gone (its reader stops).
    fn forget(&self, name: &str) {
        let mut v = self.sources.write().unwrap_or_else(|p| p.into_inner());
        v.retain(|s| {
            if s.name == name {
                s.stop();
                false
            } else {
                true
            }
        });
    }
}

/// Discovery's memory: the sources it added, and since when each one's
/// socket has been gone.
#[derive(Default)]
struct Discovered {
    known: HashSet<String>,
    gone_since: std::collections::HashMap<String, std::time::Instant>,
}

/// Scans `dir` for shim sockets: new ones become sources; a discovered one
/// whose socket has been gone (and that has been disconnected) for `forget`
/// is dropped, so its last figures stay scrapable that long.
fn discover_once(hub: &Hub, dir: &std::path::Path, d: &mut Discovered, forget: Duration) {
    let mut seen = HashSet::new();
    for p in elstream_format::sources::shim_sockets(dir, false) {
        let ep = Endpoint::Unix(p);
        let n = elstream_format::sources::default_name(&ep);
        seen.insert(n.clone());
        if !d.known.contains(&n) && hub.add(n.clone(), ep) {
            tracing::info!("discovered source {n}");
            d.known.insert(n);
        }
    }
    d.gone_since.retain(|n, _| !seen.contains(n));
    let gone: Vec<String> = d.known.difference(&seen).cloned().collect();
    for n in gone {
        let connected = hub
            .sources()
            .iter()
            .any(|s| s.name == n && s.lock().connected);
        let since = *d
            .gone_since
            .entry(n.clone())
            .or_insert_with(std::time::Instant::now);
        if connected {
            d.gone_since.insert(n.clone(), std::time::Instant::now());
        } else if since.elapsed() >= forget {
            hub.forget(&n);
            d.known.remove(&n);
            d.gone_since.remove(&n);
        }
    }
}

/// Binds the HTTP server; errors say what to do.
pub fn bind(listen: &str) -> Result<tiny_http::Server, String> {
    try_bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Binds the HTTP server; the error as an io::Error (for the proxy's errors).
pub fn try_bind(listen: &str) -> std::io::Result<tiny_http::Server> {
    tiny_http::Server::http(listen).map_err(|e| match e.downcast::<std::io::Error>() {
        Ok(e) => *e,
        Err(e) => std::io::Error::other(e.to_string()),
    })
}

/// Serves `/metrics` until the process ends.
pub fn serve_http(server: tiny_http::Server, hub: Arc<Hub>) {
    let reg = prom::registry(hub);
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let resp = match path.as_str() {
            "/metrics" => {
                let body = prom::render(&reg);
                tiny_http::Response::from_string(body).with_header(
                    "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"
                        .parse::<tiny_http::Header>()
                        .expect("a valid header"),
                )
            }
            "/" => {
                tiny_http::Response::from_string("elstream metrics: Prometheus text at /metrics\n")
            }
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        let _ = req.respond(resp);
    }
}

/// Written whole to a temporary name, then renamed: a reader never sees half.
fn write_ready_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The model's settings for metrics: totals, not the UI's detail, so
/// retention stays small; at most `top_spans` span names.
pub fn analysis_config(top_spans: usize) -> elstream_analysis::Config {
    elstream_analysis::Config {
        max_span_names: top_spans.max(1),
        max_intervals: 10_000,
        max_items: 1_000,
        tail_bytes: 0,
        ..Default::default()
    }
}

/// `elstream metrics`: returns the exit code (2 usage, 3 cannot listen).
pub fn run(args: MetricsArgs) -> i32 {
    if args.source.is_empty() && args.discover.is_none() {
        eprintln!("elstream metrics: give at least one --source NAME=ENDPOINT or --discover DIR");
        return 2;
    }
    let cfg = analysis_config(args.top_spans);
    let hub = Hub::new(
        source::ReadOpts {
            analysis: cfg,
            reconnect_max: args.reconnect_max,
            on_data: None,
        },
        args.trigger.clone(),
    );
    let otlp_cfg = match otlp::OtlpConfig::from_env(&|k| std::env::var(k).ok(), args.otlp) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("elstream metrics: {e}");
            return 2;
        }
    };
    let server = match bind(&args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("elstream metrics: {e}");
            return 3;
        }
    };
    for (name, ep) in args.source {
        if !hub.add(name.clone(), ep) {
            eprintln!("elstream metrics: source name {name:?} given twice");
            return 2;
        }
    }
    if let Some(dir) = args.discover.clone() {
        let hub = hub.clone();
        let forget = args.forget_after;
        std::thread::spawn(move || {
            let mut d = Discovered::default();
            loop {
                discover_once(&hub, &dir, &mut d, forget);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    if let Some(cfg) = otlp_cfg {
        let stats = Arc::new(otlp::OtlpStats::default());
        let _ = hub.otlp.set(stats.clone());
        tracing::info!(
            "exporting OTLP to {} every {:?}",
            cfg.endpoint,
            cfg.interval
        );
        otlp::start(cfg, hub.clone(), stats);
    }
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| args.listen.clone(), |a| a.to_string());
    if let Some(path) = &args.ready_file {
        if let Err(e) = write_ready_file(path, &format!("metrics http://{bound}\n")) {
            eprintln!(
                "elstream metrics: cannot write the ready file {}: {e}",
                path.display()
            );
            return 3;
        }
    }
    tracing::info!("serving /metrics on http://{bound}");
    serve_http(server, hub);
    0
}
