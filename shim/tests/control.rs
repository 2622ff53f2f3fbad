//! Runtime control end to end: a real GHC program switches classes, on/off,
//! syncs, snapshots and flushes while consumers and a control client watch.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elstream_format::control::{
    request, ControlDecoder, ControlFrame, Status, FRAME_HEADER, MAX_PAYLOAD,
};
use elstream_format::eventlog::{
    EVENT_CAPSET_CREATE, EVENT_CAP_CREATE, EVENT_GC_END, EVENT_GC_START, EVENT_RUN_THREAD,
    EVENT_STOP_THREAD, EVENT_THREAD_LABEL, EVENT_USER_MARKER, EVENT_USER_MSG,
};
use testkit::{
    build_haskell, check, check_bytes, event_sequence_bytes, ChildGuard, HsBuild, TempDir,
};

const LONG: Duration = Duration::from_secs(120);

fn program() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Control.hs");
    build_haskell(&src, &HsBuild::with_shim())
}

/// Sends one command line, returns the reply frame.
fn ctl(sock: &Path, line: &str) -> ControlFrame {
    let mut s = UnixStream::connect(sock).expect("connect control socket");
    s.write_all(&request(line)).unwrap();
    read_reply(&mut s).expect("a reply")
}

fn read_reply(s: &mut UnixStream) -> Option<ControlFrame> {
    s.set_read_timeout(Some(LONG)).unwrap();
    let mut d = ControlDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = d.next_frame().expect("well-formed reply") {
            return Some(f);
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        d.push(&buf[..n]);
    }
}

/// A consumer reading everything, noting when `needle` first arrived.
struct Watcher {
    bytes: Arc<Mutex<Vec<u8>>>,
    seen: Arc<Mutex<Option<Instant>>>,
    done: std::thread::JoinHandle<()>,
}

fn watch(sock: &Path, needle: &'static [u8]) -> Watcher {
    let mut s = UnixStream::connect(sock).expect("connect");
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(None));
    let (b, t) = (bytes.clone(), seen.clone());
    let done = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            let mut all = b.lock().unwrap();
            all.extend_from_slice(&buf[..n]);
            let mut t = t.lock().unwrap();
            if t.is_none() && all.windows(needle.len()).any(|w| w == needle) {
                *t = Some(Instant::now());
            }
        }
    });
    Watcher { bytes, seen, done }
}

impl Watcher {
    fn finish(self) -> Vec<u8> {
        self.done.join().unwrap();
        Arc::try_unwrap(self.bytes).unwrap().into_inner().unwrap()
    }
}

/// (marker text, time) in file order.
fn marker_times(bytes: &[u8]) -> Vec<(String, u64)> {
    let markers = check_bytes(bytes).markers;
    let times: Vec<u64> = event_sequence_bytes(bytes)
        .into_iter()
        .filter(|e| e.2 == EVENT_USER_MARKER)
        .map(|e| e.0)
        .collect();
    assert_eq!(markers.len(), times.len());
    markers.into_iter().zip(times).collect()
}

fn time_of(markers: &[(String, u64)], text: &str) -> u64 {
    markers
        .iter()
        .find(|m| m.0 == text)
        .unwrap_or_else(|| panic!("no marker {text}: {markers:?}"))
        .1
}

/// Events of `types` strictly inside (from + guard, to).
fn count_between(seq: &[(u64, i32, u16)], types: &[u16], from: u64, to: u64) -> usize {
    // Another capability may have passed the class check just before the
    // switch: allow it 1 ms to post.
    let guard = 1_000_000;
    seq.iter()
        .filter(|e| types.contains(&e.2) && e.0 > from + guard && e.0 < to)
        .count()
}

