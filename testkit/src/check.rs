//! Judging an eventlog with ghc-events (through
//! `testkit/haskell/EventlogCheck.hs`): counts, messages, how it ended, the
//! event sequence.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::build::checker;

/// How the byte stream ended, by the checker's own walk over event sizes
/// (ghc-events itself neither reports the data end nor minds a cut-off event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The data end marker was reached, followed by this many more bytes.
    DataEnd { trailing: u64 },
    /// The input stopped without a data end; `partial` bytes of an incomplete
    /// event were left (0 = it stopped between two events).
    Missing { partial: u64 },
    /// An event type that the header does not declare, at this offset from the
    /// first byte after `datb`.
    BadType { offset: u64, ty: u16 },
    /// No framing line (header unreadable).
    Unknown,
}

/// What ghc-events made of an eventlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The header was unreadable, or ghc-events threw while decoding.
    pub error: Option<String>,
    /// `readEventLog`'s `Maybe String`: a decoding error that cut the events short.
    pub tail_error: Option<String>,
    /// Events ghc-events decoded (block markers not included: ghc-events 0.17
    /// consumes them).
    pub events: u64,
    /// Events per GHC event type number (65535: constructor without a known number).
    pub per_type: BTreeMap<u16, u64>,
    /// Events per capability (-1: outside any capability's block).
    pub per_cap: BTreeMap<i32, u64>,
    /// The header's event types and sizes (`None` = variable size).
    pub event_types: BTreeMap<u16, Option<u16>>,
    /// Every UserMessage text, in file order.
    pub user_messages: Vec<String>,
    /// Every UserMarker text, in file order.
    pub markers: Vec<String>,
    /// Events whose timestamp is below the previous one on the same capability.
    pub backwards: u64,
    /// Smallest and largest timestamp.
    pub time_range: Option<(u64, u64)>,
    /// Events found by the checker's framing walk, block markers included.
    pub frames: u64,
    /// Block markers (type 18) found by the framing walk.
    pub blocks: u64,
    /// How the stream ended.
    pub end: End,
}

impl Check {
    /// Count of one event type.
    pub fn count(&self, ty: u16) -> u64 {
        self.per_type.get(&ty).copied().unwrap_or(0)
    }

    /// User messages starting with `prefix`.
    pub fn user_count(&self, prefix: &str) -> u64 {
        self.user_messages
            .iter()
            .filter(|m| m.starts_with(prefix))
            .count() as u64
    }

    /// Panics unless this is a whole, clean eventlog: readable header, every
    /// event decoded, the data end as the very last bytes, and the framing
    /// walk agreeing with ghc-events.
    pub fn assert_ok(&self) -> &Check {
        self.assert_prefix_ok();
        assert_eq!(
            self.end,
            End::DataEnd { trailing: 0 },
            "eventlog does not end with the data end marker: {self:#?}"
        );
        self
    }

