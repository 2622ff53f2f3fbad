//! `elstream ui`: the monitoring server. Watches sources (shim sockets,
//! proxy subscriptions, FIFOs, files, and the shim sockets in the default
//! socket directory), one session per program connection or uploaded log,
//! each analysed by `elstream-analysis`, and serves a page (assets embedded
//! in the binary) with live views over server-sent events.

mod auth;
mod sessions;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use elstream_analysis::Config;
use elstream_format::control::{request, ControlDecoder, Status};
use elstream_format::Endpoint;
use futures_util::StreamExt;
use serde::Deserialize;

pub use sessions::{Kind, Registry};

/// The `elstream ui` options.
#[derive(Clone, Debug)]
pub struct Opts {
    pub listen: SocketAddr,
    /// Sources, each with the name its sessions take (`None`: the program's).
    pub sources: Vec<(Option<String>, Endpoint)>,
    /// Where to find shim sockets (`elstream-<pid>.sock`); `None`: do not look.
    pub socket_dir: Option<PathBuf>,
    /// Required for a non-loopback `listen` (0600, as `elstream proxy --token-file`).
    pub token_file: Option<PathBuf>,
    /// Largest upload accepted.
    pub max_upload: usize,
    /// Stream time kept in full detail per session.
    pub detail: Duration,
    /// A recorder directory (`elstream proxy --record DIR`) whose logs the page lists.
    pub record_dir: Option<PathBuf>,
    /// Written `ui http://HOST:PORT` once the page is served.
    pub ready_file: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            listen: "127.0.0.1:8080".parse().unwrap(),
            sources: Vec::new(),
            socket_dir: Some(PathBuf::from("/tmp")),
            token_file: None,
            max_upload: 1 << 30,
            detail: Duration::from_secs(300),
            record_dir: None,
            ready_file: None,
        }
    }
}

#[derive(Clone)]
struct App {
    reg: Arc<Registry>,
    token: Option<Arc<str>>,
    record_dir: Option<PathBuf>,
    max_upload: usize,
}

/// Runs the server until the process is stopped. Errors are for the user:
/// a bad token file, an address in use.
pub fn run(opts: Opts) -> Result<(), String> {
    let token = match (&opts.token_file, opts.listen.ip().is_loopback()) {
        (Some(f), _) => Some(auth::load_token(f)?),
        (None, true) => None,
        (None, false) => {
            return Err(format!(
                "listening on {} (not loopback) needs --token-file FILE (0600; make one with \
                 `umask 077; head -c 32 /dev/urandom | base64 > FILE`)",
                opts.listen
            ))
        }
    };
    let cfg = Config {
        detail: opts.detail.as_nanos() as u64,
        ..Config::default()
    };
    let reg = Arc::new(Registry::new(cfg));
    for (label, ep) in &opts.sources {
        sessions::watch_source(reg.clone(), label.clone(), ep.clone());
    }
    if let Some(dir) = &opts.socket_dir {
        sessions::discover(reg.clone(), dir.clone());
    }
    let app = App {
        reg,
        token: token.map(Arc::from),
        record_dir: opts.record_dir.clone(),
        max_upload: opts.max_upload,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        if let Some(path) = &opts.ready_file {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            std::fs::write(&tmp, format!("ui http://{bound}\n"))
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))?;
        }
        eprintln!("elstream ui: http://{bound}/");
        axum::serve(listener, router(app))
            .await
            .map_err(|e| format!("serve: {e}"))
    })
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/api/sessions", get(list))
        .route("/api/live", get(live))
        .route("/api/sessions/{id}/totals", get(totals))
        .route("/api/sessions/{id}/summary", get(summary))
        .route("/api/sessions/{id}/tail", get(tail))
        .route("/api/sessions/{id}/threads", get(threads))
        .route("/api/sessions/{id}/control", post(control))
        .route("/api/sessions/{id}/snapshot", post(snapshot))
        .route(
            "/api/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/sessions/{name}/eventlog", get(eventlog))
        .route("/api/recordings", get(recordings))
        .route("/api/recordings/open", post(open_recording))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        // gzip for clients that ask (the page's JSON shrinks several times;
        // tower-http leaves the server-sent events uncompressed).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(app)
}

