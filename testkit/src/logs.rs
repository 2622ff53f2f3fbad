//! Eventlogs that the project's own GHC programs write, so a clone without the
//! external corpus still tests the decoder, encoder and proxy on real logs of
//! every feature: heap profiling (`-hT`, and `-hi` on GHC 9.2+), user
//! messages and markers with non-ASCII text, binary messages, thread labels,
//! sparks, the nonmoving GC, and a log of several full blocks. `testkit/haskell/OwnLog.hs` writes them (built
//! with [`crate::build_haskell`], run with `+RTS -l -ol<file>`); they are
//! cached next to its binary under the target directory, so each binary's
//! logs are written once.
//!
//! Also here: the rule for tests on the external corpus (`../shared/corpus`,
//! third-party data that is never committed): they run where it exists, fail
//! under `CI` when it is missing, and elsewhere skip loudly (a `SKIPPED:` note
//! on stderr and a file per skipped test under `target/corpus-skipped/`, which
//! `scripts/test.sh` counts).

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{build_haskell, repo_root, target_dir, ChildGuard, HsBuild};

/// Every program run here must finish within this (it takes well under 1 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One log written by `OwnLog.hs`.
#[derive(Clone, Debug)]
pub struct OwnLog {
    /// e.g. `user`, `heap-hT`, `heap-hi`, `nonmoving`.
    pub name: &'static str,
    pub path: PathBuf,
    /// The GHC that compiled the program (`+RTS --info`), e.g. `9.0.2`.
    pub ghc: String,
    /// The RTS options it ran with.
    pub rts: &'static [&'static str],
    /// What the program says it posted, in order.
    pub posted: Posted,
    /// `Some((offset after datb, type read there))` when an event's size
    /// field disagrees with the event (the checker's size walk derails there
    /// while ghc-events, which reads by content, goes on): GHC 9.6.6 and
    /// 9.10.3 write `-hi` info-table events (type 169) one byte shorter than
    /// their size field says. `None`: every event has its declared size.
    pub size_mismatch: Option<(u64, u16)>,
}

impl OwnLog {
    /// `name (GHC x.y.z)`, for assertion messages.
    pub fn label(&self) -> String {
        format!("{} (GHC {})", self.name, self.ghc)
    }

    pub fn bytes(&self) -> Vec<u8> {
        fs::read(&self.path).unwrap_or_else(|e| panic!("read {}: {e}", self.path.display()))
    }
}

/// The program's own account of what it posted (its stdout), as raw bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    /// `traceEventIO` texts, UTF-8.
    pub messages: Vec<Vec<u8>>,
    /// `traceMarkerIO` texts, UTF-8.
    pub markers: Vec<Vec<u8>>,
    /// `traceBinaryEvent#` payloads.
    pub binaries: Vec<Vec<u8>>,
    /// `labelThread` labels, UTF-8.
    pub labels: Vec<Vec<u8>>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s:?}")))
        .collect()
}

/// Hex field of the judges' output: `-` is empty.
fn field_bytes(s: &str) -> Vec<u8> {
    if s == "-" {
        Vec::new()
    } else {
        unhex(s)
    }
}

fn parse_posted(out: &str) -> Posted {
    let mut p = Posted::default();
    let mut done = false;
    for line in out.lines() {
        let (key, val) = line.split_once(' ').unwrap_or((line, ""));
        let list = match key {
            "msg" => &mut p.messages,
            "marker" => &mut p.markers,
            "binary" => &mut p.binaries,
            "label" => &mut p.labels,
            "done" => {
                done = true;
                continue;
            }
            _ => panic!("OwnLog printed an unknown line {line:?}"),
        };
        list.push(unhex(val));
    }
    assert!(done, "OwnLog did not finish: {out:?}");
    p
}

