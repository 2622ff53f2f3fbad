//! Issue 8's fault and security matrix around the proxy and the shim, with
//! the shim-linked Busy program: connection churn, a control flood, socket
//! modes and loopback defaults, path escapes, limits, and UDP through a lossy
//! relay. Every stream is judged by ghc-events.

#[path = "common/busy.rs"]
mod busy;
mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use busy::*;
use common::*;
use elstream_format::control::Status;

#[test]
fn a_thousand_connect_disconnect_cycles_leave_steady_subscribers_intact() {
    let dir = TempDir::new("faults-churn");
    let sock = dir.join("b.sock");
    // Consumers: the proxy and the steady direct one. The periodic flush
    // keeps blocks flowing while the churn goes on.
    let busy = Busy::spawn(&dir, &format!("unix:{},flush=20ms", sock.display()), 2, 10);
    assert!(wait_for_path(&sock, LONG));
    let (_proxy, port) = proxy_up(&dir, &sock, &["--wait-subscribers", "1"]);
    let steady_proxy = sub_tcp(port);
    let steady_shim = sub_unix(&sock);
    busy.wait_ready();

    // Half close at once, half read some bytes first (leaving mid-block).
    let churn = |connect: Box<dyn Fn() -> Option<Box<dyn Read>> + Send>| {
        std::thread::spawn(move || {
            let mut done = 0u32;
            for i in 0..1000u32 {
                let Some(mut s) = connect() else { break };
                if i % 2 == 1 {
                    let mut buf = vec![0u8; 1 + (i as usize * 97) % 9000];
                    let _ = s.read(&mut buf);
                }
                done += 1;
            }
            done
        })
    };
    let at_proxy = churn(Box::new(move || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|s| Box::new(s) as Box<dyn Read>)
    }));
    let s2 = sock.clone();
    let at_shim = churn(Box::new(move || {
        UnixStream::connect(&s2).ok().map(|s| {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Box::new(s) as Box<dyn Read>
        })
    }));
    assert_eq!(at_proxy.join().unwrap(), 1000);
    assert_eq!(at_shim.join().unwrap(), 1000);
    let (out, counts) = busy.stop();
    assert!(out.status.success(), "the program was disturbed: {out:?}");
    eprintln!("{counts:?}");

    let a = steady_proxy.join().unwrap();
    let b = steady_shim.join().unwrap();
    let ca = check_saved(&dir, "a.eventlog", &a);
    ca.assert_ok();
    check_saved(&dir, "b.eventlog", &b).assert_ok();
    assert_eq!(ca.user_messages.len() as u64, counts["user-events"]);
    assert_eq!(
        sequence_saved(&dir, "a.eventlog", &a),
        sequence_saved(&dir, "b.eventlog", &b),
        "steady subscribers differ"
    );
    assert!(!stderr_of(&dir, "proxy").contains("panicked"));
}

/// Sends `n` commands with at most `window` unanswered; checks every reply.
fn flood<S: std::io::Read + std::io::Write>(c: &mut CtlClient<S>, n: usize, window: usize) {
    let cmds = [
        ("status", Status::Ok),
        ("dance", Status::BadRequest),
        ("classes +x", Status::BadRequest),
        ("status", Status::Ok),
    ];
    let (mut sent, mut got) = (0, 0);
    while got < n {
        while sent < n && sent - got < window {
            c.send(cmds[sent % cmds.len()].0);
            sent += 1;
        }
        let r = c
            .recv()
            .unwrap_or_else(|| panic!("closed after {got} replies"));
        assert_eq!(
            r.status,
            cmds[got % cmds.len()].1,
            "reply {got}: {}",
            r.text
        );
        got += 1;
    }
}