/// Every request: the token when one is set (cookie or bearer), and for
/// POSTs an Origin equal to the page's own (no cross-site control).
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let Some(token) = &app.token {
        if path != "/login" && !auth::authorized(req.headers(), token) {
            return if path == "/" {
                (StatusCode::UNAUTHORIZED, axum::response::Html(auth::LOGIN)).into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    "elstream ui: log in first (/login)\n",
                )
                    .into_response()
            };
        }
    }
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "elstream ui: cross-origin request refused\n",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:",
        ),
    );
    resp
}

fn same_origin(h: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (h.get(header::ORIGIN), h.get(header::HOST)) else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

const INDEX: &str = include_str!("../assets/index.html");
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript",
        include_bytes!("../assets/app.js"),
    ),
    ("app.css", "text/css", include_bytes!("../assets/app.css")),
    (
        "uPlot.iife.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_bytes!("../assets/vendor/uplot/uPlot.min.css"),
    ),
];

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.0 == file) {
        Some((_, ty, bytes)) => ([(header::CONTENT_TYPE, *ty)], *bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn not_found(id: u64) -> Response {
    (StatusCode::NOT_FOUND, format!("no session {id}\n")).into_response()
}

async fn list(State(app): State<App>) -> Json<Vec<sessions::Brief>> {
    Json(app.reg.list().iter().map(|s| s.brief()).collect())
}

/// Server-sent events: the session list four times a second (the page then
/// asks for what it shows, so an event is on the page about a tick and a
/// fetch after it arrives). Small: one line per session.
async fn live(State(app): State<App>) -> impl IntoResponse {
    let tick = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
        Duration::from_millis(250),
    ));
    let stream = tick.map(move |_| {
        let list: Vec<_> = app.reg.list().iter().map(|s| s.brief()).collect();
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event("sessions")
                .data(serde_json::to_string(&list).unwrap_or_default()),
        )
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Runs `f` on session `id`'s analysis off the async workers; its result as JSON.
async fn with_analysis<T, F>(app: &App, id: u64, f: F) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&elstream_analysis::Analysis) -> T + Send + 'static,
{
    let Some(s) = app.reg.get(id) else {
        return not_found(id);
    };
    match tokio::task::spawn_blocking(move || f(&s.analysis.lock().unwrap())).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn totals(State(app): State<App>, Path(id): Path<u64>) -> Response {
    with_analysis(&app, id, |a| a.totals()).await
}

#[derive(Deserialize)]
struct RangeQ {
    from: Option<u64>,
    to: Option<u64>,
    cols: Option<usize>,
    limit: Option<usize>,
}

async fn summary(State(app): State<App>, Path(id): Path<u64>, Query(q): Query<RangeQ>) -> Response {
    with_analysis(&app, id, move |a| {
        let end = a.health.time;
        let from = q.from.unwrap_or(0).min(end);
        let to = q.to.unwrap_or(end).max(from + 1);
        let cols = q.cols.unwrap_or(800).min(4000);
        let sum = a.summary(from, to, cols, q.limit.unwrap_or(5000).min(50_000));
        serde_json::json!({ "summary": sum, "span_names": a.span_names, "bands": a.bands, "end": end })
    })
    .await
}

#[derive(Deserialize)]
struct TailQ {
    filter: Option<String>,
    cap: Option<u16>,
    n: Option<usize>,
}

async fn tail(State(app): State<App>, Path(id): Path<u64>, Query(q): Query<TailQ>) -> Response {
    with_analysis(&app, id, move |a| {
        a.tail(
            q.filter.as_deref().unwrap_or(""),
            q.cap,
            q.n.unwrap_or(200).min(5000),
        )
    })
    .await
}

/// `curl http://127.0.0.1:8080/sessions/NAME/eventlog > x.eventlog`: NAME is
/// a session's id, its source's name (`app` for unix:/run/app.sock, as
/// `elstream proxy` names it) or its program's name; the newest live one
/// wins. The body is a fresh subscription to that source, passed through: a
/// shim socket or a proxy listener serves a whole eventlog (header, state
/// replay, stored and live blocks, the data end when the program ends); a
/// file source is sent as it is.
async fn eventlog(State(app): State<App>, Path(name): Path<String>) -> Response {
    let found = app.reg.list().into_iter().rev().find_map(|s| {
        let ep: Endpoint = s.source.parse().ok()?;
        let program = s.brief().name;
        let hit = s.id.to_string() == name
            || s.label.as_deref() == Some(name.as_str())
            || elstream_format::sources::default_name(&ep) == name
            || program == name;
        (hit && (s.live.load(std::sync::atomic::Ordering::Relaxed)
            || s.kind != sessions::Kind::Live))
            .then_some(ep)
    });
    let Some(ep) = found else {
        return (
            StatusCode::NOT_FOUND,
            format!("elstream ui: no session {name:?} (see /api/sessions)\n"),
        )
            .into_response();
    };
    let reader: std::io::Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> = match &ep {
        Endpoint::Unix(p) => tokio::net::UnixStream::connect(p)
            .await
            .map(|s| Box::new(s) as _),
        Endpoint::Tcp(a) => tokio::net::TcpStream::connect(a.as_str())
            .await
            .map(|s| Box::new(s) as _),
        Endpoint::File(p) => tokio::fs::File::open(p).await.map(|f| Box::new(f) as _),
        other => Err(std::io::Error::other(format!(
            "{other} cannot be read again"
        ))),
    };
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("elstream ui: {ep}: {e}\n")).into_response()
        }
    };
    let body = futures_util::stream::unfold(reader, |mut r| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 << 10];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), r))
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ThreadsQ {
    n: Option<usize>,
}

