//! Sources and their sessions: each source (a [`Feed`]) read in budgets,
//! split into header, blocks and data end; a session's state cache and store
//! of recent blocks; damaged or cut-off input salvaged and reported; shim
//! sockets discovered in a directory. Whatever one source does (garbage, a
//! stall, a restart) touches only its own feed and its subscribers.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use elstream_format::eventlog::{Block, Frame, Header, StreamDecoder};
use elstream_format::Endpoint;

use super::{Proxy, READ_BUDGET};
use crate::error::Error;
use crate::error::Result;
use crate::source::ReadResult;
use crate::source::Source;
use crate::state::State;
use crate::store::{Chunk, ChunkKind, Store};
use crate::tokens::{source_tokens, MAX_SOURCES};

pub(super) struct Session {
    pub id: u32,
    pub header: Arc<Header>,
    pub header_chunk: Chunk,
    pub state: State,
    pub store: Store,
    pub blocks: u64,
    pub bytes: u64,
}

/// One source: its connection, decoder, current session and counters.
pub(super) struct Feed {
    pub name: String,
    pub source: Source,
    pub decoder: StreamDecoder,
    pub session: Option<Session>,
    /// No more data, ever (stdin, `run`'s program, shutdown).
    pub done: bool,
    /// Found by `--discover` (forgotten when its socket goes away).
    pub discovered: bool,
    pub sessions: u64,
    pub blocks: u64,
    pub bytes: u64,
}

impl Feed {
    pub fn new(name: String, source: Source, discovered: bool) -> Feed {
        Feed {
            name,
            source,
            decoder: StreamDecoder::new(),
            session: None,
            done: false,
            discovered,
            sessions: 0,
            blocks: 0,
            bytes: 0,
        }
    }
}

impl Proxy {
    /// No more data from source `slot`: end its session; once no source can
    /// bring more (and none can be discovered), start lingering.
    pub(super) fn finish_source(&mut self, slot: usize) {
        if self.feed(slot).done {
            return;
        }
        self.feed(slot).done = true;
        self.end_session(slot);
        // No session will come for those waiting on this source.
        let name = self.feed(slot).name.clone();
        self.close_waiting_subs(&name);
        let all_done = self.feeds.iter().flatten().all(|f| f.done);
        if all_done && (self.cfg.discover.is_none() || self.shutdown.is_some()) {
            self.shutdown
                .get_or_insert(Instant::now() + self.cfg.linger);
        }
    }

    pub(super) fn pump_source(&mut self, slot: usize) -> Result<()> {
        let mut budget = READ_BUDGET;
        loop {
            let f = self.feeds[slot].as_ref().expect("a live source slot");
            if budget == 0 || f.done || !f.source.wants_read() || self.backpressured(&f.name) {
                break;
            }
            let mut buf = std::mem::take(&mut self.buf);
            let f = self.feeds[slot].as_mut().expect("a live source slot");
            let r = f.source.read(self.poll.registry(), &mut buf);
            match r {
                ReadResult::Data(n) => {
                    f.decoder.push(&buf[..n]);
                    self.buf = buf;
                    budget = budget.saturating_sub(n);
                    self.decode(slot)?;
                }
                ReadResult::Empty => {
                    self.buf = buf;
                    break;
                }
                ReadResult::Ended => {
                    self.buf = buf;
                    self.end_connection(slot);
                    break;
                }
                ReadResult::Finished => {
                    self.buf = buf;
                    self.end_connection(slot);
                    self.finish_source(slot);
                    break;
                }
            }
        }
        Ok(())
    }

