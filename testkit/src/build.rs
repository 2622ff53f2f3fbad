//! Building the Haskell programs with the GHC the matrix selects
//! (`ELSTREAM_GHC`: the host's 9.0.2, trixie's 9.6.6, sid's 9.10.3 in a
//! Debian root), cached under the target directory.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

use crate::fs::unique_suffix;
use crate::paths::{repo_root, shim_staticlib, target_dir};

/// System libraries a static Rust library needs when GHC links it into a
/// program. From `cargo rustc -p elstream-shim --release --crate-type staticlib
/// -- --print native-static-libs` (rerun it when the shim gains a native
/// dependency).
pub const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// How to compile a Haskell program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HsBuild {
    /// `-threaded`
    pub threaded: bool,
    /// `-eventlog`
    pub eventlog: bool,
    /// `-rtsopts` (so tests can pass `+RTS -N2 -l ...`)
    pub rtsopts: bool,
    /// Link the static `libelstream.a` and put `shim/haskell/src` on the
    /// module search path (for `GHC.Eventlog.Stream`).
    pub link_shim: bool,
    /// More ghc arguments.
    pub extra: Vec<String>,
}

impl HsBuild {
    /// `-threaded -eventlog -rtsopts`, the usual flags for the examples.
    pub fn program() -> HsBuild {
        HsBuild {
            threaded: true,
            eventlog: true,
            rtsopts: true,
            link_shim: false,
            extra: Vec::new(),
        }
    }

    /// The usual flags plus the shim.
    pub fn with_shim() -> HsBuild {
        HsBuild {
            link_shim: true,
            ..HsBuild::program()
        }
    }

    /// The ghc arguments for the selected compiler ([`ghc()`]), without
    /// sources and output paths.
    pub fn ghc_args(&self) -> Vec<String> {
        self.ghc_args_for(ghc())
    }

