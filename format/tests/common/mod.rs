//! Shared helpers for the format crate's tests.
#![allow(dead_code)]

use std::path::PathBuf;

use elstream_format::eventlog::{events, Block, FormatError, Frame, Header, StreamDecoder};

/// The logs that every whole-log test reads, as (label, path): the ones our
/// own GHC programs write (always; those whose every event has its declared
/// size, see `testkit::logs::OwnLog::size_mismatch`), then the external corpus
/// where it exists (required under `CI`, a loud skip elsewhere).
pub fn all_logs() -> Vec<(String, PathBuf)> {
    let mut v = own_logs();
    v.extend(
        corpus_logs()
            .into_iter()
            .map(|p| (p.display().to_string(), p)),
    );
    v
}

/// The framed own logs as (label, path).
pub fn own_logs() -> Vec<(String, PathBuf)> {
    testkit::logs::framed_own_logs()
        .into_iter()
        .map(|l| (l.label(), l.path.clone()))
        .collect()
}

/// The external corpus's logs (see `testkit::logs::external_logs`).
pub fn corpus_logs() -> Vec<PathBuf> {
    testkit::logs::external_logs()
}

/// One decoded event, owned, with the cap of the block it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub ty: u16,
    pub time: u64,
    pub cap: u16,
    pub raw: Vec<u8>,
}

/// Result of decoding a whole stream.
#[derive(Debug, Default)]
pub struct Decoded {
    pub headers: Vec<Header>,
    pub blocks: Vec<Block>,
    pub events: Vec<Ev>,
    pub data_ends: usize,
}

/// Decodes `bytes` fed in chunks given by `chunk(i)`, then `finish`.
pub fn decode_chunked(
    bytes: &[u8],
    mut chunk: impl FnMut() -> usize,
) -> Result<Decoded, FormatError> {
    let mut d = StreamDecoder::new();
    let mut out = Decoded::default();
    let mut i = 0;
    let take = |f: Frame, out: &mut Decoded, d: &StreamDecoder| -> Result<(), FormatError> {
        match f {
            Frame::Header(h) => out.headers.push(h),
            Frame::DataEnd => out.data_ends += 1,
            Frame::Block(b) => {
                let h = d.header().expect("block before header");
                for e in events(h, &b.bytes) {
                    let e = e?;
                    out.events.push(Ev {
                        ty: e.ty,
                        time: e.time,
                        cap: b.cap,
                        raw: e.raw.to_vec(),
                    });
                }
                out.blocks.push(b);
            }
        }
        Ok(())
    };
    while i < bytes.len() {
        let n = chunk().max(1).min(bytes.len() - i);
        d.push(&bytes[i..i + n]);
        i += n;
        while let Some(f) = d.next_frame()? {
            take(f, &mut out, &d)?;
        }
    }
    while let Some(f) = d.finish()? {
        take(f, &mut out, &d)?;
    }
    Ok(out)
}

pub fn decode_all(bytes: &[u8]) -> Result<Decoded, FormatError> {
    decode_chunked(bytes, || usize::MAX)
}

/// Small deterministic PRNG (xorshift64*), so tests need no extra crates.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