    fn decode(&mut self, slot: usize) -> Result<()> {
        loop {
            match self.feed(slot).decoder.next_frame() {
                Ok(Some(Frame::Header(h))) => self.start_session(slot, h),
                Ok(Some(Frame::Block(b))) => self.on_block(slot, b),
                Ok(Some(Frame::DataEnd)) => {
                    if let Some(m) = &self.metrics {
                        m.end_session(slot, true);
                    }
                    self.end_session(slot)
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    // Whole events before the damage are delivered; the rest
                    // of what is buffered is dropped and counted.
                    let f = self.feed(slot);
                    let (prefix, left) = f.decoder.salvage();
                    let mut msg = format!("not a valid eventlog stream: {e}");
                    if f.session.is_some() {
                        let kept = prefix.as_ref().map_or(0, |b| b.events);
                        f.source.stats.damaged_blocks += 1;
                        f.source.stats.dropped_bytes += left as u64;
                        let _ = write!(
                            msg,
                            " (delivered the {kept} whole events before the damage, dropped {left} bytes)"
                        );
                        if let Some(b) = prefix {
                            self.on_block(slot, b);
                        }
                    }
                    self.end_session(slot);
                    let f = self.feeds[slot].as_mut().expect("a live source slot");
                    f.decoder = StreamDecoder::new();
                    if !f.source.reject(self.poll.registry(), &msg) {
                        // Files and stdin: serve what is queued, then fail.
                        self.fail_source(slot, msg);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// The source connection ended: keep whole events of a cut-off block, end
    /// the session. Input that was cut off, or never was an eventlog, is an
    /// error when it cannot come again (stdin); otherwise it is logged.
    fn end_connection(&mut self, slot: usize) {
        let f = self.feed(slot);
        let pending = f.decoder.buffered();
        let mut problem = None;
        if f.session.is_some() {
            let mut kept = 0;
            let mut events = 0;
            if let Ok(Some(Frame::Block(b))) = f.decoder.finish() {
                kept = b.bytes.len();
                events = b.events;
                self.on_block(slot, b);
            }
            let f = self.feed(slot);
            let dropped = pending.saturating_sub(kept);
            if dropped > 0 {
                f.source.stats.dropped_bytes += dropped as u64;
                problem = Some(format!(
                    "input ends inside a block (truncated): delivered the {events} whole events \
                     of the last block, dropped the {dropped} bytes of a cut-off event"
                ));
            } else if pending > 0 {
                problem = Some(format!(
                    "input ends inside a block (truncated): delivered the {events} whole events \
                     of the last block"
                ));
            }
            tracing::info!(session = %f.name, source = %f.source.endpoint, "source ended mid-session; ending the session");
        } else if pending > 0 {
            problem = Some(format!(
                "not a GHC eventlog: the input ended after {pending} bytes, inside the header"
            ));
        } else if f.source.is_once() && f.sessions == 0 {
            problem = Some("no input (expected a GHC eventlog)".to_string());
        }
        self.end_session(slot);
        let f = self.feed(slot);
        f.decoder = StreamDecoder::new();
        if let Some(p) = problem {
            if f.source.is_once() {
                self.fail_source(slot, p);
            } else {
                f.source.stats.errors += 1;
                tracing::warn!(session = %f.name, source = %f.source.endpoint, "{p}");
                f.source.stats.last_error = Some(p);
            }
        }
    }

    /// A fatal problem with a source: subscribers get what was read (up
    /// to `--linger`), then the run fails with it.
    pub(super) fn fail_source(&mut self, slot: usize, message: String) {
        let f = self.feed(slot);
        f.source.stats.errors += 1;
        f.source.stats.last_error = Some(message.clone());
        let endpoint = f.source.endpoint.to_string();
        if self.fatal.is_none() {
            self.fatal = Some(Error::Source { endpoint, message });
        }
        self.finish_source(slot);
    }

    fn start_session(&mut self, slot: usize, header: Header) {
        if self.feed(slot).session.is_some() {
            // A new header without a data end: the source restarted.
            self.end_session(slot);
        }
        self.totals.sessions += 1;
        let id = self
            .stream_seed
            .wrapping_add((self.totals.sessions as u32).wrapping_mul(0x9e37_79b9));
        let header_chunk = Chunk::new(ChunkKind::Header, header.raw.clone(), 0);
        let header = Arc::new(header);
        let session = Session {
            id,
            state: State::new(header.clone(), !self.outputs.udp.is_empty()),
            header,
            header_chunk,
            store: Store::new(self.cfg.store_bytes),
            blocks: 0,
            bytes: 0,
        };
        self.outputs
            .start(id, &session.header_chunk.bytes, Instant::now());
        if let (Some(m), Some(f)) = (&self.metrics, &self.feeds[slot]) {
            m.start_session(slot, &f.name, &f.source.endpoint, &session.header_chunk);
        }
        let f = self.feed(slot);
        f.sessions += 1;
        tracing::info!(
            session = %f.name,
            n = f.sessions,
            types = session.header.types.len(),
            "session starts"
        );
        f.session = Some(session);
        let name = f.name.clone();
        self.start_waiting_subs(&name);
    }

    fn on_block(&mut self, slot: usize, block: Block) {
        let f = self.feeds[slot].as_mut().expect("a live source slot");
        let Some(session) = f.session.as_mut() else {
            return;
        };
        let chunk = Chunk::block(block);
        session.state.observe(&chunk);
        let state = &mut session.state;
        session.store.push(chunk.clone(), |c| state.evicted(c));
        session.blocks += 1;
        session.bytes += chunk.len() as u64;
        f.blocks += 1;
        f.bytes += chunk.len() as u64;
        self.totals.blocks += 1;
        self.totals.bytes += chunk.len() as u64;
        let id = session.id;
        let header = session.header.clone();
        self.fan_out(&chunk, id, &header);
        self.outputs.block(&chunk.bytes);
        if let Some(m) = &self.metrics {
            m.block(slot, &chunk);
        }
    }

    fn end_session(&mut self, slot: usize) {
        let f = self.feed(slot);
        let Some(session) = f.session.take() else {
            return;
        };
        tracing::info!(
            session = %f.name,
            n = f.sessions,
            blocks = session.blocks,
            bytes = session.bytes,
            "session ends"
        );
        if let Some(m) = &self.metrics {
            m.end_session(slot, false);
        }
        self.end_subs(session.id);
        self.outputs.end();
    }

    /// `--discover`: a new shim socket in the directory becomes a source; a
    /// discovered one whose socket is gone, and that is neither connected nor
    /// in a session, is forgotten (its slot is reused; subscribers bound to
    /// its name wait for a socket of that name).
    pub(super) fn discover(&mut self) {
        let Some(d) = self.cfg.discover.clone() else {
            return;
        };
        let own: Vec<String> = self.listeners.iter().map(|l| l.local()).collect();
        for path in elstream_format::sources::shim_sockets(&d.dir, d.default_names_only) {
            let ep = Endpoint::Unix(path);
            if own.contains(&ep.to_string())
                || self.cfg.stats.as_ref() == Some(&ep)
                || self.feeds.iter().flatten().any(|f| f.source.endpoint == ep)
            {
                continue;
            }
            let name = elstream_format::sources::default_name(&ep);
            if !elstream_format::sources::valid_name(&name)
                || self.feeds.iter().flatten().any(|f| f.name == name)
            {
                tracing::debug!(socket = %ep, "discovered socket skipped: its name {name:?} is taken or unusable");
                continue;
            }
            let slot = match self.feeds.iter().position(Option::is_none) {
                Some(s) => s,
                None if self.feeds.len() < MAX_SOURCES => {
                    self.feeds.push(None);
                    self.feeds.len() - 1
                }
                None => {
                    tracing::warn!("{MAX_SOURCES} sources: not watching {ep}");
                    return;
                }
            };
            match Source::new(ep.clone(), self.cfg.reconnect_max, source_tokens(slot)) {
                Ok(source) => {
                    tracing::info!(session = %name, source = %ep, "discovered");
                    self.feeds[slot] = Some(Feed::new(name, source, true));
                }
                Err(e) => tracing::warn!("discovered {ep}: {e}"),
            }
        }
        for slot in &mut self.feeds {
            let gone = slot.as_ref().is_some_and(|f| {
                f.discovered
                    && f.session.is_none()
                    && !f.source.is_connected()
                    && matches!(&f.source.endpoint, Endpoint::Unix(p) if !p.exists())
            });
            if gone {
                if let Some(f) = slot.take() {
                    tracing::info!(session = %f.name, source = %f.source.endpoint, "socket gone; forgotten");
                }
            }
        }
    }
}
