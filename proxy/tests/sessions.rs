//! Many programs, one `elstream proxy`: every `--source NAME=ENDPOINT` is a
//! session of its own, and a listener bound to a name serves only that one.
//! Real GHC programs (the shim-linked Demo twice on one socket, Plain through
//! a FIFO that first gets garbage); ghc-events judges every subscriber's file.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use common::*;

fn demo(sock: &Path, rounds: &str) -> Command {
    let mut c = Command::new(example("Demo"));
    c.args([rounds, "10", "3000"])
        .arg(format!("--stream=unix:{}", sock.display()))
        .arg("--wait-consumers=1")
        .args(["+RTS", "-N2", "-RTS"])
        .stdout(Stdio::piped());
    c
}

/// `elstream proxy ARGS` with quick reconnects, a stats socket and a ready
/// file; the ports of its TCP listeners, in order, once all are bound.
fn proxy(dir: &TempDir, args: &[&str]) -> (ChildGuard, Vec<u16>) {
    let ready = ready_file(dir, "proxy");
    let stats_ep = format!("unix:{}", stats_sock(dir).display());
    let mut full = vec!["proxy"];
    full.extend_from_slice(args);
    full.extend([
        "--reconnect-max",
        "200ms",
        "--stats",
        &stats_ep,
        "--ready-file",
        ready.to_str().unwrap(),
    ]);
    let p = ChildGuard::spawn(&mut elstream_cmd(dir, "proxy", &full));
    let lines = ready_lines(&ready);
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("listen ") || l.contains('=')),
        "listeners of several sessions are listed with their name: {lines:?}"
    );
    (p, ready_ports(&ready, "listen"))
}

/// [`proxy`] with `sources` (its source arguments) and a TCP listener per
/// session name, each with one subscriber, all connected.
fn proxy_with_subs(
    dir: &TempDir,
    sources: &[&str],
    names: &[&str],
) -> (ChildGuard, Vec<JoinHandle<Vec<u8>>>) {
    let listens: Vec<String> = names
        .iter()
        .map(|n| format!("{n}=tcp://127.0.0.1:0"))
        .collect();
    let mut args = sources.to_vec();
    for l in &listens {
        args.extend(["--listen", l.as_str()]);
    }
    let (p, ports) = proxy(dir, &args);
    let subs = ports.into_iter().map(sub).collect();
    let want = format!("subscribers_accepted={}", names.len());
    assert!(wait_until(LONG, || stats(dir).contains(&want)));
    (p, subs)
}

/// A subscriber whose read fails the test (instead of hanging it) if the
/// proxy never ends its stream.
fn sub(port: u16) -> JoinHandle<Vec<u8>> {
    let s = connect_tcp(port);
    s.set_read_timeout(Some(LONG)).unwrap();
    read_all(s)
}

fn sub_at(path: &Path) -> JoinHandle<Vec<u8>> {
    let s = connect_unix(path);
    s.set_read_timeout(Some(LONG)).unwrap();
    read_all(s)
}

fn user_events(out: &std::process::Output) -> u64 {
    assert!(out.status.success(), "program failed: {out:?}");
    parse_counts(&String::from_utf8_lossy(&out.stdout))["user-events"]
}

/// The stats line of source `name`.
fn source_line(dir: &TempDir, name: &str) -> String {
    let r = stats(dir);
    r.lines()
        .find(|l| l.starts_with("source ") && l.contains(&format!(" name={name} ")))
        .unwrap_or_else(|| panic!("no source {name} in stats: {r}"))
        .to_string()
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// Judges one subscriber's stream: a whole eventlog holding exactly
/// `user_events` user messages, `begin` among them, nothing of `other`.
fn judge(dir: &TempDir, name: &str, bytes: &[u8], user_events: u64, begin: &str, other: &str) {
    let c = check_saved(dir, name, bytes);
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, user_events, "{name}: {c:#?}");
    assert_eq!(c.user_count(begin), 1, "{name}: {c:#?}");
    assert_eq!(
        c.user_count(other),
        0,
        "{name} holds another program's events"
    );
    assert_eq!(c.user_count("elstream:"), 0, "{name} had drops: {c:#?}");
}