    /// The ghc arguments for `compiler`. `-eventlog` is left out on 9.4+,
    /// where every RTS way has the eventlog and the flag is deprecated.
    pub fn ghc_args_for(&self, compiler: &Ghc) -> Vec<String> {
        let mut args = vec!["-O1".to_string()];
        if self.threaded {
            args.push("-threaded".into());
        }
        if self.eventlog && !compiler.eventlog_in_every_way() {
            args.push("-eventlog".into());
        }
        if self.rtsopts {
            args.push("-rtsopts".into());
        }
        if self.link_shim {
            let src = repo_root().join("shim/haskell/src");
            args.push(format!("-i{}", src.display()));
            // A plain file argument: ghc hands it to the linker after the
            // program's objects, so the archive resolves their references.
            args.push(shim_staticlib().display().to_string());
            for lib in NATIVE_STATIC_LIBS {
                args.push(format!("-optl{lib}"));
            }
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`, so cache
/// directory names stay valid between toolchains.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

fn read_or_panic(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.hs` file under `dir`, sorted (the shim binding's sources).
fn hs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension() == Some(OsStr::new("hs")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Compiles a single-module Haskell program with the selected GHC
/// ([`ghc()`]) into `target/haskell/<name>-<suite>-<hash>/<name>` and returns
/// the path to run.
///
/// With a Debian root's GHC the program is compiled inside the root (the
/// repository and /tmp are bind-mounted there at the same paths) and links
/// against the root's libraries, so it cannot run on the host: the real binary
/// is `<name>.bin` and `<name>` is a wrapper script that `exec`s it through
/// chroot (the pid stays the program's, so signals and [`ChildGuard`](crate::ChildGuard) reach
/// it; the environment and working directory pass through).
///
/// The hash covers the compiler (suite and version), the source, the flags,
/// the shim binding's sources and the static library's size and mtime, so a
/// stale binary is never reused. Several test processes may build at once:
/// each builds in its own temporary directory and renames it into place; the
/// loser of the race discards its copy and uses the winner's.
pub fn build_haskell(src: &Path, opts: &HsBuild) -> PathBuf {
    build_with(ghc(), src, opts)
}

pub(crate) fn build_with(compiler: &Ghc, src: &Path, opts: &HsBuild) -> PathBuf {
    let src = std::path::absolute(src)
        .unwrap_or_else(|e| panic!("bad Haskell source path {}: {e}", src.display()));
    let src = src.as_path();
    let name = src
        .file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or_else(|| panic!("bad Haskell source path {}", src.display()))
        .to_string();
    let args = opts.ghc_args_for(compiler);
    let mut hash = Fnv::new();
    hash.bytes(compiler.suite.as_bytes());
    hash.bytes(compiler.version.as_bytes());
    hash.bytes(&read_or_panic(src));
    for a in &args {
        hash.bytes(a.as_bytes());
    }
    if opts.link_shim {
        for f in hs_files(&repo_root().join("shim/haskell/src")) {
            hash.bytes(f.to_string_lossy().as_bytes());
            hash.bytes(&read_or_panic(&f));
        }
        let meta = fs::metadata(shim_staticlib()).expect("stat libelstream.a");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        hash.bytes(&meta.len().to_le_bytes());
        hash.bytes(&mtime.to_le_bytes());
    }
    let cache = target_dir().join("haskell");
    let final_dir = cache.join(format!("{name}-{}-{:016x}", compiler.suite, hash.0));
    let bin = final_dir.join(&name);
    if bin.exists() {
        return bin;
    }
    fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("cannot create {}: {e}", cache.display()));
    let tmp = cache.join(format!(".tmp-{name}-{}", unique_suffix()));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
    // Inside a root the real binary is NAME.bin, behind the wrapper NAME.
    let real = match compiler.root {
        None => name.clone(),
        Some(_) => format!("{name}.bin"),
    };
    if let Some(root) = &compiler.root {
        for p in [src, tmp.as_path()] {
            if !root.join(p.strip_prefix("/").unwrap_or(p)).exists() {
                let _ = fs::remove_dir_all(&tmp);
                panic!(
                    "{} is not visible inside the {} root {}: scripts/ghc-roots.sh bind-mounts \
                     only the repository and /tmp (keep CARGO_TARGET_DIR and test sources there)",
                    p.display(),
                    compiler.suite,
                    root.display()
                );
            }
        }
    }
    let out = compiler
        .command()
        .args(&args)
        .arg("-outputdir")
        .arg(tmp.join("build"))
        .arg("-o")
        .arg(tmp.join(&real))
        .arg(src)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler} (is it installed?): {e}"));
    if !out.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        panic!(
            "{compiler} failed for {} ({}):\nghc {}\n{}{}",
            src.display(),
            out.status,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Object files are not needed once linked.
    let _ = fs::remove_dir_all(tmp.join("build"));
    if let Some(root) = &compiler.root {
        write_wrapper(&tmp.join(&name), root, &final_dir.join(&real), compiler);
    }
    if fs::rename(&tmp, &final_dir).is_err() {
        // Another process finished first; its binary is the same program.
        let _ = fs::remove_dir_all(&tmp);
        if !bin.exists() {
            panic!(
                "could not move the build of {name} into {}",
                final_dir.display()
            );
        }
    }
    bin
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script that runs `real` inside `root`: every step `exec`s, so the
/// program keeps the script's pid; the inner shell returns to the caller's
/// working directory (visible inside the root when it is under the
/// repository or /tmp).
fn write_wrapper(path: &Path, root: &Path, real: &Path, compiler: &Ghc) {
    use std::os::unix::fs::PermissionsExt;
    let text = format!(
        "#!/bin/sh\n# Built by {compiler}: runs inside its Debian root (testkit::build_haskell).\n\
         exec /usr/sbin/chroot {} /bin/sh -c 'cd \"$0\" 2>/dev/null || cd /; exec \"$@\"' \"$PWD\" {} \"$@\"\n",
        sh_quote(&root.display().to_string()),
        sh_quote(&real.display().to_string()),
    );
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A GHC the tests build with: the host's, or one in a Debian root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ghc {
    /// `host`, `trixie` or `sid` (the value of `ELSTREAM_GHC`).
    pub suite: String,
    /// `ghc --numeric-version`, e.g. `9.6.6`.
    pub version: String,
    /// The Debian root it runs in (`None` for the host's).
    pub root: Option<PathBuf>,
}

impl Ghc {
    /// The version as numbers (missing parts are 0).
    pub fn numeric(&self) -> (u32, u32, u32) {
        let mut it = self.version.split('.').map(|p| p.parse().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }

    /// GHC 9.4+: every RTS way has the eventlog (`-eventlog` is deprecated).
    pub fn eventlog_in_every_way(&self) -> bool {
        self.numeric() >= (9, 4, 0)
    }

    /// `ghc`, or `chroot ROOT ghc`.
    fn command(&self) -> Command {
        match &self.root {
            None => Command::new("ghc"),
            Some(root) => {
                let mut c = Command::new("/usr/sbin/chroot");
                c.arg(root).arg("ghc");
                c
            }
        }
    }

    fn probe(suite: &str, root: Option<PathBuf>) -> Ghc {
        let mut g = Ghc {
            suite: suite.to_string(),
            version: String::new(),
            root,
        };
        let out = g
            .command()
            .arg("--numeric-version")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run GHC ({suite}): {e}"));
        assert!(
            out.status.success(),
            "ghc --numeric-version failed ({suite}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        g.version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        g
    }
}

impl std::fmt::Display for Ghc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GHC {} ({})", self.version, self.suite)
    }
}

/// The GHC the tests build with, from `ELSTREAM_GHC`: `host` (default, the
/// `ghc` on PATH), `trixie` (GHC 9.6.6) or `sid` (GHC 9.10.3). For a root,
/// the first call runs `scripts/ghc-roots.sh ensure SUITE` (builds the root
/// on a fresh machine, mounts the repository into it) and panics with its
/// output when that fails.
pub fn ghc() -> &'static Ghc {
    static GHC: OnceLock<Ghc> = OnceLock::new();
    GHC.get_or_init(|| {
        let suite = std::env::var("ELSTREAM_GHC").unwrap_or_default();
        let g = match suite.as_str() {
            "" | "host" => host_ghc().clone(),
            "trixie" | "sid" => Ghc::probe(&suite, Some(ensure_root(&suite))),
            other => panic!("ELSTREAM_GHC={other:?}: expected host, trixie or sid"),
        };
        eprintln!("testkit: building Haskell programs with {g}");
        g
    })
}

/// The host's GHC, whatever `ELSTREAM_GHC` says (the checker is built with
/// it: ghc-events is a host library, and the format does not depend on the
/// compiler that wrote a log).
pub fn host_ghc() -> &'static Ghc {
    static HOST: OnceLock<Ghc> = OnceLock::new();
    HOST.get_or_init(|| Ghc::probe("host", None))
}

fn ensure_root(suite: &str) -> PathBuf {
    let script = repo_root().join("scripts/ghc-roots.sh");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
    };
    let out = run(&["ensure", suite]);
    if !out.status.success() {
        panic!(
            "ELSTREAM_GHC={suite}: `bash scripts/ghc-roots.sh ensure {suite}` failed ({}); it \
             needs root, debootstrap and the Debian mirror:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["path", suite]);
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Builds `examples/haskell/<name>.hs` with `-threaded -eventlog -rtsopts`,
/// linking the shim when the program imports `GHC.Eventlog.Stream`.
pub fn example(name: &str) -> PathBuf {
    let src = repo_root()
        .join("examples/haskell")
        .join(format!("{name}.hs"));
    let text = String::from_utf8_lossy(&read_or_panic(&src)).into_owned();
    let opts = if text.contains("import GHC.Eventlog.Stream") {
        HsBuild::with_shim()
    } else {
        HsBuild::program()
    };
    build_haskell(&src, &opts)
}

/// The checker program (built once with the host's GHC, cached like any other).
pub fn checker() -> PathBuf {
    let src = repo_root().join("testkit/haskell/EventlogCheck.hs");
    build_with(
        host_ghc(),
        &src,
        &HsBuild {
            threaded: false,
            eventlog: false,
            rtsopts: true,
            link_shim: false,
            extra: Vec::new(),
        },
    )
}
