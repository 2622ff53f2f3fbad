//! Fast proxy tests on real eventlogs: stdin and file sources, joiners,
//! disconnects, bad input. The logs are the ones our own GHC programs write
//! (testkit::logs, on the GHC at hand) and, where it exists, the external
//! corpus (required under `CI`, a loud skip elsewhere). ghc-events judges
//! every output.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{ChildStdin, Stdio};

use common::*;
use elstream_format::eventlog::{events, BlockBuilder, Frame, StreamDecoder, EVENT_BLOCK_MARKER};

/// Header, blocks and data end of a log, as the format decoder splits it.
fn frames(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut d = StreamDecoder::new();
    d.push(bytes);
    let mut header = Vec::new();
    let mut blocks = Vec::new();
    while let Some(f) = d.next_frame().expect("corpus log decodes") {
        match f {
            Frame::Header(h) => header = h.raw,
            Frame::Block(b) => blocks.push(b.bytes),
            Frame::DataEnd => break,
        }
    }
    (header, blocks)
}

/// The same events cut into blocks of at most `per_block` events each (real
/// RTS blocks are 2 MiB; the corpus logs have only a few).
fn rechunk(bytes: &[u8], per_block: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut d = StreamDecoder::new();
    d.push(bytes);
    let mut header = None;
    let mut blocks = Vec::new();
    while let Some(f) = d.next_frame().expect("corpus log decodes") {
        match f {
            Frame::Header(h) => header = Some(h),
            Frame::Block(b) => {
                let h = header.as_ref().unwrap();
                let evs: Vec<_> = events(h, &b.bytes)
                    .map(|e| e.unwrap())
                    .filter(|e| e.ty != EVENT_BLOCK_MARKER)
                    .collect();
                for chunk in evs.chunks(per_block) {
                    let mut bb = BlockBuilder::new(b.cap);
                    for e in chunk {
                        bb.push(h, e.ty, e.time, e.payload).unwrap();
                    }
                    blocks.push(bb.finish());
                }
            }
            Frame::DataEnd => break,
        }
    }
    (header.unwrap().raw, blocks)
}

fn stats_value(report: &str, line_prefix: &str, key: &str) -> Vec<u64> {
    report
        .lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

fn live_subscribers(report: &str) -> usize {
    report
        .lines()
        .filter(|l| l.starts_with("subscriber") && l.contains("state=live"))
        .count()
}

/// A proxy reading its source from the returned stdin, up and answering.
/// A proxy reading stdin, listening on a TCP port the system picks: the
/// proxy, its stdin and the port (from its ready file).
fn stdin_proxy(dir: &TempDir, extra: &[&str]) -> (ChildGuard, ChildStdin, u16) {
    let mut proxy =
        ChildGuard::spawn(proxy_cmd(dir, "proxy", "-", "0", extra).stdin(Stdio::piped()));
    let input = proxy.child().stdin.take().unwrap();
    wait_stats(dir);
    let port = ready_port(dir, "proxy");
    (proxy, input, port)
}

/// Pipes `log` through a proxy to two TCP and one UNIX subscriber: each gets
/// the same bytes, with ghc-events' counts, messages and sequence of `log`.
fn reaches_every_subscriber_unchanged(log: &Path, name: &str) {
    let dir = TempDir::new("proxy-corpus");
    let sock = dir.join("s.sock");
    let mut proxy = ChildGuard::spawn(
        proxy_cmd(
            &dir,
            "proxy",
            "-",
            "0",
            &[
                "--listen",
                &format!("unix:{}", sock.display()),
                "--wait-subscribers",
                "3",
            ],
        )
        .stdin(std::fs::File::open(log).unwrap()),
    );
    wait_stats_of(&dir, &mut proxy, "proxy");
    let port = listen_port(&dir);
    let subs = [sub_tcp(port), sub_tcp(port), sub_unix(&sock)];
    let outs: Vec<Vec<u8>> = subs.into_iter().map(|h| h.join().unwrap()).collect();
    let st = proxy.wait_timeout(LONG).status;
    assert!(
        st.success(),
        "{name}: proxy failed: {}",
        stderr_of(&dir, "proxy")
    );
    let want = check(log);
    let want_seq = event_sequence(log);
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out, &outs[0], "{name}: subscribers differ");
        let got = check_saved(&dir, &format!("out{i}.eventlog"), out);
        if want.error.is_none() && want.tail_error.is_none() {
            got.assert_ok();
        }
        assert_eq!(got.events, want.events, "{name}: event count");
        assert_eq!(got.per_type, want.per_type, "{name}: per type");
        assert_eq!(got.user_messages, want.user_messages, "{name}");
        assert_eq!(got.markers, want.markers, "{name}");
    }
    assert_eq!(
        sequence_saved(&dir, "out0.eventlog", &outs[0]),
        want_seq,
        "{name}: event sequence"
    );
}

