//! `elstream run -- ./prog` with real GHC programs (no shim), built by the GHC
//! that `ELSTREAM_GHC` selects (9.0.2, 9.6.6, 9.10.3): the RTS writes its
//! eventlog into elstream's FIFO. ghc-events judges every output.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn plain() -> PathBuf {
    example("Plain")
}

fn crash() -> PathBuf {
    build_haskell(
        &repo_root().join("proxy/tests/haskell/Crash.hs"),
        &HsBuild::program(),
    )
}

/// `elstream run` with TMPDIR inside `dir` (so the test sees what it leaves behind).
fn run_cmd(dir: &TempDir, label: &str, args: &[&str]) -> Command {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = elstream_cmd(dir, label, args);
    c.env("TMPDIR", &tmp).stdout(Stdio::piped());
    c
}

fn assert_nothing_left(dir: &TempDir) {
    let left: Vec<_> = std::fs::read_dir(dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "run left files behind: {left:?}");
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `elstream run --listen 0 OPTS -- PROG PROG_ARGS` (see [`run_cmd`]), and
/// the TCP port the system gave its listener (from its ready file).
fn spawn_run(
    dir: &TempDir,
    label: &str,
    opts: &[&str],
    prog: &Path,
    prog_args: &[&str],
) -> (ChildGuard, u16) {
    let ready = ready_file(dir, label);
    let _ = std::fs::remove_file(&ready);
    let (ready, prog) = (s(&ready), s(prog));
    let mut args = vec!["run", "--listen", "0", "--ready-file", &ready];
    args.extend_from_slice(opts);
    args.extend(["--", &prog]);
    args.extend_from_slice(prog_args);
    let run = ChildGuard::spawn(&mut run_cmd(dir, label, &args));
    let port = ready_port(dir, label);
    (run, port)
}

#[test]
fn run_serves_tcp_unix_and_udp_with_every_user_event() {
    let prog = plain();
    let dir = TempDir::new("run-plain");
    let sock = dir.join("s.sock");
    let udp_out = dir.join("udp.eventlog");
    let (recv, uport) = udp_recv_any(&dir, "recv-udp", &udp_out);
    let (run, port) = spawn_run(
        &dir,
        "run",
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            "--udp",
            &format!("127.0.0.1:{uport}"),
            "--wait-subscribers",
            "3",
        ],
        &prog,
        &["30", "5"],
    );
    let subs = [sub_tcp(port), sub_tcp(port), sub_unix(&sock)];
    let out = run.wait_timeout(LONG);
    assert!(out.status.success(), "run: {}", stderr_of(&dir, "run"));
    // The program's stdout passed through.
    let counts = parse_counts(&String::from_utf8_lossy(&out.stdout));
    let user_events = counts["user-events"];
    assert_eq!(counts["rounds"], 30);
    let r = recv.wait_timeout(LONG);
    assert!(r.status.success(), "recv: {}", stderr_of(&dir, "recv-udp"));
    assert!(
        stderr_of(&dir, "recv-udp").contains("lost 0 datagrams"),
        "{}",
        stderr_of(&dir, "recv-udp")
    );
    let mut seqs = Vec::new();
    for (i, h) in subs.into_iter().enumerate() {
        let bytes = h.join().unwrap();
        let c = check_saved(&dir, &format!("sub{i}.eventlog"), &bytes);
        c.assert_ok();
        assert_eq!(c.user_messages.len() as u64, user_events, "{c:#?}");
        seqs.push(sequence_saved(&dir, &format!("sub{i}.eventlog"), &bytes));
    }
    let c = check(&udp_out);
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, user_events);
    seqs.push(event_sequence(&udp_out));
    assert!(seqs[0].len() > 100);
    for q in &seqs[1..] {
        assert_eq!(q, &seqs[0], "subscribers from the start differ");
    }
    assert_nothing_left(&dir);
}

fn dropped_in_notices(msgs: &[String]) -> u64 {
    msgs.iter()
        .filter_map(|m| m.strip_prefix("elstream: dropped "))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `key=` of the first stats line that starts with `token_line` (the
/// `source` line mentions subscribers too).
fn sub_line_value(report: &str, token_line: &str, key: &str) -> Option<u64> {
    report
        .lines()
        .find(|l| l.starts_with(token_line))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))?
        .parse()
        .ok()
}

