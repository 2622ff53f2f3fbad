//! Test support for `elstream ui`: the server, a real Chromium driven over
//! WebDriver (chromedriver), the Demo program with a parallel capture, and
//! plain HTTP requests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use testkit::{release_bin, wait_for_path, ChildGuard};

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Ui {
    pub guard: ChildGuard,
    pub port: u16,
    _dir: testkit::TempDir,
}

/// `elstream ui` on a port the system picks (`--listen HOST:0`, learnt from
/// its --ready-file), with `args` added.
pub fn start_ui_on(host: &str, args: &[&str]) -> Ui {
    let dir = testkit::TempDir::new("ui-ready");
    let ready = dir.join("ready");
    let mut cmd = Command::new(release_bin("elstream"));
    cmd.arg("ui")
        .arg("--listen")
        .arg(format!("{host}:0"))
        .arg("--ready-file")
        .arg(&ready)
        .args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let guard = ChildGuard::spawn(&mut cmd);
    let addr = testkit::ready_addr(&ready, "ui http://", Duration::from_secs(10))
        .expect("elstream ui wrote no ready file");
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a port in the ready file");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    Ui {
        guard,
        port,
        _dir: dir,
    }
}

/// `elstream ui` on loopback, port picked by the system, with `args` added.
pub fn start_ui(args: &[&str]) -> Ui {
    start_ui_on("127.0.0.1", args)
}

pub struct Browser {
    _driver: ChildGuard,
    _profile: testkit::TempDir,
    pub client: Client,
}

/// A headless Chromium (Debian's) with a fresh profile, through chromedriver.
pub async fn browser() -> Browser {
    // Port 0: chromedriver says which port it got on stdout.
    let profile = testkit::TempDir::new("chromium-profile");
    let log = profile.join("chromedriver.log");
    let mut cmd = Command::new("chromedriver");
    cmd.arg("--port=0")
        .stdout(std::fs::File::create(&log).expect("chromedriver log"))
        .stderr(Stdio::null());
    let driver = ChildGuard::spawn(&mut cmd);
    let port = testkit::logged_port(
        &log,
        "started successfully on port ",
        Duration::from_secs(10),
    )
    .expect("chromedriver did not say its port");
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1400,2400",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("start chromium through chromedriver");
    Browser {
        _driver: driver,
        _profile: profile,
        client,
    }
}