/// A command that runs `bin` (built by `build_haskell`, which wraps a
/// program of a matrix GHC so that it runs inside its root) in `cwd`.
fn program_command(bin: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd);
    // 9.0.2 encodes thread labels in the locale's encoding.
    cmd.env("LANG", "C.UTF-8").env("LC_ALL", "C.UTF-8");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(bin: &Path, cwd: &Path, args: &[&str]) -> String {
    let mut cmd = program_command(bin, cwd);
    cmd.args(args);
    let out = ChildGuard::spawn(&mut cmd).wait_timeout(RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("program output is UTF-8")
}

/// The GHC version that built `bin`, from its `+RTS --info`.
pub fn ghc_version(bin: &Path) -> String {
    let dir = bin.parent().expect("binary has a directory");
    let info = run(bin, dir, &["+RTS", "--info"]);
    info.lines()
        .find_map(|l| {
            let rest = l.split_once("\"GHC version\",")?.1;
            Some(
                rest.trim()
                    .trim_start_matches('"')
                    .split('"')
                    .next()?
                    .to_string(),
            )
        })
        .unwrap_or_else(|| panic!("no GHC version in {bin:?} +RTS --info: {info}"))
}

/// `major.minor` as a number for comparisons: `9.10.3` → 910.
fn ghc_number(version: &str) -> u32 {
    let mut it = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    it.next().unwrap_or(0) * 100 + it.next().unwrap_or(0)
}

struct Spec {
    name: &'static str,
    mode: &'static str,
    rts: &'static [&'static str],
    /// Built with `-finfo-table-map -fdistinct-constructor-tables` (for `-hi`).
    info_table_map: bool,
    /// Oldest GHC that supports it (`major*100 + minor`).
    since: u32,
}

/// The logs and how each is written. Every class is switched on explicitly
/// (`-l` alone leaves out the nonmoving and full-spark classes).
const SPECS: &[Spec] = &[
    Spec {
        name: "user",
        mode: "user",
        rts: &["-N2", "-lsgpfu"],
        info_table_map: false,
        since: 900,
    },
    Spec {
        name: "heap-hT",
        mode: "heap",
        rts: &["-l", "-hT", "-i0.02"],
        info_table_map: false,
        since: 900,
    },
    // Info-table profiling: GHC 9.2+.
    Spec {
        name: "heap-hi",
        mode: "heap",
        rts: &["-l", "-hi", "-i0.02"],
        info_table_map: true,
        since: 902,
    },
    // Several full 2 MiB blocks, most without state events.
    Spec {
        name: "blocks",
        mode: "yield",
        rts: &["-N1", "-l"],
        info_table_map: false,
        since: 900,
    },
    Spec {
        name: "nonmoving",
        mode: "heap",
        rts: &["-N2", "-xn", "-lsgnu"],
        info_table_map: false,
        since: 900,
    },
];

fn own_log_source() -> PathBuf {
    repo_root().join("testkit/haskell/OwnLog.hs")
}

fn build(info_table_map: bool) -> PathBuf {
    let mut opts = HsBuild::program();
    if info_table_map {
        opts.extra = vec![
            "-finfo-table-map".into(),
            "-fdistinct-constructor-tables".into(),
        ];
    }
    build_haskell(&own_log_source(), &opts)
}

