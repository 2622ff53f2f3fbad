//! The shim as a shared library: the RTS's hidden switches and stop-the-world
//! are out of reach, and the shim must say so instead of failing obscurely.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{build_haskell, ChildGuard, HsBuild, TempDir};

#[test]
fn a_shared_library_link_explains_what_it_cannot_do() {
    // A directory holding only the .so, so the linker cannot pick the .a.
    let libdir = TempDir::new("shim-so");
    let so = testkit::release_bin("libelstream.so");
    std::fs::copy(&so, libdir.join("libelstream.so")).unwrap();
    let root = testkit::repo_root();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/haskell/SharedLink.hs");
    let prog = build_haskell(
        &src,
        &HsBuild {
            extra: vec![
                format!("-i{}", root.join("shim/haskell/src").display()),
                format!("-L{}", libdir.path().display()),
                "-lelstream".into(),
                format!("-optl-Wl,-rpath,{}", libdir.path().display()),
            ],
            ..HsBuild::program()
        },
    );
    let dir = TempDir::new("shim-shared");
    let run = |rts: &[&str]| {
        let sock = dir.join(format!("s{}.sock", rts.len()));
        let out = ChildGuard::spawn(
            Command::new(&prog)
                .arg(&sock)
                .args(rts)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .wait_timeout(Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (out, err) = run(&[]);
    assert!(out.contains("start ok"), "{out}");
    assert!(err.contains("linked as a shared library"), "{err}");
    for line in [
        "link=shared",
        "classes-mechanism=shim-filter",
        "onoff-mechanism=writer-discard",
    ] {
        assert!(out.contains(line), "{line} not in {out}");
    }
    // GHC 9.2+'s public flushEventLog reaches a shared library too, and its
    // start/end stop the world themselves: taking over from -l is safe there.
    let modern = testkit::ghc().numeric() >= (9, 2, 0);
    if modern {
        assert!(out.contains("flush ok"), "{out}");
        assert!(out.contains("flush-mechanism=ghc-9.2-api"), "{out}");
    } else {
        assert!(
            out.contains("flush error: not available here: flush: unavailable"),
            "{out}"
        );
    }
    assert!(out.contains("alive"));

    // With +RTS -l the file writer runs: on 9.0 it cannot be replaced safely.
    let (out, _) = run(&["+RTS", "-l", "-ol/dev/null", "-RTS"]);
    if modern {
        assert!(out.contains("start ok"), "{out}");
    } else {
        assert!(
            out.contains("start error:") && out.contains("link libelstream.a statically"),
            "{out}"
        );
    }
    assert!(out.contains("alive"));
}
