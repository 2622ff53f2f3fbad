//! Sessions and the sources that feed them: each connection to a program
//! (a shim socket, a proxy subscription, a FIFO, a file) or each uploaded
//! log is a session with its own analysis. Readers are plain threads with
//! blocking reads (the analysis is CPU work; the HTTP side never waits on it
//! for longer than one chunk's analysis).

use std::collections::HashSet;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use elstream_analysis::{Analysis, Config};
use elstream_format::Endpoint;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Live,
    File,
    Upload,
}

pub struct Session {
    pub id: u64,
    pub source: String,
    /// The name given with `--source NAME=ENDPOINT`; without one the page
    /// names a session after its program.
    pub label: Option<String>,
    pub kind: Kind,
    /// Unix seconds when the session began.
    pub opened: f64,
    /// The shim's control socket, for sessions read from a shim's socket.
    pub control: Option<PathBuf>,
    pub live: AtomicBool,
    pub analysis: Mutex<Analysis>,
    /// Why the session ended (EOF, error), once it has.
    pub ended: Mutex<Option<String>>,
}

#[derive(Serialize)]
pub struct Brief {
    pub id: u64,
    pub name: String,
    pub source: String,
    pub kind: Kind,
    pub live: bool,
    pub ended: Option<String>,
    pub pid: Option<u32>,
    pub rts: Option<String>,
    pub args: Vec<String>,
    pub caps: u16,
    pub opened: f64,
    pub time: u64,
    pub events: u64,
    pub bytes: u64,
    pub drops: u64,
    pub error: Option<String>,
    pub control: bool,
}

impl Session {
    pub fn brief(&self) -> Brief {
        let a = self.analysis.lock().unwrap();
        let name = a
            .info
            .args
            .first()
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| self.source.clone());
        let name = self.label.clone().unwrap_or(name);
        Brief {
            id: self.id,
            name,
            source: self.source.clone(),
            kind: self.kind,
            live: self.live.load(Ordering::Relaxed),
            ended: self.ended.lock().unwrap().clone(),
            pid: a.info.pid,
            rts: a.info.rts.clone(),
            args: a.info.args.clone(),
            caps: a.info.caps,
            opened: self.opened,
            time: a.health.time,
            events: a.health.events,
            bytes: a.health.bytes,
            drops: a.health.dropped_blocks,
            error: a.health.error.clone(),
            control: self.control.is_some(),
        }
    }
}

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    sessions: RwLock<Vec<Arc<Session>>>,
    pub config: Config,
    /// Keep at most this many ended sessions (the oldest go first).
    pub keep_ended: usize,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Registry {
    pub fn new(config: Config) -> Registry {
        Registry {
            config,
            keep_ended: 32,
            ..Default::default()
        }
    }

    pub fn open(&self, source: String, kind: Kind, control: Option<PathBuf>) -> Arc<Session> {
        self.open_named(None, source, kind, control)
    }

    pub fn open_named(
        &self,
        label: Option<String>,
        source: String,
        kind: Kind,
        control: Option<PathBuf>,
    ) -> Arc<Session> {
        let s = Arc::new(Session {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            source,
            label,
            kind,
            opened: now(),
            control,
            live: AtomicBool::new(kind == Kind::Live),
            analysis: Mutex::new(Analysis::new(self.config.clone())),
            ended: Mutex::new(None),
        });
        let mut all = self.sessions.write().unwrap();
        all.push(s.clone());
        // Bound the ended sessions kept.
        let ended: Vec<u64> = all
            .iter()
            .filter(|s| !s.live.load(Ordering::Relaxed))
            .map(|s| s.id)
            .collect();
        if ended.len() > self.keep_ended {
            let drop: HashSet<u64> = ended[..ended.len() - self.keep_ended]
                .iter()
                .copied()
                .collect();
            all.retain(|s| !drop.contains(&s.id));
        }
        s
    }

    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.sessions
            .read()
            .unwrap()
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<Session>> {
        self.sessions.read().unwrap().clone()
    }
}

/// Reads `input` into `session` until EOF or an error; marks it ended.
pub fn pump(session: &Session, mut input: impl Read, follow: bool) {
    let mut buf = vec![0u8; 128 << 10];
    let why = loop {
        match input.read(&mut buf) {
            Ok(0) if follow && !session.analysis.lock().unwrap().health.data_end => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => {
                if let Err(e) = session.analysis.lock().unwrap().push(&buf[..n]) {
                    break format!("not an eventlog: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read: {e}"),
        }
    };
    session.analysis.lock().unwrap().finish();
    *session.ended.lock().unwrap() = Some(why);
    session.live.store(false, Ordering::Relaxed);
}

/// Opens a stream source.
fn connect(ep: &Endpoint) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match ep {
        Endpoint::Unix(p) => Box::new(UnixStream::connect(p)?),
        Endpoint::Tcp(a) => Box::new(TcpStream::connect(a.as_str())?),
        Endpoint::File(p) | Endpoint::Fifo(p) => Box::new(std::fs::File::open(p)?),
        Endpoint::Stdin => Box::new(std::io::stdin()),
        Endpoint::Udp(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the UI reads byte streams; for UDP run `elstream recv udp://... | elstream ui -`",
            ))
        }
    })
}

fn control_of(ep: &Endpoint) -> Option<PathBuf> {
    match ep {
        Endpoint::Unix(p) => {
            let mut s = p.clone().into_os_string();
            s.push(".ctl");
            Some(PathBuf::from(s))
        }
        _ => None,
    }
}

/// Watches a source given on the command line: a socket is reconnected
/// (each connection a new session, so a restarted program is a new one);
/// a file or FIFO is read once (a file followed like `tail -f` until its data end).
/// `label` names its sessions (`--source NAME=ENDPOINT`).
pub fn watch_source(reg: Arc<Registry>, label: Option<String>, ep: Endpoint) {
    std::thread::spawn(move || loop {
        let reconnect = matches!(ep, Endpoint::Unix(_) | Endpoint::Tcp(_));
        match connect(&ep) {
            Ok(input) => {
                let kind = if reconnect { Kind::Live } else { Kind::File };
                let s = reg.open_named(label.clone(), ep.to_string(), kind, control_of(&ep));
                s.live.store(true, Ordering::Relaxed);
                pump(&s, input, matches!(ep, Endpoint::File(_)));
            }
            Err(e) => {
                if !reconnect {
                    let s = reg.open_named(label.clone(), ep.to_string(), Kind::File, None);
                    *s.ended.lock().unwrap() = Some(format!("cannot open: {e}"));
                    s.live.store(false, Ordering::Relaxed);
                }
            }
        }
        if !reconnect {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    });
}

/// Finds shim sockets (`elstream-<pid>.sock`, the shim's default name) in
/// `dir` every half second and watches each new one once.
pub fn discover(reg: Arc<Registry>, dir: PathBuf) {
    std::thread::spawn(move || {
        let mut seen: HashSet<(PathBuf, u64)> = HashSet::new();
        loop {
            seen.retain(|(p, _)| p.exists());
            for path in elstream_format::sources::shim_sockets(&dir, true) {
                // A socket bound again at the same path (a restarted program) is new.
                let Ok(md) = std::fs::metadata(&path) else {
                    continue;
                };
                if !seen.insert((path.clone(), md.ino())) {
                    continue;
                }
                let reg = reg.clone();
                std::thread::spawn(move || {
                    let ep = Endpoint::Unix(path);
                    if let Ok(input) = connect(&ep) {
                        let s = reg.open(ep.to_string(), Kind::Live, control_of(&ep));
                        pump(&s, input, false);
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