#[test]
fn stalled_subscriber_gets_a_drop_notice_and_changes_nobody_else() {
    let prog = plain();
    let dir = TempDir::new("run-stall");
    let sock = dir.join("stall.sock");
    let (run, port) = spawn_run(
        &dir,
        "run",
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            "--stats",
            &format!("unix:{}", stats_sock(&dir).display()),
            "--queue",
            "64K",
            "--linger",
            "300s",
            "--wait-subscribers",
            "3",
        ],
        &prog,
        &["6000", "0"],
    );
    let a = sub_tcp(port);
    let b = sub_tcp(port);
    // The stalled one: connected, reads nothing for now.
    let stalled = connect_unix(&sock);
    // Wait for the program to finish: the stalled subscriber alone is left, closing.
    assert!(wait_until(LONG, || {
        let r = stats(&dir);
        r.lines().filter(|l| l.starts_with("subscriber")).count() == 1
            && r.contains("state=closing")
    }));
    let report = stats(&dir);
    let dropped = sub_line_value(&report, "subscriber", "dropped_blocks").unwrap();
    assert!(dropped > 0, "no drops: {report}");
    let stalled = read_all(stalled);
    let out = run.wait_timeout(LONG);
    assert!(out.status.success(), "run: {}", stderr_of(&dir, "run"));
    let user_events = parse_counts(&String::from_utf8_lossy(&out.stdout))["user-events"];
    let sa = a.join().unwrap();
    let sb = b.join().unwrap();
    for (n, bytes) in [("a", &sa), ("b", &sb)] {
        let c = check_saved(&dir, n, bytes);
        c.assert_ok();
        assert_eq!(c.user_messages.len() as u64, user_events);
        assert_eq!(c.user_count("elstream: dropped"), 0);
    }
    assert_eq!(
        sequence_saved(&dir, "a", &sa),
        sequence_saved(&dir, "b", &sb)
    );
    let st = stalled.join().unwrap();
    let c = check_saved(&dir, "stalled", &st);
    c.assert_ok();
    assert!(c.user_count("elstream: dropped") >= 1, "{c:#?}");
    // The notices account for exactly the blocks the proxy counted as dropped.
    assert_eq!(dropped_in_notices(&c.user_messages), dropped);
    assert_nothing_left(&dir);
}

#[test]
fn disconnect_policy_closes_only_the_stalled_subscriber() {
    let prog = plain();
    let dir = TempDir::new("run-disconnect");
    let sock = dir.join("stall.sock");
    let (run, port) = spawn_run(
        &dir,
        "run",
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            // Room for a few 2 MiB RTS blocks, so the reading subscriber keeps up.
            "--queue",
            "8M",
            "--policy",
            "disconnect",
            "--wait-subscribers",
            "2",
        ],
        &prog,
        &["12000", "0"],
    );
    let a = sub_tcp(port);
    let stalled = connect_unix(&sock);
    // The run ends without waiting for the stalled subscriber: it was cut off.
    let out = run.wait_timeout(LONG);
    let err = stderr_of(&dir, "run");
    assert!(out.status.success(), "run: {err}");
    assert_eq!(err.matches("disconnecting it").count(), 1, "{err}");
    let stalled = read_all(stalled);
    let user_events = parse_counts(&String::from_utf8_lossy(&out.stdout))["user-events"];
    let c = check_saved(&dir, "a", &a.join().unwrap());
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, user_events);
    // Its stream stops wherever its socket buffer stopped (possibly mid-event);
    // ghc-events reads the whole events before the cut.
    let c = check_saved(&dir, "stalled", &stalled.join().unwrap());
    assert!(c.error.is_none() && c.events > 0, "{c:#?}");
}

/// `elstream run` of `prog 5 0` with one TCP subscriber: every user event arrives.
fn runs_with_every_user_event(dir: &TempDir, label: &str, prog: &Path) {
    let (run, port) = spawn_run(dir, label, &["--wait-subscribers", "1"], prog, &["5", "0"]);
    let sub = sub_tcp(port);
    let out = run.wait_timeout(LONG);
    assert!(out.status.success(), "{label}: {}", stderr_of(dir, label));
    let n = parse_counts(&String::from_utf8_lossy(&out.stdout))["user-events"];
    let c = check_saved(dir, &format!("{label}.eventlog"), &sub.join().unwrap());
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, n, "{label}");
    assert_nothing_left(dir);
}

