//! Signals into the poll loop: signal-hook's self-pipe delivery on a mio
//! `UnixStream` (what signal-hook-mio does, whose pollable type only carries
//! signal numbers), with the origin of each signal: `run` forwards what
//! kill(2) sent, not what the terminal already sent the program.

use std::io;

use mio::net::UnixStream;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::{Cause, Sent};

pub struct Signals(SignalDelivery<UnixStream, WithOrigin>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub signal: libc::c_int,
    /// Sent by a process with kill(2) (not typed at the terminal).
    pub from_process: bool,
}

impl Signals {
    /// Installs the handlers for `signals`; the read end is non-blocking.
    pub fn install(signals: &[libc::c_int]) -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        SignalDelivery::with_pipe(read, write, WithOrigin::default(), signals).map(Signals)
    }

    /// What to register with the poll.
    pub fn receiver(&mut self) -> &mut UnixStream {
        self.0.get_read_mut()
    }

    /// The signals received since the last call (each number at most once).
    pub fn drain(&mut self) -> Vec<Delivered> {
        self.0
            .pending()
            .map(|o| Delivered {
                signal: o.signal,
                from_process: matches!(o.cause, Cause::Sent(Sent::User)),
            })
            .collect()
    }
}
