//! The stats text: served on the stats socket and logged by `-v`.

use std::fmt::Write as _;

use mio::Token;

use super::Proxy;
use crate::subscriber::Phase;

impl Proxy {
    /// The text served on the stats socket and printed by `-v`.
    pub fn report(&self) -> String {
        let mut r = String::new();
        // One line per source (session), in slot order; `name=` is what
        // `--listen NAME=...` binds to.
        for f in self.feeds.iter().flatten() {
            let src = &f.source.stats;
            let (blocks, bytes, store_blocks, store_bytes) = match &f.session {
                Some(s) => (s.blocks, s.bytes, s.store.len(), s.store.bytes()),
                None => (0, 0, 0, 0),
            };
            let subs = self.subs.values().filter(|s| s.session == f.name);
            let (mut n, mut drops) = (0, 0);
            for s in subs {
                n += 1;
                drops += s.counters.blocks_dropped;
            }
            let _ = writeln!(
                r,
                "source {} name={} state={} sessions={} bytes_read={} session_blocks={} session_bytes={} total_blocks={} total_bytes={} store_blocks={} store_bytes={} subscribers={} subscriber_dropped_blocks={} connects={} errors={} damaged_blocks={} dropped_bytes={}{}",
                f.source.endpoint,
                f.name,
                if f.session.is_some() { "live" } else if f.source.is_connected() { "idle" } else { "down" },
                f.sessions,
                src.bytes,
                blocks,
                bytes,
                f.blocks,
                f.bytes,
                store_blocks,
                store_bytes,
                n,
                drops,
                src.connects,
                src.errors,
                src.damaged_blocks,
                src.dropped_bytes,
                src.last_error.as_deref().map(|e| format!(" last_error={e:?}")).unwrap_or_default(),
            );
        }
        for l in self.listening() {
            let _ = writeln!(r, "listen {l}");
        }
        if let Some(relay) = &self.relay {
            r.push_str(&relay.report());
        }
        let mut toks: Vec<&Token> = self.subs.keys().collect();
        toks.sort();
        for t in toks {
            if self.stats_conns.contains(t) {
                continue;
            }
            let s = &self.subs[t];
            let c = s.counters;
            let phase = match s.phase {
                Phase::Waiting => "waiting",
                Phase::Live(_) => "live",
                Phase::Closing => "closing",
            };
            let _ = writeln!(
                r,
                "subscriber {} {} session={} state={} bytes={} blocks={} dropped_blocks={} dropped_bytes={} notices={} queue_bytes={} queue_chunks={}{}",
                t.0, s.peer, s.session, phase, c.bytes_sent, c.blocks_sent, c.blocks_dropped, c.bytes_dropped, c.notices, s.queued_bytes(), s.queued_chunks(),
                s.classes.map(|k| format!(" classes={k}")).unwrap_or_default()
            );
        }
        for u in &self.outputs.udp {
            let c = u.counters;
            let _ = writeln!(
                r,
                "udp {} frames={} datagrams={} bytes={} dropped_datagrams={}",
                u.dest, c.frames, c.datagrams, c.bytes, c.dropped
            );
        }
        let _ = writeln!(
            r,
            "totals subscribers_accepted={} disconnected_overflow={}",
            self.totals.subscribers, self.totals.disconnected_overflow
        );
        r
    }
}
