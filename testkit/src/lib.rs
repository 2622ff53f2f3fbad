//! Test support: builds the Haskell programs with GHC and judges eventlogs with
//! ghc-events (through `testkit/haskell/EventlogCheck.hs`), so every stream a
//! test receives is checked by a parser that is not ours.
//!
//! Paths: the repository root is found from this crate's manifest; build
//! outputs go under the cargo target directory (`CARGO_TARGET_DIR` if set,
//! else `<repo>/target`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// System libraries a static Rust library needs when GHC links it into a
/// program. From `cargo rustc -p elstream-shim --release --crate-type staticlib
/// -- --print native-static-libs` (rerun it when the shim gains a native
/// dependency).
pub const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the repository root")
        .to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative to the repository
/// root when relative) or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// The eventlog corpus (`../shared/corpus` from the repository root).
///
/// Panics when it is missing and `CI` is set; otherwise returns the path
/// anyway and callers skip with a printed note (see [`corpus_or_skip`]).
pub fn corpus_dir() -> PathBuf {
    let dir = repo_root().join("../shared/corpus");
    if !dir.is_dir() && std::env::var_os("CI").is_some() {
        panic!(
            "eventlog corpus missing at {} (CI is set, so this is an error)",
            dir.display()
        );
    }
    dir
}

/// `corpus_dir()/rel` if the corpus exists; `None` (after printing a note)
/// when it is absent outside CI.
pub fn corpus_or_skip(rel: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_dir() {
        Some(dir.join(rel))
    } else {
        eprintln!("note: corpus missing at {}, skipping", dir.display());
        None
    }
}

/// `target/release/<name>`; panics with a clear message if it is not built.
pub fn release_bin(name: &str) -> PathBuf {
    let path = target_dir().join("release").join(name);
    if !path.exists() {
        panic!(
            "{} is not built: run `cargo build --release --workspace` first",
            path.display()
        );
    }
    path
}

/// `target/release/libelstream.a`, the shim as a static library.
pub fn shim_staticlib() -> PathBuf {
    release_bin("libelstream.a")
}

/// How to compile a Haskell program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HsBuild {
    /// `-threaded`
    pub threaded: bool,
    /// `-eventlog`
    pub eventlog: bool,
    /// `-rtsopts` (so tests can pass `+RTS -N2 -l ...`)
    pub rtsopts: bool,
    /// Link the static `libelstream.a` and put `shim/haskell/src` on the
    /// module search path (for `GHC.Eventlog.Stream`).
    pub link_shim: bool,
    /// More ghc arguments.
    pub extra: Vec<String>,
}

impl HsBuild {
    /// `-threaded -eventlog -rtsopts`, the usual flags for the examples.
    pub fn program() -> HsBuild {
        HsBuild {
            threaded: true,
            eventlog: true,
            rtsopts: true,
            link_shim: false,
            extra: Vec::new(),
        }
    }

    /// The usual flags plus the shim.
    pub fn with_shim() -> HsBuild {
        HsBuild {
            link_shim: true,
            ..HsBuild::program()
        }
    }

