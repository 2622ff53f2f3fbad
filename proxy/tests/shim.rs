//! Shim → proxy → many subscribers, with the shim-linked Demo program.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn demo(sock: &std::path::Path, args: &[&str], wait: Option<u32>) -> Command {
    let mut c = Command::new(example("Demo"));
    c.args(args)
        .arg(format!("--stream=unix:{}", sock.display()));
    if let Some(n) = wait {
        c.arg(format!("--wait-consumers={n}"));
    }
    c.args(["+RTS", "-N2", "-RTS"]).stdout(Stdio::piped());
    c
}

#[test]
fn shim_to_proxy_to_8_tcp_2_unix_and_1_udp_subscribers() {
    let dir = TempDir::new("shim-fanout");
    let shim_sock = dir.join("demo.sock");
    let sub_sock = dir.join("subs.sock");
    let udp_out = dir.join("udp.eventlog");
    let (recv, uport) = udp_recv_any(&dir, "recv", &udp_out);
    // The program waits for two consumers of its shim: the proxy and a direct one.
    let prog = ChildGuard::spawn(&mut demo(&shim_sock, &["12", "10", "3000"], Some(2)));
    assert!(wait_for_path(&shim_sock, LONG));
    let _proxy = ChildGuard::spawn(&mut proxy_cmd(
        &dir,
        "proxy",
        &format!("unix:{}", shim_sock.display()),
        "0",
        &[
            "--listen",
            &format!("unix:{}", sub_sock.display()),
            "--udp",
            &format!("127.0.0.1:{uport}"),
            "--wait-subscribers",
            "10",
        ],
    ));
    let port = ready_port(&dir, "proxy");
    let mut subs: Vec<_> = (0..8).map(|_| sub_tcp(port)).collect();
    subs.extend((0..2).map(|_| sub_unix(&sub_sock)));
    assert!(wait_until(LONG, || stats(&dir).contains("subscribers_accepted=10")));
    let direct = sub_unix(&shim_sock);
    let out = prog.wait_timeout(LONG);
    assert!(out.status.success(), "demo: {out:?}");
    let counts = parse_counts(&String::from_utf8_lossy(&out.stdout));

    let direct = direct.join().unwrap();
    let dc = check_saved(&dir, "direct.eventlog", &direct);
    dc.assert_ok();
    assert_eq!(dc.user_messages.len() as u64, counts["user-events"]);
    let want = sequence_saved(&dir, "direct.eventlog", &direct);
    for (i, h) in subs.into_iter().enumerate() {
        let bytes = h.join().unwrap();
        let name = format!("sub{i}.eventlog");
        let c = check_saved(&dir, &name, &bytes);
        c.assert_ok();
        assert_eq!(
            c.user_messages.len() as u64,
            counts["user-events"],
            "{name}"
        );
        assert_eq!(
            sequence_saved(&dir, &name, &bytes),
            want,
            "{name} differs from the shim's"
        );
    }
    let r = recv.wait_timeout(LONG);
    assert!(r.status.success(), "{}", stderr_of(&dir, "recv"));
    assert!(stderr_of(&dir, "recv").contains("lost 0 datagrams"));
    check(&udp_out).assert_ok();
    assert_eq!(event_sequence(&udp_out), want, "UDP output differs");
}

#[test]
fn proxy_killed_and_restarted_while_the_program_runs() {
    let dir = TempDir::new("shim-restart");
    let shim_sock = dir.join("demo.sock");
    // About 10 s of work, so the proxy can die and come back in the middle.
    let prog = ChildGuard::spawn(&mut demo(&shim_sock, &["200", "50", "3000"], None));
    assert!(wait_for_path(&shim_sock, LONG));
    let source = format!("unix:{}", shim_sock.display());
    let first = ChildGuard::spawn(&mut proxy_cmd(&dir, "proxy1", &source, "0", &[]));
    let port = ready_port(&dir, "proxy1");
    let listen = port.to_string();
    let early = sub_tcp(port);
    assert!(wait_until(LONG, || stats(&dir).contains("state=live")));
    first.signal("KILL");
    drop(first);
    let early = early.join().unwrap();
    let c = check_saved(&dir, "early.eventlog", &early);
    assert!(c.error.is_none(), "{c:#?}");

    // Same port and stats socket path (left behind by the killed proxy).
    let _second = ChildGuard::spawn(&mut proxy_cmd(&dir, "proxy2", &source, &listen, &[]));
    ready_lines(&ready_file(&dir, "proxy2"));
    let late = sub_tcp(port);
    let out = prog.wait_timeout(LONG);
    assert!(out.status.success(), "the program was disturbed: {out:?}");
    let late = late.join().unwrap();
    let c = check_saved(&dir, "late.eventlog", &late);
    c.assert_ok();
    assert_eq!(c.user_count("DEMO end"), 1, "{c:#?}");
    assert!(!stderr_of(&dir, "proxy2").contains("panicked"));
}

#[test]
fn subscriber_filtering_to_gc_and_user_gets_only_those() {
    use elstream_format::eventlog::{
        class_of, Class, EVENT_GC_END, EVENT_GC_START, EVENT_RUN_THREAD,
    };
    let dir = TempDir::new("shim-classes");
    let shim_sock = dir.join("demo.sock");
    let prog = ChildGuard::spawn(&mut demo(&shim_sock, &["8", "10", "3000"], Some(1)));
    assert!(wait_for_path(&shim_sock, LONG));
    let _proxy = ChildGuard::spawn(&mut proxy_cmd(
        &dir,
        "proxy",
        &format!("unix:{}", shim_sock.display()),
        "0",
        &[
            "--listen",
            "tcp://127.0.0.1:0?classes=gu",
            "--wait-subscribers",
            "2",
        ],
    ));
    let ports = ready_ports(&ready_file(&dir, "proxy"), "listen");
    let (port, gu_port) = (ports[0], ports[1]);
    let all = sub_tcp(port);
    let gu = sub_tcp(gu_port);
    assert!(wait_until(LONG, || stats(&dir).contains("classes=gu")));
    let out = prog.wait_timeout(LONG);
    assert!(out.status.success(), "demo: {out:?}");
    let counts = parse_counts(&String::from_utf8_lossy(&out.stdout));
    let all = all.join().unwrap();
    let gu = gu.join().unwrap();
    let ca = check_saved(&dir, "all.eventlog", &all);
    ca.assert_ok();
    let cg = check_saved(&dir, "gu.eventlog", &gu);
    cg.assert_ok();
    assert!(ca.count(EVENT_RUN_THREAD) > 0, "{ca:#?}");
    for ty in cg.per_type.keys() {
        assert!(
            matches!(class_of(*ty), Class::Gc | Class::User | Class::Always),
            "event type {ty} ({:?}) in a gu stream: {cg:#?}",
            class_of(*ty)
        );
    }
    assert!(
        cg.count(EVENT_GC_START) > 0 && cg.count(EVENT_GC_END) > 0,
        "{cg:#?}"
    );
    assert!(cg.events < ca.events);
    assert_eq!(cg.user_messages.len() as u64, counts["user-events"]);
    assert_eq!(cg.user_messages, ca.user_messages);
    assert_eq!(cg.markers, ca.markers);
    assert_eq!(cg.count(EVENT_GC_START), ca.count(EVENT_GC_START));
}
