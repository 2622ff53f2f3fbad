//! `elstream ctl`: sends control commands to a program's shim (its
//! `<socket>.ctl`) and prints the replies.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use elstream_format::control::{request, ControlDecoder, Status};
use elstream_format::Endpoint;

use crate::error::{Error, Result};

/// Runs each command in order on one connection; exit code 0 when all
/// succeeded, 1 when one was refused (its message goes to stderr).
pub fn ctl(to: &Endpoint, commands: &[String], timeout: Duration) -> Result<i32> {
    let Endpoint::Unix(path) = to else {
        return Err(Error::Usage(format!(
            "ctl talks to a shim's control socket (unix:PATH, normally the stream socket + .ctl), not {to}"
        )));
    };
    let mut conn = UnixStream::connect(path)
        .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("socket", e))?;
    let mut decoder = ControlDecoder::new();
    let mut failed = false;
    let mut buf = [0u8; 8192];
    for command in commands {
        conn.write_all(&request(command))
            .map_err(|e| Error::io("send", e))?;
        let reply = loop {
            match decoder.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Source {
                        endpoint: to.to_string(),
                        message: e.to_string(),
                    })
                }
            }
            let n = conn
                .read(&mut buf)
                .map_err(|e| Error::io("waiting for the reply", e))?;
            if n == 0 {
                return Err(Error::Source {
                    endpoint: to.to_string(),
                    message: "closed without a reply".into(),
                });
            }
            decoder.push(&buf[..n]);
        };
        if reply.status == Status::Ok {
            println!("{}", reply.text.trim_end());
        } else {
            eprintln!(
                "elstream ctl: `{command}`: {:?}: {}",
                reply.status, reply.text
            );
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}