/// Evaluates `js` (a function body returning a value) until `ok` holds.
pub async fn wait_js(
    c: &Client,
    js: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = c
            .execute(js, vec![])
            .await
            .unwrap_or(serde_json::Value::Null);
        if ok(&v) {
            return v;
        }
        if start.elapsed() > TIMEOUT {
            let _ = save_screenshot(c, &format!("timeout-{}", what.replace(' ', "-"))).await;
            panic!("timed out waiting for {what}; last value {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Clicks the element `css` selects; again if the page re-rendered it
/// between finding and clicking (the session list updates twice a second).
pub async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..10 {
        match c.find(Locator::Css(css)).await {
            Ok(el) => match el.click().await {
                Ok(()) => return,
                Err(e) => last = Some(e.to_string()),
            },
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("click {css}: {last:?}");
}

pub fn shots_dir() -> PathBuf {
    let d = testkit::target_dir().join("ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A screenshot of the whole window, checked not blank: many colours and a
/// good share of pixels that are not the background.
pub async fn save_screenshot(c: &Client, name: &str) -> PathBuf {
    let png_bytes = c.screenshot().await.expect("screenshot");
    let path = shots_dir().join(format!("{name}.png"));
    std::fs::write(&path, &png_bytes).unwrap();
    path
}

pub fn assert_not_blank(path: &Path) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut r = dec.read_info().expect("png");
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).expect("png frame");
    let bpp = info.line_size / info.width as usize;
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    let bg = px[px.len() / 2];
    let colours: std::collections::HashSet<&[u8]> = px.iter().copied().take(2_000_000).collect();
    let other = px.iter().filter(|p| *p != &px[0]).count();
    assert!(
        colours.len() > 50,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
    assert!(
        other * 20 > px.len(),
        "{}: almost all one colour",
        path.display()
    );
    let _ = bg;
}

/// A Demo run streaming with the default config (so its socket is
/// /tmp/elstream-<pid>.sock) and a capture of the same stream beside the UI.
pub struct DemoRun {
    pub guard: ChildGuard,
    pub pid: u32,
    pub capture: Arc<Mutex<Vec<u8>>>,
    capture_thread: Option<std::thread::JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
    stdout_thread: Option<std::thread::JoinHandle<()>>,
}

pub fn start_demo(args: &[&str]) -> DemoRun {
    start_demo_with(args, None, &[])
}

/// With `flush`, the shim's config is `$ELSTREAM` =
/// `unix:/tmp/elstream-<pid>.sock,flush=FLUSH` (the default path, so the UI
/// still finds it by itself): 9.0.2 otherwise holds events until a 2 MiB
/// buffer fills, and a live view sees them only at the end.
pub fn start_demo_with(args: &[&str], flush: Option<&str>, rts: &[&str]) -> DemoRun {
    let exe = testkit::example("Demo");
    let mut cmd = match flush {
        None => Command::new(&exe),
        Some(f) => {
            // The shell's pid is the program's (exec keeps it).
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!(
                    "ELSTREAM=\"unix:/tmp/elstream-$$.sock,flush={f}\" exec \"$0\" \"$@\""
                ))
                .arg(&exe);
            sh
        }
    };
    cmd.args(args)
        .arg("--stream")
        .arg("--wait-consumers=2")
        .args(["+RTS", "-N2"])
        .args(rts)
        .arg("-RTS");
    if flush.is_none() {
        cmd.env_remove("ELSTREAM");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut guard = ChildGuard::spawn(&mut cmd);
    let out = guard.child().stdout.take().unwrap();
    let stdout = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let so = stdout.clone();
    let stdout_thread = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(p) = line.strip_prefix("pid ") {
                let _ = tx.send(p.parse::<u32>().unwrap());
            }
            let mut s = so.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let pid = rx.recv_timeout(TIMEOUT).expect("Demo printed its pid");
    let sock = PathBuf::from(format!("/tmp/elstream-{pid}.sock"));
    assert!(wait_for_path(&sock, TIMEOUT), "{} appears", sock.display());
    let capture = Arc::new(Mutex::new(Vec::new()));
    let cap = capture.clone();
    let mut conn = UnixStream::connect(&sock).expect("capture connects");
    let capture_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            cap.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    DemoRun {
        guard,
        pid,
        capture,
        capture_thread: Some(capture_thread),
        stdout,
        stdout_thread: Some(stdout_thread),
    }
}

impl DemoRun {
    /// Waits for the exit; returns the printed counts and the capture.
    pub fn finish(mut self) -> (std::collections::BTreeMap<String, u64>, Vec<u8>) {
        let out = self.guard.wait_timeout(TIMEOUT);
        assert!(out.status.success(), "Demo failed");
        self.stdout_thread.take().unwrap().join().unwrap();
        self.capture_thread.take().unwrap().join().unwrap();
        let counts = testkit::parse_counts(&self.stdout.lock().unwrap());
        let bytes = std::mem::take(&mut *self.capture.lock().unwrap());
        (counts, bytes)
    }
}

/// StartGC -> EndGC pairs per capability in an event sequence from ghc-events.
pub fn gc_pairs(seq: &[(u64, i32, u16)]) -> u64 {
    let mut open = std::collections::HashSet::new();
    let mut n = 0;
    for &(_, cap, ty) in seq {
        match ty {
            9 => {
                open.insert(cap);
            }
            10 => n += open.remove(&cap) as u64,
            _ => {}
        }
    }
    n
}

/// One plain HTTP/1.1 request; returns (status, headers, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol]).unwrap().trim();
        let n = usize::from_str_radix(size, 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
    out
}

pub fn origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The UI, a browser on its page, and a Demo run selected in the page once
/// its session has appeared by itself.
pub async fn demo_in_page(
    args: &[&str],
    flush: Option<&str>,
    rts: &[&str],
) -> (Ui, Browser, DemoRun, String) {
    let ui = start_ui(&[]);
    let b = browser().await;
    b.client
        .goto(&format!("http://127.0.0.1:{}/", ui.port))
        .await
        .unwrap();
    let demo = start_demo_with(args, flush, rts);
    let li = format!("#session-list li[data-pid='{}']", demo.pid);
    let js = format!("return !!document.querySelector(\"{li}\")");
    wait_js(&b.client, &js, "the Demo session", |v| v == true).await;
    click(&b.client, &li).await;
    (ui, b, demo, li)
}
