//! `elstream run -- ./prog args`: the program's own RTS writes its eventlog
//! into a FIFO in a private temporary directory; the proxy loop reads it.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use elstream_format::{ClassSet, Endpoint};

use crate::error::{Error, Result};
use crate::serve::{Config, Outcome, Proxy, Supervisor};
use crate::source::mkfifo;

/// `elstream run`'s own options (the serving ones are [`Config`]'s).
#[derive(clap::Args)]
pub struct RunOpts {
    /// Event classes to trace (RTS -l letters: s scheduler, g GC, n nonmoving GC,
    /// p sparks sampled, f sparks full, u user).
    #[arg(long, value_name = "LETTERS", default_value = "sgpu", value_parser = parse_classes, help_heading = "Program")]
    pub classes: ClassSet,
    /// Time allowed for the `prog +RTS --info` check.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = crate::units::parse_duration, help_heading = "Program")]
    pub check_timeout: Duration,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROG")]
    pub program: Vec<OsString>,
}

fn parse_classes(s: &str) -> std::result::Result<ClassSet, String> {
    ClassSet::parse(s).map_err(|e| e.to_string())
}

/// What `+RTS --info` said.
#[derive(Debug)]
pub struct RtsInfo {
    pub way: String,
    pub version: (u32, u32),
}

/// `-l` flag selecting exactly `classes` (`-l-a` first: plain `-lx` adds to the defaults).
pub fn trace_flag(classes: ClassSet) -> String {
    format!("-l-a{classes}")
}

fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("(\"{key}\", \"");
    let start = info.find(&pat)? + pat.len();
    let end = info[start..].find('"')?;
    Some(&info[start..start + end])
}

/// Whether an RTS way has the eventlog (`_l`, debug and profiling ways do).
fn way_has_eventlog(way: &str) -> bool {
    way.split('_')
        .skip(1)
        .any(|w| w == "l" || w == "debug" || w == "p")
}

/// Whether the RTS can write an eventlog. The RTS's own word comes first: one
/// without the eventlog refuses the `-l` we pass ("the flag -l requires the
/// program to be built with -eventlog, -prof or -debug"). Since GHC 9.4 every
/// way has the eventlog and the way's name no longer says so (9.6: `rts_thr`);
/// before, it must be an eventlog way.
fn has_eventlog(rts_stderr: &str, way: &str, version: (u32, u32)) -> bool {
    !rts_stderr.contains("requires the program to be built with -eventlog")
        && (version >= (9, 4) || way_has_eventlog(way))
}

/// Runs `prog +RTS -l... --info` and explains what stands in the way of streaming.
pub fn check_program(prog: &Path, classes: ClassSet, timeout: Duration) -> Result<RtsInfo> {
    let shown = prog.display().to_string();
    let mut child = Command::new(prog)
        .arg("+RTS")
        .arg(trace_flag(classes))
        .arg("--info")
        .arg("-RTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Spawn {
            program: shown.clone(),
            source: e,
        })?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(Error::io(format!("waiting for {shown}"), e)),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let Some(status) = status else {
        return Err(Error::ProgramCheck(format!(
            "{shown} +RTS --info did not finish within {timeout:?}: it does not look like a GHC \
             program that accepts RTS options (linked with -rtsopts=ignore or -rtsopts=ignoreAll?). \
             Relink with -rtsopts, or start it yourself with -with-rtsopts=\"-l -ol<fifo>\" and use \
             `elstream proxy --source fifo:<fifo>`"
        )));
    };
    if err.contains("RTS options are disabled") {
        return Err(Error::ProgramCheck(format!(
            "{shown} does not accept RTS options (linked with -rtsopts=none?): relink with \
             -rtsopts, or bake the flags in with -with-rtsopts=\"-l -ol<fifo>\" and use \
             `elstream proxy --source fifo:<fifo>`"
        )));
    }
    if !status.success() || !out.contains("(\"GHC RTS\", \"YES\")") {
        return Err(Error::ProgramCheck(format!(
            "{shown} +RTS --info failed ({status}); is it a GHC program? {}",
            err.trim()
        )));
    }
    let way = info_field(&out, "RTS way").unwrap_or("").to_string();
    let version = info_field(&out, "GHC version")
        .and_then(|v| {
            let mut it = v.split('.').map(|x| x.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((0, 0));
    if !has_eventlog(&err, &way, version) {
        return Err(Error::ProgramCheck(format!(
            "{shown} was built without eventlog support (GHC {}.{}, RTS way {way:?}): rebuild \
             it with `ghc -eventlog` (or -debug / -prof; GHC 9.4 and later have it in every way)",
            version.0, version.1
        )));
    }
    Ok(RtsInfo { way, version })
}

/// The private directory (0700) holding the FIFO; removed on drop, so on
/// every exit path that unwinds (errors, panics, normal exit).
struct RunDir {
    dir: Option<PathBuf>,
    fifo: PathBuf,
}

impl RunDir {
    fn create(prog: &Path, info: &RtsInfo) -> Result<RunDir> {
        if info.version < (8, 8) {
            // No -ol before 8.8: the RTS writes <prog>.eventlog in its cwd.
            let name = prog
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "prog".into());
            let fifo = PathBuf::from(format!("{name}.eventlog"));
            if fifo.exists() {
                return Err(Error::ProgramCheck(format!(
                    "GHC {}.{} writes {} in the working directory and it already exists; remove it",
                    info.version.0,
                    info.version.1,
                    fifo.display()
                )));
            }
            mkfifo(&fifo)
                .map_err(|e| Error::io(format!("cannot create FIFO {}", fifo.display()), e))?;
            return Ok(RunDir { dir: None, fifo });
        }
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let dir = base.join(format!("elstream-run-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let fifo = dir.join("eventlog.fifo");
                    let rd = RunDir {
                        dir: Some(dir),
                        fifo,
                    };
                    mkfifo(&rd.fifo).map_err(|e| {
                        Error::io(format!("cannot create FIFO {}", rd.fifo.display()), e)
                    })?;
                    return Ok(rd);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot create a directory in {}", base.display()),
                        e,
                    ))
                }
            }
        }
        Err(Error::Usage(format!(
            "cannot create a private directory in {}",
            base.display()
        )))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.fifo);
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The program, supervised from the proxy's loop.
struct RunChild(Child);