#[test]
fn classes_onoff_sync_snapshot_and_flush_from_a_running_program() {
    let prog = program();
    let dir = TempDir::new("shim-control");
    let sock = dir.join("c.sock");
    let ctl_sock = dir.join("c.sock.ctl");
    let mut child = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!(
                "unix:{},start=now,flush=100ms,snapshot-dir={}",
                sock.display(),
                dir.path().display()
            ))
            .args(["+RTS", "-N2", "-RTS"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut stdin = child.child().stdin.take().unwrap();
    let out = child.child().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((line, Instant::now()));
        }
    });
    let wait = |want: &str| loop {
        let (line, at) = rx
            .recv_timeout(LONG)
            .unwrap_or_else(|_| panic!("no `{want}`"));
        if line == want {
            return at;
        }
    };
    assert!(testkit::wait_for_path(&sock, LONG));
    let early = watch(&sock, b"LATE ping");
    wait("ready");

    // The control socket: status, a bad command that leaves the connection
    // usable, and a garbage frame that closes it.
    let status = ctl(&ctl_sock, "status");
    assert_eq!(status.status, Status::Ok);
    let ghc = testkit::ghc();
    let flush = if ghc.numeric() >= (9, 2, 0) {
        "flush-mechanism=ghc-9.2-api"
    } else {
        "flush-mechanism=stop-the-world"
    };
    let rts = format!("rts=GHC-{}", ghc.version);
    for key in [
        "link=static",
        "classes=sgpu",
        flush,
        "flush-interval=100ms",
        &rts,
    ] {
        assert!(
            status.text.contains(key),
            "{key} missing in {}",
            status.text
        );
    }
    let mut conn = UnixStream::connect(&ctl_sock).unwrap();
    conn.write_all(&request("dance")).unwrap();
    let r = read_reply(&mut conn).unwrap();
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.text.contains("unknown command `dance`"), "{}", r.text);
    conn.write_all(&request("classes +x")).unwrap();
    assert_eq!(read_reply(&mut conn).unwrap().status, Status::BadRequest);
    conn.write_all(&request("flush")).unwrap();
    assert_eq!(read_reply(&mut conn).unwrap().status, Status::Ok);
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let r = read_reply(&mut conn).expect("an error reply before the close");
    assert_eq!(r.status, Status::BadRequest);
    assert!(
        read_reply(&mut conn).is_none(),
        "connection should be closed"
    );
    let mut big = request("x");
    big[8..12].copy_from_slice(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
    let mut conn = UnixStream::connect(&ctl_sock).unwrap();
    conn.write_all(&big[..FRAME_HEADER]).unwrap();
    assert_eq!(read_reply(&mut conn).unwrap().status, Status::BadRequest);
    assert!(read_reply(&mut conn).is_none());

    // A late joiner: state first (capsets, capabilities, thread labels, the
    // sticky message), then new events.
    let late = watch(&sock, b"LATE ping");
    stdin.write_all(b"go\n").unwrap();
    wait("snapshot-done");
    let pinged = wait("pinged");
    stdin.write_all(b"quit\n").unwrap();
    wait("done");
    let out = child.wait_timeout(LONG);
    assert!(out.status.success());

    // The periodic flush brought the ping out of a quiet program.
    let arrived = early.seen.lock().unwrap().expect("the ping never arrived");
    let latency = arrived.saturating_duration_since(pinged);
    assert!(latency < Duration::from_secs(3), "ping took {latency:?}");

    let early = early.finish();
    let c = check_bytes(&early);
    c.assert_ok();
    let seq = event_sequence_bytes(&early);
    let m = marker_times(&early);
    let sched = [EVENT_RUN_THREAD, EVENT_STOP_THREAD];
    let gc = [EVENT_GC_START, EVENT_GC_END];
    let (all_on, sched_off, sched_on) = (
        time_of(&m, "all-on"),
        time_of(&m, "sched-off"),
        time_of(&m, "sched-on"),
    );
    assert!(count_between(&seq, &sched, all_on, sched_off) > 0);
    assert_eq!(
        count_between(&seq, &sched, sched_off, sched_on),
        0,
        "scheduler events while off"
    );
    let (gc_off, gc_on) = (time_of(&m, "gc-off"), time_of(&m, "gc-on"));
    assert!(
        count_between(&seq, &sched, sched_on, gc_off) > 0,
        "scheduler events did not come back"
    );
    assert!(count_between(&seq, &gc, sched_on, gc_off) > 0);
    assert_eq!(
        count_between(&seq, &gc, gc_off, gc_on),
        0,
        "GC events while off"
    );
    assert!(
        count_between(&seq, &gc, gc_on, time_of(&m, "user-off")) > 0,
        "GC events did not come back"
    );
    assert_eq!(c.user_count("hidden"), 0, "user events while off");
    time_of(&m, "user-on");
    time_of(&m, "onoff-done");
    assert!(c.user_messages.iter().any(|u| u == "LATE ping"));

    let late = late.finish();
    let lc = check_bytes(&late);
    lc.assert_ok();
    let lseq = event_sequence_bytes(&late);
    let state = [EVENT_CAPSET_CREATE, EVENT_CAP_CREATE, EVENT_THREAD_LABEL];
    let first_new = lseq
        .iter()
        .position(|e| {
            !state.contains(&e.2)
                && e.2 != EVENT_USER_MSG
                && ![27, 29, 30, 31, 32, 33, 43, 52].contains(&e.2)
        })
        .unwrap();
    for ty in state {
        let at = lseq
            .iter()
            .position(|e| e.2 == ty)
            .unwrap_or_else(|| panic!("late joiner got no type {ty}"));
        assert!(
            at < first_new,
            "type {ty} at {at} after the first new event at {first_new}"
        );
    }
    assert_eq!(
        lc.user_messages.first().map(String::as_str),
        Some("sticky hello")
    );
    // The program's three labels; on 9.6+ also the RTS's own (an IO manager
    // per capability and the timer manager, labelled before the shim started
    // and replayed from the threads themselves).
    let rts_labels = if ghc.numeric() >= (9, 6, 0) { 3 } else { 0 };
    assert_eq!(lc.count(EVENT_THREAD_LABEL), 3 + rts_labels);

    // The snapshot: a whole eventlog holding everything before it.
    let snap = check(&dir.join("mid.eventlog"));
    snap.assert_ok();
    for marker in ["all-on", "sched-off", "gc-on", "onoff-done"] {
        assert!(
            snap.markers.iter().any(|x| x == marker),
            "snapshot lacks {marker}"
        );
    }
    assert!(snap.user_messages.iter().any(|u| u == "sticky hello"));
}

