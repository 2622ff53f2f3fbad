//! Network helpers: learning the port a child bound on port 0.

use std::path::Path;
use std::time::Duration;

/// The address after `PREFIX` on a line of the ready file a child writes
/// once it serves (`elstream metrics`/`ui --ready-file`: `metrics
/// http://HOST:PORT`; the proxy's holds one line per listener); None if the
/// file does not appear within `within`.
pub fn ready_addr(file: &Path, prefix: &str, within: Duration) -> Option<String> {
    let mut addr = None;
    crate::wait_until(within, || {
        addr = std::fs::read_to_string(file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| Some(l.trim().strip_prefix(prefix)?.to_string()))
        });
        addr.is_some()
    });
    addr
}

/// The port in the first line of `log` that holds `marker` followed by
/// digits (e.g. chromedriver's "started successfully on port 39777"); None
/// if none appears within `within`.
pub fn logged_port(log: &Path, marker: &str, within: Duration) -> Option<u16> {
    let mut port = None;
    crate::wait_until(within, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        port = text.lines().find_map(|l| {
            let (_, rest) = l.split_once(marker)?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        port.is_some()
    });
    port
}

/// A TCP port that was free a moment ago on 127.0.0.1. Racy (another process
/// may take it before the child binds it): only the proxy's fan-out benches
/// use it; tests bind port 0 and read the port back.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