#[test]
fn three_programs_one_restarting_one_after_garbage_each_session_to_its_own_subscribers() {
    let dir = TempDir::new("sessions");
    let (a_sock, b_sock, fifo) = (dir.join("a.sock"), dir.join("b.sock"), dir.join("c.fifo"));
    let a_subs = dir.join("a-subs.sock");
    let (a_src, b_src, c_src) = (
        format!("a=unix:{}", a_sock.display()),
        format!("b=unix:{}", b_sock.display()),
        format!("c=fifo:{}", fifo.display()),
    );
    let a_unix = format!("a=unix:{}", a_subs.display());
    let (_proxy, ports) = proxy(
        &dir,
        &[
            "--source",
            &a_src,
            "--source",
            &b_src,
            "--source",
            &c_src,
            "--listen",
            "a=tcp://127.0.0.1:0",
            "--listen",
            "b=tcp://127.0.0.1:0",
            "--listen",
            "c=tcp://127.0.0.1:0",
            "--listen",
            &a_unix,
        ],
    );
    let (pa, pb, pc) = (ports[0], ports[1], ports[2]);
    let (sa1, sa2, sb1, sc) = (sub(pa), sub_at(&a_subs), sub(pb), sub(pc));
    assert!(wait_until(LONG, || stats(&dir).contains("subscribers_accepted=4")));

    let a = ChildGuard::spawn(&mut demo(&a_sock, "40"));
    let b1 = ChildGuard::spawn(&mut demo(&b_sock, "6"));

    // Garbage into c's FIFO while a and b stream: c's reader drops it and
    // reopens; a's and b's subscribers see nothing of it.
    {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let junk: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = w.write_all(&junk);
    }
    assert!(
        wait_until(LONG, || field(&source_line(&dir, "c"), "errors") >= 1),
        "the garbage was not rejected: {}",
        stats(&dir)
    );
    let c_line = source_line(&dir, "c");
    assert!(c_line.contains("not a valid eventlog"), "{c_line}");
    let c = ChildGuard::spawn(
        Command::new(example("Plain"))
            .args([
                "25",
                "10",
                "+RTS",
                "-l",
                &format!("-ol{}", fifo.display()),
                "-RTS",
            ])
            .stdout(Stdio::piped()),
    );

    // b's program exits: only b's subscriber gets the data end. A new b on
    // the same socket is a new session, for the subscriber waiting for it.
    let b1_events = user_events(&b1.wait_timeout(LONG));
    let sb1 = sb1.join().unwrap();
    let sb2 = sub(pb);
    assert!(
        wait_until(LONG, || stats(&dir)
            .lines()
            .any(|l| l.contains("session=b state=waiting"))),
        "{}",
        stats(&dir)
    );
    let b2 = ChildGuard::spawn(&mut demo(&b_sock, "11"));
    let b2_events = user_events(&b2.wait_timeout(LONG));
    let a_events = user_events(&a.wait_timeout(LONG));
    let c_events = user_events(&c.wait_timeout(LONG));
    assert_ne!(b1_events, b2_events, "the two b runs must be told apart");

    let (sa1, sa2, sb2, sc) = (
        sa1.join().unwrap(),
        sa2.join().unwrap(),
        sb2.join().unwrap(),
        sc.join().unwrap(),
    );
    judge(&dir, "a1.eventlog", &sa1, a_events, "DEMO begin", "PLAIN");
    judge(&dir, "a2.eventlog", &sa2, a_events, "DEMO begin", "PLAIN");
    assert_eq!(
        sequence_saved(&dir, "a1.eventlog", &sa1),
        sequence_saved(&dir, "a2.eventlog", &sa2),
        "a's TCP and UNIX subscribers differ"
    );
    judge(&dir, "b1.eventlog", &sb1, b1_events, "DEMO begin", "PLAIN");
    judge(&dir, "b2.eventlog", &sb2, b2_events, "DEMO begin", "PLAIN");
    judge(&dir, "c.eventlog", &sc, c_events, "PLAIN begin", "DEMO");

    let (la, lb, lc) = (
        source_line(&dir, "a"),
        source_line(&dir, "b"),
        source_line(&dir, "c"),
    );
    assert_eq!(field(&la, "sessions"), 1, "{la}");
    // Connection attempts before a program bound its socket count as
    // errors; nothing of a's or b's stream was damaged or dropped.
    for l in [&la, &lb] {
        assert_eq!(field(l, "damaged_blocks"), 0, "{l}");
        assert_eq!(field(l, "dropped_bytes"), 0, "{l}");
    }
    assert_eq!(field(&lb, "sessions"), 2, "{lb}");
    assert_eq!(field(&lc, "sessions"), 1, "{lc}");
    assert!(!stderr_of(&dir, "proxy").contains("panicked"));
}