#[test]
fn own_logs_reach_every_subscriber_unchanged() {
    let logs = testkit::logs::framed_own_logs();
    assert!(logs.len() >= 3, "{logs:?}");
    for log in logs {
        reaches_every_subscriber_unchanged(&log.path, &log.label());
    }
}

#[test]
fn corpus_logs_reach_every_subscriber_unchanged() {
    for log in testkit::logs::external_logs() {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        reaches_every_subscriber_unchanged(&log, &name);
    }
}

#[test]
fn followed_file_serves_each_session_and_a_replaced_file_starts_a_new_one() {
    let log = &testkit::logs::own_log("user").path;
    let bytes = std::fs::read(log).unwrap();
    let dir = TempDir::new("proxy-follow");
    let live = dir.join("live.eventlog");
    // Half a log: the proxy must wait for the rest (tail -f), not fail.
    std::fs::write(&live, &bytes[..bytes.len() / 2]).unwrap();
    let _proxy = ChildGuard::spawn(&mut proxy_cmd(
        &dir,
        "proxy",
        &format!("file:{}", live.display()),
        "0",
        &[],
    ));
    wait_stats(&dir);
    let port = ready_port(&dir, "proxy");
    let out = dir.join("out.eventlog");
    let recv = ChildGuard::spawn(&mut elstream_cmd(
        &dir,
        "recv",
        &[
            "recv",
            &format!("tcp://127.0.0.1:{port}"),
            "-o",
            out.to_str().unwrap(),
            "--sessions",
            "2",
        ],
    ));
    // recv itself in the session (the source's line says live before recv
    // connects; appending then could end session 1 before it joins).
    assert!(wait_until(LONG, || live_subscribers(&stats(&dir)) == 1));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap()
        .write_all(&bytes[bytes.len() / 2..])
        .unwrap();
    // Session 1 is over once recv is back, waiting for the next one.
    assert!(wait_until(LONG, || stats(&dir).contains("state=waiting")));
    // Log rotation: a new file under the same name is a new session.
    let tmp = dir.join("next.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &live).unwrap();
    let r = recv.wait_timeout(LONG);
    assert!(r.status.success(), "recv: {}", stderr_of(&dir, "recv"));
    let want = event_sequence(log);
    for p in [out.clone(), dir.join("out.2.eventlog")] {
        check(&p).assert_ok();
        assert_eq!(event_sequence(&p), want, "{}", p.display());
    }
}

#[test]
fn joiner_gets_header_state_and_later_blocks() {
    let log = &testkit::logs::own_log("heap-hT").path;
    let (header, blocks) = rechunk(&std::fs::read(log).unwrap(), 20);
    assert!(blocks.len() >= 4, "want a log with several blocks");
    let dir = TempDir::new("proxy-join");
    let mut whole = header.clone();
    whole.extend(blocks.iter().flatten());
    whole.extend([0xff, 0xff]);
    let log = dir.join("rechunked.eventlog");
    std::fs::write(&log, &whole).unwrap();
    // No stored blocks: the joiner relies on the state replay.
    let (proxy, mut input, port) = stdin_proxy(&dir, &["--store", "1"]);
    let first = sub_tcp(port);
    assert!(wait_until(LONG, || stats(&dir).contains("state=waiting")));
    let half = blocks.len() / 2;
    input.write_all(&header).unwrap();
    for b in &blocks[..half] {
        input.write_all(b).unwrap();
    }
    input.flush().unwrap();
    assert!(wait_until(LONG, || stats_value(
        &stats(&dir),
        "subscriber",
        "blocks"
    ) == vec![half as u64]));
    let joiner = sub_tcp(port);
    assert!(wait_until(LONG, || live_subscribers(&stats(&dir)) == 2));
    for b in &blocks[half..] {
        input.write_all(b).unwrap();
    }
    input.write_all(&[0xff, 0xff]).unwrap();
    drop(input);
    let a = first.join().unwrap();
    let b = joiner.join().unwrap();
    assert!(proxy.wait_timeout(LONG).status.success());
    let ca = check_saved(&dir, "first.eventlog", &a);
    ca.assert_ok();
    assert_eq!(
        sequence_saved(&dir, "first.eventlog", &a),
        event_sequence(&log)
    );
    let cb = check_saved(&dir, "joiner.eventlog", &b);
    cb.assert_ok();
    assert!(cb.events < ca.events && cb.events > 0, "{cb:#?}");
    // The replayed state: what a parser needs to know about capsets and the program.
    for ty in [25u16 /* capset create */, 29 /* RTS identifier */] {
        if ca.count(ty) > 0 {
            assert!(cb.count(ty) > 0, "joiner lacks event type {ty}: {cb:#?}");
        }
    }
}

#[test]
fn subscriber_leaving_mid_block_harms_nobody() {
    let log = &testkit::logs::own_log("user").path;
    let bytes = std::fs::read(log).unwrap();
    let (header, blocks) = frames(&bytes);
    assert!(blocks.len() >= 2, "want a log with several blocks");
    let dir = TempDir::new("proxy-leave");
    let (proxy, mut input, port) = stdin_proxy(&dir, &["--wait-subscribers", "2"]);
    let stays = sub_tcp(port);
    let mut leaves = connect_tcp(port);
    input.write_all(&header).unwrap();
    input.write_all(&blocks[0]).unwrap();
    input.flush().unwrap();
    // Read into the first block, then hang up in the middle of it.
    let mut part = vec![0u8; header.len() + 10];
    std::io::Read::read_exact(&mut leaves, &mut part).unwrap();
    drop(leaves);
    for b in &blocks[1..] {
        input.write_all(b).unwrap();
    }
    input.flush().unwrap();
    // A subscriber joining afterwards still gets a whole log (from the store).
    assert!(wait_until(LONG, || stats_value(
        &stats(&dir),
        "source",
        "session_blocks"
    ) == vec![blocks.len() as u64]));
    let late = sub_tcp(port);
    assert!(wait_until(LONG, || live_subscribers(&stats(&dir)) == 2));
    input.write_all(&[0xff, 0xff]).unwrap();
    drop(input);
    let want = event_sequence(log);
    for (name, h) in [("stays", stays), ("late", late)] {
        let out = h.join().unwrap();
        check_saved(&dir, name, &out).assert_ok();
        assert_eq!(sequence_saved(&dir, name, &out), want, "{name}");
    }
    assert!(proxy.wait_timeout(LONG).status.success());
}

#[test]
fn bad_input_gives_clear_errors_and_exit_codes() {
    let dir = TempDir::new("proxy-bad");
    let run = |label: &str, args: &[&str], stdin: Stdio| {
        let mut cmd = elstream_cmd(&dir, label, args);
        cmd.stdin(stdin).stdout(Stdio::null());
        let st = ChildGuard::spawn(&mut cmd).wait_timeout(LONG).status;
        let err = stderr_of(&dir, label);
        assert!(!err.contains("panicked"), "{label}: panic: {err}");
        (st.code(), err)
    };
    let (code, err) = run("scheme", &["proxy", "--source", "bogus:x"], Stdio::null());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown endpoint"), "{err}");

    let (code, err) = run(
        "udp-listen",
        &["proxy", "--source", "-", "--listen", "udp://127.0.0.1:9"],
        Stdio::null(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot listen on udp"), "{err}");

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, err) = run(
        "port",
        &["proxy", "--source", "-", "--listen", &port],
        Stdio::null(),
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("in use"), "{err}");

    let sock = dir.join("busy.sock");
    let _live = UnixListener::bind(&sock).unwrap();
    let (code, err) = run(
        "unix-busy",
        &[
            "proxy",
            "--source",
            "-",
            "--listen",
            &format!("unix:{}", sock.display()),
        ],
        Stdio::null(),
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("in use"), "{err}");

    let plain = dir.join("plain.txt");
    std::fs::write(&plain, b"hello").unwrap();
    let (code, err) = run(
        "not-fifo",
        &["proxy", "--source", &format!("fifo:{}", plain.display())],
        Stdio::null(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a FIFO"), "{err}");

    // Random bytes are not an eventlog.
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let noise_file = dir.join("noise.bin");
    std::fs::write(&noise_file, &noise).unwrap();
    let (code, err) = run(
        "noise",
        &["proxy", "--source", "-", "--listen", "0"],
        Stdio::from(std::fs::File::open(&noise_file).unwrap()),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a valid eventlog"), "{err}");

    let (code, err) = run("recv-bad", &["recv", "file:/x"], Stdio::null());
    assert_eq!(code, Some(2), "{err}");
}

/// A UNIX source that first sends noise, then (on the next connection) a real
/// log: the proxy reports the error, stays up, reconnects and serves the log.
#[test]
fn socket_source_with_garbage_is_reported_and_retried() {
    let log = &testkit::logs::own_log("user").path;
    let bytes = std::fs::read(log).unwrap();
    let dir = TempDir::new("proxy-garbage");
    let src = dir.join("src.sock");
    let server = UnixListener::bind(&src).unwrap();
    let _proxy = ChildGuard::spawn(&mut proxy_cmd(
        &dir,
        "proxy",
        &format!("unix:{}", src.display()),
        "0",
        &["--reconnect-max", "200ms"],
    ));
    wait_stats(&dir);
    let port = ready_port(&dir, "proxy");
    let (mut c, _) = server.accept().unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .unwrap();
    assert!(wait_until(LONG, || stats(&dir).contains("not a valid eventlog")));
    drop(c);
    let sub = sub_tcp(port);
    assert!(wait_until(LONG, || stats(&dir).contains("state=waiting")));
    let (mut c, _) = server.accept().unwrap();
    c.write_all(&bytes).unwrap();
    let out = sub.join().unwrap();
    check_saved(&dir, "out.eventlog", &out).assert_ok();
    assert_eq!(
        sequence_saved(&dir, "out.eventlog", &out),
        event_sequence(log)
    );
    assert!(stderr_of(&dir, "proxy").contains("not a valid eventlog"));
}
