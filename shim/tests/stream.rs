//! The shim end to end: real GHC programs linked with libelstream.a stream to
//! real UNIX-socket consumers, and ghc-events judges what they received.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use elstream_format::eventlog::{
    EVENT_GC_START, EVENT_RUN_THREAD, EVENT_USER_MARKER, EVENT_USER_MSG,
};
use elstream_format::{Frame, StreamDecoder};
use testkit::{build_haskell, check_bytes, example, parse_counts, ChildGuard, HsBuild, TempDir};

const LONG: Duration = Duration::from_secs(120);

fn test_program(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/haskell/{name}.hs"));
    build_haskell(&src, &HsBuild::with_shim())
}

/// Connects to `sock` as soon as it exists and reads until the shim closes.
fn consume(sock: PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        assert!(
            testkit::wait_for_path(&sock, LONG),
            "socket {} never appeared",
            sock.display()
        );
        let mut s = UnixStream::connect(&sock).expect("connect");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        buf
    })
}

/// Spawns `cmd` with piped stdout, sending each line to the returned channel.
fn spawn_lines(cmd: &mut Command) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut child = ChildGuard::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()));
    let out = child.child().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, want: &str, seen: &mut Vec<String>) {
    loop {
        let line = rx
            .recv_timeout(LONG)
            .unwrap_or_else(|_| panic!("no `{want}` line; saw {seen:?}"));
        seen.push(line.clone());
        if line.starts_with(want) {
            return;
        }
    }
}

#[test]
fn consumer_from_the_start_gets_every_user_event_and_matches_a_file_run() {
    let demo = example("Demo");
    let dir = TempDir::new("shim-full");
    let sock = dir.join("demo.sock");
    let reader = consume(sock.clone());
    let args = ["12", "10", "3000"];
    let out = ChildGuard::spawn(
        Command::new(&demo)
            .args(args)
            .arg(format!("--stream=unix:{}", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    )
    .wait_timeout(LONG);
    assert!(out.status.success(), "demo failed: {out:?}");
    let counts = parse_counts(&String::from_utf8_lossy(&out.stdout));
    let streamed = check_bytes(&reader.join().unwrap());
    streamed.assert_ok();
    assert_eq!(streamed.count(EVENT_USER_MSG), counts["user-events"]);
    assert_eq!(streamed.count(EVENT_USER_MARKER), counts["markers"]);
    assert!(streamed.count(EVENT_RUN_THREAD) > 0 && streamed.count(EVENT_GC_START) > 0);
    assert!(!sock.exists(), "socket left behind");

    // The same program writing the classic +RTS -l file.
    let file = dir.join("demo.eventlog");
    let out = ChildGuard::spawn(
        Command::new(&demo)
            .args(args)
            .args(["+RTS", "-N2", "-l"])
            .arg(format!("-ol{}", file.display()))
            .stdout(Stdio::piped()),
    )
    .wait_timeout(LONG);
    assert!(out.status.success());
    let from_file = testkit::check(&file);
    from_file.assert_ok();
    // Types whose number does not depend on scheduling or on what happened
    // before the stream started (RTS start-up events need `sync`, issue 4).
    for ty in [EVENT_USER_MSG, EVENT_USER_MARKER] {
        assert_eq!(streamed.count(ty), from_file.count(ty), "event type {ty}");
    }
    // Same messages; their order in the file follows which capability buffer
    // filled first, which varies from run to run.
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&streamed.user_messages),
        sorted(&from_file.user_messages)
    );
}

#[test]
fn consumers_joining_mid_run_get_a_parseable_log() {
    let demo = example("Demo");
    let dir = TempDir::new("shim-mid");
    for start in ["oldest", "now"] {
        let sock = dir.join(format!("{start}.sock"));
        let (child, rx) = spawn_lines(
            Command::new(&demo)
                .args(["40", "25", "3000"])
                .arg(format!("--stream=unix:{},start={start}", sock.display()))
                .args(["+RTS", "-N2", "-RTS"]),
        );
        let mut seen = Vec::new();
        wait_line(&rx, "rounds", &mut seen);
        assert!(testkit::wait_for_path(&sock, LONG));
        std::thread::sleep(Duration::from_millis(400));
        // Two consumers at once, one more joining later.
        let a = consume(sock.clone());
        let b = consume(sock.clone());
        std::thread::sleep(Duration::from_millis(300));
        let c = consume(sock.clone());
        let out = child.wait_timeout(LONG);
        assert!(out.status.success());
        for bytes in [a, b, c].map(|h| h.join().unwrap()) {
            let check = check_bytes(&bytes);
            check.assert_ok();
            assert!(check.events > 0, "start={start}: no events");
        }
    }
}

