//! Where things are: the repository, the cargo target directory, the
//! release binaries and the ../shared corpus.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the repository root")
        .to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative to the repository
/// root when relative) or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// The eventlog corpus (`../shared/corpus` from the repository root).
///
/// Panics when it is missing and `CI` is set; otherwise returns the path
/// anyway and callers skip with a printed note (see [`corpus_or_skip`]).
pub fn corpus_dir() -> PathBuf {
    let dir = repo_root().join("../shared/corpus");
    if !dir.is_dir() && std::env::var_os("CI").is_some() {
        panic!(
            "eventlog corpus missing at {} (CI is set, so this is an error)",
            dir.display()
        );
    }
    dir
}

/// `corpus_dir()/rel` if the corpus exists; `None` (after printing a note)
/// when it is absent outside CI.
pub fn corpus_or_skip(rel: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_dir() {
        Some(dir.join(rel))
    } else {
        eprintln!("note: corpus missing at {}, skipping", dir.display());
        None
    }
}

/// `target/release/<name>`; panics with a clear message if it is not built.
pub fn release_bin(name: &str) -> PathBuf {
    let path = target_dir().join("release").join(name);
    if !path.exists() {
        panic!(
            "{} is not built: run `cargo build --release --workspace` first",
            path.display()
        );
    }
    path
}

/// `target/release/libelstream.a`, the shim as a static library.
pub fn shim_staticlib() -> PathBuf {
    release_bin("libelstream.a")
}

/// Every `*.eventlog` in `corpus/ghc-events`, sorted. Panics when the corpus
/// is missing and `CI` is set; otherwise an empty list (with a note).
pub fn corpus_logs() -> Vec<PathBuf> {
    let dir = corpus_dir().join("ghc-events");
    if !dir.is_dir() {
        eprintln!("note: corpus missing at {}, skipping", dir.display());
        return Vec::new();
    }
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eventlog"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .eventlog files in {}", dir.display());
    v
}
