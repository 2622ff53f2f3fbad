//! `GET /sessions/NAME/eventlog` on `elstream ui`: plain tools (`curl ... >
//! x.eventlog`) get a whole eventlog of a watched session, judged by ghc-events.
//! The source is named with `--source web=unix:...`: the page lists the
//! session as `web` and serves it by that name.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use testkit::{check, example, parse_counts, release_bin, wait_until, ChildGuard, TempDir};

#[test]
fn a_watched_session_streams_as_a_valid_eventlog_by_name() {
    let dir = TempDir::new("ui-eventlog");
    let sock = dir.join("app.sock");
    // Two consumers: the UI's own reader and the HTTP subscription.
    let demo = ChildGuard::spawn(
        Command::new(example("Demo"))
            .args(["10", "10", "3000"])
            .arg(format!("--stream=unix:{}", sock.display()))
            .arg("--wait-consumers=2")
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    );
    let mut ui = ChildGuard::spawn(
        Command::new(release_bin("elstream"))
            .args(["ui", "--no-discover", "--listen", "127.0.0.1:0"])
            .arg(format!("--source=web=unix:{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(ui.child().stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (status, _, body) = http(port, "GET", "/sessions/nosuch/eventlog", &[], b"");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    // 404 until the UI has the session; then the stream runs to the data end.
    let mut got = None;
    assert!(wait_until(TIMEOUT, || {
        let (status, head, body) = http(port, "GET", "/sessions/web/eventlog", &[], b"");
        if status == 200 {
            assert!(head.contains("application/octet-stream"), "{head}");
            got = Some(body);
        }
        got.is_some()
    }));
    let (status, _, body) = http(port, "GET", "/api/sessions", &[], b"");
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["web"], "{list}");
    let out = demo.wait_timeout(TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let want = parse_counts(&String::from_utf8_lossy(&out.stdout))["user-events"];
    let file = dir.join("x.eventlog");
    std::fs::write(&file, got.unwrap()).unwrap();
    let c = check(&file);
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, want, "{c:#?}");
    assert_eq!(c.user_count("DEMO end"), 1);
}
