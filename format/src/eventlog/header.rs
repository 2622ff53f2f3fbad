//! The eventlog header: `hdrb hetb (etb .. ete)* hete hdre datb`.

use super::FormatError;

pub(crate) const HEADER_BEGIN: [u8; 4] = *b"hdrb";
const HEADER_END: [u8; 4] = *b"hdre";
const DATA_BEGIN: [u8; 4] = *b"datb";
const HET_BEGIN: [u8; 4] = *b"hetb";
const HET_END: [u8; 4] = *b"hete";
const ET_BEGIN: [u8; 4] = *b"etb\0";
const ET_END: [u8; 4] = *b"ete\0";

/// A header larger than this is taken for garbage (9.0.2's is about 4 KiB).
pub const MAX_HEADER_SIZE: usize = 1 << 20;

/// `size` value in the header's type table meaning "variable size".
const VARIABLE_SIZE_TAG: u16 = 0xffff;

// Packed size table entries (private to keep the lookup one load).
pub(crate) const SIZE_VARIABLE: u32 = 0x1_0000;
pub(crate) const SIZE_UNKNOWN: u32 = 0x2_0000;

/// One entry of the header's event type table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTypeInfo {
    pub num: u16,
    /// Payload size in bytes; `None` for variable-size events (u16 size prefix).
    pub size: Option<u16>,
    pub desc: String,
}

/// A parsed header; `raw` is kept so it can be replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub types: Vec<EventTypeInfo>,
    /// `hdrb` .. `datb` inclusive.
    pub raw: Vec<u8>,
    /// Dense table indexed by type number, for the hot parse loop.
    sizes: Vec<u32>,
}

impl Header {
    /// Parses a complete header (`hdrb` .. `datb`); trailing bytes are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Header, FormatError> {
        let mut p = HeaderParser::default();
        match p.step(bytes, 0)? {
            Some(h) => Ok(h),
            None => Err(FormatError::Truncated {
                offset: bytes.len() as u64,
                what: "header",
            }),
        }
    }

    /// Builds a header (and its raw bytes) from a type table.
    pub fn from_types(types: &[EventTypeInfo]) -> Header {
        let raw = encode_header(types);
        Header::new(types.to_vec(), raw)
    }

    fn new(types: Vec<EventTypeInfo>, raw: Vec<u8>) -> Header {
        let max = types.iter().map(|t| t.num as usize + 1).max().unwrap_or(0);
        let mut sizes = vec![SIZE_UNKNOWN; max];
        for t in &types {
            sizes[t.num as usize] = match t.size {
                Some(s) => s as u32,
                None => SIZE_VARIABLE,
            };
        }
        Header { types, raw, sizes }
    }

    /// `None`: the type is not in the table; `Some(None)`: variable size.
    pub fn payload_size(&self, ty: u16) -> Option<Option<u16>> {
        match self.size_code(ty) {
            SIZE_UNKNOWN => None,
            SIZE_VARIABLE => Some(None),
            s => Some(Some(s as u16)),
        }
    }

    #[inline(always)]
    pub(crate) fn size_code(&self, ty: u16) -> u32 {
        match self.sizes.get(ty as usize) {
            Some(&s) => s,
            None => SIZE_UNKNOWN,
        }
    }

    /// The type table entry for `ty`, if any.
    pub fn type_info(&self, ty: u16) -> Option<&EventTypeInfo> {
        self.types.iter().find(|t| t.num == ty)
    }
}

