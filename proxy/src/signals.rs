//! Signals into the poll loop through a self-pipe: the handler only write(2)s
//! one byte (signal number, high bit set when another process sent it with
//! kill(2) rather than the terminal or the kernel).

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use mio::unix::pipe;

static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

/// `si_code` of a signal sent by kill(2).
const SI_USER: libc::c_int = 0;

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: `info` is the kernel-provided siginfo of this delivery (SA_SIGINFO);
    // errno is saved and restored around write(2), the only async-signal-safe
    // call made here, on a pipe fd that stays open for the life of the process.
    unsafe {
        let errno = *libc::__errno_location();
        let from_process = !info.is_null() && (*info).si_code == SI_USER;
        let byte = (sig as u8 & 0x7f) | if from_process { 0x80 } else { 0 };
        let fd = PIPE_WR.load(Ordering::Relaxed);
        if fd >= 0 {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

pub struct Signals {
    rx: pipe::Receiver,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub signal: libc::c_int,
    /// Sent by a process with kill(2) (not typed at the terminal).
    pub from_process: bool,
}

impl Signals {
    /// Installs the handler for `signals`; the receiver is non-blocking.
    pub fn install(signals: &[libc::c_int]) -> io::Result<Signals> {
        let (tx, rx) = pipe::new()?;
        PIPE_WR.store(tx.into_raw_fd(), Ordering::Relaxed);
        for &sig in signals {
            // SAFETY: a zeroed sigaction is valid; we set a handler with the
            // SA_SIGINFO signature and an empty mask before installing it.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_NOCLDSTOP;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals { rx })
    }

    pub fn receiver(&mut self) -> &mut pipe::Receiver {
        &mut self.rx
    }

    pub fn drain(&mut self) -> Vec<Delivered> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match self.rx.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend(buf[..n].iter().map(|b| Delivered {
                    signal: (b & 0x7f) as libc::c_int,
                    from_process: b & 0x80 != 0,
                })),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out
    }
}
