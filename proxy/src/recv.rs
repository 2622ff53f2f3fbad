//! `elstream recv ENDPOINT`: receive a stream (TCP/UNIX byte stream or UDP
//! datagrams) and write valid eventlog files, one per session.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elstream_format::eventlog::{
    events, user_message_block, BlockMarker, Frame, Header, StreamDecoder, DATA_END,
};
use elstream_format::udp::{FrameKind, Reassembled, Reassembler};
use elstream_format::Endpoint;
use socket2::{Domain, Protocol, Socket, Type};

use crate::connect::{connect, Connection};
use crate::error::{Error, Result};

/// `elstream recv`'s options.
#[derive(clap::Args)]
pub struct RecvOpts {
    /// tcp://HOST:PORT or unix:PATH (connect to a proxy), udp://HOST:PORT (bind
    /// and receive datagrams).
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: Endpoint,
    /// Output file, or - for stdout (one session only).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Stop after this many sessions, or `all` (default: 1 for stdout, all for files).
    #[arg(long, value_name = "N|all", value_parser = parse_sessions)]
    pub sessions: Option<Sessions>,
    /// Stop when nothing arrived for this long (default: never).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Keep trying to connect for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::units::parse_duration)]
    pub retry: Duration,
    /// UDP: once the socket is bound, write `recv udp://ADDR` to FILE (with
    /// udp://127.0.0.1:0 the system picks a free port).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// `--sessions`: a count, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    Count(u64),
    All,
}

fn parse_sessions(s: &str) -> std::result::Result<Sessions, String> {
    match s {
        "all" | "none" => Ok(Sessions::All),
        // 0 meant "no limit" before `all`; still taken that way.
        "0" => Ok(Sessions::All),
        _ => s
            .parse()
            .map(Sessions::Count)
            .map_err(|_| format!("bad session count {s:?} (expected a number or `all`)")),
    }
}

impl RecvOpts {
    /// The session limit (None = no limit).
    fn limit(&self) -> Option<u64> {
        match self.sessions {
            Some(Sessions::Count(n)) => Some(n),
            Some(Sessions::All) => None,
            None if self.output.as_os_str() == "-" => Some(1),
            None => None,
        }
    }
}

/// Name of session `n` (1-based): `out.eventlog`, then `out.2.eventlog`, ...
pub fn session_path(base: &Path, n: u64) -> PathBuf {
    if n <= 1 {
        return base.to_path_buf();
    }
    match (base.file_stem(), base.extension()) {
        (Some(stem), Some(ext)) => base.with_file_name(format!(
            "{}.{n}.{}",
            stem.to_string_lossy(),
            ext.to_string_lossy()
        )),
        _ => PathBuf::from(format!("{}.{n}", base.display())),
    }
}

#[derive(Default)]
struct Totals {
    sessions: u64,
    blocks: u64,
    bytes: u64,
    lost_datagrams: u64,
    dropped_blocks: u64,
    /// UDP frames that arrived whole but did not hold whole events.
    malformed_blocks: u64,
    unfinished: u64,
}

/// Writes sessions to files (or stdout).
struct SessionFiles {
    base: PathBuf,
    out: Option<BufWriter<Box<dyn Write>>>,
    header: Option<Header>,
    last_time: u64,
    blocks_in_session: u64,
    totals: Totals,
}

impl SessionFiles {
    fn new(base: PathBuf) -> SessionFiles {
        SessionFiles {
            base,
            out: None,
            header: None,
            last_time: 0,
            blocks_in_session: 0,
            totals: Totals::default(),
        }
    }

    fn is_open(&self) -> bool {
        self.out.is_some()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(o) = self.out.as_mut() {
            o.write_all(bytes)
                .and_then(|_| o.flush())
                .map_err(|e| Error::io("cannot write output", e))?;
        }
        Ok(())
    }

