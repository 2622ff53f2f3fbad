//! An in-process C sink (examples/c-sink/count_sink.c) linked into a real
//! program receives the header and every block on the shim's I/O thread.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, parse_counts, ChildGuard, HsBuild, TempDir};

#[test]
fn a_c_sink_sees_every_block_and_event() {
    let root = testkit::repo_root();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/Sink.hs");
    let prog = build_haskell(
        &src,
        &HsBuild {
            extra: vec![
                root.join("examples/c-sink/count_sink.c")
                    .display()
                    .to_string(),
                format!("-optc-I{}", root.join("include").display()),
            ],
            ..HsBuild::with_shim()
        },
    );
    let dir = TempDir::new("shim-sink");
    let out = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!("unix:{}", dir.join("s.sock").display()))
            .arg("5000")
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    )
    .wait_timeout(Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("install 0"), "{text}");
    let stats = parse_counts(&text);
    let last = text
        .lines()
        .rfind(|l| l.starts_with("count_sink final"))
        .expect("no final line");
    let field = |name: &str| -> u64 {
        let rest = &last[last
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {last}"))
            + name.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(field("blocks "), stats["blocks-written"], "{last}");
    assert_eq!(field("bytes "), stats["bytes-written"], "{last}");
    assert_eq!(field("bad "), 0);
    // 5000 user messages, each counted once, named from the header.
    assert!(last.contains("| 19 User message=5000"), "{last}");
}

#[test]
fn a_haskell_sink_sees_every_block() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/HsSink.hs");
    let prog = build_haskell(&src, &HsBuild::with_shim());
    let dir = TempDir::new("shim-hssink");
    let out = ChildGuard::spawn(
        Command::new(&prog)
            .arg(format!("unix:{}", dir.join("s.sock").display()))
            .arg("20000")
            .args(["+RTS", "-N2", "-RTS"])
            .stdout(Stdio::piped()),
    )
    .wait_timeout(Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let c = parse_counts(&String::from_utf8_lossy(&out.stdout));
    assert!(c["sink-header"] > 1000, "{c:?}");
    assert_eq!(c["sink-blocks"], c["blocks-written"], "{c:?}");
    assert_eq!(c["sink-bytes"], c["bytes-written"], "{c:?}");
}