/// Encodes a header exactly as 9.0.2's `postHeaderEvents` does.
pub fn encode_header(types: &[EventTypeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + types.len() * 48);
    out.extend_from_slice(&HEADER_BEGIN);
    out.extend_from_slice(&HET_BEGIN);
    for t in types {
        out.extend_from_slice(&ET_BEGIN);
        out.extend_from_slice(&t.num.to_be_bytes());
        out.extend_from_slice(&t.size.unwrap_or(VARIABLE_SIZE_TAG).to_be_bytes());
        out.extend_from_slice(&(t.desc.len() as u32).to_be_bytes());
        out.extend_from_slice(t.desc.as_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // no extensions
        out.extend_from_slice(&ET_END);
    }
    out.extend_from_slice(&HET_END);
    out.extend_from_slice(&HEADER_END);
    out.extend_from_slice(&DATA_BEGIN);
    out
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    #[default]
    Begin,
    Types,
    HeaderEnd,
    DataBegin,
}

/// Resumable header parser, so bytes arriving one at a time cost O(n) total.
#[derive(Default, Debug)]
pub(crate) struct HeaderParser {
    stage: Stage,
    off: usize,
    types: Vec<EventTypeInfo>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl HeaderParser {
    /// Parses as far as `buf` (starting at `hdrb`) allows. `base` is the
    /// stream offset of `buf[0]`, for error messages.
    pub(crate) fn step(&mut self, buf: &[u8], base: u64) -> Result<Option<Header>, FormatError> {
        let bad = |off: usize, what: &'static str| FormatError::BadHeader {
            offset: base + off as u64,
            what,
        };
        loop {
            if self.off > MAX_HEADER_SIZE {
                return Err(FormatError::HeaderTooLarge {
                    offset: base,
                    limit: MAX_HEADER_SIZE,
                });
            }
            let rest = &buf[self.off.min(buf.len())..];
            if rest.len() < 4 {
                return Ok(None);
            }
            let tag: [u8; 4] = rest[..4].try_into().unwrap();
            match self.stage {
                Stage::Begin => {
                    if tag != HEADER_BEGIN {
                        return Err(FormatError::NotEventlog {
                            offset: base + self.off as u64,
                        });
                    }
                    if rest.len() < 8 {
                        return Ok(None);
                    }
                    if rest[4..8] != HET_BEGIN {
                        return Err(bad(self.off + 4, "expected 'hetb'"));
                    }
                    self.off += 8;
                    self.stage = Stage::Types;
                }
                Stage::Types => {
                    if tag == HET_END {
                        self.off += 4;
                        self.stage = Stage::HeaderEnd;
                        continue;
                    }
                    if tag != ET_BEGIN {
                        return Err(bad(self.off, "expected 'etb' or 'hete'"));
                    }
                    // etb, num u16, size u16, desc len u32
                    if rest.len() < 12 {
                        return Ok(None);
                    }
                    let num = be16(rest, 4);
                    let size = be16(rest, 6);
                    let dlen = be32(rest, 8) as usize;
                    if self.off + 12 + dlen > MAX_HEADER_SIZE {
                        return Err(FormatError::HeaderTooLarge {
                            offset: base,
                            limit: MAX_HEADER_SIZE,
                        });
                    }
                    let ext_at = 12 + dlen;
                    if rest.len() < ext_at + 4 {
                        return Ok(None);
                    }
                    let elen = be32(rest, ext_at) as usize;
                    if self.off + ext_at + 8 + elen > MAX_HEADER_SIZE {
                        return Err(FormatError::HeaderTooLarge {
                            offset: base,
                            limit: MAX_HEADER_SIZE,
                        });
                    }
                    let end_at = ext_at + 4 + elen;
                    if rest.len() < end_at + 4 {
                        return Ok(None);
                    }
                    if rest[end_at..end_at + 4] != ET_END {
                        return Err(bad(self.off + end_at, "expected 'ete'"));
                    }
                    if num == 0xffff {
                        return Err(bad(self.off + 4, "event type 0xffff is the data end"));
                    }
                    if self.types.iter().any(|t| t.num == num) {
                        return Err(bad(self.off + 4, "duplicate event type"));
                    }
                    let desc = String::from_utf8_lossy(&rest[12..12 + dlen]).into_owned();
                    self.types.push(EventTypeInfo {
                        num,
                        size: (size != VARIABLE_SIZE_TAG).then_some(size),
                        desc,
                    });
                    self.off += end_at + 4;
                }
                Stage::HeaderEnd => {
                    if tag != HEADER_END {
                        return Err(bad(self.off, "expected 'hdre'"));
                    }
                    self.off += 4;
                    self.stage = Stage::DataBegin;
                }
                Stage::DataBegin => {
                    if tag != DATA_BEGIN {
                        return Err(bad(self.off, "expected 'datb'"));
                    }
                    self.off += 4;
                    let raw = buf[..self.off].to_vec();
                    let types = std::mem::take(&mut self.types);
                    *self = HeaderParser::default();
                    return Ok(Some(Header::new(types, raw)));
                }
            }
        }
    }

    /// Bytes of the header consumed so far.
    pub(crate) fn consumed(&self) -> usize {
        self.off
    }
}