async fn threads(
    State(app): State<App>,
    Path(id): Path<u64>,
    Query(q): Query<ThreadsQ>,
) -> Response {
    with_analysis(&app, id, move |a| {
        a.thread_table(q.n.unwrap_or(500).min(10_000))
    })
    .await
}

#[derive(Deserialize)]
struct ControlReq {
    command: String,
}

/// The commands the page may send (the shim's control language).
fn allowed(cmd: &str) -> bool {
    let word = cmd.split_whitespace().next().unwrap_or("");
    matches!(
        word,
        "status"
            | "on"
            | "off"
            | "classes"
            | "flush"
            | "sync"
            | "sticky"
            | "heap-census"
            | "heap-profile"
    )
}

/// One command to a shim's control socket (blocking; run off the async workers).
fn ctl_exchange(path: &std::path::Path, command: &str) -> Result<(Status, String), String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(&request(command))
        .map_err(|e| format!("send: {e}"))?;
    let mut d = ControlDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = d.next_frame().map_err(|e| e.to_string())? {
            return Ok((f.status, f.text));
        }
        let n = s.read(&mut buf).map_err(|e| format!("read reply: {e}"))?;
        if n == 0 {
            return Err("control socket closed without a reply".into());
        }
        d.push(&buf[..n]);
    }
}

