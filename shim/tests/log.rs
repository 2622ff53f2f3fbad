//! Where the shim's own messages go: stderr by default, nowhere with
//! `log=off`, the host's callback when it set one (`elstream_set_log_callback`).
//! The message used: a consumer refused by `max-consumers=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, ChildGuard, HsBuild, TempDir};

const LONG: Duration = Duration::from_secs(120);
const REFUSED: &str = "refused a consumer: 1 already connected (max-consumers)";

fn program() -> PathBuf {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR"));
    build_haskell(
        &shim.join("tests/haskell/LogHost.hs"),
        &HsBuild {
            extra: vec![
                shim.join("tests/c/log_capture.c").display().to_string(),
                format!("-optc-I{}", testkit::repo_root().join("include").display()),
            ],
            ..HsBuild::with_shim()
        },
    )
}

/// Runs the host with `options`, makes the shim refuse a second consumer,
/// returns (stdout, stderr).
fn run(options: &str, mode: &str) -> (String, String) {
    let dir = TempDir::new("shim-log");
    let sock = dir.join("l.sock");
    let mut child = ChildGuard::spawn(
        Command::new(program())
            .arg(format!("unix:{},max-consumers=1{options}", sock.display()))
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = child.child().stdin.take().unwrap();
    let mut lines = BufReader::new(child.child().stdout.take().unwrap()).lines();
    let mut out = String::new();
    for want in ["capture", "started"] {
        let line = lines.next().expect("a line").unwrap();
        assert!(line.starts_with(want), "{line}");
        out += &line;
        out.push('\n');
    }
    let first = UnixStream::connect(&sock).unwrap();
    assert!(testkit::wait_until(LONG, || {
        // The second is accepted by the kernel, then closed by the shim.
        let mut second = UnixStream::connect(&sock).unwrap();
        second.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = [0u8; 64];
        matches!(second.read(&mut buf), Ok(0))
    }));
    drop(first);
    stdin.write_all(b"quit\n").unwrap();
    drop(stdin);
    let rest = child.wait_timeout(LONG);
    assert!(rest.status.success(), "{rest:?}");
    for line in lines.map_while(Result::ok) {
        out += &line;
        out.push('\n');
    }
    (out, String::from_utf8_lossy(&rest.stderr).into_owned())
}

#[test]
fn messages_go_to_stderr_by_default_nowhere_with_log_off_and_to_the_hosts_callback() {
    let (_, stderr) = run("", "stderr");
    assert!(stderr.contains(&format!("elstream: {REFUSED}")), "{stderr}");

    let (_, stderr) = run(",log=off", "stderr");
    assert!(
        !stderr.contains("elstream:"),
        "log=off still wrote: {stderr}"
    );

    let (stdout, stderr) = run("", "capture");
    assert!(stdout.contains("capture 0"), "{stdout}");
    // ELSTREAM_LOG_WARN = 2, without the "elstream: " prefix.
    assert!(stdout.contains(&format!("LOG 2 {REFUSED}")), "{stdout}");
    assert!(
        !stderr.contains("elstream:"),
        "the callback was bypassed: {stderr}"
    );
}
