//! The control protocol: frames carrying one text command or one reply.
//!
//! ```text
//! frame   = magic "ELSC" | version u8 (1) | kind u8 | status u16 | length u32 | payload
//! kind    = 1 request, 2 reply          (all integers big-endian)
//! status  = 0 in requests; in replies see [`Status`]
//! payload = UTF-8 text, at most MAX_PAYLOAD bytes
//! ```
//! A request's payload is a command line ([`Command::parse`]); a reply's is a
//! message, or `key=value` lines for `status`. A frame that is not well formed
//! is a [`ControlError`]: the peer closes the connection. A well-formed frame
//! with a bad command gets a `BadRequest` reply and the connection stays.

use std::time::Duration;

use crate::eventlog::{Class, ClassSet};

pub const MAGIC: [u8; 4] = *b"ELSC";
pub const VERSION: u8 = 1;
pub const FRAME_HEADER: usize = 12;
pub const MAX_PAYLOAD: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request = 1,
    Reply = 2,
}

/// Reply status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// Unknown command or bad arguments.
    BadRequest = 1,
    /// This program/link cannot do it (the message says why).
    Unavailable = 2,
    /// It was tried and failed.
    Failed = 3,
    /// A token is required and was missing or wrong.
    Unauthorized = 4,
}

impl Status {
    fn from_u16(v: u16) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::BadRequest,
            2 => Status::Unavailable,
            3 => Status::Failed,
            4 => Status::Unauthorized,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlFrame {
    pub kind: Kind,
    pub status: Status,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("not an elstream control frame (bad magic)")]
    BadMagic,
    #[error("control protocol version {0} is not supported (this side speaks {VERSION})")]
    BadVersion(u8),
    #[error("bad frame kind {0}")]
    BadKind(u8),
    #[error("bad reply status {0}")]
    BadStatus(u16),
    #[error("control frame of {0} bytes is larger than {MAX_PAYLOAD}")]
    TooLarge(u32),
    #[error("control frame payload is not UTF-8")]
    NotUtf8,
}

/// Encodes one frame.
pub fn encode(kind: Kind, status: Status, text: &str) -> Vec<u8> {
    let text = &text.as_bytes()[..text.len().min(MAX_PAYLOAD)];
    let mut out = Vec::with_capacity(FRAME_HEADER + text.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(status as u16).to_be_bytes());
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text);
    out
}

pub fn request(command: &str) -> Vec<u8> {
    encode(Kind::Request, Status::Ok, command)
}

pub fn reply(status: Status, text: &str) -> Vec<u8> {
    encode(Kind::Reply, status, text)
}

/// Incremental decoder; memory is bounded by one frame.
#[derive(Default)]
pub struct ControlDecoder {
    buf: Vec<u8>,
    failed: Option<ControlError>,
}

impl ControlDecoder {
    pub fn new() -> ControlDecoder {
        ControlDecoder::default()
    }

    /// Adds bytes; checks the header as soon as it is there, so an oversized
    /// or foreign frame is refused before its payload is buffered.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    pub fn next_frame(&mut self) -> Result<Option<ControlFrame>, ControlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.decode();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        r
    }

    fn decode(&mut self) -> Result<Option<ControlFrame>, ControlError> {
        let have = self.buf.len().min(4);
        if self.buf[..have] != MAGIC[..have] {
            return Err(ControlError::BadMagic);
        }
        if self.buf.len() < FRAME_HEADER {
            return Ok(None);
        }
        let b = &self.buf;
        if b[4] != VERSION {
            return Err(ControlError::BadVersion(b[4]));
        }
        let kind = match b[5] {
            1 => Kind::Request,
            2 => Kind::Reply,
            k => return Err(ControlError::BadKind(k)),
        };
        let raw_status = u16::from_be_bytes([b[6], b[7]]);
        let status = Status::from_u16(raw_status).ok_or(ControlError::BadStatus(raw_status))?;
        let len = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        if len as usize > MAX_PAYLOAD {
            return Err(ControlError::TooLarge(len));
        }
        let end = FRAME_HEADER + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.buf[FRAME_HEADER..end])
            .map_err(|_| ControlError::NotUtf8)?
            .to_owned();
        self.buf.drain(..end);
        Ok(Some(ControlFrame { kind, status, text }))
    }
}

/// How a `classes` command changes the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassChange {
    Set(ClassSet),
    /// Classes to add, classes to remove.
    Edit(ClassSet, ClassSet),
}