async fn control(
    State(app): State<App>,
    Path(id): Path<u64>,
    Json(req): Json<ControlReq>,
) -> Response {
    let path = match control_socket(&app, id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !allowed(&req.command) {
        return control_reply(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("not a page command: {}", req.command),
        );
    }
    let cmd = req.command.clone();
    match tokio::task::spawn_blocking(move || ctl_exchange(&path, &cmd)).await {
        Ok(Ok((st, text))) => {
            let (code, name) = match st {
                Status::Ok => (StatusCode::OK, "ok"),
                Status::BadRequest => (StatusCode::BAD_REQUEST, "bad-request"),
                Status::Unavailable => (StatusCode::CONFLICT, "unavailable"),
                Status::Failed => (StatusCode::BAD_GATEWAY, "failed"),
                Status::Unauthorized => (StatusCode::FORBIDDEN, "unauthorized"),
            };
            // A shim without the command answers "unknown command": say unavailable.
            if st == Status::BadRequest && text.contains("unknown command") {
                return control_reply(
                    StatusCode::CONFLICT,
                    "unavailable",
                    &format!("this shim does not offer it: {text}"),
                );
            }
            control_reply(code, name, &text)
        }
        Ok(Err(e)) => control_reply(StatusCode::BAD_GATEWAY, "failed", &e),
        Err(e) => control_reply(StatusCode::INTERNAL_SERVER_ERROR, "failed", &e.to_string()),
    }
}

/// The session's shim control socket, or the reply saying why there is none.
#[allow(clippy::result_large_err)] // the Err is the reply itself
fn control_socket(app: &App, id: u64) -> Result<PathBuf, Response> {
    let s = app.reg.get(id).ok_or_else(|| not_found(id))?;
    s.control.clone().ok_or_else(|| {
        control_reply(
            StatusCode::CONFLICT,
            "unavailable",
            "this session has no control socket (only shim sockets, unix:PATH, do)",
        )
    })
}

fn control_reply(code: StatusCode, status: &str, text: &str) -> Response {
    (
        code,
        Json(serde_json::json!({ "status": status, "text": text })),
    )
        .into_response()
}

/// Asks the shim for a snapshot and sends the file back as a download.
async fn snapshot(State(app): State<App>, Path(id): Path<u64>) -> Response {
    let path = match control_socket(&app, id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let name = format!(
        "elstream-ui-{}-{}-{}.eventlog",
        std::process::id(),
        id,
        rand_suffix()
    );
    let r = tokio::task::spawn_blocking(move || -> Result<(PathBuf, Vec<u8>), String> {
        let (st, text) = ctl_exchange(&path, &format!("snapshot {name}"))?;
        if st != Status::Ok {
            return Err(text);
        }
        let file = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("snapshot="))
            .map(PathBuf::from)
            .ok_or_else(|| format!("unexpected reply: {text}"))?;
        let bytes = std::fs::read(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        Ok((file, bytes))
    })
    .await;
    match r {
        Ok(Ok((file, bytes))) => {
            let fname = file.file_name().map_or("snapshot.eventlog".into(), |f| {
                f.to_string_lossy().into_owned()
            });
            let _ = std::fs::remove_file(&file);
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{fname}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(Err(e)) => control_reply(StatusCode::BAD_GATEWAY, "failed", &e),
        Err(e) => control_reply(StatusCode::INTERNAL_SERVER_ERROR, "failed", &e.to_string()),
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

#[derive(Deserialize)]
struct UploadQ {
    name: Option<String>,
}

/// An uploaded log (the request body, raw bytes), analysed as it arrives;
/// refused past the size limit (the part read so far stays, marked cut).
async fn upload(State(app): State<App>, Query(q): Query<UploadQ>, body: Body) -> Response {
    let name = q.name.unwrap_or_else(|| "upload.eventlog".into());
    let s = app.reg.open(format!("upload:{name}"), Kind::Upload, None);
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    // Parsed on a thread of its own as the bytes arrive: receiving the next
    // chunks overlaps parsing these (the upload's time is the slower of the two).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let s2 = s.clone();
    let parser = tokio::task::spawn_blocking(move || -> Result<(), String> {
        while let Some(chunk) = rx.blocking_recv() {
            s2.analysis
                .lock()
                .unwrap()
                .push(&chunk)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = match chunk {
            Ok(c) => c,
            Err(e) => {
                *s.ended.lock().unwrap() = Some(format!("upload failed: {e}"));
                break;
            }
        };
        total += chunk.len();
        if total > app.max_upload {
            drop(tx);
            let _ = parser.await;
            *s.ended.lock().unwrap() = Some(format!(
                "upload larger than the limit of {} bytes: cut",
                app.max_upload
            ));
            s.analysis.lock().unwrap().finish();
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({ "id": s.id, "error": "too large" })),
            )
                .into_response();
        }
        if tx.send(chunk).await.is_err() {
            break; // the parser stopped at an error
        }
    }
    drop(tx);
    if let Ok(Err(e)) = parser.await {
        *s.ended.lock().unwrap() = Some(format!("not an eventlog: {e}"));
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "id": s.id, "error": e })),
        )
            .into_response();
    }
    s.analysis.lock().unwrap().finish();
    let mut ended = s.ended.lock().unwrap();
    if ended.is_none() {
        *ended = Some("uploaded".into());
    }
    Json(serde_json::json!({ "id": s.id, "bytes": total })).into_response()
}

async fn recordings(State(app): State<App>) -> Response {
    let Some(dir) = app.record_dir.clone() else {
        return Json(Vec::<String>::new()).into_response();
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eventlog"))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Json(names).into_response()
}

#[derive(Deserialize)]
struct OpenReq {
    name: String,
}

/// Opens a recording by its plain file name (never a path: names cannot leave the directory).
async fn open_recording(State(app): State<App>, Json(req): Json<OpenReq>) -> Response {
    let Some(dir) = app.record_dir.clone() else {
        return (StatusCode::NOT_FOUND, "no --record-dir\n").into_response();
    };
    if req.name.contains('/') || req.name.starts_with('.') {
        return (StatusCode::BAD_REQUEST, "a plain file name\n").into_response();
    }
    let path = dir.join(&req.name);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::NOT_FOUND, format!("{}: {e}\n", path.display())).into_response()
        }
    };
    let s = app
        .reg
        .open(format!("file:{}", path.display()), Kind::File, None);
    let id = s.id;
    std::thread::spawn(move || sessions::pump(&s, file, false));
    Json(serde_json::json!({ "id": id })).into_response()
}

