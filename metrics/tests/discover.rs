//! `--discover DIR`: a shim socket that appears in DIR becomes a source
//! named after it; its figures equal ghc-events' on a capture of the same
//! run; once the program is gone (socket removed) the source is forgotten
//! after --forget-after.

mod common;

use std::time::Duration;

use common::*;
use testkit::{example, wait_until, TempDir};

#[test]
fn discovered_socket_is_a_session_and_is_forgotten_when_gone() {
    let demo = example("Demo");
    let dir = TempDir::new("metrics-discover");
    let m = start_metrics(&[
        "--discover",
        dir.path().to_str().unwrap(),
        "--forget-after",
        "3s",
    ]);
    let (counts, bytes) = run_demo(&demo, &dir.join("app.sock"), 3);
    let c = testkit::check_bytes(&bytes);
    c.assert_ok();
    assert_eq!(c.user_messages.len() as u64, counts["user-events"]);
    assert!(wait_until(Duration::from_secs(20), || {
        scraped(&m.addr, r#"elstream_session_ended{session="app"}"#) == Some(1.0)
    }));
    assert_eq!(
        scraped(&m.addr, r#"ghc_user_messages_total{session="app"}"#),
        Some(counts["user-events"] as f64)
    );
    assert!(
        !dir.join("app.sock").exists(),
        "the shim removed its socket"
    );
    assert!(
        wait_until(Duration::from_secs(20), || scraped(
            &m.addr,
            r#"elstream_source_up{session="app"}"#
        )
        .is_none()),
        "the source whose socket is gone is forgotten"
    );
}
