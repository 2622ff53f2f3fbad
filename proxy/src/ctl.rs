//! `elstream ctl`: sends control commands to a program's shim (its
//! `<socket>.ctl`) or to a proxy's control relay, and prints the replies.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use elstream_format::control::{request, ControlDecoder, ControlFrame, Status};
use elstream_format::Endpoint;

use crate::connect::{connect, Connection};
use crate::error::{Error, Result};

/// `elstream ctl`'s options.
#[derive(clap::Args)]
pub struct CtlOpts {
    /// The shim's control socket: unix:PATH, normally the stream socket + `.ctl`;
    /// or a proxy's control relay (--control-listen): unix:PATH or tcp://HOST:PORT.
    #[arg(long, value_name = "ENDPOINT")]
    pub to: Endpoint,
    /// Send `auth TOKEN` first, the token read from FILE (needed for a
    /// proxy's TCP control relay; the file must be chmod 600).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for each reply.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::units::parse_duration)]
    pub timeout: Duration,
    /// One or more command lines, each one argument (quote them).
    #[arg(required = true, value_name = "COMMAND")]
    pub commands: Vec<String>,
}

/// Runs each command in order on one connection (after `auth` when a token
/// file is given); exit code 0 when all succeeded, 1 when one was refused
/// (its message goes to stderr).
pub fn ctl(opts: &CtlOpts) -> Result<i32> {
    let (to, token_file, commands, timeout) = (
        &opts.to,
        opts.token_file.as_deref(),
        &opts.commands[..],
        opts.timeout,
    );
    // Read (and mode-checked) before connecting: a bad file is a usage error.
    let token = token_file.map(crate::relay::load_token).transpose()?;
    let Some(conn) = connect(to) else {
        return Err(Error::Usage(format!(
            "ctl talks to a shim's control socket (unix:PATH, normally the stream \
             socket + .ctl) or a proxy's control relay (unix:PATH or tcp://HOST:PORT), \
             not {to}"
        )));
    };
    let mut conn = conn.map_err(|e| Error::io(format!("cannot connect to {to}"), e))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("socket", e))?;
    let mut decoder = ControlDecoder::new();
    if let Some(token) = token {
        let r = exchange(&mut conn, &mut decoder, to, &format!("auth {token}"))?;
        if r.status != Status::Ok {
            eprintln!("elstream ctl: auth: {:?}: {}", r.status, r.text);
            return Ok(1);
        }
    }
    let mut failed = false;
    for command in commands {
        let reply = exchange(&mut conn, &mut decoder, to, command)?;
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
    conn: &mut Connection,
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
