//! Sources: one reader thread per source, each connection (or replaced
//! file, or new header after a data end) a new session with its own decoder
//! and analysis model. A source's failures stay inside its own state.

use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use elstream_analysis::{Analysis, Config};
use elstream_format::{Endpoint, Frame, StreamDecoder};

/// One session: one program run as seen through one connection.
pub struct Session {
    /// 1 for the source's first session, counting up.
    pub number: u64,
    pub analysis: Analysis,
    /// Bytes of this session's frames.
    pub bytes: u64,
    /// Unix time the session began (its header arrived).
    pub started: f64,
}

/// What the exporters read of a source, behind its mutex.
#[derive(Default)]
pub struct SourceState {
    pub session: Option<Session>,
    pub sessions: u64,
    pub connects: u64,
    /// Connection failures, read errors and decoding errors.
    pub errors: u64,
    /// Decoding errors (garbage) alone.
    pub garbage: u64,
    pub bytes: u64,
    pub connected: bool,
    pub last_error: Option<String>,
    /// Unix time bytes last arrived.
    pub last_data: f64,
}

pub struct Source {
    pub name: String,
    pub endpoint: Endpoint,
    state: Mutex<SourceState>,
    stop: AtomicBool,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Source {
    pub fn new(name: String, endpoint: Endpoint) -> Arc<Source> {
        Arc::new(Source {
            name,
            endpoint,
            state: Mutex::new(SourceState::default()),
            stop: AtomicBool::new(false),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, SourceState> {
        // A panic in a reader must not take the scrape down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The shim's control socket, for a `unix:` source.
    pub fn control_path(&self) -> Option<PathBuf> {
        match &self.endpoint {
            Endpoint::Unix(p) => {
                let mut s = p.clone().into_os_string();
                s.push(".ctl");
                Some(PathBuf::from(s))
            }
            _ => None,
        }
    }
}

/// Called by a reader after each chunk it took in.
pub type OnData = Arc<dyn Fn(&Source) + Send + Sync>;

/// Reader settings shared by all sources.
#[derive(Clone)]
pub struct ReadOpts {
    pub analysis: Config,
    pub reconnect_max: Duration,
    /// Called after each chunk is taken into a session (triggers look here).
    pub on_data: Option<OnData>,
}

enum Input {
    Sock(Box<dyn Read + Send>),
    File { f: File, path: PathBuf, ino: u64 },
}

fn open(ep: &Endpoint) -> io::Result<Input> {
    match ep {
        Endpoint::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            Ok(Input::Sock(Box::new(s)))
        }
        Endpoint::Tcp(a) => {
            let s = TcpStream::connect(a)?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            Ok(Input::Sock(Box::new(s)))
        }
        Endpoint::File(p) => {
            let f = File::open(p)?;
            let ino = f.metadata()?.ino();
            Ok(Input::File {
                f,
                path: p.clone(),
                ino,
            })
        }
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{other}: metrics sources are unix:PATH, tcp://HOST:PORT or file:PATH"),
        )),
    }
}

/// Runs the source until [`Source::stop`]: connect, read, reconnect with backoff.
pub fn run(src: Arc<Source>, opts: ReadOpts) {
    let mut backoff = Duration::from_millis(100);
    while !src.stopped() {
        match open(&src.endpoint) {
            Ok(input) => {
                {
                    let mut st = src.lock();
                    st.connects += 1;
                    st.connected = true;
                }
                backoff = Duration::from_millis(100);
                let r = read_connection(&src, input, &opts);
                let mut st = src.lock();
                st.connected = false;
                if let Err(e) = r {
                    st.errors += 1;
                    tracing::info!("source {}: {e}", src.name);
                    st.last_error = Some(e);
                }
            }
            Err(e) => {
                let mut st = src.lock();
                if st.last_error.as_deref() != Some(&e.to_string()) {
                    tracing::debug!("source {}: {e}", src.name);
                }
                st.errors += 1;
                st.last_error = Some(e.to_string());
            }
        }
        sleep_unless_stopped(&src, backoff);
        backoff = (backoff * 2).min(opts.reconnect_max);
    }
}

fn sleep_unless_stopped(src: &Source, d: Duration) {
    let end = Instant::now() + d;
    while !src.stopped() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
}

/// A session's decoder, fed bytes by whoever has them: a source's own
/// reader, or someone else (the proxy's metrics feed, `feed.rs`).
pub struct Feeder {
    dec: StreamDecoder,
    /// No header seen yet: the first one starts a new session.
    fresh: bool,
}

impl Default for Feeder {
    fn default() -> Self {
        Feeder::new()
    }
}

impl Feeder {
    pub fn new() -> Feeder {
        Feeder {
            dec: StreamDecoder::new(),
            fresh: true,
        }
    }

    /// Takes `bytes` (any chunking) into `src`'s session.
    pub fn push(
        &mut self,
        src: &Source,
        bytes: &[u8],
        cfg: &Config,
    ) -> Result<(), elstream_format::FormatError> {
        self.dec.push(bytes);
        take_frames(src, &mut self.dec, bytes.len(), &mut self.fresh, cfg)
    }

    /// The input ended: whole events of a cut-off block still count.
    pub fn finish(&mut self, src: &Source, cfg: &Config) {
        finish(src, &mut self.dec, cfg);
    }
}

/// Reads one connection to its end. Every connection starts a new session:
/// a shim replays its header and ring to each new consumer, so nothing of
/// the previous connection may be counted twice.
fn read_connection(src: &Source, mut input: Input, opts: &ReadOpts) -> Result<(), String> {
    let mut feeder = Feeder::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut pos: u64 = 0;
    loop {
        if src.stopped() {
            return Ok(());
        }
        let n = match &mut input {
            Input::Sock(s) => match s.read(&mut buf) {
                Ok(0) => {
                    feeder.finish(src, &opts.analysis);
                    return Err("connection closed".into());
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(format!("read: {e}")),
            },
            Input::File { f, path, ino } => match f.read(&mut buf) {
                Ok(0) => {
                    // Followed like tail -F: a replaced or shrunk file is a new session.
                    match std::fs::metadata(&*path) {
                        Ok(m) if m.ino() != *ino || m.len() < pos => {
                            feeder.finish(src, &opts.analysis);
                            return Ok(());
                        }
                        Err(_) => {
                            feeder.finish(src, &opts.analysis);
                            return Err(format!("{} is gone", path.display()));
                        }
                        _ => {}
                    }
                    sleep_unless_stopped(src, Duration::from_millis(200));
                    continue;
                }
                Ok(n) => n,
                Err(e) => return Err(format!("read: {e}")),
            },
        };
        pos += n as u64;
        let r = feeder.push(src, &buf[..n], &opts.analysis);
        if let Some(f) = &opts.on_data {
            f(src);
        }
        if let Err(e) = r {
            let mut st = src.lock();
            st.garbage += 1;
            return Err(format!("not an eventlog: {e}"));
        }
    }
}

fn take_frames(
    src: &Source,
    dec: &mut StreamDecoder,
    n: usize,
    fresh: &mut bool,
    cfg: &Config,
) -> Result<(), elstream_format::FormatError> {
    let mut st = src.lock();
    st.bytes += n as u64;
    st.last_data = now();
    let mut at = dec.offset();
    loop {
        let f = dec.next_frame()?;
        let Some(f) = f else { return Ok(()) };
        let end = dec.offset();
        let len = end.saturating_sub(at);
        at = end;
        frame(&mut st, f, len, fresh, cfg);
    }
}

fn finish(src: &Source, dec: &mut StreamDecoder, cfg: &Config) {
    let mut st = src.lock();
    let mut fresh = false;
    while let Ok(Some(f)) = dec.finish() {
        frame(&mut st, f, 0, &mut fresh, cfg);
    }
}

fn frame(st: &mut SourceState, f: Frame, len: u64, fresh: &mut bool, cfg: &Config) {
    if let Frame::Header(_) = f {
        // A header on a new connection, or after a data end: a new session.
        if *fresh
            || st
                .session
                .as_ref()
                .is_none_or(|s| s.analysis.header().is_some())
        {
            *fresh = false;
            st.sessions += 1;
            st.session = Some(Session {
                number: st.sessions,
                analysis: Analysis::new(cfg.clone()),
                bytes: 0,
                started: now(),
            });
        }
    }
    if let Some(s) = st.session.as_mut() {
        s.bytes += len;
        s.analysis.frame(f);
    }
}

/// Starts a reader thread for `src`.
pub fn spawn(src: Arc<Source>, opts: ReadOpts) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("source {}", src.name))
        .spawn(move || run(src, opts))
        .expect("spawn a source thread")
}