/// `elstream run PROG` that must be refused with exit code 4 and `want` in the message.
fn refused(dir: &TempDir, label: &str, prog: &Path, want: &str) {
    let out = ChildGuard::spawn(&mut run_cmd(
        dir,
        label,
        &["run", "--listen", "0", "--", &s(prog), "1", "0"],
    ))
    .wait_timeout(LONG);
    let err = stderr_of(dir, label);
    assert_eq!(out.status.code(), Some(4), "{label}: {err}");
    assert!(err.contains(want), "{label}: {err}");
    assert!(!err.contains("panicked"), "{label}: {err}");
    assert_nothing_left(dir);
}

/// Before GHC 9.4 a program built without -eventlog cannot stream and is
/// refused; since 9.4 every RTS way has the eventlog (the way is `rts_thr`),
/// so the same build must be accepted and stream. -rtsopts=none is refused on
/// every GHC.
#[test]
fn program_without_eventlog_or_rts_options_gets_a_clear_error() {
    let g = ghc();
    eprintln!("{g}");
    let src = repo_root().join("examples/haskell/Plain.hs");
    let no_eventlog = build_haskell(
        &src,
        &HsBuild {
            eventlog: false,
            ..HsBuild::program()
        },
    );
    let no_rtsopts = build_haskell(
        &src,
        &HsBuild {
            rtsopts: false,
            extra: vec!["-rtsopts=none".into()],
            ..HsBuild::program()
        },
    );
    let dir = TempDir::new("run-check");
    if g.eventlog_in_every_way() {
        runs_with_every_user_event(&dir, "no-eventlog", &no_eventlog);
    } else {
        refused(&dir, "no-eventlog", &no_eventlog, "-eventlog");
    }
    refused(&dir, "no-rtsopts", &no_rtsopts, "-rtsopts");
    let out = ChildGuard::spawn(&mut run_cmd(
        &dir,
        "missing",
        &["run", "--", "/nonexistent/prog"],
    ))
    .wait_timeout(LONG);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr_of(&dir, "missing").contains("cannot execute"));
}

/// -l and -ol are "safe" RTS options: a program linked without -rtsopts (the
/// default, -rtsopts=some) still works under `run`.
#[test]
fn program_with_default_rtsopts_works() {
    let prog = build_haskell(
        &repo_root().join("examples/haskell/Plain.hs"),
        &HsBuild {
            rtsopts: false,
            ..HsBuild::program()
        },
    );
    runs_with_every_user_event(&TempDir::new("run-some"), "run", &prog);
}

fn crash_run(
    dir: &TempDir,
    label: &str,
    args: &[&str],
) -> (ChildGuard, std::thread::JoinHandle<Vec<u8>>) {
    let prog = crash();
    let stats = format!("unix:{}", dir.join(format!("{label}.stats")).display());
    let (g, port) = spawn_run(
        dir,
        label,
        &["--stats", &stats, "--wait-subscribers", "1"],
        &prog,
        args,
    );
    let sub = sub_tcp(port);
    (g, sub)
}

#[test]
fn crashing_program_leaves_parseable_logs_and_its_status() {
    let dir = TempDir::new("run-crash");
    // Non-zero exit: the RTS flushed its buffers, every event is there.
    let (g, sub) = crash_run(&dir, "exit", &["exit", "3"]);
    let out = g.wait_timeout(LONG);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&dir, "exit"));
    let c = check_saved(&dir, "exit.eventlog", &sub.join().unwrap());
    c.assert_ok();
    assert_eq!(c.user_count("CRASH"), 101);
    assert_nothing_left(&dir);

    // Killed: the RTS never flushed, but what arrived is a valid log.
    let (g, sub) = crash_run(&dir, "kill", &["kill"]);
    let out = g.wait_timeout(LONG);
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "{}",
        stderr_of(&dir, "kill")
    );
    check_saved(&dir, "kill.eventlog", &sub.join().unwrap()).assert_ok();
    assert_nothing_left(&dir);
}

#[test]
fn sigterm_is_forwarded_and_the_status_propagates() {
    let dir = TempDir::new("run-term");
    let (mut g, sub) = crash_run(&dir, "term", &["sleep"]);
    // The program is up once its ready line shows on the passed-through stdout.
    let mut stdout = std::io::BufReader::new(g.child().stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "crash ready");
    g.signal("TERM");
    let out = g.wait_timeout(LONG);
    assert_eq!(
        out.status.code(),
        Some(128 + 15),
        "{}",
        stderr_of(&dir, "term")
    );
    check_saved(&dir, "term.eventlog", &sub.join().unwrap()).assert_ok();
    assert_nothing_left(&dir);
}