impl ClassChange {
    pub fn apply(self, current: ClassSet) -> ClassSet {
        match self {
            ClassChange::Set(s) => s,
            ClassChange::Edit(add, remove) => {
                let mut s = current;
                for c in Class::SWITCHABLE {
                    if add.contains(c) {
                        s.insert(c);
                    }
                    if remove.contains(c) {
                        s.remove(c);
                    }
                }
                s
            }
        }
    }
}

/// Every command of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Status,
    On,
    Off,
    Classes(ClassChange),
    Sync,
    Flush,
    /// `None` switches the periodic flush off.
    FlushInterval(Option<Duration>),
    Snapshot(String),
    RingSize(usize),
    /// A user message replayed to every late joiner.
    Sticky(String),
    /// Ask the RTS for a heap census now (a program run with heap profiling).
    HeapCensus,
    /// Start (`true`) or stop the heap profiler's periodic samples.
    HeapProfile(bool),
    Auth(String),
}

pub const COMMANDS: &str = "status, on, off, classes [=|+|-]LETTERS, sync, flush, \
     flush-interval DURATION|off, snapshot NAME, ring-size SIZE, sticky TEXT, heap-census, \
     heap-profile on|off, auth TOKEN";

impl Command {
    /// Parses a command line; the error is the text of a `BadRequest` reply.
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let no_args = |c: Command| {
            if rest.is_empty() {
                Ok(c)
            } else {
                Err(format!("`{word}` takes no arguments"))
            }
        };
        match word {
            "status" => no_args(Command::Status),
            "on" => no_args(Command::On),
            "off" => no_args(Command::Off),
            "sync" => no_args(Command::Sync),
            "flush" => no_args(Command::Flush),
            "classes" => parse_class_change(rest).map(Command::Classes),
            "flush-interval" => match rest {
                "off" | "0" => Ok(Command::FlushInterval(None)),
                _ => parse_duration(rest)
                    .filter(|d| *d >= Duration::from_millis(1))
                    .map(|d| Command::FlushInterval(Some(d)))
                    .ok_or_else(|| {
                        format!(
                            "flush-interval: `{rest}` is not a duration such as 100ms, 1s or off"
                        )
                    }),
            },
            "snapshot" => {
                if rest.is_empty() {
                    Err("snapshot: needs a file name".into())
                } else {
                    Ok(Command::Snapshot(rest.to_owned()))
                }
            }
            "ring-size" => parse_size(rest)
                .map(Command::RingSize)
                .ok_or_else(|| format!("ring-size: `{rest}` is not a size such as 64M")),
            "sticky" => Ok(Command::Sticky(rest.to_owned())),
            "heap-census" => no_args(Command::HeapCensus),
            "heap-profile" => match rest {
                "on" => Ok(Command::HeapProfile(true)),
                "off" => Ok(Command::HeapProfile(false)),
                _ => Err(format!("heap-profile: `{rest}` is not on or off")),
            },
            "auth" => Ok(Command::Auth(rest.to_owned())),
            "" => Err(format!("empty command (commands: {COMMANDS})")),
            _ => Err(format!("unknown command `{word}` (commands: {COMMANDS})")),
        }
    }
}

/// `sgu` or `=sgu` sets; `+n-s` edits.
pub fn parse_class_change(arg: &str) -> Result<ClassChange, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err(
            "classes: needs letters among s g n p f u, e.g. `classes gu` or `classes +n-s`".into(),
        );
    }
    if !arg.starts_with(['+', '-']) {
        let letters = arg.strip_prefix('=').unwrap_or(arg);
        return ClassSet::parse(letters)
            .map(ClassChange::Set)
            .map_err(|e| format!("classes: {e}"));
    }
    let (mut add, mut remove) = (ClassSet::EMPTY, ClassSet::EMPTY);
    let mut adding = true;
    for c in arg.chars() {
        match c {
            '+' => adding = true,
            '-' => adding = false,
            _ => {
                let class = Class::from_letter(c)
                    .filter(|c| *c != Class::Always)
                    .ok_or_else(|| format!("classes: `{c}` is not one of s g n p f u"))?;
                if adding {
                    add.insert(class)
                } else {
                    remove.insert(class)
                }
            }
        }
    }
    Ok(ClassChange::Edit(add, remove))
}

/// A size in bytes, as people type it: `65536`, `64K`, `1.5M`, `16MiB`,
/// `1 GB`, `512k` (powers of 1024 whatever the spelling; a fraction is rounded
/// down to whole bytes). The one size syntax of the CLI, the shim's config and
/// the control protocol.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return usize::try_from(n.checked_mul(1u64 << shift)?).ok();
    }
    let v = num.parse::<f64>().ok()? * (1u64 << shift) as f64;
    (v.is_finite() && v < usize::MAX as f64).then_some(v as usize)
}

