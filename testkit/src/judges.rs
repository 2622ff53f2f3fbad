//! Judges beyond parsing, from Debian's packages: `ghc-events validate threads`
//! (thread state transitions) and ThreadScope itself (does it load every
//! event?), read off a screenshot under Xvfb by tesseract.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::fs::unique_suffix;
use crate::{target_dir, ChildGuard};

const VALIDATE_TIMEOUT: Duration = Duration::from_secs(300);
/// Xvfb start, ThreadScope's load and every screenshot together.
const THREADSCOPE_TIMEOUT: Duration = Duration::from_secs(180);
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// `ghc-events validate threads FILE` (Debian's /usr/bin/ghc-events). It
/// exits 0 either way; its first line says "Valid event log:" or "Invalid
/// event log:", the latter followed by the offending event after "Input:".
pub fn validate_threads(path: &Path) -> Result<(), String> {
    let out = ChildGuard::spawn(
        Command::new("/usr/bin/ghc-events")
            .args(["validate", "threads"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .try_wait_timeout(VALIDATE_TIMEOUT)
    .map_err(|e| format!("ghc-events validate threads {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    if out.status.success() && first.starts_with("Valid event log") {
        return Ok(());
    }
    // The per-thread "Key: N, Value: ..." lines can run to thousands; keep
    // the verdict and the event it stopped at.
    let summary: Vec<&str> = text.lines().filter(|l| !l.starts_with("Key: ")).collect();
    let mut summary = summary.join("\n");
    summary.truncate(4000);
    Err(format!(
        "ghc-events validate threads {} ({}): {}\n{}",
        path.display(),
        out.status,
        summary.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Opens `path` in Debian's `threadscope` on a private Xvfb display, waits
/// until its status line "FILE (N events, T s)" shows (the same reading on two
/// screenshots in a row, so a half-drawn window does not count), and returns
/// N with the status line as read. N counts the events ghc-events decodes,
/// block markers not included (the same as [`crate::Check::events`]).
///
/// Xvfb picks a free display itself (`-displayfd`), so parallel runs cannot
/// collide. Both processes are killed on every path; the last screenshot stays
/// under `target/threadscope/` and its path is in every error.
pub fn threadscope_events(path: &Path) -> Result<(u64, String), String> {
    let deadline = Instant::now() + THREADSCOPE_TIMEOUT;
    let dir = target_dir().join("threadscope");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!("{stem}-{}", unique_suffix());
    let shot = dir.join(format!("{base}.png"));
    let ts_log = dir.join(format!("{base}.log"));

    let mut xvfb = ChildGuard::spawn(
        Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x1024x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let display = read_display(&mut xvfb, Duration::from_secs(30))?;
    let ts_out = fs::File::create(&ts_log).map_err(|e| format!("{}: {e}", ts_log.display()))?;
    let mut ts = ChildGuard::spawn(
        Command::new("threadscope")
            .arg(path)
            .env("DISPLAY", &display)
            .env("NO_AT_BRIDGE", "1")
            .stdin(Stdio::null())
            .stdout(ts_out.try_clone().map_err(|e| e.to_string())?)
            .stderr(ts_out),
    );
    let fail = |why: String| {
        format!(
            "threadscope {}: {why} (screenshot {}, threadscope output {})",
            path.display(),
            shot.display(),
            ts_log.display()
        )
    };
    let mut last: Option<(u64, String)> = None;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(st) = ts.child().try_wait().map_err(|e| e.to_string())? {
            return Err(fail(format!(
                "exited ({st}) before showing its status line"
            )));
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "no status line within {THREADSCOPE_TIMEOUT:?} (last read: {last:?})"
            )));
        }
        run_tool(
            Command::new("import")
                .args(["-display", &display, "-window", "root"])
                .arg(&shot),
        )
        .map_err(&fail)?;
        let text = run_tool(Command::new("tesseract").arg(&shot).arg("stdout")).map_err(&fail)?;
        let now = text.lines().find_map(parse_status);
        if let Some(found) = now.clone().filter(|_| now == last) {
            return Ok(found);
        }
        last = now;
    }
}

/// The display number Xvfb writes on its stdout once it listens.
fn read_display(xvfb: &mut ChildGuard, timeout: Duration) -> Result<String, String> {
    let out = xvfb.child().stdout.take().expect("Xvfb stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(timeout)
        .map_err(|_| format!("Xvfb did not report a display within {timeout:?}"))?;
    match line.trim().parse::<u32>() {
        Ok(n) => Ok(format!(":{n}")),
        Err(_) => Err(format!("Xvfb did not start (it printed {line:?})")),
    }
}

/// Runs a helper to completion; its stdout, or why it failed.
fn run_tool(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = ChildGuard::spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .try_wait_timeout(TOOL_TIMEOUT)
    .map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// "FILE (N events, T s)" → (N, the line). Digit groups OCR may space or
/// comma apart are joined.
pub(crate) fn parse_status(line: &str) -> Option<(u64, String)> {
    let line = line.trim();
    let end = line.find(" events,")?;
    let open = line[..end].rfind('(')?;
    let digits: String = line[open + 1..end]
        .chars()
        .filter(|c| !matches!(c, ' ' | ',' | '.'))
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_lines() {
        let l = "[ demo.eventlog (1574 events, 0.201s)";
        assert_eq!(parse_status(l).unwrap().0, 1574);
        assert_eq!(
            parse_status("x.eventlog (62 978 events, 1.5s)").unwrap().0,
            62978
        );
        assert_eq!(parse_status("Total time: 200.663ms."), None);
        assert_eq!(parse_status("x (abc events, 1s)"), None);
    }
}