/// `elstream ui`'s command line (the `elstream` command delegates here).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sources to watch: unix:PATH (a shim's socket; reconnected, each
    /// connection a session), tcp://HOST:PORT (a proxy's subscription),
    /// fifo:PATH, file:PATH (read and followed until its data end), or -.
    pub sources: Vec<Endpoint>,
    /// A source whose sessions are named NAME (on the page and in
    /// /sessions/NAME/eventlog): NAME=ENDPOINT, ENDPOINT as above. Repeatable.
    #[arg(long = "source", value_name = "NAME=ENDPOINT", value_parser = parse_named_source)]
    pub named: Vec<(String, Endpoint)>,
    /// Address to serve the page on. Anything but loopback needs --token-file.
    /// Port 0: the system picks one (see --ready-file).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Once the page is served, write `ui http://HOST:PORT` (the bound
    /// address) to FILE (written whole, then renamed into place).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Directory searched every 0.5 s for shim sockets named elstream-<pid>.sock
    /// (the shim's default endpoint is unix:/tmp/elstream-<pid>.sock).
    #[arg(long, default_value = "/tmp", value_name = "DIR")]
    pub socket_dir: PathBuf,
    /// Do not look for shim sockets; watch only the sources given.
    #[arg(long)]
    pub no_discover: bool,
    /// The token (first line of a 0600 file, as for `elstream proxy
    /// --token-file`); the page asks for it at /login.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Largest uploaded log, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub max_upload_mib: usize,
    /// Seconds of stream time kept in full detail per session (older: coarser buckets).
    #[arg(long, default_value_t = 300)]
    pub detail_secs: u64,
    /// A recorder directory (`elstream proxy --record DIR`) whose logs the page lists.
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
}

/// Runs `elstream ui`; the exit code (2: bad arguments, 3: cannot listen, 1: other).
/// `NAME=ENDPOINT` (the name is required: a bare endpoint is a positional source).
fn parse_named_source(s: &str) -> Result<(String, Endpoint), String> {
    let (name, ep) = elstream_format::sources::split_name(s)?;
    let name = name.ok_or_else(|| format!("{s:?}: expected NAME=ENDPOINT"))?;
    let ep: Endpoint = ep.parse().map_err(|e| format!("{e}"))?;
    Ok((name.to_string(), ep))
}

pub fn main(a: Args) -> i32 {
    let opts = Opts {
        listen: a.listen,
        sources: a
            .sources
            .into_iter()
            .map(|ep| (None, ep))
            .chain(a.named.into_iter().map(|(n, ep)| (Some(n), ep)))
            .collect(),
        socket_dir: (!a.no_discover).then_some(a.socket_dir),
        token_file: a.token_file,
        max_upload: a.max_upload_mib << 20,
        detail: Duration::from_secs(a.detail_secs),
        record_dir: a.record_dir,
        ready_file: a.ready_file,
    };
    match run(opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("elstream ui: error: {e}");
            if e.starts_with("cannot listen") {
                3
            } else if e.contains("token") {
                2
            } else {
                1
            }
        }
    }
}
