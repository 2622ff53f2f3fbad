//! Faults around the shim: the program killed mid-stream, forkProcess.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, check_bytes, example, ChildGuard, HsBuild, TempDir};

const LONG: Duration = Duration::from_secs(120);

#[test]
fn a_killed_program_leaves_consumers_a_parseable_log() {
    let demo = example("Demo");
    let dir = TempDir::new("shim-kill");
    let sock = dir.join("k.sock");
    let mut child = ChildGuard::spawn(
        Command::new(&demo)
            .args(["1000", "20", "3000"])
            .arg(format!("--stream=unix:{},flush=50ms", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::null()),
    );
    assert!(testkit::wait_for_path(&sock, LONG));
    let mut s = UnixStream::connect(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = s.read_to_end(&mut bytes);
        bytes
    });
    std::thread::sleep(Duration::from_millis(1500));
    child.child().kill().unwrap();
    let bytes = reader.join().unwrap();
    let c = check_bytes(&bytes);
    // Whatever arrived parses; the cut may fall inside the last block.
    assert!(c.error.is_none() && c.tail_error.is_none(), "{c:#?}");
    assert!(
        c.user_count("START work") > 0,
        "the periodic flush should have sent work spans: {c:#?}"
    );
}

#[test]
fn fork_process_child_does_not_disturb_the_parents_stream() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Fork.hs");
    let prog = build_haskell(&src, &HsBuild::with_shim());
    let dir = TempDir::new("shim-fork");
    let sock = dir.join("f.sock");
    let reader = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            assert!(testkit::wait_for_path(&sock, LONG));
            let mut s = UnixStream::connect(&sock).unwrap();
            let mut bytes = Vec::new();
            s.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let out = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!("unix:{},start=oldest", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    )
    .wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("child-exit Just (Exited ExitSuccess)") && text.contains("done"),
        "{text}"
    );
    let c = check_bytes(&reader.join().unwrap());
    c.assert_ok();
    assert_eq!(c.user_count("parent before"), 1);
    assert_eq!(c.user_count("parent after"), 100);
    // The child's events went to its own copy of the ring, served by no one.
    assert_eq!(c.user_count("child event"), 0);
}

#[test]
fn a_consumer_stalled_for_30_s_resumes_with_a_parseable_log_and_a_drop_notice() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Stall.hs");
    let prog = build_haskell(&src, &HsBuild::with_shim());
    let dir = TempDir::new("shim-stall30");
    let sock = dir.join("s.sock");
    // 35 s of about 10 MB/s of eventlog into a 4 MiB ring.
    let child = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!(
                "unix:{},ring=4M,flush=50ms,linger=60s",
                sock.display()
            ))
            .arg("35")
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    );
    assert!(testkit::wait_for_path(&sock, LONG));
    let mut stalled = UnixStream::connect(&sock).unwrap();
    let steady = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&sock).unwrap();
            let mut bytes = Vec::new();
            s.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    std::thread::sleep(Duration::from_secs(30));
    let mut resumed = Vec::new();
    stalled.read_to_end(&mut resumed).unwrap();
    let out = child.wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    let counts = testkit::parse_counts(&String::from_utf8_lossy(&out.stdout));
    let steady = check_bytes(&steady.join().unwrap());
    steady.assert_ok();
    // A reader that keeps up loses nothing; on a box too loaded to keep up it
    // must at least have been told.
    let notices = steady.user_count("elstream: dropped ");
    let ticks = steady.user_messages.len() as u64 - notices;
    if notices == 0 {
        assert_eq!(
            ticks, counts["user-events"],
            "the steady consumer lost events silently"
        );
    } else {
        assert!(ticks < counts["user-events"]);
    }
    let r = check_bytes(&resumed);
    r.assert_ok();
    assert!(
        r.user_count("elstream: dropped ") > 0,
        "no drop notice after the stall"
    );
    assert!(r.user_messages.iter().any(|m| m == "STALL end"));
}