#[test]
fn a_control_flood_of_100000_commands_direct_and_through_the_relay() {
    let dir = TempDir::new("faults-flood");
    let sock = dir.join("b.sock");
    let ctl_sock = dir.join("b.sock.ctl");
    let busy = Busy::spawn(&dir, &format!("unix:{},flush=20ms", sock.display()), 1, 10);
    assert!(wait_for_path(&sock, LONG));
    let relay_sock = dir.join("relay.sock");
    let token = token_file(&dir, "token", "flood-token", 0o600);
    let mut cmd = proxy_cmd(
        &dir,
        "proxy",
        &format!("unix:{}", sock.display()),
        "0",
        &[
            "--wait-subscribers",
            "1",
            "--control-listen",
            "0",
            "--control-listen",
            &format!("unix:{}", relay_sock.display()),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    // A small main-thread stack: relayed traffic must not deepen the call
    // stack (replies handed out inside request handling once recursed until
    // the stack overflowed, in a CI run).
    set_rlimit(&mut cmd, libc::RLIMIT_STACK, 512 << 10);
    let mut proxy = ChildGuard::spawn(&mut cmd);
    wait_stats_of(&dir, &mut proxy, "proxy");
    let port = ready_port(&dir, "proxy");
    let cport = ready_ports(&ready_file(&dir, "proxy"), "control")[0];
    let steady = sub_tcp(port);
    busy.wait_ready();

    const EACH: usize = 25_000;
    let mut threads = Vec::new();
    for _ in 0..4 {
        let p = ctl_sock.clone();
        threads.push(std::thread::spawn(move || {
            flood(&mut unix_ctl(&p), EACH, 16)
        }));
    }
    for i in 0..4 {
        let p = relay_sock.clone();
        threads.push(std::thread::spawn(move || {
            if i % 2 == 0 {
                let mut c = tcp_ctl(cport);
                assert_eq!(c.call("auth flood-token").status, Status::Ok);
                flood(&mut c, EACH, 16)
            } else {
                flood(&mut unix_ctl(&p), EACH, 16)
            }
        }));
    }
    let failed = threads.into_iter().filter_map(|t| t.join().err()).count();
    assert!(
        failed == 0,
        "{failed} flood clients failed; proxy stderr:\n{}",
        stderr_of(&dir, "proxy")
    );
    let r = stats(&dir);
    eprintln!("{r}");
    assert!(r.contains(&format!("relayed={}", 4 * EACH)), "{r}");
    let (out, counts) = busy.stop();
    assert!(out.status.success(), "the program was disturbed: {out:?}");
    let c = check_saved(&dir, "steady.eventlog", &steady.join().unwrap());
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, counts["user-events"]);
    assert!(!stderr_of(&dir, "proxy").contains("panicked"));
}

#[test]
fn sockets_are_private_tcp_is_loopback_paths_cannot_escape_and_limits_are_clear() {
    let dir = TempDir::new("faults-security");
    let sock = dir.join("b.sock");
    let snaps = dir.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    let busy = Busy::spawn(
        &dir,
        &format!(
            "unix:{},max-consumers=2,snapshot-dir={}",
            sock.display(),
            snaps.display()
        ),
        2,
        10,
    );
    assert!(wait_for_path(&sock, LONG));
    let ctl_sock = dir.join("b.sock.ctl");
    assert!(wait_for_path(&ctl_sock, LONG));
    assert_eq!(mode_of(&sock), 0o600, "shim stream socket");
    assert_eq!(mode_of(&ctl_sock), 0o600, "shim control socket");

    // The shim's control connections are limited (16): fill them one by one
    // (each checked with a round trip) until one is refused.
    let mut held = Vec::new();
    let refused_at = (0..40).find(|_| {
        let mut c = unix_ctl(&ctl_sock);
        c.send("status");
        match c.recv() {
            Some(r) => {
                assert_eq!(r.status, Status::Ok);
                held.push(c);
                false
            }
            None => true,
        }
    });
    assert!(
        matches!(refused_at, Some(1..=16)),
        "{refused_at:?} control clients before a refusal"
    );
    assert!(wait_until(LONG, || std::fs::read_to_string(
        dir.join("busy.stderr")
    )
    .unwrap_or_default()
    .contains("refused a control client: 16 already connected")));
    drop(held);
    assert!(wait_until(LONG, || {
        let mut c = unix_ctl(&ctl_sock);
        c.send("status");
        c.recv().is_some()
    }));

    // Snapshot names cannot leave the snapshot directory.
    let ctl_to = format!("unix:{}", ctl_sock.display());
    for name in ["../escape", "/tmp/escape", "sub/escape", ".hidden"] {
        let out = ctl(&["--to", &ctl_to, &format!("snapshot {name}")]);
        assert_eq!(out.status.code(), Some(1), "snapshot {name}");
        assert!(
            text(&out.stderr).contains("BadRequest")
                && text(&out.stderr).contains("plain file name"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(!dir.join("escape.eventlog").exists());
    assert!(!Path::new("/tmp/escape.eventlog").exists());
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 0);

    // Proxy listeners: UNIX ones 0600, bare ports on loopback.
    let subs = dir.join("subs.sock");
    let relay_sock = dir.join("relay.sock");
    let token = token_file(&dir, "token", "t0k", 0o600);
    let (_proxy, port) = proxy_up(
        &dir,
        &sock,
        &[
            "--listen",
            &format!("unix:{}", subs.display()),
            "--control-listen",
            "0",
            "--control-listen",
            &format!("unix:{}", relay_sock.display()),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    let cport = ready_ports(&ready_file(&dir, "proxy"), "control")[0];
    for p in [&subs, &relay_sock, &stats_sock(&dir)] {
        assert_eq!(mode_of(p), 0o600, "{}", p.display());
    }
    let r = stats(&dir);
    assert!(r.contains(&format!("listen tcp://127.0.0.1:{port}")), "{r}");
    assert!(
        r.contains(&format!("control tcp://127.0.0.1:{cport}")),
        "{r}"
    );
    // The relay refuses escapes too (the shim's reply, relayed).
    let out = ctl(&[
        "--to",
        &format!("unix:{}", relay_sock.display()),
        "snapshot ../escape",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("BadRequest"));
    assert!(!dir.join("escape.eventlog").exists());

    // max-consumers=2: the proxy and one direct consumer; a third is refused
    // (closed at once) and the program says why on stderr.
    let direct = sub_unix(&sock);
    busy.wait_ready();
    let mut third = UnixStream::connect(&sock).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    let _ = third.read_to_end(&mut got);
    assert!(got.is_empty(), "a third consumer got {} bytes", got.len());
    assert!(wait_until(LONG, || std::fs::read_to_string(
        dir.join("busy.stderr")
    )
    .unwrap_or_default()
    .contains(
        "refused a consumer: 2 already connected (max-consumers)"
    )));
    // A plain snapshot name works and the file parses.
    let out = ctl(&["--to", &ctl_to, "snapshot ok"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(&snaps.join("ok.eventlog")).assert_ok();
    let (out, _) = busy.stop();
    assert!(out.status.success(), "{out:?}");
    check_saved(&dir, "direct.eventlog", &direct.join().unwrap()).assert_ok();
}

/// Forwards datagrams from `from` to `to`, dropping a deterministic
/// pseudo-random 5% (xorshift64), until `stop`. Returns (forwarded, dropped).
fn lossy_relay(
    from: UdpSocket,
    to: u16,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        from.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 65536];
        let mut forwarded = 0;
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = from.recv(&mut buf) else { continue };
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 100 < 5 {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let _ = out.send_to(&buf[..n], ("127.0.0.1", to));
            forwarded += 1;
        }
        forwarded
    })
}

#[test]
fn udp_through_a_relay_losing_5_percent_reports_gaps_and_parses() {
    let dir = TempDir::new("faults-udp");
    let sock = dir.join("b.sock");
    let out_file: PathBuf = dir.join("udp.eventlog");
    let (recv, rport) = udp_recv_any(&dir, "recv", &out_file);
    let relay_in = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_port = relay_in.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let relay = lossy_relay(relay_in, rport, stop.clone(), dropped.clone());

    // A short flush interval keeps blocks small (a few datagrams each), so
    // most survive a 5% loss and some do not.
    let busy = Busy::spawn(&dir, &format!("unix:{},flush=20ms", sock.display()), 1, 10);
    assert!(wait_for_path(&sock, LONG));
    let _proxy = proxy_up(
        &dir,
        &sock,
        &[
            "--udp",
            &format!("127.0.0.1:{relay_port}"),
            "--udp-resend",
            "200ms",
        ],
    );
    busy.wait_ready();
    std::thread::sleep(Duration::from_secs(3));
    let (out, counts) = busy.stop();
    assert!(out.status.success(), "{out:?}");
    let r = recv.wait_timeout(LONG);
    stop.store(true, Ordering::Relaxed);
    let forwarded = relay.join().unwrap();
    let dropped = dropped.load(Ordering::Relaxed);
    let err = stderr_of(&dir, "recv");
    assert!(r.status.success(), "{err}");
    assert!(
        dropped > 0 && forwarded > 10 * dropped,
        "{forwarded} {dropped}"
    );
    let lost: u64 = err
        .split("lost ")
        .last()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no loss report: {err}"));
    eprintln!("relay forwarded {forwarded}, dropped {dropped}; recv: {err}");
    assert!(lost > 0, "{err}");
    let c = check(&out_file);
    c.assert_ok();
    assert!(
        c.user_messages
            .iter()
            .any(|m| m.starts_with("elstream: dropped")),
        "no drop notice: {:?}",
        c.user_messages
    );
    let work = c.user_count("work ");
    assert!(
        work > 0 && work <= 2 * counts["rounds"],
        "{work} {counts:?}"
    );
}

#[test]
fn udp_frames_that_are_not_whole_events_are_dropped_and_the_rest_parses() {
    use elstream_format::eventlog::{Frame, StreamDecoder, DATA_END};
    use elstream_format::udp::{FrameKind, Packetizer};
    let dir = TempDir::new("faults-udp-garbage");
    // A real log from Plain (`+RTS -l`), cut into its header and blocks.
    let log = dir.join("plain.eventlog");
    let out = ChildGuard::spawn(
        std::process::Command::new(testkit::example("Plain"))
            .args(["6", "0", "+RTS", "-N2", "-l"])
            .arg(format!("-ol{}", log.display()))
            .arg("-RTS")
            .stdout(Stdio::null()),
    )
    .wait_timeout(LONG);
    assert!(out.status.success(), "{out:?}");
    let want = check(&log);
    want.assert_ok();
    let mut dec = StreamDecoder::new();
    dec.push(&std::fs::read(&log).unwrap());
    let (mut header, mut blocks) = (None, Vec::new());
    while let Some(f) = dec.next_frame().unwrap() {
        match f {
            Frame::Header(h) => header = Some(h.raw),
            Frame::Block(b) => blocks.push(b.bytes),
            Frame::DataEnd => {}
        }
    }
    assert!(blocks.len() >= 2, "{} blocks", blocks.len());

    let out_file = dir.join("udp.eventlog");
    let (recv, rport) = udp_recv_any(&dir, "recv", &out_file);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut p = Packetizer::new(0x5eed, 1400).unwrap();
    let mut send = |kind, frame: &[u8]| {
        p.packetize(kind, frame, |d| {
            tx.send_to(d, ("127.0.0.1", rport)).unwrap();
        });
        std::thread::sleep(Duration::from_millis(2));
    };
    send(FrameKind::Header, &header.unwrap());
    // Well-framed datagrams whose blocks are not whole events: bytes of no
    // event type, and a real block cut short.
    let garbage = vec![0xab; 300];
    let cut = &blocks[0][..blocks[0].len() - 3];
    send(FrameKind::Block, &garbage);
    for (i, b) in blocks.iter().enumerate() {
        send(FrameKind::Block, b);
        if i == 0 {
            send(FrameKind::Block, cut);
        }
    }
    send(FrameKind::DataEnd, &DATA_END);
    let r = recv.wait_timeout(LONG);
    let err = stderr_of(&dir, "recv");
    assert!(r.status.success(), "{err}");
    assert!(err.contains("dropped 2 malformed blocks"), "{err}");
    let c = check(&out_file);
    c.assert_ok();
    // Every real event arrived, plus one notice per dropped block.
    let notices = c
        .user_messages
        .iter()
        .filter(|m| m.starts_with("elstream: dropped 1 malformed block"))
        .count();
    assert_eq!(notices, 2, "{:?}", c.user_messages);
    assert_eq!(c.user_messages.len(), want.user_messages.len() + 2);
    assert_eq!(c.markers, want.markers);
}