    fn header(&mut self, header: Header) -> Result<()> {
        if self.is_open() {
            self.finish(false)?;
        }
        let n = self.totals.sessions + self.totals.unfinished + 1;
        let w: Box<dyn Write> = if self.base.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            let p = session_path(&self.base, n);
            tracing::info!(path = %p.display(), "session starts");
            Box::new(
                File::create(&p)
                    .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?,
            )
        };
        self.out = Some(BufWriter::with_capacity(1 << 20, w));
        self.blocks_in_session = 0;
        let raw = header.raw.clone();
        self.header = Some(header);
        self.write(&raw)
    }

    fn block(&mut self, bytes: &[u8]) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        if let Some(m) = BlockMarker::parse(bytes) {
            self.last_time = self.last_time.max(m.end_time);
        }
        self.totals.blocks += 1;
        self.totals.bytes += bytes.len() as u64;
        self.blocks_in_session += 1;
        self.write(bytes)
    }

    /// A block from a UDP frame: written only if it holds whole events of the
    /// session's header (a datagram that passed the framing checks can still
    /// carry anything); otherwise dropped, counted and noted in the output.
    fn checked_block(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(h) = &self.header else {
            return Ok(());
        };
        let mut evs = events(h, bytes);
        let whole = evs.by_ref().all(|e| e.is_ok()) && evs.offset() == bytes.len();
        if whole {
            return self.block(bytes);
        }
        self.totals.malformed_blocks += 1;
        tracing::warn!(
            bytes = bytes.len(),
            "dropping a malformed block (not whole events of this session's header)"
        );
        self.notice(&format!(
            "elstream: dropped 1 malformed block ({} bytes)",
            bytes.len()
        ))
    }

    fn notice(&mut self, text: &str) -> Result<()> {
        if let Some(h) = &self.header {
            let b = user_message_block(h, self.last_time, text);
            self.write(&b)?;
        }
        Ok(())
    }

    /// Ends the session's file with a data end (written by us when `clean` is false).
    fn finish(&mut self, clean: bool) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        if !clean {
            tracing::warn!("stream ended without a data end; closing the file with one");
            self.totals.unfinished += 1;
        } else {
            self.totals.sessions += 1;
        }
        self.write(&DATA_END)?;
        self.out = None;
        self.header = None;
        Ok(())
    }

    fn sessions(&self) -> u64 {
        self.totals.sessions + self.totals.unfinished
    }
}

pub fn recv(opts: RecvOpts) -> Result<i32> {
    let mut sink = SessionFiles::new(opts.output.clone());
    let limit = opts.limit();
    let r = match &opts.endpoint {
        Endpoint::Udp(hp) => recv_udp(hp, &opts, &mut sink, limit),
        Endpoint::Tcp(_) | Endpoint::Unix(_) => recv_stream(&opts, &mut sink, limit),
        other => Err(Error::Usage(format!(
            "recv: cannot receive from {other} (expected tcp://HOST:PORT, unix:PATH or udp://HOST:PORT)"
        ))),
    };
    sink.finish(false)?;
    let t = &sink.totals;
    eprintln!(
        "elstream recv: {} sessions ({} without data end), {} blocks, {} bytes, lost {} datagrams, dropped {} blocks{}",
        t.sessions + t.unfinished,
        t.unfinished,
        t.blocks,
        t.bytes,
        t.lost_datagrams,
        t.dropped_blocks,
        if t.malformed_blocks > 0 {
            format!(", dropped {} malformed blocks", t.malformed_blocks)
        } else {
            String::new()
        }
    );
    r.map(|_| 0)
}

/// Connects, retrying for up to `retry`.
fn connect_retry(ep: &Endpoint, retry: Duration) -> Result<Connection> {
    let deadline = Instant::now() + retry;
    let mut delay = Duration::from_millis(20);
    loop {
        let r = connect(ep).expect("checked by the caller");
        match r {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::io(format!("cannot connect to {ep}"), e))
            }
            Err(_) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    }
}

fn done(sink: &SessionFiles, limit: Option<u64>) -> bool {
    limit.is_some_and(|l| sink.sessions() >= l)
}