    /// The ghc arguments, without sources and output paths.
    pub fn ghc_args(&self) -> Vec<String> {
        let mut args = vec!["-O1".to_string()];
        if self.threaded {
            args.push("-threaded".into());
        }
        if self.eventlog {
            args.push("-eventlog".into());
        }
        if self.rtsopts {
            args.push("-rtsopts".into());
        }
        if self.link_shim {
            let src = repo_root().join("shim/haskell/src");
            args.push(format!("-i{}", src.display()));
            // A plain file argument: ghc hands it to the linker after the
            // program's objects, so the archive resolves their references.
            args.push(shim_staticlib().display().to_string());
            for lib in NATIVE_STATIC_LIBS {
                args.push(format!("-optl{lib}"));
            }
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`, so cache
/// directory names stay valid between toolchains.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

fn read_or_panic(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.hs` file under `dir`, sorted (the shim binding's sources).
fn hs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension() == Some(OsStr::new("hs")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Compiles a single-module Haskell program into
/// `target/haskell/<name>-<hash>/<name>` and returns the binary's path.
///
/// The hash covers the source, the flags, the shim binding's sources and the
/// static library's size and mtime, so a stale binary is never reused.
/// Several test processes may build at once: each builds in its own temporary
/// directory and renames it into place; the loser of the race discards its
/// copy and uses the winner's.
pub fn build_haskell(src: &Path, opts: &HsBuild) -> PathBuf {
    let name = src
        .file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or_else(|| panic!("bad Haskell source path {}", src.display()))
        .to_string();
    let args = opts.ghc_args();
    let mut hash = Fnv::new();
    hash.bytes(&read_or_panic(src));
    for a in &args {
        hash.bytes(a.as_bytes());
    }
    if opts.link_shim {
        for f in hs_files(&repo_root().join("shim/haskell/src")) {
            hash.bytes(f.to_string_lossy().as_bytes());
            hash.bytes(&read_or_panic(&f));
        }
        let meta = fs::metadata(shim_staticlib()).expect("stat libelstream.a");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        hash.bytes(&meta.len().to_le_bytes());
        hash.bytes(&mtime.to_le_bytes());
    }
    let cache = target_dir().join("haskell");
    let final_dir = cache.join(format!("{name}-{:016x}", hash.0));
    let bin = final_dir.join(&name);
    if bin.exists() {
        return bin;
    }
    fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("cannot create {}: {e}", cache.display()));
    let tmp = cache.join(format!(".tmp-{name}-{}", unique_suffix()));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
    let out = Command::new("ghc")
        .args(&args)
        .arg("-outputdir")
        .arg(tmp.join("build"))
        .arg("-o")
        .arg(tmp.join(&name))
        .arg(src)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ghc (is GHC installed?): {e}"));
    if !out.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        panic!(
            "ghc failed for {} ({}):\nghc {}\n{}{}",
            src.display(),
            out.status,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Object files are not needed once linked.
    let _ = fs::remove_dir_all(tmp.join("build"));
    if fs::rename(&tmp, &final_dir).is_err() {
        // Another process finished first; its binary is the same program.
        let _ = fs::remove_dir_all(&tmp);
        if !bin.exists() {
            panic!(
                "could not move the build of {name} into {}",
                final_dir.display()
            );
        }
    }
    bin
}

/// Builds `examples/haskell/<name>.hs` with `-threaded -eventlog -rtsopts`,
/// linking the shim when the program imports `GHC.Eventlog.Stream`.
pub fn example(name: &str) -> PathBuf {
    let src = repo_root()
        .join("examples/haskell")
        .join(format!("{name}.hs"));
    let text = String::from_utf8_lossy(&read_or_panic(&src)).into_owned();
    let opts = if text.contains("import GHC.Eventlog.Stream") {
        HsBuild::with_shim()
    } else {
        HsBuild::program()
    };
    build_haskell(&src, &opts)
}

/// The checker program (built once, cached like any other).
pub fn checker() -> PathBuf {
    let src = repo_root().join("testkit/haskell/EventlogCheck.hs");
    build_haskell(
        &src,
        &HsBuild {
            threaded: false,
            eventlog: false,
            rtsopts: true,
            link_shim: false,
            extra: Vec::new(),
        },
    )
}

/// How the byte stream ended, by the checker's own walk over event sizes
/// (ghc-events itself neither reports the data end nor minds a cut-off event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The data end marker was reached, followed by this many more bytes.
    DataEnd { trailing: u64 },
    /// The input stopped without a data end; `partial` bytes of an incomplete
    /// event were left (0 = it stopped between two events).
    Missing { partial: u64 },
    /// An event type that the header does not declare, at this offset from the
    /// first byte after `datb`.
    BadType { offset: u64, ty: u16 },
    /// No framing line (header unreadable).
    Unknown,
}

/// What ghc-events made of an eventlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The header was unreadable, or ghc-events threw while decoding.
    pub error: Option<String>,
    /// `readEventLog`'s `Maybe String`: a decoding error that cut the events short.
    pub tail_error: Option<String>,
    /// Events ghc-events decoded (block markers not included: ghc-events 0.17
    /// consumes them).
    pub events: u64,
    /// Events per GHC event type number (65535: constructor without a known number).
    pub per_type: BTreeMap<u16, u64>,
    /// Events per capability (-1: outside any capability's block).
    pub per_cap: BTreeMap<i32, u64>,
    /// The header's event types and sizes (`None` = variable size).
    pub event_types: BTreeMap<u16, Option<u16>>,
    /// Every UserMessage text, in file order.
    pub user_messages: Vec<String>,
    /// Every UserMarker text, in file order.
    pub markers: Vec<String>,
    /// Events whose timestamp is below the previous one on the same capability.
    pub backwards: u64,
    /// Smallest and largest timestamp.
    pub time_range: Option<(u64, u64)>,
    /// Events found by the checker's framing walk, block markers included.
    pub frames: u64,
    /// Block markers (type 18) found by the framing walk.
    pub blocks: u64,
    /// How the stream ended.
    pub end: End,
}

impl Check {
    /// Count of one event type.
    pub fn count(&self, ty: u16) -> u64 {
        self.per_type.get(&ty).copied().unwrap_or(0)
    }

    /// User messages starting with `prefix`.
    pub fn user_count(&self, prefix: &str) -> u64 {
        self.user_messages
            .iter()
            .filter(|m| m.starts_with(prefix))
            .count() as u64
    }

    /// Panics unless this is a whole, clean eventlog: readable header, every
    /// event decoded, the data end as the very last bytes, and the framing
    /// walk agreeing with ghc-events.
    pub fn assert_ok(&self) -> &Check {
        self.assert_prefix_ok();
        assert_eq!(
            self.end,
            End::DataEnd { trailing: 0 },
            "eventlog does not end with the data end marker: {self:#?}"
        );
        self
    }

    /// Like [`assert_ok`](Self::assert_ok) but the data end may be missing
    /// (a stream cut off between two events, e.g. a consumer that left early).
    pub fn assert_prefix_ok(&self) -> &Check {
        assert!(self.error.is_none(), "eventlog error: {self:#?}");
        assert!(self.tail_error.is_none(), "eventlog tail error: {self:#?}");
        match self.end {
            End::DataEnd { trailing: 0 } | End::Missing { partial: 0 } => {}
            _ => panic!("eventlog ends badly: {self:#?}"),
        }
        assert_eq!(
            self.frames,
            self.events + self.blocks,
            "framing walk and ghc-events disagree: {self:#?}"
        );
        assert_eq!(
            self.per_type.get(&65535),
            None,
            "unmapped events: {self:#?}"
        );
        self
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn num<T: std::str::FromStr>(field: Option<&str>, line: &str) -> T {
    field
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("bad checker output line {line:?}"))
}

/// Parses the checker's output (see EventlogCheck.hs for the format).
pub fn parse_check_output(out: &str) -> Check {
    let mut check = Check {
        error: None,
        tail_error: None,
        events: 0,
        per_type: BTreeMap::new(),
        per_cap: BTreeMap::new(),
        event_types: BTreeMap::new(),
        user_messages: Vec::new(),
        markers: Vec::new(),
        backwards: 0,
        time_range: None,
        frames: 0,
        blocks: 0,
        end: End::Unknown,
    };
    let mut ended = false;
    for line in out.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut f = rest.split(' ');
        match key {
            "etype" => {
                let ty = num(f.next(), line);
                let size: i32 = num(f.next(), line);
                check.event_types.insert(ty, u16::try_from(size).ok());
            }
            "user" => check.user_messages.push(unescape(rest)),
            "marker" => check.markers.push(unescape(rest)),
            "ev" => {}
            "events" => check.events = num(f.next(), line),
            "type" => {
                let ty = num(f.next(), line);
                check.per_type.insert(ty, num(f.next(), line));
            }
            "unmapped" => {}
            "cap" => {
                let cap = num(f.next(), line);
                check.per_cap.insert(cap, num(f.next(), line));
            }
            "backwards" => check.backwards = num(f.next(), line),
            "time" => check.time_range = Some((num(f.next(), line), num(f.next(), line))),
            "frames" => {
                check.frames = num(f.next(), line);
                check.blocks = num(f.next(), line);
            }
            "dataend" => {
                check.end = End::DataEnd {
                    trailing: num(f.next(), line),
                }
            }
            "noend" => {
                check.end = End::Missing {
                    partial: num(f.next(), line),
                }
            }
            "badtype" => {
                check.end = End::BadType {
                    offset: num(f.next(), line),
                    ty: num(f.next(), line),
                }
            }
            "error" => check.error = Some(unescape(rest)),
            "tail" => check.tail_error = Some(unescape(rest)),
            "end" => ended = true,
            _ => panic!("unknown checker output line {line:?}"),
        }
    }
    assert!(ended, "checker output incomplete (no `end` line)");
    check
}

fn run_checker(args: &[&OsStr], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new(checker());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn EventlogCheck");
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("checker stdin");
        let bytes = bytes.to_vec();
        // Write from another thread: the checker's output could fill its
        // stdout pipe before it has read all of our input.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out: Output = child.wait_with_output().expect("wait for EventlogCheck");
    if let Some(w) = writer {
        let _ = w.join();
    }
    if !out.status.success() {
        panic!(
            "EventlogCheck {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("checker output is UTF-8")
}

/// Judges an eventlog file with ghc-events.
pub fn check(path: &Path) -> Check {
    parse_check_output(&run_checker(&[path.as_os_str()], None))
}

/// Judges eventlog bytes held in memory (e.g. read from a socket).
pub fn check_bytes(bytes: &[u8]) -> Check {
    parse_check_output(&run_checker(&[OsStr::new("-")], Some(bytes)))
}

fn parse_sequence(out: &str) -> Vec<(u64, i32, u16)> {
    out.lines()
        .filter_map(|line| line.strip_prefix("ev "))
        .map(|rest| {
            let mut f = rest.split(' ');
            (
                num(f.next(), rest),
                num(f.next(), rest),
                num(f.next(), rest),
            )
        })
        .collect()
}

/// Every event as (time, capability or -1, type), in file order, as ghc-events
/// decodes them (block markers excluded).
pub fn event_sequence(path: &Path) -> Vec<(u64, i32, u16)> {
    parse_sequence(&run_checker(
        &[OsStr::new("--events"), path.as_os_str()],
        None,
    ))
}

/// [`event_sequence`] for bytes in memory.
pub fn event_sequence_bytes(bytes: &[u8]) -> Vec<(u64, i32, u16)> {
    parse_sequence(&run_checker(
        &[OsStr::new("--events"), OsStr::new("-")],
        Some(bytes),
    ))
}

/// Parses `key value` lines (the counts the example programs print at exit,
/// e.g. `user-events 1234`); other lines are ignored.
pub fn parse_counts(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Polls until `path` exists; false on timeout.
pub fn wait_for_path(path: &Path, timeout: Duration) -> bool {
    wait_until(timeout, || path.exists())
}

/// Polls `cond` every 10 ms until it holds; false on timeout.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every `*.eventlog` in `corpus/ghc-events`, sorted. Panics when the corpus
/// is missing and `CI` is set; otherwise an empty list (with a note).
pub fn corpus_logs() -> Vec<PathBuf> {
    let dir = corpus_dir().join("ghc-events");
    if !dir.is_dir() {
        eprintln!("note: corpus missing at {}, skipping", dir.display());
        return Vec::new();
    }
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eventlog"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .eventlog files in {}", dir.display());
    v
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A child process that is killed (and reaped) when the guard is dropped, so
/// a failing test leaves no program running.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}")),
        ))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already taken")
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("child already taken").id()
    }

    /// Sends a signal by name (e.g. "INT", "TERM") with kill(1): std has no
    /// signal API and testkit stays free of dependencies.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.id());
    }

    /// Waits up to `timeout` for exit; on timeout kills it and panics.
    /// Returns the output captured on piped stdout/stderr.
    pub fn wait_timeout(mut self, timeout: Duration) -> Output {
        let mut child = self.0.take().expect("child already taken");
        let deadline = Instant::now() + timeout;
        // Drain pipes on threads so a chatty child cannot block on a full pipe.
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child {} did not exit within {timeout:?}", child.id());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: out
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: err
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Asks the child to finish (SIGTERM unless it already exited) and waits
    /// for it, so whatever it writes on shutdown is on disk afterwards.
    pub fn stop(mut self, timeout: Duration) -> Output {
        if self.child().try_wait().expect("try_wait").is_none() {
            self.signal("TERM");
        }
        self.wait_timeout(timeout)
    }

    /// Takes the child out of the guard (it will no longer be killed).
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("child already taken")
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("elstream-{label}-{}", unique_suffix()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
