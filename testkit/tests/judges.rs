//! The judges beyond parsing: `ghc-events validate threads` and ThreadScope
//! (under Xvfb, its status line read by tesseract), against `-l` files of
//! real programs whose ghc-events event counts are known.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{check, example, threadscope_events, validate_threads, ChildGuard, TempDir};

/// `NAME ARGS +RTS -N2 -l -olDIR/NAME.eventlog`.
fn l_file(dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
    let log = dir.join(format!("{name}.eventlog"));
    let out = ChildGuard::spawn(
        Command::new(example(name))
            .args(args)
            .args(["+RTS", "-N2", "-l"])
            .arg(format!("-ol{}", log.display()))
            .arg("-RTS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .wait_timeout(Duration::from_secs(120));
    assert!(out.status.success(), "{name}: {out:?}");
    log
}

/// The eventlog without its first data block: the threads created there run
/// in later blocks without ever being created.
fn cut_first_block(src: &Path, dst: &Path) {
    let b = std::fs::read(src).unwrap();
    let start = b.windows(4).position(|w| w == b"datb").unwrap() + 4;
    assert_eq!(
        u16::from_be_bytes([b[start], b[start + 1]]),
        18,
        "no block marker"
    );
    // Block marker: type u16, time u64, then the block's size (marker included).
    let size = u32::from_be_bytes(b[start + 10..start + 14].try_into().unwrap()) as usize;
    let mut out = b[..start].to_vec();
    out.extend_from_slice(&b[start + size..]);
    std::fs::write(dst, out).unwrap();
}

#[test]
fn validate_threads_passes_an_l_file_and_fails_a_stream_missing_its_start() {
    let dir = TempDir::new("judge-validate");
    let log = l_file(&dir, "Demo", &["5", "10"]);
    check(&log).assert_ok();
    validate_threads(&log).unwrap();
    let cut = dir.join("cut.eventlog");
    cut_first_block(&log, &cut);
    // Still a well-formed eventlog: only the thread judge can tell.
    let c = check(&cut);
    c.assert_ok();
    let err = validate_threads(&cut).unwrap_err();
    assert!(err.contains("Invalid event log"), "{err}");
    assert!(
        err.contains("thread ="),
        "the offending event is named: {err}"
    );
    // Not a log at all: an error, not a pass.
    let junk = dir.join("junk.eventlog");
    std::fs::write(&junk, b"not an eventlog").unwrap();
    assert!(validate_threads(&junk).is_err());
}

#[test]
fn threadscope_loads_every_event_ghc_events_decodes() {
    let dir = TempDir::new("judge-threadscope");
    for (name, args) in [("Demo", &["5", "10"][..]), ("Yield", &["2", "5000"][..])] {
        let log = l_file(&dir, name, args);
        let c = check(&log);
        c.assert_ok();
        let (n, status) = threadscope_events(&log).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{name}: threadscope {status:?}, ghc-events {} events + {} blocks",
            c.events, c.blocks
        );
        // The status line is read by OCR, which has taken "eventlog" for
        // "eventiog": the file's stem is what identifies it.
        assert!(status.contains(&format!("{name}.event")), "{status}");
        assert!(c.blocks > 0);
        // ThreadScope counts what ghc-events decodes: block markers not included.
        assert_eq!(n, c.events, "{status}: {c:#?}");
    }
}
