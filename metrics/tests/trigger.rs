//! Triggers on real programs: `gc-pause>` fires on a program whose major
//! GCs copy a large live heap, asks its shim for a snapshot that ghc-events
//! reads and that holds the GC that fired it, runs its command once, keeps
//! its cooldown (one firing for several long GCs) and its maximum; a quiet
//! program streaming into the same exporter at the same time never fires.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use testkit::{build_haskell, repo_root, wait_until, ChildGuard, HsBuild, TempDir};

const THRESHOLD_NS: u64 = 60_000_000;

#[test]
fn gc_pause_trigger_snapshots_the_long_gc_and_spares_a_quiet_program() {
    let prog = build_haskell(
        &repo_root().join("metrics/tests/haskell/LongGc.hs"),
        &HsBuild::with_shim(),
    );
    let dir = TempDir::new("metrics-trigger");
    let snaps = dir.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    let (long, quiet) = (dir.join("long.sock"), dir.join("quiet.sock"));
    let ran = dir.join("ran");
    let m = start_metrics(&[
        "--source",
        &format!("long=unix:{}", long.display()),
        "--source",
        &format!("quiet=unix:{}", quiet.display()),
        "--trigger",
        &format!(
            "gc-pause>60ms;cooldown=60m;max=5;run=echo \"$ELSTREAM_SESSION|$ELSTREAM_SNAPSHOT|$ELSTREAM_DETAIL\" >> {}",
            ran.display()
        ),
        "--trigger",
        "gc-pause>60ms;cooldown=0s;max=2;snapshot=off",
    ]);
    let spawn = |mode: &str, sock: &std::path::Path| {
        ChildGuard::spawn(
            Command::new(&prog)
                .args([mode, "2000000"])
                .arg(format!(
                    "--stream=unix:{},flush=100ms,snapshot-dir={}",
                    sock.display(),
                    snaps.display()
                ))
                .args(["+RTS", "-N1", "-RTS"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    };
    let (pl, pq) = (spawn("long", &long), spawn("quiet", &quiet));
    for (p, what) in [(pl, "long"), (pq, "quiet")] {
        let out = p.wait_timeout(TIMEOUT);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fired = |s: &str, t: &str| {
        scraped(
            &m.addr,
            &format!(r#"elstream_trigger_fired_total{{session="{s}",trigger="{t}"}}"#),
        )
    };
    let t1 = "gc-pause>60ms";
    assert!(
        wait_until(Duration::from_secs(20), || {
            scraped(&m.addr, r#"elstream_session_ended{session="long"}"#) == Some(1.0)
                && scraped(&m.addr, r#"elstream_session_ended{session="quiet"}"#) == Some(1.0)
                && scraped(
                    &m.addr,
                    &format!(
                        r#"elstream_trigger_snapshots_total{{session="long",trigger="{t1}",result="ok"}}"#
                    ),
                ) == Some(1.0)
        }),
        "{}",
        get(&m.addr, "/metrics").unwrap_or_default()
    );
    let long_pauses = scraped(
        &m.addr,
        r#"ghc_gc_pause_seconds_bucket{le="+Inf",session="long"}"#,
    )
    .unwrap()
        - scraped(
            &m.addr,
            r#"ghc_gc_pause_seconds_bucket{le="0.05",session="long"}"#,
        )
        .unwrap();
    assert!(
        long_pauses >= 3.0,
        "the long program should have 3+ pauses over 50 ms: {long_pauses}"
    );
    // Cooldown: one firing for all of them; max: the second trigger stops at 2.
    assert_eq!(fired("long", t1), Some(1.0));
    assert!(
        scraped(
            &m.addr,
            &format!(r#"elstream_trigger_suppressed_total{{session="long",trigger="{t1}"}}"#)
        )
        .unwrap()
            >= 2.0
    );
    let all_t: Vec<String> = get(&m.addr, "/metrics")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("elstream_trigger_fired_total"))
        .map(String::from)
        .collect();
    assert!(
        all_t
            .iter()
            .any(|l| l.contains(r#"session="long""#) && l.ends_with(" 2.0")),
        "{all_t:?}"
    );
    // The quiet program never fires either trigger.
    assert!(
        all_t
            .iter()
            .filter(|l| l.contains(r#"session="quiet""#))
            .all(|l| l.ends_with(" 0.0")),
        "{all_t:?}"
    );
    assert!(
        all_t.iter().any(|l| l.contains(r#"session="quiet""#)),
        "quiet was judged: {all_t:?}"
    );

    // The command ran once, with the snapshot's path.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&ran).is_ok_and(|t| t.lines().count() == 1)
    }));
    let line = std::fs::read_to_string(&ran).unwrap();
    let mut f = line.trim().split('|');
    let (session, path, detail) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
    assert_eq!(session, "long");
    let snap = std::path::PathBuf::from(path);
    assert_eq!(snap.parent(), Some(snaps.as_path()));
    let entries: Vec<_> = std::fs::read_dir(&snaps).unwrap().collect();
    assert_eq!(entries.len(), 1, "one snapshot");
    assert_eq!(
        std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777,
        0o600,
        "{line}"
    );
    // It parses and holds the GC that fired the trigger.
    testkit::check(&snap).assert_ok();
    let start: u64 = detail
        .split("StartGC at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("detail {detail:?}"));
    let seq = testkit::event_sequence(&snap);
    let i = seq
        .iter()
        .position(|e| e.2 == elstream_format::eventlog::EVENT_GC_START && e.0 == start)
        .unwrap_or_else(|| panic!("no StartGC at {start} in the snapshot"));
    let end = seq[i..]
        .iter()
        .find(|e| e.2 == elstream_format::eventlog::EVENT_GC_END && e.1 == seq[i].1)
        .expect("its EndGC");
    assert!(
        end.0 - start > THRESHOLD_NS,
        "the GC in the snapshot lasted {} ns",
        end.0 - start
    );
}
