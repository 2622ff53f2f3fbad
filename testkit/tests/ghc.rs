//! The GHC matrix itself, on the GHC that `ELSTREAM_GHC` selects: a program
//! built with it is that GHC's (its RTS says so), runs through the root's
//! wrapper with its pid, working directory and environment, and signals reach
//! it; its eventlog is there without `-eventlog` on 9.4+.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{build_haskell, check, ghc, repo_root, ChildGuard, HsBuild, TempDir};

const TIMEOUT: Duration = Duration::from_secs(60);

fn signals() -> std::path::PathBuf {
    build_haskell(
        &repo_root().join("testkit/tests/haskell/Signals.hs"),
        &HsBuild::program(),
    )
}

fn is_elf(p: &std::path::Path) -> bool {
    std::fs::read(p).unwrap().starts_with(b"\x7fELF")
}

#[test]
fn a_program_reports_the_selected_ghc_and_runs_the_way_it_must() {
    let g = ghc();
    eprintln!("{g}");
    let suite = std::env::var("ELSTREAM_GHC").unwrap_or_else(|_| "host".into());
    assert_eq!(g.suite, if suite.is_empty() { "host" } else { &suite });
    let prog = signals();
    let real = prog.with_file_name(format!(
        "{}.bin",
        prog.file_name().unwrap().to_string_lossy()
    ));
    match &g.root {
        None => assert!(is_elf(&prog) && !real.exists()),
        // A glibc of the root's: on the host only through the wrapper.
        Some(root) => {
            assert!(!is_elf(&prog) && is_elf(&real), "{}", prog.display());
            let script = std::fs::read_to_string(&prog).unwrap();
            assert!(script.contains(&root.display().to_string()), "{script}");
        }
    }
    // -eventlog only where the GHC still has eventlog-less ways.
    let args = HsBuild::program().ghc_args();
    assert_eq!(
        args.iter().any(|a| a == "-eventlog"),
        g.numeric() < (9, 4, 0),
        "{args:?}"
    );
    let out = ChildGuard::spawn(
        Command::new(&prog)
            .args(["+RTS", "--info", "-RTS"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_timeout(TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains(&format!("(\"GHC version\", \"{}\")", g.version)),
        "{g}: {info}"
    );
    assert!(info.contains("(\"RTS way\", \"rts_thr"), "{info}");
}

#[test]
fn signals_pid_cwd_and_environment_reach_the_program() {
    let dir = TempDir::new("ghc-signals");
    let log = dir.join("signals.eventlog");
    let mut guard = ChildGuard::spawn(
        Command::new(signals())
            .arg("+RTS")
            .arg("-l")
            .arg(format!("-ol{}", log.display()))
            .arg("-RTS")
            .current_dir(dir.path())
            .env("TESTKIT_ENV", "passed through")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut lines = BufReader::new(guard.child().stdout.take().unwrap()).lines();
    let mut next = || {
        lines
            .next()
            .expect("program output ended early")
            .expect("read program output")
    };
    // Every step of the wrapper exec'd: the program has the pid we spawned.
    assert_eq!(next(), format!("pid {}", guard.id()));
    assert_eq!(next(), format!("cwd {}", dir.path().display()));
    assert_eq!(next(), "env passed through");
    assert_eq!(next(), "ready");
    guard.signal("TERM");
    let out = guard.wait_timeout(TIMEOUT);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let c = check(&log);
    c.assert_ok();
    assert_eq!(c.user_messages, ["signals ready", "signals TERM"]);

    // Killed by the guard: the program itself is gone, nothing is left running.
    let guard = ChildGuard::spawn(Command::new(signals()).stdout(Stdio::piped()));
    let pid = guard.id();
    drop(guard);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