/// Writes (or reuses) one log: `<bin dir>/logs/<name>.<args>.eventlog` and the
/// program's report beside it; a half-written pair never replaces a whole one.
fn write_log(bin: &Path, ghc: &str, spec: &Spec) -> OwnLog {
    // The file names carry the arguments, so changing them writes anew.
    let how: String = std::iter::once(spec.mode)
        .chain(spec.rts.iter().copied())
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = bin.parent().unwrap().join("logs");
    let path = dir.join(format!("{}.{how}.eventlog", spec.name));
    let report = dir.join(format!("{}.{how}.posted", spec.name));
    if !(path.exists() && report.exists()) {
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let work = crate::TempDir::new(&format!("ownlog-{}", spec.name));
        let tmp_log = work.join("out.eventlog");
        let mut args = vec![spec.mode, "+RTS"];
        args.extend_from_slice(spec.rts);
        let ol = format!("-ol{}", tmp_log.display());
        args.push(&ol);
        let out = run(bin, work.path(), &args);
        let tmp_report = work.join("out.posted");
        fs::write(&tmp_report, &out).unwrap();
        // Different test binaries may write the same log at once: each
        // moves its own copy into place, the report last.
        let staged = dir.join(format!(".{}.{}", spec.name, std::process::id()));
        fs::copy(&tmp_log, &staged).unwrap();
        fs::rename(&staged, &path).unwrap();
        fs::copy(&tmp_report, &staged).unwrap();
        fs::rename(&staged, &report).unwrap();
    }
    let posted = parse_posted(&fs::read_to_string(&report).unwrap());
    let size_mismatch = match crate::check(&path).end {
        crate::End::DataEnd { trailing: 0 } => None,
        crate::End::BadType { offset, ty } => Some((offset, ty)),
        other => panic!("{} (GHC {ghc}): log ends badly: {other:?}", spec.name),
    };
    OwnLog {
        name: spec.name,
        path,
        ghc: ghc.to_string(),
        rts: spec.rts,
        posted,
        size_mismatch,
    }
}

/// Every log our programs write on this GHC (built and written once; later
/// calls and later runs reuse them). Which exist depends on the GHC: `heap-hi`
/// needs 9.2+.
pub fn own_logs() -> &'static [OwnLog] {
    static LOGS: OnceLock<Vec<OwnLog>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let plain = build(false);
        let ghc = ghc_version(&plain);
        SPECS
            .iter()
            .filter(|s| ghc_number(&ghc) >= s.since)
            .map(|s| {
                let bin = if s.info_table_map {
                    build(true)
                } else {
                    plain.clone()
                };
                write_log(&bin, &ghc, s)
            })
            .collect()
    })
}

/// One of [`own_logs`] by name; panics if this GHC does not write it.
pub fn own_log(name: &str) -> &'static OwnLog {
    own_logs()
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no own log {name:?} on this GHC"))
}

/// The own logs whose every event has its declared size (see
/// [`OwnLog::size_mismatch`]): what a size-based reader must read whole.
pub fn framed_own_logs() -> Vec<&'static OwnLog> {
    own_logs()
        .iter()
        .filter(|l| l.size_mismatch.is_none())
        .collect()
}

/// What ghc-events decoded from an event's payload (EventlogDetail.hs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailEvent {
    pub time: u64,
    /// The capability, -1 for none.
    pub cap: i32,
    pub ty: u16,
    /// The fields as the judge prints them (see EventlogDetail.hs); text and
    /// bytes as raw bytes, numbers as their decimal digits.
    pub fields: Vec<Vec<u8>>,
}

/// ghc-events' reading of a log's header and of the payloads of the event
/// types EventlogDetail.hs lists.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    /// (number, size or None for variable, description bytes), header order.
    pub types: Vec<(u16, Option<u16>, Vec<u8>)>,
    pub events: Vec<DetailEvent>,
    pub error: Option<String>,
}

fn detail_judge() -> PathBuf {
    // Built like the checker: the host's GHC (sid has no ghc-events library),
    // plain flags.
    let src = repo_root().join("testkit/haskell/EventlogDetail.hs");
    let opts = HsBuild {
        rtsopts: true,
        ..HsBuild::default()
    };
    crate::build::build_with(crate::host_ghc(), &src, &opts)
}

/// Which payload fields of EventlogDetail's output are numbers (the rest are hex).
fn numeric_fields(ty: u16) -> &'static [usize] {
    match ty {
        44 => &[0],
        160 => &[0, 1, 2],
        162 | 165 | 201 => &[0],
        164 => &[0, 1],
        169 => &[0],
        207 => &[0, 1, 2, 3],
        _ => &[],
    }
}