#[test]
fn a_consumer_that_never_reads_costs_the_ring_and_every_byte_is_accounted() {
    let prog = test_program("Overflow");
    let dir = TempDir::new("shim-overflow");
    let sock = dir.join("o.sock");
    let ring = 4usize << 20;
    let (child, rx) = spawn_lines(
        Command::new(&prog)
            .arg(format!("unix:{},ring=4M,linger=120s", sock.display()))
            .arg("400000")
            .args(["+RTS", "-N2", "-RTS"]),
    );
    let mut seen = Vec::new();
    wait_line(&rx, "started", &mut seen);
    let mut consumer = UnixStream::connect(&sock).expect("connect");
    // Not a byte read until the program has written everything.
    wait_line(&rx, "stopping", &mut seen);
    let mut received = Vec::new();
    consumer.read_to_end(&mut received).unwrap();
    let out = child.wait_timeout(LONG);
    assert!(out.status.success());
    for line in rx.try_iter() {
        seen.push(line);
    }
    let stats: BTreeMap<String, u64> = parse_counts(&seen.join("\n"));

    let check = check_bytes(&received);
    check.assert_ok();
    assert!(check.user_messages.iter().any(|m| m == "OVERFLOW end"));
    // The flood is far bigger than the ring: the consumer must have missed some.
    assert!(stats["bytes-written"] > 8 * ring as u64, "{stats:?}");
    assert!(stats["consumer-blocks-dropped"] > 0, "{stats:?}");

    // Every byte is accounted for: what arrived plus what was dropped is what
    // the RTS wrote; the in-band notices add up to the counters.
    let (mut block_bytes, mut dropped_blocks, mut dropped_bytes, mut total) =
        (0u64, 0u64, 0u64, 0u64);
    let mut decoder = StreamDecoder::new();
    decoder.push(&received);
    while let Some(frame) = decoder.next_frame().expect("our own stream decodes") {
        match frame {
            Frame::Header(h) => total += h.raw.len() as u64,
            Frame::Block(b) => {
                total += b.bytes.len() as u64;
                let text = String::from_utf8_lossy(&b.bytes);
                if let Some(i) = text.find("elstream: dropped ") {
                    let words: Vec<&str> = text[i..].split_whitespace().collect();
                    dropped_blocks += words[2].parse::<u64>().unwrap();
                    dropped_bytes += words[4].trim_start_matches('(').parse::<u64>().unwrap();
                } else {
                    block_bytes += b.bytes.len() as u64;
                }
            }
            Frame::DataEnd => total += 2,
        }
    }
    assert_eq!(total, received.len() as u64);
    assert_eq!(total, stats["bytes-delivered"], "{stats:?}");
    assert_eq!(dropped_blocks, stats["consumer-blocks-dropped"]);
    assert_eq!(dropped_bytes, stats["consumer-bytes-dropped"]);
    // Blocks are the RTS's, or the shim's own for readers (creations of the
    // tasks the stream never saw created, counted as replayed).
    assert_eq!(
        block_bytes + dropped_bytes,
        stats["bytes-written"] + stats["bytes-replayed"],
        "{stats:?}"
    );
    // Memory: the ring, one block in flight, the RTS's own buffers and heap.
    let hwm = stats["vm-hwm-kb"] * 1024;
    assert!(
        hwm < (ring as u64) + (96 << 20),
        "peak RSS {hwm} bytes: {stats:?}"
    );
}

#[test]
fn misuse_gets_clear_errors_and_the_program_keeps_running() {
    let prog = test_program("ApiErrors");
    let dir = TempDir::new("shim-errors");
    let out = ChildGuard::spawn(Command::new(&prog).arg(dir.path()).stdout(Stdio::piped()))
        .wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
            .to_string()
    };
    assert!(line("error stop-before-start").contains("not started"));
    assert!(line("error malformed").contains("bogus"));
    assert!(line("error unknown-option").contains("unknown option `colour`"));
    assert!(line("error bad-size").contains("size"));
    assert!(line("error unwritable").contains("/proc/elstream-cannot-be-here.sock"));
    assert!(line("error too-long").contains("socket path must be"));
    line("ok good");
    assert!(line("error second-start").contains("already started"));
    line("alive");
    line("ok stop");
    assert!(line("error second-stop").contains("not started"));
    line("done");
}

#[test]
fn after_stop_busy_threads_run_on_and_the_rts_has_nothing_to_complain_about() {
    let prog = test_program("StopBusy");
    let dir = TempDir::new("stop-busy");
    let sock = dir.join("s.sock");
    let reader = consume(sock.clone());
    // The yielders write hundreds of MB/s: a ring that holds the whole run
    // keeps a reader slowed by a loaded box from falling a ring behind (not
    // what this test is about; a CI run on trixie lost 6 blocks with 64M).
    let out = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!("unix:{},ring=512M", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_timeout(LONG);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "StopBusy failed: {stderr}");
    assert!(stdout.contains("ran-on-after-stop"), "{stdout}");
    let c = check_bytes(&reader.join().expect("reader"));
    c.assert_ok();
    let before = c
        .user_messages
        .iter()
        .filter(|m| m.starts_with("before "))
        .count();
    assert_eq!(
        before, 20,
        "user messages before stop: {:?}",
        c.user_messages
    );
    // Events posted after the writer is gone are thrown away by the RTS,
    // buffer by buffer, each with a complaint: stop switches the classes off.
    assert!(
        !stderr.contains("could not flush"),
        "the RTS kept posting after stop:\n{stderr}"
    );
}
