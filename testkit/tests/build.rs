//! build_haskell: caching and concurrent builds of the same program.

use std::fs;
use std::process::Command;
use testkit::{build_haskell, HsBuild, TempDir};

#[test]
fn concurrent_builds_share_one_cached_binary() {
    let dir = TempDir::new("hsbuild");
    let src = dir.join("Hello.hs");
    // Unique text, so this run really compiles instead of hitting the cache.
    let tag = format!("{:?}", std::time::SystemTime::now());
    fs::write(
        &src,
        format!("main :: IO ()\nmain = putStrLn \"hello {tag}\"\n"),
    )
    .unwrap();
    let opts = HsBuild::program();
    let builds: Vec<_> = (0..2)
        .map(|_| {
            let (src, opts) = (src.clone(), opts.clone());
            std::thread::spawn(move || build_haskell(&src, &opts))
        })
        .collect();
    let bins: Vec<_> = builds.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(bins[0], bins[1]);
    let out = Command::new(&bins[0]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello {tag}\n")
    );
    // Cached: same path, nothing rebuilt (mtime unchanged).
    let mtime = fs::metadata(&bins[0]).unwrap().modified().unwrap();
    assert_eq!(build_haskell(&src, &opts), bins[0]);
    assert_eq!(fs::metadata(&bins[0]).unwrap().modified().unwrap(), mtime);
    // No temporary build directories left behind by the loser.
    let cache = bins[0].parent().unwrap().parent().unwrap();
    let leftovers: Vec<_> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-Hello-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fs::remove_dir_all(bins[0].parent().unwrap()).unwrap();
}

#[test]
fn child_guard_kills_on_drop_and_signals() {
    let guard = testkit::ChildGuard::spawn(Command::new("sleep").arg("60"));
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", guard.id()));
    assert!(proc_dir.exists());
    drop(guard);
    // Killed and reaped: no zombie left under that pid.
    assert!(!proc_dir.exists());

    let guard = testkit::ChildGuard::spawn(Command::new("sleep").arg("60"));
    guard.signal("TERM");
    let out = guard.wait_timeout(std::time::Duration::from_secs(30));
    assert!(!out.status.success());
}
