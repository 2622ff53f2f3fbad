//! The judges beyond parsing: `ghc-events validate threads` and ThreadScope
//! (under Xvfb, its status line read by tesseract), against `-l` files of
//! real programs whose ghc-events event counts are known.

use std::path::PathBuf;
use testkit::{check, example, run_to_l_file, threadscope_events, validate_threads, TempDir};

/// `NAME ARGS +RTS -N2 -l -olDIR/NAME.eventlog`.
fn l_file(dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
    let log = dir.join(format!("{name}.eventlog"));
    run_to_l_file(&example(name), args, &[], &log, dir.path());
    log
}

/// The data blocks of an eventlog: (offset, size, capability), from the
/// block markers (type u16, time u64, size u32 marker included, end time
/// u64, capability u16; 0xffff is the global buffer).
fn blocks(b: &[u8]) -> Vec<(usize, usize, u16)> {
    let mut at = b.windows(4).position(|w| w == b"datb").unwrap() + 4;
    let mut out = Vec::new();
    while b.len() >= at + 24 && u16::from_be_bytes([b[at], b[at + 1]]) == 18 {
        let size = u32::from_be_bytes(b[at + 10..at + 14].try_into().unwrap()) as usize;
        out.push((at, size, u16::from_be_bytes([b[at + 22], b[at + 23]])));
        at += size;
    }
    out
}

#[test]
fn validate_threads_passes_an_l_file_and_fails_a_stream_missing_its_start() {
    let dir = TempDir::new("judge-validate");
    let log = l_file(&dir, "Demo", &["5", "10"]);
    check(&log).assert_ok();
    validate_threads(&log).unwrap();
    // Without one capability's block, the threads created there and run on
    // the other capability are never created. Which capability created the
    // workers that migrated varies from run to run, so each capability's
    // block is cut in turn; the judge must reject at least one.
    let b = std::fs::read(&log).unwrap();
    let caps: Vec<_> = blocks(&b).into_iter().filter(|c| c.2 != 0xffff).collect();
    assert!(caps.len() >= 2, "blocks of two capabilities: {caps:?}");
    let mut rejected = Vec::new();
    for (i, &(at, size, cap)) in caps.iter().enumerate() {
        let cut = dir.join(format!("cut{i}.eventlog"));
        let mut out = b[..at].to_vec();
        out.extend_from_slice(&b[at + size..]);
        std::fs::write(&cut, out).unwrap();
        // Still a well-formed eventlog: only the thread judge can tell.
        check(&cut).assert_ok();
        if let Err(err) = validate_threads(&cut) {
            assert!(err.contains("Invalid event log"), "{err}");
            assert!(
                err.contains("thread ="),
                "the offending event is named: {err}"
            );
            rejected.push(cap);
        }
    }
    assert!(
        !rejected.is_empty(),
        "no cut of {caps:?} was rejected by ghc-events validate threads"
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
