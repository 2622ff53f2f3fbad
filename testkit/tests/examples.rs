//! The example programs: run them, judge their eventlogs with ghc-events,
//! and hold them to the counts they print.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{
    check, check_bytes, example, parse_counts, run_to_l_file, wait_for_path, ChildGuard, TempDir,
};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a program with `+RTS -N2 -l -ol<file>` and returns its printed counts
/// and the judged eventlog.
fn run_to_file(
    name: &str,
    args: &[&str],
) -> (std::collections::BTreeMap<String, u64>, testkit::Check) {
    let dir = TempDir::new(name);
    let log = dir.join("out.eventlog");
    let counts = run_to_l_file(&example(name), args, &[], &log, dir.path());
    (counts, check(&log))
}

fn spans_balanced(c: &testkit::Check, n: u64) {
    assert_eq!(c.user_count("START work "), n);
    assert_eq!(c.user_count("STOP work "), n);
    for i in 0..n {
        assert!(
            c.user_messages.contains(&format!("START work {i}")),
            "START work {i}"
        );
        assert!(
            c.user_messages.contains(&format!("STOP work {i}")),
            "STOP work {i}"
        );
    }
}

#[test]
fn plain_writes_exact_user_events_to_a_file() {
    let (counts, c) = run_to_file("Plain", &["6", "0"]);
    c.assert_ok();
    assert_eq!(counts["user-events"], 2 + 2 * 2 * 6);
    assert_eq!(c.count(19), counts["user-events"]);
    assert_eq!(c.count(58), counts["markers"]);
    assert_eq!(c.markers.len() as u64, 6);
    spans_balanced(&c, 12);
    assert_eq!(c.user_count("PLAIN "), 2);
}

#[test]
fn demo_without_stream_uses_two_capabilities_and_collects_garbage() {
    let (counts, c) = run_to_file("Demo", &["8", "0"]);
    c.assert_ok();
    assert_eq!(counts["user-events"], 2 + 2 * 4 * 8);
    assert_eq!(c.count(19), counts["user-events"]);
    assert_eq!(c.count(58), counts["markers"]);
    spans_balanced(&c, 32);
    for r in 0..8 {
        assert!(c.markers.contains(&format!("round {r}")));
    }
    assert!(c.count(9) > 0 && c.count(9) == c.count(10), "GC start/end");
    assert!(c.per_cap.get(&0).copied().unwrap_or(0) > 0);
    assert!(c.per_cap.get(&1).copied().unwrap_or(0) > 0);
}

#[test]
fn yield_load_writes_a_stop_event_per_yield() {
    let (counts, c) = run_to_file("Yield", &["2", "20000"]);
    c.assert_ok();
    assert_eq!(counts["user-events"], 2);
    let mut msgs = c.user_messages.clone();
    msgs.sort();
    assert_eq!(msgs, ["YIELD begin", "YIELD end"]);
    assert!(
        c.count(2) >= 2 * 20000,
        "stop-thread events: {}",
        c.count(2)
    );
}

#[test]
fn demo_streams_through_the_shim_to_a_unix_socket() {
    let dir = TempDir::new("demo-stream");
    let sock = dir.join("demo.sock");
    let mut cmd = Command::new(example("Demo"));
    cmd.args(["10", "5"])
        .arg(format!("--stream=unix:{},start=oldest", sock.display()))
        .arg("--wait-consumers=1")
        .args(["+RTS", "-N2", "-RTS"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = ChildGuard::spawn(&mut cmd);
    assert!(wait_for_path(&sock, Duration::from_secs(60)), "no socket");
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut bytes = Vec::new();
    conn.read_to_end(&mut bytes)
        .expect("stream ends (EOF) after stop");
    let out = child.wait_timeout(TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = parse_counts(&String::from_utf8_lossy(&out.stdout));

    let c = check_bytes(&bytes);
    c.assert_ok();
    assert_eq!(c.count(19), counts["user-events"]);
    assert_eq!(c.count(58), counts["markers"]);
    spans_balanced(&c, 40);
    assert_eq!(c.user_count("DEMO "), 2);
    assert!(c.count(9) > 0, "GC events streamed");
}
