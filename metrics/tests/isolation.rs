//! One source's trouble stays in its session: beside a good source (a file
//! written by Demo, followed like tail -F), one sends garbage, one accepts
//! and stalls, one is down, and the good one's file is replaced (a restart).
//! The good session's figures equal ghc-events' of its file throughout,
//! the garbage is counted on its own source, the replaced file is session 2.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use testkit::{example, wait_until, ChildGuard, TempDir};

fn demo_log(path: &std::path::Path, rounds: &str) {
    let out = ChildGuard::spawn(
        Command::new(example("Demo"))
            .args([rounds, "0", "2000"])
            .arg("+RTS")
            .arg("-l")
            .arg(format!("-ol{}", path.display()))
            .arg("-RTS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .wait_timeout(TIMEOUT);
    assert!(out.status.success());
}

#[test]
fn garbage_stall_down_and_restart_stay_in_their_sessions() {
    let dir = TempDir::new("metrics-iso");
    let (a, b) = (dir.join("a.eventlog"), dir.join("b.eventlog"));
    demo_log(&a, "3");
    demo_log(&b, "5");
    let good = dir.join("good.eventlog");
    std::fs::copy(&a, &good).unwrap();

    // Garbage: every connection gets bytes that are not an eventlog.
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let gaddr = garbage.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in garbage.incoming().flatten() {
            let mut c = c;
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\nthis is no eventlog at all\n");
        }
    });
    // Stall: accepts and never sends.
    let stall = UnixListener::bind(dir.join("stall.sock")).unwrap();
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = stall.incoming().take(1).flatten().collect();
        std::thread::sleep(Duration::from_secs(120));
        drop(conns);
    });
    let m = start_metrics(&[
        "--source",
        &format!("good=file:{}", good.display()),
        "--source",
        &format!("junk=tcp://{gaddr}"),
        "--source",
        &format!("stall=unix:{}", dir.join("stall.sock").display()),
        "--source",
        &format!("down=unix:{}", dir.join("nobody.sock").display()),
        "--reconnect-max",
        "200ms",
    ]);
    let ca = testkit::check(&a);
    let want = |c: &testkit::Check| c.user_messages.len() as f64;
    let good_msgs = || scraped(&m.addr, r#"ghc_user_messages_total{session="good"}"#);
    assert!(wait_until(Duration::from_secs(20), || good_msgs() == Some(want(&ca))));
    assert!(wait_until(Duration::from_secs(20), || {
        scraped(&m.addr, r#"elstream_source_garbage_total{session="junk"}"#).unwrap_or(0.0) >= 2.0
    }));
    assert_eq!(
        scraped(&m.addr, r#"elstream_source_up{session="stall"}"#),
        Some(1.0)
    );
    assert_eq!(
        scraped(&m.addr, r#"elstream_source_up{session="down"}"#),
        Some(0.0)
    );
    assert!(scraped(&m.addr, r#"elstream_source_errors_total{session="down"}"#).unwrap() >= 1.0);
    assert_eq!(
        scraped(&m.addr, r#"elstream_session_ended{session="good"}"#),
        Some(1.0)
    );
    assert_eq!(
        scraped(&m.addr, r#"elstream_source_garbage_total{session="good"}"#),
        Some(0.0)
    );
    assert_eq!(
        scraped(&m.addr, r#"ghc_gc_pause_seconds_count{session="good"}"#),
        {
            let seq = testkit::event_sequence(&a);
            let starts = seq
                .iter()
                .filter(|e| e.2 == elstream_format::eventlog::EVENT_GC_END)
                .count();
            Some(starts as f64)
        }
    );

    // The program restarts: the file is replaced; a new session, its own figures.
    let tmp = dir.join("good.new");
    std::fs::copy(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &good).unwrap();
    let cb = testkit::check(&b);
    assert!(wait_until(Duration::from_secs(20), || {
        scraped(&m.addr, r#"elstream_session_number{session="good"}"#) == Some(2.0)
            && good_msgs() == Some(want(&cb))
    }));
    assert_ne!(want(&ca), want(&cb));
    assert_eq!(
        scraped(&m.addr, r#"elstream_source_sessions_total{session="good"}"#),
        Some(2.0)
    );
    // No session for the sources that never sent an eventlog.
    assert_eq!(
        scraped(&m.addr, r#"elstream_session_number{session="junk"}"#),
        None
    );
}