/// Bad source and listener names are usage errors (exit 2) that say what to do.
#[test]
fn bad_names_and_unnamed_listeners_with_several_sources_are_usage_errors() {
    let dir = TempDir::new("sessions-usage");
    let cases: &[(&[&str], &str)] = &[
        (&["--source", "=unix:/tmp/x.sock"], "bad session name"),
        (&["--source", "a b=unix:/tmp/x.sock"], "bad session name"),
        (&["--source", "a="], "nothing after a="),
        (
            &[
                "--source",
                "a=unix:/tmp/x.sock",
                "--source",
                "a=unix:/tmp/y.sock",
            ],
            "session name \"a\" given twice",
        ),
        (
            &[
                "--source",
                "unix:/tmp/d1/x.sock",
                "--source",
                "unix:/tmp/d2/x.sock",
            ],
            "session name \"x\" given twice",
        ),
        (
            &[
                "--source",
                "a=unix:/tmp/x.sock",
                "--source",
                "b=unix:/tmp/y.sock",
                "--listen",
                "0",
            ],
            "say which session it serves",
        ),
        (
            &["--source", "a=unix:/tmp/x.sock", "--listen", "z=0"],
            "no source named \"z\"",
        ),
        (&["--listen", "0"], "--discover"),
        (
            &["--discover=/tmp", "--listen", "0"],
            "say which session it serves",
        ),
        (
            &[
                "--source",
                "a=unix:/tmp/x.sock",
                "--source",
                "b=unix:/tmp/y.sock",
                "--udp",
                "127.0.0.1:9",
            ],
            "--udp serves one source's stream",
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let label = format!("case{i}");
        let mut full = vec!["proxy"];
        full.extend_from_slice(args);
        let out = ChildGuard::spawn(&mut elstream_cmd(&dir, &label, &full)).wait_timeout(LONG);
        let err = stderr_of(&dir, &label);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
}

/// `--discover=DIR`: a shim socket that appears in DIR is a session named
/// after it; a listener bound to that name before it appears serves it once
/// it does, and another program in DIR stays in its own session. A gone
/// socket's session is forgotten.
#[test]
fn discovered_sockets_are_sessions_by_name() {
    let dir = TempDir::new("sessions-discover");
    let socks = dir.join("socks");
    std::fs::create_dir(&socks).unwrap();
    let discover = format!("--discover={}", socks.display());
    let (_proxy, subs) = proxy_with_subs(&dir, &[&discover], &["app", "other"]);
    let [app_sub, other_sub]: [_; 2] = subs.try_into().unwrap();
    assert!(!stats(&dir).contains("source "), "{}", stats(&dir));
    let app = ChildGuard::spawn(&mut demo(&socks.join("app.sock"), "12"));
    let other = ChildGuard::spawn(&mut demo(&socks.join("other.sock"), "5"));
    let app_events = user_events(&app.wait_timeout(LONG));
    let other_events = user_events(&other.wait_timeout(LONG));
    assert_ne!(app_events, other_events);
    judge(
        &dir,
        "app.eventlog",
        &app_sub.join().unwrap(),
        app_events,
        "DEMO begin",
        "PLAIN",
    );
    judge(
        &dir,
        "other.eventlog",
        &other_sub.join().unwrap(),
        other_events,
        "DEMO begin",
        "PLAIN",
    );
    if !socks.join("app.sock").exists() {
        assert!(
            wait_until(LONG, || !stats(&dir).contains(" name=app ")),
            "a gone socket's session stays: {}",
            stats(&dir)
        );
    }
}

/// A source that cannot be opened again (its FIFO was removed) stops alone:
/// its subscriber gets what there was, the other session streams on.
#[test]
fn a_source_that_cannot_reopen_stops_alone() {
    let dir = TempDir::new("sessions-gone");
    let (a_sock, fifo) = (dir.join("a.sock"), dir.join("c.fifo"));
    let (a_src, c_src) = (
        format!("a=unix:{}", a_sock.display()),
        format!("c=fifo:{}", fifo.display()),
    );
    let (mut proxy, subs) =
        proxy_with_subs(&dir, &["--source", &a_src, "--source", &c_src], &["a", "c"]);
    let [sa, sc]: [_; 2] = subs.try_into().unwrap();
    // The writer goes after its FIFO was removed: the reopen fails.
    let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    std::fs::remove_file(&fifo).unwrap();
    drop(w);
    assert!(
        wait_until(LONG, || source_line(&dir, "c").contains("cannot open FIFO")),
        "{}",
        stats(&dir)
    );
    assert!(sc.join().unwrap().is_empty(), "c never had a session");
    let a = ChildGuard::spawn(&mut demo(&a_sock, "8"));
    let a_events = user_events(&a.wait_timeout(LONG));
    judge(
        &dir,
        "a.eventlog",
        &sa.join().unwrap(),
        a_events,
        "DEMO begin",
        "PLAIN",
    );
    assert!(
        proxy.child().try_wait().unwrap().is_none(),
        "the proxy ended: {}",
        stderr_of(&dir, "proxy")
    );
}
