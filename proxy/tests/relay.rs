//! The proxy's control relay (`--control-listen`, `--control-to`,
//! `--token-file`) with a real shim-linked GHC program.

#[path = "common/busy.rs"]
mod busy;
mod common;

use std::process::Stdio;

use busy::*;
use common::*;
use elstream_format::control::{Status, FRAME_HEADER, MAX_PAYLOAD};
use elstream_format::eventlog::{
    EVENT_GC_END, EVENT_GC_START, EVENT_RUN_THREAD, EVENT_STOP_THREAD, EVENT_USER_MSG,
};

#[test]
fn ctl_through_the_relay_reaches_the_shim_and_tcp_needs_the_token() {
    let dir = TempDir::new("relay");
    let sock = dir.join("b.sock");
    let snaps = dir.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    // Two consumers: the proxy and a direct one connected after `classes -s`.
    let busy = Busy::spawn(
        &dir,
        &format!("unix:{},snapshot-dir={}", sock.display(), snaps.display()),
        2,
        20,
    );
    assert!(wait_for_path(&sock, LONG));
    let relay_sock = dir.join("relay.sock");
    let token = token_file(&dir, "token", "s3cret-token", 0o600);
    let (_proxy, port) = proxy_up(
        &dir,
        &sock,
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
    let cport = ready_ports(&ready_file(&dir, "proxy"), "control")[0];
    let st = stats(&dir);
    assert!(
        st.contains(&format!("control tcp://127.0.0.1:{cport}")),
        "a bare port binds loopback: {st}"
    );
    assert_eq!(mode_of(&relay_sock), 0o600);
    let tcp = format!("tcp://127.0.0.1:{cport}");
    let tok = token.to_str().unwrap();

    // The scheduler class off before the load starts, through TCP + token.
    let out = ctl(&["--to", &tcp, "--token-file", tok, "classes -s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "classes=gpu");
    let out = ctl(&["--to", &tcp, "--token-file", tok, "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    for key in [
        format!("pid={}", busy.pid()),
        "classes=gpu".into(),
        format!("rts=GHC-{}", testkit::ghc().version),
    ] {
        assert!(status.contains(&key), "{key} missing in {status}");
    }
    // UNIX relay: no token needed.
    let out = ctl(&["--to", &format!("unix:{}", relay_sock.display()), "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("pid={}", busy.pid())));

    // No token, wrong token: Unauthorized, and the connection is closed.
    let out = ctl(&["--to", &tcp, "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Unauthorized") && text(&out.stderr).contains("--token-file"),
        "{}",
        text(&out.stderr)
    );
    let wrong = token_file(&dir, "wrong", "s3cret-tokem", 0o600);
    let out = ctl(&[
        "--to",
        &tcp,
        "--token-file",
        wrong.to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Unauthorized: wrong token"),
        "{}",
        text(&out.stderr)
    );
    let mut c = tcp_ctl(cport);
    assert_eq!(c.call("status").status, Status::Unauthorized);
    assert!(
        c.recv().is_none(),
        "closed after an unauthenticated request"
    );
    let mut c = tcp_ctl(cport);
    assert_eq!(c.call("auth nope").status, Status::Unauthorized);
    assert!(c.recv().is_none(), "closed after a wrong token");
    let mut c = tcp_ctl(cport);
    assert_eq!(c.call("auth").status, Status::Unauthorized);
    assert!(c.recv().is_none());

    // Authenticated: the shim's error replies are relayed and the connection
    // stays; a malformed frame gets an error reply and is closed.
    let mut c = tcp_ctl(cport);
    assert_eq!(c.call("auth s3cret-token").status, Status::Ok);
    let r = c.call("dance");
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.text.contains("unknown command `dance`"), "{}", r.text);
    let r = c.call("snapshot ../escape");
    assert_eq!(r.status, Status::BadRequest, "{}", r.text);
    assert_eq!(c.call("status").status, Status::Ok);
    c.s.write_all_garbage();
    assert_eq!(c.recv().unwrap().status, Status::BadRequest);
    assert!(c.recv().is_none(), "closed after a garbage frame");
    let mut c = unix_ctl(&relay_sock);
    let mut big = elstream_format::control::request("x");
    big[8..12].copy_from_slice(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
    std::io::Write::write_all(&mut c.s, &big[..FRAME_HEADER]).unwrap();
    let r = c.recv().unwrap();
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.text.contains("larger than"), "{}", r.text);
    assert!(c.recv().is_none(), "closed after an oversized frame");
    assert!(!snaps.join("../escape.eventlog").exists());
    assert!(!dir.join("escape.eventlog").exists());

    // The load starts once the direct consumer joins; scheduler events stay off.
    let direct = sub_unix(&sock);
    let sub = sub_tcp(port);
    busy.wait_ready();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (out, counts) = busy.stop();
    assert!(out.status.success(), "{out:?}");
    let bytes = sub.join().unwrap();
    let c = check_saved(&dir, "sub.eventlog", &bytes);
    c.assert_ok();
    assert_eq!(c.user_count("work "), 2 * counts["rounds"]);
    assert_eq!(c.user_count("BUSY end"), 1);
    let seq = sequence_saved(&dir, "sub.eventlog", &bytes);
    let begin = seq
        .iter()
        .find(|e| e.2 == EVENT_USER_MSG)
        .expect("BUSY begin")
        .0;
    let after = |types: &[u16]| {
        seq.iter()
            .filter(|e| types.contains(&e.2) && e.0 > begin + 1_000_000)
            .count()
    };
    assert_eq!(
        after(&[EVENT_RUN_THREAD, EVENT_STOP_THREAD]),
        0,
        "scheduler events after `classes -s` through the relay"
    );
    assert!(after(&[EVENT_GC_START, EVENT_GC_END]) > 0, "no GC events");
    let direct = direct.join().unwrap();
    assert_eq!(
        sequence_saved(&dir, "direct.eventlog", &direct),
        seq,
        "the proxy's subscriber and the shim's consumer differ"
    );

    // The program is gone: Failed replies, the connection stays.
    assert!(wait_until(LONG, || !dir.join("b.sock.ctl").exists()));
    let mut c = unix_ctl(&relay_sock);
    for _ in 0..2 {
        let r = c.call("status");
        assert_eq!(r.status, Status::Failed);
        assert!(r.text.contains("cannot reach the shim"), "{}", r.text);
    }
    let out = ctl(&["--to", &tcp, "--token-file", tok, "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!stderr_of(&dir, "proxy").contains("panicked"));
}

trait Garbage {
    fn write_all_garbage(&mut self);
}

impl<W: std::io::Write> Garbage for W {
    fn write_all_garbage(&mut self) {
        self.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    }
}

/// Exit code and stderr of a proxy that should refuse to start.
fn refused(dir: &TempDir, label: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![
        "proxy".to_string(),
        "--source".into(),
        format!("unix:{}", dir.join("none.sock").display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out =
        ChildGuard::spawn(elstream_cmd(dir, label, &args).stdout(Stdio::null())).wait_timeout(LONG);
    (out.status.code(), stderr_of(dir, label))
}

#[test]
fn token_rules_are_enforced_at_start() {
    let dir = TempDir::new("relay-token");
    let open = token_file(&dir, "open", "abc", 0o644);
    let (code, err) = refused(
        &dir,
        "p1",
        &[
            "--control-listen",
            "0",
            "--token-file",
            open.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
    let (code, err) = refused(&dir, "p2", &["--control-listen", "tcp://127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs --token-file"), "{err}");
    let empty = token_file(&dir, "empty", "", 0o600);
    let (code, err) = refused(
        &dir,
        "p3",
        &[
            "--control-listen",
            "0",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("one token"), "{err}");
    let (code, err) = refused(
        &dir,
        "p4",
        &["--control-listen", "0", "--control-to", "tcp://127.0.0.1:1"],
    );
    assert_eq!(code, Some(2), "{err}");
    // The client refuses an open token file too.
    let out = ctl(&[
        "--to",
        "tcp://127.0.0.1:1",
        "--token-file",
        open.to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("chmod 600"));
}

/// A proxy whose source program is not running (`none.sock`), relaying
/// control from the UNIX socket `relay_sock`, plus `extra` arguments.
fn relay_without_program(
    dir: &TempDir,
    relay_sock: &std::path::Path,
    extra: &[&str],
) -> std::process::Command {
    let source = format!("unix:{}", dir.join("none.sock").display());
    let listen = format!("unix:{}", relay_sock.display());
    let ready = ready_file(dir, "proxy");
    let _ = std::fs::remove_file(&ready);
    let ready = ready.display().to_string();
    let mut args = vec![
        "proxy",
        "--source",
        &source,
        "--control-listen",
        &listen,
        "--ready-file",
        &ready,
    ];
    args.extend(extra);
    elstream_cmd(dir, "proxy", &args)
}

#[test]
fn relay_limits_connections_and_survives_an_absent_shim() {
    let dir = TempDir::new("relay-limits");
    let relay_sock = dir.join("r.sock");
    let mut proxy = ChildGuard::spawn(&mut relay_without_program(
        &dir,
        &relay_sock,
        &["--stats", &format!("unix:{}", stats_sock(&dir).display())],
    ));
    wait_stats_of(&dir, &mut proxy, "proxy");
    assert_eq!(mode_of(&relay_sock), 0o600);
    let mut held = Vec::new();
    for i in 0..64 {
        let mut c = unix_ctl(&relay_sock);
        let r = c.call("status");
        assert_eq!(r.status, Status::Failed, "client {i}: {}", r.text);
        assert!(
            r.text
                .contains(&format!("{}", dir.join("none.sock.ctl").display())),
            "{}",
            r.text
        );
        assert_eq!(
            c.call("auth whatever").text,
            "no token needed on this socket"
        );
        held.push(c);
    }
    let mut extra = unix_ctl(&relay_sock);
    let r = extra.recv().expect("a refusal");
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.text.contains("too many control connections"),
        "{}",
        r.text
    );
    assert!(extra.recv().is_none());
    // The held ones still work; freeing one makes room.
    assert_eq!(held[0].call("status").status, Status::Failed);
    held.pop();
    assert!(wait_until(LONG, || stats(&dir).contains("clients=63")));
    let mut c = unix_ctl(&relay_sock);
    assert_eq!(c.call("status").status, Status::Failed);
    assert!(stats(&dir).contains("refused=1"), "{}", stats(&dir));
}

#[test]
fn relay_fails_what_the_shim_never_answers_and_closes_clients_that_never_authenticate() {
    use elstream_format::control::{reply, ControlDecoder};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let dir = TempDir::new("relay-timeouts");
    // A stand-in for the shim's control socket: the first connection reads
    // and never answers (a hung program), the next ones answer every request.
    let fake = dir.join("fake.ctl");
    let listener = UnixListener::bind(&fake).unwrap();
    std::thread::spawn(move || {
        let mut silent = None;
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut s) = conn else { return };
            if i == 0 {
                silent = Some(s);
                continue;
            }
            std::thread::spawn(move || {
                let mut d = ControlDecoder::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    d.push(&buf[..n]);
                    while let Ok(Some(f)) = d.next_frame() {
                        let _ = s.write_all(&reply(Status::Ok, &format!("fake: {}", f.text)));
                    }
                }
            });
        }
        drop(silent);
    });
    let relay_sock = dir.join("r.sock");
    let token = token_file(&dir, "token", "s3cret", 0o600);
    let _proxy = ChildGuard::spawn(&mut relay_without_program(
        &dir,
        &relay_sock,
        &[
            "--control-listen",
            "0",
            "--token-file",
            token.to_str().unwrap(),
            "--control-to",
            &format!("unix:{}", fake.display()),
            "--control-timeout",
            "1s",
        ],
    ));
    let port = ready_ports(&ready_file(&dir, "proxy"), "control")[0];
    // A TCP client that never sends `auth` is told so and closed (10 s).
    let mut lurker = tcp_ctl(port);
    let t0 = std::time::Instant::now();
    let mut c = unix_ctl(&relay_sock);
    let r = c.call("status");
    assert_eq!(r.status, Status::Failed, "{}", r.text);
    assert!(r.text.contains("did not answer within 1s"), "{}", r.text);
    // The relay reconnected: the next request reaches a shim that answers.
    let r = c.call("status");
    assert_eq!((r.status, r.text.as_str()), (Status::Ok, "fake: status"));
    let r = lurker.recv().expect("an unauthorized reply");
    assert_eq!(r.status, Status::Unauthorized, "{}", r.text);
    assert!(r.text.contains("within 10s"), "{}", r.text);
    assert!(t0.elapsed().as_secs() >= 9, "{:?}", t0.elapsed());
    assert!(lurker.recv().is_none(), "the connection is closed");
}
