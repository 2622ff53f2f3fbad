//! Shared helpers for the format crate's tests.
#![allow(dead_code)]

use std::path::PathBuf;

use elstream_format::eventlog::{events, Block, FormatError, Frame, Header, StreamDecoder};

/// `../shared/corpus/ghc-events` from the repo root; `None` (with a note) when
/// absent, a panic when absent and `CI` is set.
pub fn corpus_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("../shared/corpus/ghc-events");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("corpus missing at {} and CI is set", dir.display());
    }
    eprintln!("note: corpus missing at {}, skipping", dir.display());
    None
}

#[allow(unused_imports)]
pub use testkit::corpus_logs;

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