    /// Like [`assert_ok`](Self::assert_ok) but the data end may be missing
    /// (a stream cut off between two events, e.g. a consumer that left early).
    pub fn assert_prefix_ok(&self) -> &Check {
        assert!(self.error.is_none(), "eventlog error: {self:#?}");
        assert!(self.tail_error.is_none(), "eventlog tail error: {self:#?}");
        match self.end {
            End::DataEnd { trailing: 0 } | End::Missing { partial: 0 } => {}
            _ => panic!("eventlog ends badly: {self:#?}"),
        }
        assert_eq!(
            self.frames,
            self.events + self.blocks,
            "framing walk and ghc-events disagree: {self:#?}"
        );
        assert_eq!(
            self.per_type.get(&65535),
            None,
            "unmapped events: {self:#?}"
        );
        self
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn num<T: std::str::FromStr>(field: Option<&str>, line: &str) -> T {
    field
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("bad checker output line {line:?}"))
}

/// Parses the checker's output (see EventlogCheck.hs for the format).
pub fn parse_check_output(out: &str) -> Check {
    let mut check = Check {
        error: None,
        tail_error: None,
        events: 0,
        per_type: BTreeMap::new(),
        per_cap: BTreeMap::new(),
        event_types: BTreeMap::new(),
        user_messages: Vec::new(),
        markers: Vec::new(),
        backwards: 0,
        time_range: None,
        frames: 0,
        blocks: 0,
        end: End::Unknown,
    };
    let mut ended = false;
    for line in out.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut f = rest.split(' ');
        match key {
            "etype" => {
                let ty = num(f.next(), line);
                let size: i32 = num(f.next(), line);
                check.event_types.insert(ty, u16::try_from(size).ok());
            }
            "user" => check.user_messages.push(unescape(rest)),
            "marker" => check.markers.push(unescape(rest)),
            "ev" => {}
            "events" => check.events = num(f.next(), line),
            "type" => {
                let ty = num(f.next(), line);
                check.per_type.insert(ty, num(f.next(), line));
            }
            "unmapped" => {}
            "cap" => {
                let cap = num(f.next(), line);
                check.per_cap.insert(cap, num(f.next(), line));
            }
            "backwards" => check.backwards = num(f.next(), line),
            "time" => check.time_range = Some((num(f.next(), line), num(f.next(), line))),
            "frames" => {
                check.frames = num(f.next(), line);
                check.blocks = num(f.next(), line);
            }
            "dataend" => {
                check.end = End::DataEnd {
                    trailing: num(f.next(), line),
                }
            }
            "noend" => {
                check.end = End::Missing {
                    partial: num(f.next(), line),
                }
            }
            "badtype" => {
                check.end = End::BadType {
                    offset: num(f.next(), line),
                    ty: num(f.next(), line),
                }
            }
            "error" => check.error = Some(unescape(rest)),
            "tail" => check.tail_error = Some(unescape(rest)),
            "end" => ended = true,
            _ => panic!("unknown checker output line {line:?}"),
        }
    }
    assert!(ended, "checker output incomplete (no `end` line)");
    check
}

fn run_checker(args: &[&OsStr], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new(checker());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn EventlogCheck");
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("checker stdin");
        let bytes = bytes.to_vec();
        // Write from another thread: the checker's output could fill its
        // stdout pipe before it has read all of our input.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out: Output = child.wait_with_output().expect("wait for EventlogCheck");
    if let Some(w) = writer {
        let _ = w.join();
    }
    if !out.status.success() {
        panic!(
            "EventlogCheck {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("checker output is UTF-8")
}

/// Judges an eventlog file with ghc-events.
pub fn check(path: &Path) -> Check {
    parse_check_output(&run_checker(&[path.as_os_str()], None))
}

/// Judges eventlog bytes held in memory (e.g. read from a socket).
pub fn check_bytes(bytes: &[u8]) -> Check {
    parse_check_output(&run_checker(&[OsStr::new("-")], Some(bytes)))
}

fn parse_sequence(out: &str) -> Vec<(u64, i32, u16)> {
    out.lines()
        .filter_map(|line| line.strip_prefix("ev "))
        .map(|rest| {
            let mut f = rest.split(' ');
            (
                num(f.next(), rest),
                num(f.next(), rest),
                num(f.next(), rest),
            )
        })
        .collect()
}

/// Every event as (time, capability or -1, type), in file order, as ghc-events
/// decodes them (block markers excluded).
pub fn event_sequence(path: &Path) -> Vec<(u64, i32, u16)> {
    parse_sequence(&run_checker(
        &[OsStr::new("--events"), path.as_os_str()],
        None,
    ))
}

/// [`event_sequence`] for bytes in memory.
pub fn event_sequence_bytes(bytes: &[u8]) -> Vec<(u64, i32, u16)> {
    parse_sequence(&run_checker(
        &[OsStr::new("--events"), OsStr::new("-")],
        Some(bytes),
    ))
}

/// Parses `key value` lines (the counts the example programs print at exit,
/// e.g. `user-events 1234`); other lines are ignored.
pub fn parse_counts(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}
