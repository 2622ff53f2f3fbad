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
    // A program that never ends must fail the test, not hold it for ever.
    stalled.set_read_timeout(Some(LONG)).unwrap();
    stalled
        .read_to_end(&mut resumed)
        .expect("the stalled consumer's stream did not end");
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

#[test]
fn a_panic_on_the_shims_threads_is_caught_reported_and_streaming_goes_on() {
    // With ELSTREAM_TEST_PANICS=1 the control lines `test-panic io` and
    // `test-panic ctl` panic on the I/O thread and the control thread. The
    // program keeps running, the consumer keeps streaming and is told
    // in-band, `status` shows both, stderr says each once.
    use elstream_format::control::{request, ControlDecoder, Status};
    use std::io::Write;
    let demo = example("Demo");
    let dir = TempDir::new("shim-panic");
    let sock = dir.join("p.sock");
    let ctl_sock = dir.join("p.sock.ctl");
    let child = ChildGuard::spawn(
        Command::new(&demo)
            .args(["40", "50", "2000", "--wait-consumers=1"])
            .arg(format!("--stream=unix:{},flush=50ms", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .env("ELSTREAM_TEST_PANICS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    assert!(testkit::wait_for_path(&sock, LONG));
    let reader = {
        let mut s = UnixStream::connect(&sock).unwrap();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            s.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let ctl = |line: &str| {
        let mut s = UnixStream::connect(&ctl_sock).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        s.write_all(&request(line)).unwrap();
        let mut d = ControlDecoder::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = d.next_frame().unwrap() {
                return f;
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "no reply to {line}");
            d.push(&buf[..n]);
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    // The I/O thread panics before it can answer: send and hang up.
    UnixStream::connect(&ctl_sock)
        .unwrap()
        .write_all(&request("test-panic io"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = ctl("test-panic ctl");
    assert_eq!(r.status, Status::Failed, "{}", r.text);
    assert!(
        r.text.contains("test panic on the control thread"),
        "{}",
        r.text
    );
    let status = ctl("status").text;
    assert!(status.contains("panics=2\n"), "{status}");
    assert!(
        status.contains("panic=elstream-io: test panic on the I/O thread at "),
        "{status}"
    );
    assert!(status.contains("panic=elstream-ctl: test panic on the control thread"));
    let out = child.wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in [
        "test panic on the I/O thread",
        "test panic on the control thread",
    ] {
        assert_eq!(stderr.matches(text).count(), 1, "{text} in {stderr}");
    }
    let counts = testkit::parse_counts(&String::from_utf8_lossy(&out.stdout));
    let c = check_bytes(&reader.join().unwrap());
    c.assert_ok();
    let notices: Vec<_> = c
        .user_messages
        .iter()
        .filter(|m| m.starts_with("elstream: internal error (panic) on "))
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].contains("elstream-io: test panic on the I/O thread"));
    // Every event of the program still arrived, after the panics too.
    let own = c.user_messages.len() - notices.len();
    assert_eq!(own as u64, counts["user-events"]);
}
