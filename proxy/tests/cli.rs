//! The command line as a new user meets it: grouped help with value names,
//! sizes and durations as people type them, no escapes in pipes.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    let mut c = Command::new(elstream());
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut c).wait_timeout(LONG)
}

#[test]
fn help_groups_options_and_names_what_values_take() {
    let o = run(&["proxy", "--help"]);
    assert!(o.status.success());
    let help = text(&o.stdout);
    for heading in [
        "Source:",
        "Subscribers:",
        "UDP:",
        "Stats:",
        "Plugins and recording:",
        "Control relay:",
    ] {
        assert!(
            help.lines().any(|l| l == heading),
            "no {heading:?} group: {help}"
        );
    }
    for value in [
        "--queue <SIZE>",
        "--linger <DURATION>",
        "--listen <[NAME=]ENDPOINT>",
        "--source <[NAME=]ENDPOINT>",
        "--discover[=<DIR>]",
        "--record-max-age <DURATION>",
    ] {
        assert!(help.contains(value), "no {value:?}: {help}");
    }
    // One endpoint syntax: tcp:// everywhere, no `0 = unlimited` riddles.
    assert!(!help.contains("tcp:HOST"), "{help}");
    assert!(!help.contains("(0:") && !help.contains("0 = "), "{help}");
    let recv = text(&run(&["recv", "--help"]).stdout);
    assert!(recv.contains("--sessions <N|all>"), "{recv}");
}

#[test]
fn sizes_and_durations_take_the_forms_people_type() {
    // Accepted values get as far as the (empty) source: exit 1, not a usage error.
    let o = run(&[
        "proxy",
        "--source",
        "-",
        "--listen",
        "tcp://127.0.0.1:0",
        "--queue",
        "1.5M",
        "--store",
        "16MiB",
        "--linger",
        "1h",
        "--record-max-age",
        "1h30m",
        "--record-max-bytes",
        "1 GiB",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no input"), "{err}");
    let o = run(&["proxy", "--source", "-", "--queue", "lots"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("1.5M"), "the error shows the forms: {err}");
}

#[test]
fn no_colour_escapes_when_stderr_is_not_a_terminal() {
    // A source that is never there: the proxy warns (a log line) and retries.
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let err_path = dir.path().join("stderr");
    let mut c = Command::new(elstream());
    c.args(["proxy", "--source"])
        .arg(format!("unix:{}", dir.path().join("none.sock").display()))
        .args(["--listen", "tcp://127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let p = ChildGuard::spawn(&mut c);
    ready_lines(&ready);
    assert!(wait_until(LONG, || std::fs::read_to_string(&err_path)
        .is_ok_and(|e| e.contains("WARN"))));
    drop(p);
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!err.contains('\u{1b}'), "escape codes in a file: {err:?}");
}

/// What the proxy writes to a terminal (a pty from script(1)) until its first
/// warning, with `NO_COLOR` set to `no_color` or unset.
fn on_a_terminal(no_color: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} proxy --source unix:{} --listen tcp://127.0.0.1:0",
        elstream().display(),
        dir.path().join("none.sock").display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match no_color {
        Some(v) => c.env("NO_COLOR", v),
        None => c.env_remove("NO_COLOR"),
    };
    let mut g = ChildGuard::spawn(&mut c);
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut pipe, o2) = (g.child().stdout.take().unwrap(), out.clone());
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            o2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let warned = wait_until(LONG, || text(&out.lock().unwrap()).contains("WARN"));
    drop(g);
    let t = text(&out.lock().unwrap());
    assert!(warned, "no warning on the terminal: {t:?}");
    t
}

#[test]
fn colour_on_a_terminal_unless_no_color_is_set() {
    assert!(
        on_a_terminal(None).contains('\u{1b}'),
        "no colour on a terminal"
    );
    let plain = on_a_terminal(Some("1"));
    assert!(!plain.contains('\u{1b}'), "NO_COLOR ignored: {plain:?}");
}
