//! The Haskell binding (shim/haskell) against the real shim.

use std::process::Command;
use testkit::{build_haskell, repo_root, HsBuild, TempDir};

#[test]
fn binding_reports_errors_and_stats() {
    let bin = build_haskell(
        &repo_root().join("shim/haskell/test/BindingTest.hs"),
        &HsBuild::with_shim(),
    );
    let dir = TempDir::new("binding");
    let sock = dir.join("b.sock");
    let out = Command::new(bin).arg(&sock).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let find = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {label} line in:\n{stdout}"))
    };
    // Failures carry the call, a negative code and elstream_last_error's text.
    let bad = find("bad-config");
    assert!(bad.starts_with("error -"), "{bad}");
    assert!(
        bad.contains("elstream_start: ") && bad.contains("bogus:nowhere"),
        "{bad}"
    );
    for label in ["stop-unstarted", "stats-unstarted", "stop-after-with"] {
        let l = find(label);
        assert!(
            l.starts_with("error -") && l.contains("not started"),
            "{label}: {l}"
        );
    }
    assert_eq!(find("stats"), "ok 8388608");
    let double = find("double-start");
    assert!(
        double.starts_with("error -") && double.contains("already"),
        "{double}"
    );
    assert_eq!(find("with"), "ok ()");
    assert!(!sock.exists(), "socket left behind after stop");
}
