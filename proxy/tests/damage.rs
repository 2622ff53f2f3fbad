//! Damaged and odd input: a real GHC program's log cut short or with garbage
//! inside a block, a 1-byte stdin, an empty stdin. Whatever can be read is
//! delivered (ghc-events judges it), the problem is said once, and the exit
//! code is not 0.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use elstream_format::eventlog::{
    Frame, StreamDecoder, EVENT_CREATE_THREAD, EVENT_GC_END, EVENT_RUN_THREAD,
};

/// A real log: examples/haskell/Plain.hs run with `+RTS -l -ol...`.
fn real_log(dir: &Path) -> Vec<u8> {
    let prog = example("Plain");
    let log = dir.join("plain.eventlog");
    let mut cmd = Command::new(prog);
    cmd.args([
        "30",
        "5",
        "+RTS",
        "-N2",
        "-l",
        &format!("-ol{}", log.display()),
        "-RTS",
    ])
    .stdout(Stdio::null());
    let st = ChildGuard::spawn(&mut cmd).wait_timeout(LONG).status;
    assert!(st.success(), "Plain failed: {st}");
    let bytes = std::fs::read(&log).unwrap();
    check_bytes(&bytes).assert_ok();
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `elstream ARGS` with stdin from `input`; its output and exit code.
fn elstream_with(args: &[&str], input: Stdio) -> Output {
    let mut c = Command::new(elstream());
    c.args(args)
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut c).wait_timeout(LONG)
}

fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// The error is said once (not logged and then printed again).
fn said_once(err: &str, needle: &str) {
    assert_eq!(
        err.matches(needle).count(),
        1,
        "{needle:?} not said once: {err}"
    );
    assert_eq!(
        err.matches("error").count(),
        1,
        "more than one error line: {err}"
    );
}

/// `proxy --source - < FILE` with one subscriber; what it received, and the proxy's output.
fn proxy_stdin(dir: &Path, input: &Path) -> (Vec<u8>, Output) {
    let ready = dir.join("ready");
    let mut c = Command::new(elstream());
    c.args([
        "proxy",
        "--source",
        "-",
        "--listen",
        "tcp://127.0.0.1:0",
        "--wait-subscribers",
        "1",
    ])
    .arg("--ready-file")
    .arg(&ready)
    .stdin(std::fs::File::open(input).unwrap())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let proxy = ChildGuard::spawn(&mut c);
    let port = ready_tcp_port(&ready);
    let sub = sub_tcp(port);
    let out = proxy.wait_timeout(LONG);
    (sub.join().unwrap(), out)
}

/// Sum of the `N events` of `elstream watch` summary lines.
fn watched_events(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| {
            let i = l.find(" events  caps")?;
            l[..i].split_whitespace().last()?.parse::<u64>().ok()
        })
        .sum()
}

/// The number after `word` in a summary line (`12 events`, `GCs 3`, `runs 40`).
fn figure(line: &str, word: &str) -> Option<u64> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|x| *x == word)?;
    let at = if word == "events" {
        i.checked_sub(1)?
    } else {
        i + 1
    };
    w.get(at)?.parse().ok()
}

#[test]
fn watch_summaries_add_up_to_what_ghc_events_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = real_log(dir.path());
    let want = check_bytes(&log);
    let file = write(dir.path(), "whole.eventlog", &log);
    let o = elstream_with(
        &["watch", "--every", "20ms", file.to_str().unwrap()],
        Stdio::null(),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" events  caps"))
        .collect();
    assert!(lines.len() > 3, "too few summary windows: {out}");
    let sum = |word| lines.iter().map(|l| figure(l, word).unwrap()).sum::<u64>();
    // Every StartGC of a whole -l log has its EndGC: pairs = EndGC events.
    assert_eq!(sum("events"), want.events, "{out}");
    assert_eq!(sum("GCs"), want.count(EVENT_GC_END), "GC pairs: {out}");
    assert_eq!(
        sum("runs"),
        want.count(EVENT_RUN_THREAD),
        "RunThread: {out}"
    );
    assert_eq!(
        sum("threads"),
        want.count(EVENT_CREATE_THREAD),
        "CreateThread: {out}"
    );
    // User events are printed as they come, each once.
    let users = out.lines().filter(|l| l.contains("  user   ")).count();
    let markers = out.lines().filter(|l| l.contains("  marker ")).count();
    assert_eq!(users, want.user_messages.len(), "{out}");
    assert_eq!(markers, want.markers.len(), "{out}");
    // Windows are 20 ms of stream time, in order, aligned to the first.
    let starts: Vec<f64> = lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('s')
                .parse()
                .unwrap()
        })
        .collect();
    for p in starts.windows(2) {
        let k = (p[1] - starts[0]) / 0.02;
        assert!(p[1] > p[0] && (k - k.round()).abs() < 1e-3, "{starts:?}");
    }
    assert!(lines.iter().all(|l| l.contains("+20ms")), "{out}");
}