impl Supervisor for RunChild {
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    fn on_signal(&mut self, signal: libc::c_int, from_process: bool) {
        // A terminal's ^C already reached the program (same process group);
        // forward only what kill(2) sent us.
        if from_process {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.0.id() as libc::pid_t, signal);
            }
        }
    }
}

/// Exit code for the program's status: its code, or 128+signal like a shell.
pub fn exit_code(st: ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

pub fn run(mut cfg: Config, opts: RunOpts) -> Result<i32> {
    let Some(prog) = opts.program.first() else {
        return Err(Error::Usage(
            "run: missing program (usage: elstream run [OPTIONS] -- ./prog [ARGS])".into(),
        ));
    };
    let prog = PathBuf::from(prog);
    let info = check_program(&prog, opts.classes, opts.check_timeout)?;
    tracing::debug!(way = %info.way, version = ?info.version, "program check passed");
    let dir = RunDir::create(&prog, &info)?;
    cfg.sources = vec![("program".into(), Endpoint::Fifo(dir.fifo.clone()))];
    let mut proxy = Proxy::new(cfg)?;
    proxy.open_source()?;
    let mut cmd = Command::new(&prog);
    cmd.args(&opts.program[1..]);
    if info.version >= (8, 8) {
        let mut ghcrts = std::env::var_os("GHCRTS").unwrap_or_default();
        if !ghcrts.is_empty() {
            ghcrts.push(" ");
        }
        ghcrts.push(trace_flag(opts.classes));
        ghcrts.push(" -ol");
        ghcrts.push(dir.fifo.as_os_str());
        cmd.env("GHCRTS", ghcrts);
    } else {
        cmd.env("GHCRTS", trace_flag(opts.classes));
    }
    let child = cmd.spawn().map_err(|e| Error::Spawn {
        program: prog.display().to_string(),
        source: e,
    })?;
    proxy.supervise(Box::new(RunChild(child)));
    let outcome = proxy.run()?;
    drop(dir);
    Ok(match outcome {
        Outcome::Child(st) => exit_code(st),
        Outcome::Done => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ways_and_flags() {
        assert!(way_has_eventlog("rts_l"));
        assert!(way_has_eventlog("rts_thr_l"));
        assert!(way_has_eventlog("rts_thr_debug"));
        assert!(!way_has_eventlog("rts_v"));
        assert!(!way_has_eventlog("rts_thr"));
        // 9.4+: every way; the RTS's refusal of -l still wins.
        assert!(has_eventlog("", "rts_thr", (9, 6)));
        assert!(has_eventlog("", "rts_thr_l", (9, 0)));
        assert!(!has_eventlog("", "rts_thr", (9, 0)));
        let refusal =
            "prog: the flag -l-ag requires the program to be built with -eventlog, -prof or -debug";
        assert!(!has_eventlog(refusal, "rts_thr_l", (9, 0)));
        assert!(!has_eventlog(refusal, "rts_thr", (9, 10)));
        assert_eq!(trace_flag(ClassSet::parse("gu").unwrap()), "-l-agu");
        let info = " [(\"GHC RTS\", \"YES\")\n ,(\"GHC version\", \"9.0.2\")\n ,(\"RTS way\", \"rts_thr_l\")";
        assert_eq!(info_field(info, "RTS way"), Some("rts_thr_l"));
        assert_eq!(info_field(info, "GHC version"), Some("9.0.2"));
    }
}
