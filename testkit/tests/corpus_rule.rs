//! The external-corpus rule (testkit::logs::external_corpus), run in a child
//! process of this test binary with a chosen environment: a missing corpus
//! fails under `CI`, elsewhere skips loudly (a `SKIPPED:` line on stderr that
//! libtest does not swallow, and a file under target/corpus-skipped/); a
//! present corpus runs and clears that file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::{ChildGuard, TempDir};

/// Not a test of its own: the child that `rule` runs (ignored, so a normal
/// run never touches the real corpus state from here).
#[test]
#[ignore]
fn probe() {
    match testkit::logs::external_corpus() {
        Some(dir) => println!("PROBE found {}", dir.display()),
        None => println!("PROBE skipped"),
    }
}

/// Runs `probe` with the corpus at `corpus`, `CI` set or not, and the target
/// directory `target`: (exit ok, stdout + stderr).
fn run_probe(corpus: &Path, ci: bool, target: &Path) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "probe",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ELSTREAM_CORPUS", corpus)
    .env("CARGO_TARGET_DIR", target)
    .env("CARGO_PKG_NAME", "testkit")
    .env_remove("CI")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if ci {
        cmd.env("CI", "true");
    }
    let out = ChildGuard::spawn(&mut cmd).wait_timeout(Duration::from_secs(60));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn rule() {
    let tmp = TempDir::new("corpus-rule");
    let target = tmp.join("target");
    let missing = tmp.join("no-corpus");
    let marker = target.join("corpus-skipped/testkit--corpus_rule--probe");

    let (ok, out) = run_probe(&missing, true, &target);
    assert!(!ok, "a missing corpus under CI must fail: {out}");
    assert!(out.contains("CI is set"), "{out}");

    let (ok, out) = run_probe(&missing, false, &target);
    assert!(ok, "{out}");
    assert!(out.contains("PROBE skipped"), "{out}");
    assert!(
        out.contains("SKIPPED: testkit--corpus_rule--probe"),
        "{out}"
    );
    assert!(marker.is_file(), "no skip file at {}", marker.display());

    let present = tmp.join("corpus");
    std::fs::create_dir_all(present.join("ghc-events")).unwrap();
    let (ok, out) = run_probe(&present, true, &target);
    assert!(ok, "{out}");
    assert!(out.contains("PROBE found"), "{out}");
    assert!(!out.contains("SKIPPED"), "{out}");
    assert!(
        !marker.exists(),
        "the skip file outlived a run that found the corpus"
    );
}
