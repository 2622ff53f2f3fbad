//! The Busy program (proxy/tests/haskell/Busy.hs), control clients and token
//! files, for the relay and fault tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;

use super::common::TempDir;
use elstream_format::control::{request, ControlDecoder, ControlFrame};
use testkit::{build_haskell, repo_root, ChildGuard, HsBuild};

use super::common::LONG;

/// A running Busy: streams through the shim until [`Busy::stop`].
pub struct Busy {
    guard: ChildGuard,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Busy {
    /// `Busy CONFIG CONSUMERS DELAY_MS`, stderr into `dir/busy.stderr`.
    pub fn spawn(dir: &TempDir, config: &str, consumers: u32, delay_ms: u32) -> Busy {
        let prog = build_haskell(
            &repo_root().join("proxy/tests/haskell/Busy.hs"),
            &HsBuild::with_shim(),
        );
        let mut guard = ChildGuard::spawn(
            Command::new(prog)
                .arg(config)
                .arg(consumers.to_string())
                .arg(delay_ms.to_string())
                .args(["+RTS", "-N2", "-RTS"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join("busy.stderr")).unwrap()),
        );
        let stdin = guard.child().stdin.take().unwrap();
        let out = guard.child().stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Busy {
            guard,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// Waits for "ready" (the consumers it waited for are connected).
    pub fn wait_ready(&self) {
        loop {
            let l = self.lines.recv_timeout(LONG).expect("Busy never got ready");
            if l == "ready" {
                return;
            }
        }
    }

    /// Ends the run; returns (exit output, the numbers it printed).
    pub fn stop(mut self) -> (Output, std::collections::BTreeMap<String, u64>) {
        self.stdin.write_all(b"stop\n").unwrap();
        let out = self.guard.wait_timeout(LONG);
        let text: Vec<String> = self.lines.iter().collect();
        (out, testkit::parse_counts(&text.join("\n")))
    }
}

/// A token file created 0600 (or `mode`).
pub fn token_file(dir: &TempDir, name: &str, token: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&p)
        .unwrap();
    writeln!(f, "{token}").unwrap();
    drop(f);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Permission bits of a file or socket.
pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A raw control-protocol client on any stream socket.
pub struct CtlClient<S: Read + Write> {
    pub s: S,
    d: ControlDecoder,
}

impl<S: Read + Write> CtlClient<S> {
    pub fn new(s: S) -> Self {
        CtlClient {
            s,
            d: ControlDecoder::new(),
        }
    }
    /// Sends a request; a peer that already hung up shows in [`recv`](Self::recv).
    pub fn send(&mut self, line: &str) {
        let _ = self.s.write_all(&request(line));
    }
    /// The next reply, or None when the other side closed.
    pub fn recv(&mut self) -> Option<ControlFrame> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(f) = self.d.next_frame().expect("well-formed reply") {
                return Some(f);
            }
            let n = self.s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            self.d.push(&buf[..n]);
        }
    }
    pub fn call(&mut self, line: &str) -> ControlFrame {
        self.send(line);
        self.recv()
            .unwrap_or_else(|| panic!("no reply to `{line}`"))
    }
}

pub fn tcp_ctl(port: u16) -> CtlClient<std::net::TcpStream> {
    let s = super::common::connect_tcp(port);
    s.set_read_timeout(Some(LONG)).unwrap();
    CtlClient::new(s)
}

pub fn unix_ctl(p: &Path) -> CtlClient<std::os::unix::net::UnixStream> {
    let s = super::common::connect_unix(p);
    s.set_read_timeout(Some(LONG)).unwrap();
    CtlClient::new(s)
}

/// `elstream ctl ARGS`, its output.
pub fn ctl(args: &[&str]) -> Output {
    Command::new(super::common::elstream())
        .arg("ctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
