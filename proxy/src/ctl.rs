//! `elstream ctl`: sends control commands to a program's shim (its
//! `<socket>.ctl`) or to a proxy's control relay, and prints the replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use elstream_format::control::{request, ControlDecoder, ControlFrame, Status};
use elstream_format::Endpoint;

use crate::error::{Error, Result};

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Runs each command in order on one connection (after `auth` when a token
/// file is given); exit code 0 when all succeeded, 1 when one was refused
/// (its message goes to stderr).
pub fn ctl(
    to: &Endpoint,
    token_file: Option<&Path>,
    commands: &[String],
    timeout: Duration,
) -> Result<i32> {
    // Read (and mode-checked) before connecting: a bad file is a usage error.
    let token = token_file.map(crate::relay::load_token).transpose()?;
    let mut conn: Box<dyn Stream> = match to {
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path)
                .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| Error::io("socket", e))?;
            Box::new(s)
        }
        Endpoint::Tcp(hp) => {
            let s = TcpStream::connect(hp.as_str())
                .map_err(|e| Error::io(format!("connect {hp}"), e))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| Error::io("socket", e))?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        other => {
            let msg = format!(
                "ctl talks to a shim's control socket (unix:PATH, normally the stream \
                 socket + .ctl) or a proxy's control relay (unix:PATH or tcp://HOST:PORT), \
                 not {other}"
            );
            return Err(Error::Usage(msg));
        }
    };
    let mut decoder = ControlDecoder::new();
    if let Some(token) = token {
        let r = exchange(&mut *conn, &mut decoder, to, &format!("auth {token}"))?;
        if r.status != Status::Ok {
            eprintln!("elstream ctl: auth: {:?}: {}", r.status, r.text);
            return Ok(1);
        }
    }
    let mut failed = false;
    for command in commands {
        let reply = exchange(&mut *conn, &mut decoder, to, command)?;
        if reply.status == Status::Ok {
            println!("{}", reply.text.trim_end());
        } else {
            eprintln!(
                "elstream ctl: `{command}`: {:?}: {}",
                reply.status, reply.text
            );
            failed = true;
            if reply.status == Status::Unauthorized {
                if token_file.is_none() {
                    eprintln!("elstream ctl: this endpoint needs a token: --token-file FILE");
                }
                // The other side has closed the connection.
                break;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Sends one command line and waits for its reply.
fn exchange(
    conn: &mut dyn Stream,
    decoder: &mut ControlDecoder,
    to: &Endpoint,
    command: &str,
) -> Result<ControlFrame> {
    let failed = |message: String| Error::Source {
        endpoint: to.to_string(),
        message,
    };
    conn.write_all(&request(command))
        .map_err(|e| Error::io("send", e))?;
    let mut buf = [0u8; 8192];
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(failed(e.to_string())),
        }
        let n = conn
            .read(&mut buf)
            .map_err(|e| Error::io("waiting for the reply", e))?;
        if n == 0 {
            return Err(failed("closed without a reply".into()));
        }
        decoder.push(&buf[..n]);
    }
}
