//! The proxy's outputs besides subscribers: UDP destinations and the
//! consumers on their own threads (recorder, plugins). They get every block of
//! the session, unfiltered, and never hold the loop up.

use std::time::{Duration, Instant};

use elstream_format::eventlog::DATA_END;
use elstream_format::udp::FrameKind;

use super::Config;
use crate::consumer::{ConsumerThread, Item};
use crate::error::{Error, Result};
use crate::plugin::Plugin;
use crate::record::Recorder;
use crate::state::State;
use crate::udp_out::UdpOut;

pub struct Outputs {
    pub udp: Vec<UdpOut>,
    consumers: Vec<ConsumerThread>,
    udp_resend: Duration,
}

impl Outputs {
    /// Opens the UDP sockets, starts the recorder and loads the plugins (one
    /// that cannot load is reported and left out).
    pub fn new(cfg: &Config) -> Result<Outputs> {
        let mut udp = Vec::new();
        for d in &cfg.udp {
            udp.push(UdpOut::new(d, cfg.mtu)?);
        }
        let mut consumers = Vec::new();
        if let Some(dir) = &cfg.record.dir {
            let rec = Recorder::new(dir.clone(), cfg.record.clone())
                .map_err(|e| Error::io(format!("cannot record into {}", dir.display()), e))?;
            // A file size limit (RLIMIT_FSIZE) must give EFBIG, not kill us.
            // SAFETY: setting a signal's disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            consumers.push(
                ConsumerThread::spawn(Box::new(rec), cfg.queue_bytes)
                    .map_err(|e| Error::io("cannot start the recorder thread", e))?,
            );
        }
        for spec in &cfg.plugins {
            match Plugin::load(spec) {
                Ok(p) => match ConsumerThread::spawn(Box::new(p), cfg.queue_bytes) {
                    Ok(h) => {
                        tracing::info!("{} loaded", h.name);
                        consumers.push(h)
                    }
                    Err(e) => {
                        tracing::error!("cannot start a thread for {}: {e}", spec.path.display())
                    }
                },
                Err(msg) => tracing::error!("{msg}; running without it"),
            }
        }
        Ok(Outputs {
            udp,
            consumers,
            udp_resend: cfg.udp_resend,
        })
    }

    /// A session starts with this header; `id` is its UDP stream id.
    pub fn start(&mut self, id: u32, header: &std::sync::Arc<Vec<u8>>, now: Instant) {
        for s in &self.consumers {
            s.send(Item::Header(header.clone()));
        }
        for u in &mut self.udp {
            u.start(id);
            u.send(FrameKind::Header, header);
            u.next_resend = Some(now + self.udp_resend);
        }
    }

    pub fn block(&mut self, block: &std::sync::Arc<Vec<u8>>) {
        for u in &mut self.udp {
            u.send(FrameKind::Block, block);
        }
        for s in &self.consumers {
            s.send(Item::Block(block.clone()));
        }
    }

    /// The session ended.
    pub fn end(&mut self) {
        for s in &self.consumers {
            s.send(Item::Stop);
        }
        for u in &mut self.udp {
            // Repeated: a lost data end would leave the receiver's file open.
            for _ in 0..3 {
                u.send(FrameKind::DataEnd, &DATA_END);
            }
            u.end();
        }
    }

    /// Re-sends header and state to UDP destinations that are due.
    pub fn resend(&mut self, header: &[u8], state: &State, now: Instant) {
        for u in &mut self.udp {
            if u.next_resend.is_some_and(|t| now >= t) {
                u.send(FrameKind::Header, header);
                if let Some(state) = state.replay_all() {
                    u.send(FrameKind::State, &state);
                }
                u.next_resend = Some(now + self.udp_resend);
            }
        }
    }

    pub fn deadlines(&self) -> impl Iterator<Item = Option<Instant>> + '_ {
        self.udp.iter().map(|u| u.next_resend)
    }

    /// At exit: each consumer gets at most `linger` to finish.
    pub fn close(&mut self, linger: Duration) {
        for s in self.consumers.drain(..) {
            s.close(linger);
        }
    }
}