/// ghc-events' payload reading of `path` (see [`Detail`]).
pub fn detail(path: &Path) -> Detail {
    let out = Command::new(detail_judge())
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run EventlogDetail");
    assert!(
        out.status.success(),
        "EventlogDetail {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("EventlogDetail output is ASCII");
    let mut d = Detail::default();
    let mut ended = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| -> u64 {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad EventlogDetail line {line:?}"))
        };
        match f[0] {
            "etype" => {
                let size: i64 = f[2].parse().unwrap();
                d.types
                    .push((num(1) as u16, u16::try_from(size).ok(), field_bytes(f[3])));
            }
            "ev" => {
                let ty = num(3) as u16;
                let numeric = numeric_fields(ty);
                let fields = f[4..]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if numeric.contains(&i) {
                            v.as_bytes().to_vec()
                        } else {
                            field_bytes(v)
                        }
                    })
                    .collect();
                d.events.push(DetailEvent {
                    time: num(1),
                    cap: f[2].parse().unwrap(),
                    ty,
                    fields,
                });
            }
            "error" => d.error = Some(String::from_utf8_lossy(&field_bytes(f[1])).into_owned()),
            "end" => ended = true,
            _ => panic!("unknown EventlogDetail line {line:?}"),
        }
    }
    assert!(ended, "EventlogDetail output incomplete");
    d
}

/// The external corpus's `ghc-events` folder: `$ELSTREAM_CORPUS/ghc-events`
/// when that variable is set (e.g. for a worktree beside the checkout),
/// else `../shared/corpus/ghc-events` from the repository root.
pub fn external_corpus_dir() -> PathBuf {
    match std::env::var_os("ELSTREAM_CORPUS") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("ghc-events"),
        _ => repo_root().join("../shared/corpus/ghc-events"),
    }
}

/// [`external_corpus_dir`] when it exists.
/// Missing: a panic when `CI` is set (CI must test it); otherwise a loud
/// `SKIPPED:` note and a file `target/corpus-skipped/<package>--<binary>--<test>`
/// that scripts/test.sh counts. A test that finds the corpus removes its
/// file, so the directory always tells which tests skipped in their last run.
pub fn external_corpus() -> Option<PathBuf> {
    let dir = external_corpus_dir();
    let marker = skip_marker();
    if dir.is_dir() {
        let _ = fs::remove_file(&marker);
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the eventlog corpus is missing at {} and CI is set: CI must run the corpus tests",
            dir.display()
        );
    }
    // Straight to the process's stderr: libtest captures eprintln! of
    // passing tests, and this note must show.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: its corpus part did not run, the external eventlog corpus is missing at {}",
        marker.file_name().unwrap().to_string_lossy(),
        dir.display()
    );
    if let Some(parent) = marker.parent() {
        let _ = fs::create_dir_all(parent);
    }
    let _ = fs::write(&marker, format!("corpus missing at {}\n", dir.display()));
    None
}

/// Every `*.eventlog` of the external corpus, sorted; empty after a loud skip
/// (see [`external_corpus`]).
pub fn external_logs() -> Vec<PathBuf> {
    let Some(dir) = external_corpus() else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("eventlog")))
        .collect();
    v.sort();
    assert!(
        v.len() >= 10,
        "corpus at {} looks incomplete: {v:?}",
        dir.display()
    );
    v
}

/// `target/corpus-skipped/<package>--<test binary>--<test name>`.
fn skip_marker() -> PathBuf {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    // Cargo names test binaries `<name>-<hash>`.
    let exe = match exe.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => exe,
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unnamed").replace("::", "-");
    // Cargo sets the package name when it runs a test binary.
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "tests".into());
    target_dir()
        .join("corpus-skipped")
        .join(format!("{pkg}--{exe}--{test}"))
}
