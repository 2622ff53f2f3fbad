//! Child processes that cannot outlive a failing test, and polling with a
//! deadline.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

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
    pub fn wait_timeout(self, timeout: Duration) -> Output {
        self.try_wait_timeout(timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`wait_timeout`](Self::wait_timeout) that returns the timeout as an
    /// error (the child killed and reaped) instead of panicking.
    pub fn try_wait_timeout(mut self, timeout: Duration) -> Result<Output, String> {
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
                return Err(format!(
                    "child {} did not exit within {timeout:?}",
                    child.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output {
            status,
            stdout: out
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: err
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        })
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

/// Runs `program ARGS +RTS -N2 -l RTS... -olLOG -RTS` in `cwd` (where a `-h`
/// profile writes its `.hp`), waited for at most 2 minutes; a failure panics
/// with its stderr. Returns its stdout's `key value` counts.
pub fn run_to_l_file(
    program: &Path,
    args: &[&str],
    rts: &[&str],
    log: &Path,
    cwd: &Path,
) -> std::collections::BTreeMap<String, u64> {
    let out = ChildGuard::spawn(
        Command::new(program)
            .args(args)
            .args(["+RTS", "-N2", "-l"])
            .args(rts)
            .arg(format!("-ol{}", log.display()))
            .arg("-RTS")
            .current_dir(cwd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .wait_timeout(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    crate::parse_counts(&String::from_utf8_lossy(&out.stdout))
}