#[test]
fn snapshots_of_a_full_ring_do_not_stall_a_keeping_up_consumer() {
    // The program writes as fast as it can into the smallest ring (4M, two
    // capability buffers) while a consumer reads everything and a control
    // client asks for snapshots, eight at a time. Each snapshot copies the
    // full ring and fsyncs it; run on the I/O thread, the consumer waits that
    // long and the program laps it (a drop notice). Off the I/O thread the
    // consumer loses nothing.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Snapshots.hs");
    let prog = build_haskell(&src, &HsBuild::with_shim());
    let dir = TempDir::new("shim-snapshots");
    let sock = dir.join("s.sock");
    let ctl_sock = dir.join("s.sock.ctl");
    let n = 3_000_000;
    let mut child = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!(
                "unix:{},ring=16M,snapshot-dir={}",
                sock.display(),
                dir.path().display()
            ))
            .arg(n.to_string())
            .stdout(Stdio::piped()),
    );
    assert!(testkit::wait_for_path(&sock, LONG));
    let consumer = {
        let mut s = UnixStream::connect(&sock).expect("connect");
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            s.read_to_end(&mut bytes).expect("read the stream");
            bytes
        })
    };
    let out = child.child().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "connected");
    let mut conn = UnixStream::connect(&ctl_sock).unwrap();
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut replies = ControlDecoder::new();
    let mut next_reply = move |conn: &mut UnixStream| -> Option<ControlFrame> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = replies.next_frame().expect("well-formed reply") {
                return Some(f);
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => replies.push(&buf[..n]),
            }
        }
    };
    let (mut taken, mut last) = (0, None);
    let mut lines = Vec::new();
    'snap: for round in 0.. {
        let batch: Vec<u8> = (0..8)
            .flat_map(|k| request(&format!("snapshot s{round}-{k}")))
            .collect();
        conn.write_all(&batch).unwrap();
        for _ in 0..8 {
            // The program may finish (and close the socket) meanwhile.
            let Some(r) = next_reply(&mut conn) else {
                break 'snap;
            };
            // The header may not be out yet in the first round.
            if r.status == Status::Ok {
                taken += 1;
                last = r.text.strip_prefix("snapshot=").map(PathBuf::from);
            } else {
                assert!(r.text.contains("header"), "{}", r.text);
            }
        }
        while let Ok(line) = rx.try_recv() {
            let wrote = line == "wrote";
            lines.push(line);
            if wrote {
                break 'snap;
            }
        }
    }
    let out = child.wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    lines.extend(rx.try_iter());
    assert!(taken >= 8, "only {taken} snapshots taken: {lines:?}");
    let bytes = consumer.join().unwrap();
    let c = check_bytes(&bytes);
    c.assert_ok();
    assert!(
        consumer_seen_nothing(&c),
        "the consumer got a drop notice: {:?}",
        c.user_messages.iter().find(|m| m.starts_with("elstream:"))
    );
    assert_eq!(c.user_count("msg "), n, "user messages lost");
    assert!(
        lines.iter().any(|l| l == "consumer-blocks-dropped 0"),
        "{lines:?}"
    );
    let snap = check(&last.expect("a snapshot path"));
    snap.assert_ok();
    assert!(snap.user_count("msg ") > 0);
}

fn consumer_seen_nothing(c: &testkit::Check) -> bool {
    !c.user_messages
        .iter()
        .any(|m| m.starts_with("elstream: dropped"))
}