#[test]
fn truncated_log_shows_every_whole_event_and_says_it_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = real_log(dir.path());
    let cut = &log[..log.len() * 37 / 100];
    let want = check_bytes(cut);
    assert!(want.error.is_none(), "{want:#?}");
    assert!(
        want.events > 1000,
        "too few events before the cut: {want:#?}"
    );
    let cut_file = write(dir.path(), "cut.eventlog", cut);

    // watch: a bare path is a file.
    let o = elstream_with(
        &["watch", "--every", "1h", cut_file.to_str().unwrap()],
        Stdio::null(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "truncated");
    assert_eq!(
        watched_events(&text(&o.stdout)),
        want.events,
        "{}",
        text(&o.stdout)
    );

    // proxy: the subscriber gets every whole event, then a data end.
    let (got, o) = proxy_stdin(dir.path(), &cut_file);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "truncated");
    let c = check_bytes(&got);
    c.assert_ok();
    assert_eq!(c.events, want.events);
    assert_eq!(event_sequence_bytes(&got), event_sequence_bytes(cut));
}

/// The log with an undeclared event type written over one event in the
/// middle of its largest block; the events before it in file order.
fn damage(log: &[u8]) -> (Vec<u8>, usize) {
    let mut d = StreamDecoder::new();
    d.push(log);
    let mut header = None;
    let mut best: Option<(u64, Vec<u8>)> = None;
    loop {
        let at = d.offset();
        match d.next_frame().unwrap() {
            Some(Frame::Header(h)) => header = Some(h),
            Some(Frame::Block(b)) => {
                if best.as_ref().is_none_or(|(_, x)| b.bytes.len() > x.len()) {
                    best = Some((at, b.bytes));
                }
            }
            _ => break,
        }
    }
    let header = header.unwrap();
    let (at, block) = best.unwrap();
    // The event halfway through the block (events as the format crate walks them).
    let n = elstream_format::eventlog::events(&header, &block).count();
    let mut it = elstream_format::eventlog::events(&header, &block);
    for _ in 0..n / 2 {
        it.next().unwrap().unwrap();
    }
    let off = at as usize + it.offset();
    let undeclared = (1000u16..)
        .find(|t| header.type_info(*t).is_none())
        .unwrap();
    let mut bad = log.to_vec();
    bad[off..off + 2].copy_from_slice(&undeclared.to_be_bytes());
    (bad, off)
}

#[test]
fn garbage_inside_a_block_keeps_the_events_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = real_log(dir.path());
    let (bad, off) = damage(&log);
    // ghc-events reads the events before the damage.
    let before = event_sequence_bytes(&log[..off]);
    assert!(before.len() > 100, "damage too early: {}", before.len());
    let bad_file = write(dir.path(), "bad.eventlog", &bad);

    let (got, o) = proxy_stdin(dir.path(), &bad_file);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "not a valid eventlog");
    assert!(err.contains("before the damage"), "{err}");
    check_bytes(&got).assert_ok();
    assert_eq!(event_sequence_bytes(&got), before);

    let o = elstream_with(
        &["watch", "--every", "1h", bad_file.to_str().unwrap()],
        Stdio::null(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "before the damage");
    assert_eq!(watched_events(&text(&o.stdout)), before.len() as u64);
}

#[test]
fn stdin_of_one_byte_or_nothing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one", b"x");
    let o = elstream_with(
        &["proxy", "--source", "-", "--listen", "tcp://127.0.0.1:0"],
        Stdio::from(std::fs::File::open(&one).unwrap()),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "not a GHC eventlog");

    // A pipe holding one byte.
    let mut c = Command::new(elstream());
    c.args(["proxy", "--source", "-", "--listen", "tcp://127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut g = ChildGuard::spawn(&mut c);
    {
        use std::io::Write;
        let mut w = g.child().stdin.take().unwrap();
        w.write_all(b"x").unwrap();
    }
    let o = g.wait_timeout(LONG);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "not a GHC eventlog");

    // /dev/null cannot be polled; it is read like a file, and it is empty.
    let o = elstream_with(
        &["proxy", "--source", "-", "--listen", "tcp://127.0.0.1:0"],
        Stdio::null(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    said_once(&err, "no input");
    assert!(!err.contains("poll"), "{err}");
}

/// A socket source whose log has garbage inside a block: subscribers get the
/// events before the damage, stats count the damaged block and the dropped
/// bytes, and the proxy stays up to retry.
#[test]
fn socket_source_with_a_damaged_block_delivers_its_valid_prefix_and_counts_the_rest() {
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    let dir = TempDir::new("damage-socket");
    let log = real_log(dir.path());
    let (bad, off) = damage(&log);
    let before = event_sequence_bytes(&log[..off]);
    let sock = dir.join("src.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        // One connection with the damaged log; later ones are left waiting.
        let (mut c, _) = listener.accept().unwrap();
        let _ = c.write_all(&bad);
        std::thread::sleep(Duration::from_secs(2));
        listener
    });
    let source = format!("unix:{}", sock.display());
    let mut proxy = ChildGuard::spawn(&mut proxy_cmd(
        &dir,
        "proxy",
        &source,
        "0",
        &["--wait-subscribers", "1"],
    ));
    let sub = sub_tcp(ready_port(&dir, "proxy"));
    let got = sub.join().unwrap();
    check_bytes(&got).assert_ok();
    assert_eq!(event_sequence_bytes(&got), before);
    let r = stats(&dir);
    assert!(r.contains("damaged_blocks=1 "), "{r}");
    let dropped: u64 = r
        .split("dropped_bytes=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{r}");
    assert!(
        proxy.child().try_wait().unwrap().is_none(),
        "the proxy gave up"
    );
    let err = stderr_of(&dir, "proxy");
    assert!(err.contains("before the damage"), "{err}");
    drop(server.join().unwrap());
}
