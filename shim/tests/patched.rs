//! The shim on a patched GHC 9.0.2 RTS (ghc-patches/): it must find the RTS's
//! own streaming API and use it for sync, GHC 9.2's public
//! `flushEventLog(NULL)` (patch 6 backports it) for flush, and GHC 10.0's
//! `setTraceFlag` (patch 7 backports it) for classes, or the patches' own
//! `rts_setTraceFlag` on an RTS without patch 7.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, check_bytes, ChildGuard, HsBuild, TempDir};

/// Builds the patched RTS (patches up to `upto`, all when `None`), runs
/// Patched.hs on it with one consumer, checks the stream; the status lines.
fn run_patched(upto: Option<u32>) -> String {
    let root = testkit::repo_root();
    let patched = testkit::target_dir().join(match upto {
        Some(n) => format!("ghc-patched-upto-{n}"),
        None => "ghc-patched".into(),
    });
    let mut build = Command::new("bash");
    build
        .arg(root.join("ghc-patches/build.sh"))
        .env("GHC_PATCHED_DIR", &patched)
        .stdout(Stdio::null());
    if let Some(n) = upto {
        build.env("GHC_PATCHES_UPTO", n.to_string());
    }
    let status = build.status().expect("run ghc-patches/build.sh");
    assert!(status.success(), "ghc-patches/build.sh failed");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Patched.hs");
    let prog = build_haskell(
        &src,
        &HsBuild {
            extra: vec![format!("-B{}", patched.join("lib").display())],
            ..HsBuild::with_shim()
        },
    );
    let dir = TempDir::new("shim-patched");
    let sock = dir.join("p.sock");
    let child = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!("unix:{}", sock.display()))
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    );
    assert!(testkit::wait_for_path(&sock, Duration::from_secs(60)));
    let mut consumer = UnixStream::connect(&sock).unwrap();
    let mut bytes = Vec::new();
    consumer.read_to_end(&mut bytes).unwrap();
    let out = child.wait_timeout(Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "rts-api=patched-1,ghc-9.2-flush",
        "rts-generation=ghc-9.0",
        "flush-mechanism=ghc-9.2-api",
        "sync-mechanism=patched-rts",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    let flushes: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("flushes="))
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(flushes.last().copied().unwrap_or(0) >= 1, "{text}");
    let c = check_bytes(&bytes);
    c.assert_ok();
    assert_eq!(c.user_count("patched user"), 10);
    assert!(c.markers.iter().any(|m| m == "patched end"));
    // sync re-posted the start-up state through the RTS's own API.
    assert!(
        c.count(elstream_format::eventlog::EVENT_CAPSET_CREATE) >= 4,
        "{c:#?}"
    );
    // The user class was off for these.
    assert_eq!(c.user_count("hidden user"), 0, "{text}");
    text
}

#[test]
fn the_patched_rts_api_is_detected_and_used() {
    let text = run_patched(None);
    assert!(
        text.contains("classes-mechanism=ghc-10.0-trace-flags"),
        "{text}"
    );
}

#[test]
fn without_patch_7_classes_go_through_rts_set_trace_flag() {
    let text = run_patched(Some(6));
    assert!(text.contains("classes-mechanism=patched-rts"), "{text}");
}
