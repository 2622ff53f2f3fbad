//! Subscribers: accepting them, each one's replay (header, state, stored
//! blocks), handing out live blocks filtered by class, flushing and closing.

use elstream_format::eventlog::{
    filter_block, Header, BLOCK_MARKER_SIZE, DATA_END, EVENT_BLOCK_MARKER,
};
use elstream_format::ClassSet;
use mio::Token;

use super::Proxy;
use crate::store::{Chunk, ChunkKind};
use crate::subscriber::{Phase, Subscriber};

impl Proxy {
    /// Hands a block to every live subscriber of session `id`, filtered once
    /// per class set; a full queue under `--policy disconnect` closes its subscriber.
    pub(super) fn fan_out(&mut self, chunk: &Chunk, id: u32, header: &Header) {
        let mut overflow = Vec::new();
        let mut live = Vec::new();
        // Filtered once per class set, shared by the subscribers that asked for it.
        let mut per_classes: Vec<(ClassSet, Option<Chunk>)> = Vec::new();
        for (t, s) in self.subs.iter_mut() {
            if s.phase == Phase::Live(id) {
                let c = match s.classes {
                    None => chunk.clone(),
                    Some(k) => {
                        let f = match per_classes.iter().find(|(c, _)| *c == k) {
                            Some((_, f)) => f.clone(),
                            None => {
                                let f = filtered(header, chunk, k);
                                per_classes.push((k, f.clone()));
                                f
                            }
                        };
                        match f {
                            Some(f) => f,
                            None => continue,
                        }
                    }
                };
                if s.push_block(c) {
                    live.push(*t);
                } else {
                    overflow.push(*t);
                }
            }
        }
        for t in overflow {
            self.totals.disconnected_overflow += 1;
            if let Some(s) = self.subs.get(&t) {
                tracing::warn!(peer = %s.peer, "subscriber's queue is full: disconnecting it (policy: disconnect)");
            }
            self.drop_sub(t, "queue full (policy: disconnect)");
        }
        for t in live {
            self.flush_sub(t);
        }
    }

    /// Session `id` ended: its subscribers get the data end and are closed
    /// once it is sent.
    pub(super) fn end_subs(&mut self, id: u32) {
        let end = Chunk::new(ChunkKind::DataEnd, DATA_END.to_vec(), 0);
        let toks: Vec<Token> = self
            .subs
            .iter()
            .filter(|(_, s)| s.phase == Phase::Live(id))
            .map(|(t, _)| *t)
            .collect();
        for t in toks {
            if let Some(s) = self.subs.get_mut(&t) {
                s.push(end.clone());
                s.phase = Phase::Closing;
            }
            self.flush_sub(t);
        }
    }

    /// A session of source `name` started: its waiting subscribers get its replay.
    pub(super) fn start_waiting_subs(&mut self, name: &str) {
        let waiting = self.waiting_for(name);
        for t in waiting {
            self.start_sub(t);
            self.flush_sub(t);
        }
    }

