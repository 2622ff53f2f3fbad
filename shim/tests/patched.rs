//! The shim on a patched GHC 9.0.2 RTS (ghc-patches/): it must find the RTS's
//! own streaming API and use it for classes and sync, and GHC 9.2's public
//! `flushEventLog(NULL)` (patch 6 backports it) for flush.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, check_bytes, ChildGuard, HsBuild, TempDir};

#[test]
fn the_patched_rts_api_is_detected_and_used() {
    let root = testkit::repo_root();
    let patched = testkit::target_dir().join("ghc-patched");
    let status = Command::new("bash")
        .arg(root.join("ghc-patches/build.sh"))
        .env("GHC_PATCHED_DIR", &patched)
        .stdout(Stdio::null())
        .status()
        .expect("run ghc-patches/build.sh");
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
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "rts-api=patched-1,ghc-9.2-flush",
        "flush-mechanism=ghc-9.2-api",
        "classes-mechanism=patched-rts",
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
}