/// A duration, as people type it: `500ms`, `2s`, `1.5s`, `1m`, `1h`, `1d`,
/// `1h30m`, `250us` (a unit is required: a bare `2` is refused). The one
/// duration syntax of the CLI, the shim's config and the control protocol.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(n);
        let u = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(u);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return None;
        }
        let secs = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        total += num.parse::<f64>().ok()? * secs;
        rest = next.trim_start();
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// Formats a size the way [`parse_size`] reads it (`16M`, `1536K`, `100`).
pub fn format_size(n: usize) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_chunks() {
        let mut bytes = request("classes +n-s");
        bytes.extend(reply(Status::BadRequest, "nope ✓"));
        for chunk in 1..bytes.len() {
            let mut d = ControlDecoder::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].text, "classes +n-s");
            assert_eq!(
                (got[1].kind, got[1].status),
                (Kind::Reply, Status::BadRequest)
            );
            assert_eq!(got[1].text, "nope ✓");
        }
    }

    #[test]
    fn bad_frames_are_errors_that_stick() {
        let mut d = ControlDecoder::new();
        d.push(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.next_frame(), Err(ControlError::BadMagic));
        d.push(&request("status"));
        assert_eq!(d.next_frame(), Err(ControlError::BadMagic));

        let mut big = request("x");
        big[8..12].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        let mut d = ControlDecoder::new();
        d.push(&big[..FRAME_HEADER]);
        assert_eq!(
            d.next_frame(),
            Err(ControlError::TooLarge(MAX_PAYLOAD as u32 + 1))
        );

        let mut v2 = request("x");
        v2[4] = 2;
        let mut d = ControlDecoder::new();
        d.push(&v2);
        assert_eq!(d.next_frame(), Err(ControlError::BadVersion(2)));

        let mut bad = request("ab");
        bad[FRAME_HEADER] = 0xff;
        let mut d = ControlDecoder::new();
        d.push(&bad);
        assert_eq!(d.next_frame(), Err(ControlError::NotUtf8));
    }

    #[test]
    fn sizes_and_durations_as_people_type_them() {
        for (text, want) in [
            ("65536", 65536),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("16M", 16 << 20),
            ("16MiB", 16 << 20),
            ("16 MiB", 16 << 20),
            ("16MB", 16 << 20),
            ("1.5M", 3 << 19),
            ("1G", 1 << 30),
            ("0", 0),
            ("100B", 100),
        ] {
            assert_eq!(parse_size(text), Some(want), "{text}");
            assert_eq!(parse_size(&format_size(want)), Some(want), "{text}");
        }
        for bad in ["", "M", "x", "1.5.5M", "-1M", "16Q", ".5M", "1.M", "1e3"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        let d = Duration::from_secs;
        for (text, want) in [
            ("2s", d(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("1m", d(60)),
            ("1min", d(60)),
            ("1h", d(3600)),
            ("1h30m", d(5400)),
            ("1m 30s", d(90)),
            ("1d", d(86400)),
            ("0s", d(0)),
        ] {
            assert_eq!(parse_duration(text), Some(want), "{text}");
        }
        for bad in ["", "2", "s", "-1s", "1x", "1.s", "1e9s", "h1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn commands_parse_or_explain() {
        assert_eq!(Command::parse(" status "), Ok(Command::Status));
        assert_eq!(
            Command::parse("flush-interval 100ms"),
            Ok(Command::FlushInterval(Some(Duration::from_millis(100))))
        );
        assert_eq!(
            Command::parse("flush-interval off"),
            Ok(Command::FlushInterval(None))
        );
        assert_eq!(
            Command::parse("ring-size 8M"),
            Ok(Command::RingSize(8 << 20))
        );
        assert_eq!(
            Command::parse("snapshot a.eventlog"),
            Ok(Command::Snapshot("a.eventlog".into()))
        );
        let Ok(Command::Classes(change)) = Command::parse("classes +n-s") else {
            panic!()
        };
        assert_eq!(change.apply(ClassSet::DEFAULT).to_string(), "gnpu");
        let Ok(Command::Classes(change)) = Command::parse("classes gu") else {
            panic!()
        };
        assert_eq!(change.apply(ClassSet::DEFAULT).to_string(), "gu");
        for (bad, needle) in [
            ("", "empty"),
            ("dance", "unknown command `dance`"),
            ("on now", "no arguments"),
            ("classes", "needs letters"),
            ("classes +x", "`x`"),
            ("classes q", "q"),
            ("flush-interval soon", "duration"),
            ("ring-size big", "size"),
            ("snapshot", "file name"),
        ] {
            let e = Command::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