    /// Subscribers waiting for a session of source `name`.
    fn waiting_for(&self, name: &str) -> Vec<Token> {
        self.subs
            .iter()
            .filter(|(_, s)| s.phase == Phase::Waiting && s.session == name)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Source `name` ended for good: its waiting subscribers are closed.
    pub(super) fn close_waiting_subs(&mut self, name: &str) {
        let waiting = self.waiting_for(name);
        for t in waiting {
            self.drop_sub(t, "its source ended for good");
        }
    }

    /// Queues the session's replay for a subscriber: header, state, stored blocks.
    fn start_sub(&mut self, tok: Token) {
        let Some(sub) = self.subs.get_mut(&tok) else {
            return;
        };
        let feed = self.feeds.iter().flatten().find(|f| f.name == sub.session);
        let Some(session) = feed.and_then(|f| f.session.as_ref()) else {
            return;
        };
        let state = session
            .state
            .replay_before_store(session.store.blocks())
            .into_iter()
            .map(|b| Chunk::new(ChunkKind::State, b, 0));
        let header = &session.header;
        let keep = sub.classes;
        let replay = state
            .chain(session.store.blocks().cloned())
            .filter_map(|c| match keep {
                Some(k) => filtered(header, &c, k),
                None => Some(c),
            });
        let chunks = std::iter::once(session.header_chunk.clone()).chain(replay);
        sub.start(session.id, session.header.clone(), chunks);
    }

    pub(super) fn accept(&mut self, listener: Option<usize>) {
        loop {
            let l = match listener {
                Some(i) => &self.listeners[i],
                None => match &self.stats_listener {
                    Some(l) => l,
                    None => return,
                },
            };
            let (mut conn, peer) = match l.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            let tok = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = conn.register(self.poll.registry(), tok) {
                tracing::warn!("cannot poll subscriber: {e}");
                continue;
            }
            let mut sub = Subscriber::new(conn, peer, self.cfg.queue_bytes, self.cfg.policy);
            sub.classes = listener.and_then(|i| self.cfg.listen[i].classes);
            if let Some(i) = listener {
                sub.session = self.listener_sessions[i].clone();
            }
            if listener.is_none() {
                let report = self.report();
                sub.push(Chunk::new(ChunkKind::Text, report.into_bytes(), 0));
                sub.phase = Phase::Closing;
                self.stats_conns.push(tok);
                self.subs.insert(tok, sub);
            } else {
                tracing::info!(peer = %sub.peer, token = tok.0, session = %sub.session, "subscriber connected");
                self.totals.subscribers += 1;
                self.subs.insert(tok, sub);
                if self.shutdown.is_none() {
                    // Waits for a session if its source has none (yet).
                    self.start_sub(tok);
                }
            }
            self.flush_sub(tok);
        }
    }

    pub(super) fn flush_sub(&mut self, tok: Token) {
        let Some(s) = self.subs.get_mut(&tok) else {
            return;
        };
        match s.flush() {
            Ok(true) if s.phase == Phase::Closing => self.drop_sub(tok, "stream complete"),
            Ok(_) => {}
            Err(e) => {
                let why = format!("write failed: {e}");
                self.drop_sub(tok, &why);
            }
        }
    }

    pub(super) fn drop_sub(&mut self, tok: Token, why: &str) {
        if let Some(mut s) = self.subs.remove(&tok) {
            s.conn.deregister(self.poll.registry());
            if self.stats_conns.contains(&tok) {
                self.stats_conns.retain(|t| *t != tok);
                return;
            }
            let c = s.counters;
            tracing::info!(
                peer = %s.peer,
                token = tok.0,
                bytes = c.bytes_sent,
                blocks = c.blocks_sent,
                dropped_blocks = c.blocks_dropped,
                "subscriber closed: {why}"
            );
        }
    }

    /// Closing subscribers whose queue is empty, and waiting ones at shutdown.
    pub(super) fn reap_closing(&mut self) {
        let done: Vec<Token> = self
            .subs
            .iter()
            .filter(|(_, s)| s.is_flushed())
            .map(|(t, _)| *t)
            .collect();
        for t in done {
            self.drop_sub(t, "shutting down");
        }
    }
}

/// A block or state chunk with only the events of `keep` (and the always-on
/// types); `None` when nothing but its block marker would be left.
fn filtered(header: &Header, chunk: &Chunk, keep: ClassSet) -> Option<Chunk> {
    let bytes = filter_block(header, &chunk.bytes, keep);
    let marker_only = bytes.len() == BLOCK_MARKER_SIZE
        && u16::from_be_bytes([bytes[0], bytes[1]]) == EVENT_BLOCK_MARKER;
    if bytes.is_empty() || marker_only {
        return None;
    }
    Some(Chunk::new(chunk.kind, bytes, chunk.end_time))
}