fn recv_stream(opts: &RecvOpts, sink: &mut SessionFiles, limit: Option<u64>) -> Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let mut conn = match connect_retry(&opts.endpoint, opts.retry) {
            Ok(c) => c,
            // The proxy went away after serving sessions: done.
            Err(e) if sink.sessions() > 0 => {
                tracing::info!("{e}; stopping");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let timeout = opts.idle_timeout;
        conn.set_read_timeout(timeout)
            .map_err(|e| Error::io("socket", e))?;
        let mut dec = StreamDecoder::new();
        loop {
            let n = match conn.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    tracing::info!("idle timeout");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!("read error: {e}");
                    0
                }
            };
            if n == 0 {
                if let Ok(Some(Frame::Block(b))) = dec.finish() {
                    sink.block(&b.bytes)?;
                }
                sink.finish(false)?;
                break;
            }
            dec.push(&buf[..n]);
            loop {
                match dec.next_frame() {
                    Ok(Some(Frame::Header(h))) => sink.header(h)?,
                    Ok(Some(Frame::Block(b))) => sink.block(&b.bytes)?,
                    Ok(Some(Frame::DataEnd)) => {
                        sink.finish(true)?;
                        if done(sink, limit) {
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(Error::Source {
                            endpoint: opts.endpoint.to_string(),
                            message: format!("not a valid eventlog stream: {e}"),
                        })
                    }
                }
            }
        }
        if done(sink, limit) {
            return Ok(());
        }
        tracing::info!("stream closed; reconnecting for the next session");
    }
}

fn recv_udp(hp: &str, opts: &RecvOpts, sink: &mut SessionFiles, limit: Option<u64>) -> Result<()> {
    let ep = opts.endpoint.to_string();
    let addr = hp
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Usage(format!("{ep}: cannot resolve HOST:PORT")))?;
    let listen = |e| Error::Listen {
        endpoint: ep.clone(),
        source: e,
    };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(listen)?;
    let _ = sock.set_recv_buffer_size(8 << 20);
    sock.bind(&addr.into()).map_err(listen)?;
    let sock: UdpSocket = sock.into();
    if let Some(path) = &opts.ready_file {
        let local = sock.local_addr().map_err(|e| Error::io("socket", e))?;
        crate::serve::write_ready_file(path, &[format!("recv udp://{local}")])?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| Error::io("socket", e))?;
    let mut r = Reassembler::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut last_data = Instant::now();
    // Per stream: finished (data end written), and whether a regular block was written.
    let mut finished = false;
    let mut bad = 0u64;
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if opts.idle_timeout.is_some_and(|t| last_data.elapsed() >= t) {
                    tracing::info!("idle timeout");
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(Error::io("UDP receive", e)),
        };
        last_data = Instant::now();
        out.clear();
        if let Err(e) = r.push(&buf[..n], &mut out) {
            bad += 1;
            if bad == 1 || bad.is_power_of_two() {
                tracing::warn!("ignoring {bad} bad datagram(s): {e}");
            }
            continue;
        }
        for item in out.drain(..) {
            match item {
                Reassembled::NewStream(id) => {
                    tracing::info!(stream = format!("{id:08x}"), "new stream");
                    sink.finish(false)?;
                    finished = false;
                    if done(sink, limit) {
                        return Ok(());
                    }
                }
                Reassembled::Frame(FrameKind::Header, bytes) => {
                    if !finished && !sink.is_open() {
                        match Header::parse(&bytes) {
                            Ok(h) => sink.header(h)?,
                            Err(e) => tracing::warn!("bad header frame: {e}"),
                        }
                    }
                }
                Reassembled::Frame(FrameKind::State, bytes) => {
                    if sink.is_open() && sink.blocks_in_session == 0 {
                        sink.checked_block(&bytes)?;
                    }
                }
                Reassembled::Frame(FrameKind::Block, bytes) => sink.checked_block(&bytes)?,
                Reassembled::Frame(FrameKind::DataEnd, _) => {
                    if sink.is_open() {
                        sink.finish(true)?;
                        finished = true;
                        if done(sink, limit) {
                            return Ok(());
                        }
                    }
                }
                Reassembled::Loss(l) => {
                    sink.totals.lost_datagrams += l.datagrams;
                    sink.totals.dropped_blocks += l.blocks;
                    eprintln!("elstream recv: {l}");
                    if sink.is_open() {
                        sink.notice(&format!(
                            "elstream: dropped {} blocks (lost {} datagrams)",
                            l.blocks, l.datagrams
                        ))?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        assert_eq!(
            session_path(Path::new("a/out.eventlog"), 1),
            PathBuf::from("a/out.eventlog")
        );
        assert_eq!(
            session_path(Path::new("a/out.eventlog"), 3),
            PathBuf::from("a/out.3.eventlog")
        );
        assert_eq!(session_path(Path::new("out"), 2), PathBuf::from("out.2"));
    }
}
