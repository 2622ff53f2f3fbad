//! The poll loop's token map: every mio token the proxy registers, in one place.
//!
//! | tokens                         | what                                        |
//! |--------------------------------|---------------------------------------------|
//! | 1                              | signals (signal-hook's mio source)          |
//! | 2                              | the stats listener                          |
//! | 4 .. 16                        | control relay listeners                     |
//! | 16 .. 2^12                     | subscriber listeners (`--listen`, in order) |
//! | 2^12 + 2s                      | source slot s (socket, FIFO or stdin pipe)  |
//! | 2^12 + 2s + 1                  | slot s's resolver waker (a `tcp:` source's name lookup finished) |
//! | 2^16 .. 2^40                   | subscribers and stats connections           |
//! | 2^40 ..                        | control relay connections                   |
//!
//! A source slot is one `--source` or discovered socket (a session of its
//! own); a slot freed by a discovered socket that went away is reused.

use mio::Token;

pub const SIGNALS: Token = Token(1);
pub const STATS: Token = Token(2);
pub const RELAY_LISTENER_BASE: usize = 4;
pub const RELAY_MAX_LISTENERS: usize = 12;
pub const LISTENER_BASE: usize = RELAY_LISTENER_BASE + RELAY_MAX_LISTENERS;
pub const SOURCE_BASE: usize = 1 << 12;
pub const FIRST_SUBSCRIBER: usize = 1 << 16;
pub const MAX_SOURCES: usize = (FIRST_SUBSCRIBER - SOURCE_BASE) / 2;
pub const RELAY_CONN_BASE: usize = 1 << 40;

/// Source slot `s`'s read token and its resolver's waker token.
pub fn source_tokens(slot: usize) -> (Token, Token) {
    (
        Token(SOURCE_BASE + 2 * slot),
        Token(SOURCE_BASE + 2 * slot + 1),
    )
}

/// The source slot a token belongs to, and whether it is the read token
/// (else the waker's).
pub fn source_slot(t: Token) -> Option<(usize, bool)> {
    (SOURCE_BASE..FIRST_SUBSCRIBER)
        .contains(&t.0)
        .then(|| ((t.0 - SOURCE_BASE) / 2, (t.0 - SOURCE_BASE) % 2 == 0))
}
