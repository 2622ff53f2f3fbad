//! UDP destinations: every frame is cut into datagrams (format::udp) and sent
//! without waiting; a full socket buffer drops datagrams (counted), it never
//! holds up the loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use elstream_format::udp::{FrameKind, Packetizer};
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// Send buffer asked for (the kernel caps it at wmem_max).
const SNDBUF: usize = 4 << 20;

#[derive(Clone, Copy, Debug, Default)]
pub struct UdpCounters {
    pub datagrams: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub frames: u64,
}

pub struct UdpOut {
    pub dest: String,
    sock: UdpSocket,
    mtu: usize,
    packetizer: Option<Packetizer>,
    pub counters: UdpCounters,
    pub next_resend: Option<Instant>,
}

impl UdpOut {
    pub fn new(dest: &str, mtu: usize) -> Result<UdpOut> {
        let addr: SocketAddr = dest
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Usage(format!("--udp {dest}: cannot resolve HOST:PORT")))?;
        let ctx = |e: io::Error| Error::io(format!("UDP socket for {dest}"), e);
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(ctx)?;
        let _ = sock.set_send_buffer_size(SNDBUF);
        sock.set_nonblocking(true).map_err(ctx)?;
        sock.connect(&addr.into()).map_err(ctx)?;
        let sock = UdpSocket::from_std(sock.into());
        // Validate the MTU once, up front.
        Packetizer::new(0, mtu).map_err(|e| Error::Usage(format!("--mtu: {e}")))?;
        Ok(UdpOut {
            dest: dest.to_string(),
            sock,
            mtu,
            packetizer: None,
            counters: UdpCounters::default(),
            next_resend: None,
        })
    }

    /// A new session: a new stream id, sequence from 0.
    pub fn start(&mut self, stream: u32) {
        self.packetizer = Packetizer::new(stream, self.mtu).ok();
    }

    pub fn end(&mut self) {
        self.packetizer = None;
        self.next_resend = None;
    }

    pub fn send(&mut self, kind: FrameKind, frame: &[u8]) {
        let Some(p) = self.packetizer.as_mut() else {
            return;
        };
        let sock = &self.sock;
        let c = &mut self.counters;
        c.frames += 1;
        p.packetize(kind, frame, |d| match sock.send(d) {
            Ok(_) => {
                c.datagrams += 1;
                c.bytes += d.len() as u64;
            }
            // WouldBlock/ENOBUFS/ECONNREFUSED (no receiver yet): the datagram is lost.
            Err(_) => c.dropped += 1,
        });
    }
}
