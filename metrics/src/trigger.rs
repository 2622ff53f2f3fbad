//! Triggers (collection rules): a condition on a session's figures, an
//! action (a snapshot of the shim's ring over its control socket, and/or a
//! command), a cooldown and a maximum count.
//!
//! ```text
//! trigger = rule *( ";" option )
//! rule    = "gc-pause>" DURATION        a GC pause (one capability's StartGC..EndGC) longer than this
//!         | "span:" NAME ">" DURATION   a finished user span NAME (START/STOP pair) longer than this
//!         | "heap-live>" SIZE           the live heap after a GC above this
//!         | "heap-size>" SIZE           the heap size above this
//!         | "drops>" N                  more than N blocks dropped upstream (in-band drop notices), new ones
//! option  = "cooldown=" DURATION        default 1m: at most one firing per source this often
//!         | "max=" N                    default 10: firings per source over the run
//!         | "snapshot=" ("on"|"off")    default on (unix: sources only): `snapshot NAME` to `<socket>.ctl`
//!         | "session=" NAME             only this source (default: every source)
//!         | "run=" COMMAND              run `sh -c COMMAND` (must be the last option: it takes the rest)
//! DURATION = 250ms | 2s | 1.5s | 1m      SIZE = 512M | 2GiB | 1048576
//! ```
//! The command gets ELSTREAM_TRIGGER, ELSTREAM_SESSION, ELSTREAM_DETAIL and
//! ELSTREAM_SNAPSHOT (the snapshot's path, when one was written). Actions run
//! on their own threads: a slow shim or command never holds up a reader.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elstream_format::control::{self, ControlDecoder, Status};

use crate::model::{Family, Kind};
use crate::source::Source;

#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    GcPause(Duration),
    Span(String, Duration),
    HeapLive(u64),
    HeapSize(u64),
    Drops(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The text as given, before the options (the `trigger` label).
    pub name: String,
    pub rule: Rule,
    pub cooldown: Duration,
    pub max: u64,
    pub snapshot: bool,
    pub session: Option<String>,
    pub run: Option<String>,
}

const HELP: &str = "expected gc-pause>DURATION, span:NAME>DURATION, heap-live>SIZE, \
    heap-size>SIZE or drops>N, then ;cooldown=DURATION ;max=N ;snapshot=on|off ;session=NAME ;run=COMMAND";

fn duration(v: &str, what: &str) -> Result<Duration, String> {
    control::parse_duration(v)
        .ok_or_else(|| format!("{what}: bad duration {v:?} (e.g. 50ms, 2s, 1m)"))
}

fn size(v: &str, what: &str) -> Result<u64, String> {
    control::parse_size(v)
        .map(|n| n as u64)
        .ok_or_else(|| format!("{what}: bad size {v:?} (e.g. 512M, 2GiB, 1048576)"))
}

impl std::str::FromStr for Spec {
    type Err = String;

    fn from_str(s: &str) -> Result<Spec, String> {
        let (rule_text, mut rest) = match s.split_once(';') {
            Some((r, o)) => (r.trim(), Some(o)),
            None => (s.trim(), None),
        };
        let err = |m: String| format!("trigger {s:?}: {m}");
        let (metric, value) = rule_text
            .split_once('>')
            .ok_or_else(|| err(format!("no `>` in {rule_text:?}; {HELP}")))?;
        let (metric, value) = (metric.trim(), value.trim());
        let rule = match metric {
            "gc-pause" => Rule::GcPause(duration(value, metric).map_err(err)?),
            "heap-live" => Rule::HeapLive(size(value, metric).map_err(err)?),
            "heap-size" => Rule::HeapSize(size(value, metric).map_err(err)?),
            "drops" => Rule::Drops(
                value
                    .parse()
                    .map_err(|_| err(format!("drops: bad count {value:?}")))?,
            ),
            m => match m.strip_prefix("span:") {
                Some(n) if !n.trim().is_empty() => {
                    Rule::Span(n.trim().to_string(), duration(value, metric).map_err(err)?)
                }
                _ => return Err(err(format!("unknown figure {m:?}; {HELP}"))),
            },
        };
        let mut spec = Spec {
            name: rule_text.to_string(),
            rule,
            cooldown: Duration::from_secs(60),
            max: 10,
            snapshot: true,
            session: None,
            run: None,
        };
        while let Some(r) = rest {
            let (opt, next) = if r.trim_start().starts_with("run=") {
                (r.trim_start(), None)
            } else {
                match r.split_once(';') {
                    Some((o, n)) => (o.trim(), Some(n)),
                    None => (r.trim(), None),
                }
            };
            rest = next;
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| err(format!("option {opt:?} is not key=value; {HELP}")))?;
            match k.trim() {
                "cooldown" => spec.cooldown = duration(v.trim(), "cooldown").map_err(err)?,
                "max" => {
                    spec.max = v
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("max: bad count {v:?}")))?
                }
                "snapshot" => {
                    spec.snapshot = match v.trim() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(err(format!("snapshot: expected on or off, got {v:?}"))),
                    }
                }
                "session" => spec.session = Some(v.trim().to_string()),
                "run" if !v.trim().is_empty() => spec.run = Some(v.to_string()),
                k => return Err(err(format!("unknown option {k:?}; {HELP}"))),
            }
        }
        Ok(spec)
    }
}

/// Per source: what the trigger already judged.
#[derive(Default)]
struct PerSource {
    session: u64,
    last: Option<Instant>,
    fired: u64,
    suppressed: u64,
    snapshots_ok: u64,
    snapshots_failed: u64,
    /// Exceedances already judged: (start, capability or span name id).
    seen: HashSet<(u64, u32)>,
    drops_at_fire: u64,
}

pub struct Trigger {
    pub spec: Spec,
    state: Mutex<HashMap<String, PerSource>>,
    /// Snapshot results land here from the action threads.
    outcomes: Arc<Mutex<Vec<(String, bool)>>>,
    seq: AtomicU64,
}

impl Trigger {
    pub fn new(spec: Spec) -> Trigger {
        Trigger {
            spec,
            state: Mutex::new(HashMap::new()),
            outcomes: Arc::default(),
            seq: AtomicU64::new(0),
        }
    }

    /// New exceedances in the source's current session (each judged once).
    fn exceedances(&self, src: &Source, ps: &mut PerSource) -> Vec<String> {
        let st = src.lock();
        let Some(s) = st.session.as_ref() else {
            return Vec::new();
        };
        if s.number != ps.session {
            ps.session = s.number;
            ps.seen.clear();
            ps.drops_at_fire = 0;
        }
        let a = &s.analysis;
        let mut out = Vec::new();
        match &self.spec.rule {
            Rule::GcPause(d) => {
                let d = d.as_nanos() as u64;
                if a.pause_hist.max > d {
                    for p in a.pauses.iter().filter(|p| p.end - p.start > d) {
                        if ps.seen.insert((p.start, p.cap as u32)) {
                            out.push(format!(
                                "GC pause of {:.1} ms on capability {} (StartGC at {} ns)",
                                (p.end - p.start) as f64 / 1e6,
                                p.cap,
                                p.start
                            ));
                        }
                    }
                }
            }
            Rule::Span(name, d) => {
                let d = d.as_nanos() as u64;
                if let Some(id) = a.span_names.iter().position(|n| n == name) {
                    if a.span_hist[id].max > d {
                        for sp in a
                            .spans
                            .iter()
                            .filter(|sp| sp.name == id as u32 && sp.end - sp.start > d)
                        {
                            if ps.seen.insert((sp.start, sp.cap as u32)) {
                                out.push(format!(
                                    "span {name} of {:.3} s at {:.3} s",
                                    (sp.end - sp.start) as f64 / 1e9,
                                    sp.start as f64 / 1e9
                                ));
                            }
                        }
                    }
                }
            }
            Rule::HeapLive(b) | Rule::HeapSize(b) => {
                let t = a.totals();
                let (what, v) = match self.spec.rule {
                    Rule::HeapLive(_) => ("live heap", t.heap.live),
                    _ => ("heap size", t.heap.size),
                };
                if v > *b {
                    out.push(format!("{what} {v} bytes"));
                }
            }
            Rule::Drops(n) => {
                let d = a.health.dropped_blocks;
                if d > *n && d > ps.drops_at_fire {
                    ps.drops_at_fire = d;
                    out.push(format!("{d} blocks dropped upstream"));
                }
            }
        }
        out
    }

    /// Judges the source after new data; fires at most once (cooldown, max).
    pub fn check(&self, src: &Source) {
        if self.spec.session.as_ref().is_some_and(|n| *n != src.name) {
            return;
        }
        let mut all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ps = all.entry(src.name.clone()).or_default();
        let new = self.exceedances(src, ps);
        if new.is_empty() {
            return;
        }
        let cooling = ps.last.is_some_and(|t| t.elapsed() < self.spec.cooldown);
        if cooling || ps.fired >= self.spec.max {
            ps.suppressed += new.len() as u64;
            return;
        }
        ps.suppressed += new.len() as u64 - 1;
        ps.fired += 1;
        ps.last = Some(Instant::now());
        let detail = new[0].clone();
        tracing::warn!("trigger {} fired on {}: {detail}", self.spec.name, src.name);
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let snap = (self.spec.snapshot)
            .then(|| src.control_path())
            .flatten()
            .map(|ctl| (ctl, snapshot_name(&src.name, &self.spec.name, n)));
        let (spec, name, outcomes) = (self.spec.clone(), src.name.clone(), self.outcomes.clone());
        std::thread::spawn(move || act(spec, name, detail, snap, outcomes));
    }

    fn collect_outcomes(&self) {
        let done: Vec<(String, bool)> =
            std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        let mut all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (src, ok) in done {
            let ps = all.entry(src).or_default();
            if ok {
                ps.snapshots_ok += 1;
            } else {
                ps.snapshots_failed += 1;
            }
        }
    }
}

/// `NAME` for `snapshot NAME`: a plain file name, unique per firing.
fn snapshot_name(source: &str, rule: &str, n: u64) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "trigger-{}-{}-{secs}-{n}.eventlog",
        clean(source),
        clean(rule)
    )
}

/// Sends one control command and reads its reply.
pub fn control(path: &std::path::Path, command: &str, timeout: Duration) -> Result<String, String> {
    let mut s =
        UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(&control::request(command))
        .map_err(|e| format!("send to {}: {e}", path.display()))?;
    let mut dec = ControlDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame().map_err(|e| e.to_string())? {
            return match f.status {
                Status::Ok => Ok(f.text),
                st => Err(format!("{st:?}: {}", f.text)),
            };
        }
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("reply from {}: {e}", path.display()))?;
        if n == 0 {
            return Err(format!("{} closed without a reply", path.display()));
        }
        dec.push(&buf[..n]);
    }
}

fn act(
    spec: Spec,
    source: String,
    detail: String,
    snap: Option<(std::path::PathBuf, String)>,
    outcomes: Arc<Mutex<Vec<(String, bool)>>>,
) {
    let mut path = None;
    if let Some((ctl, name)) = snap {
        match control(&ctl, &format!("snapshot {name}"), Duration::from_secs(60)) {
            Ok(reply) => {
                let p = reply
                    .strip_prefix("snapshot=")
                    .unwrap_or(&reply)
                    .to_string();
                // The shim creates it under the program's umask: an eventlog
                // holds arguments and environment, so keep it to its owner.
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
                tracing::warn!("trigger {}: snapshot {p}", spec.name);
                path = Some(p);
                outcomes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((source.clone(), true));
            }
            Err(e) => {
                tracing::warn!("trigger {}: snapshot failed: {e}", spec.name);
                outcomes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((source.clone(), false));
            }
        }
    }
    if let Some(cmd) = &spec.run {
        let r = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("ELSTREAM_TRIGGER", &spec.name)
            .env("ELSTREAM_SESSION", &source)
            .env("ELSTREAM_DETAIL", &detail)
            .env("ELSTREAM_SNAPSHOT", path.as_deref().unwrap_or(""))
            .status();
        if let Err(e) = r {
            tracing::warn!("trigger {}: cannot run {cmd:?}: {e}", spec.name);
        }
    }
}

/// The triggers' families for `/metrics` and OTLP.
pub fn families(triggers: &[Arc<Trigger>], start: f64) -> Vec<Family> {
    let mut fired = Family::new(
        "elstream_trigger_fired",
        "Trigger firings (actions started), per source.",
        None,
        Kind::Counter,
    );
    let mut supp = Family::new(
        "elstream_trigger_suppressed",
        "Exceedances that did not fire: in the cooldown, past the maximum, or beyond the first in one check.",
        None,
        Kind::Counter,
    );
    let mut snaps = Family::new(
        "elstream_trigger_snapshots",
        "Snapshots a trigger asked for, by result.",
        None,
        Kind::Counter,
    );
    for t in triggers {
        t.collect_outcomes();
        let all = t.state.lock().unwrap_or_else(|p| p.into_inner());
        for (src, ps) in all.iter() {
            let l = || vec![("session", src.clone()), ("trigger", t.spec.name.clone())];
            fired.push(l(), ps.fired as f64, start);
            supp.push(l(), ps.suppressed as f64, start);
            for (r, v) in [("ok", ps.snapshots_ok), ("failed", ps.snapshots_failed)] {
                let mut lr = l();
                lr.push(("result", r.to_string()));
                snaps.push(lr, v as f64, start);
            }
        }
    }
    vec![fired, supp, snaps]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_options_parse() {
        let t: Spec = "gc-pause>50ms".parse().unwrap();
        assert_eq!(t.rule, Rule::GcPause(Duration::from_millis(50)));
        assert_eq!(
            (t.cooldown, t.max, t.snapshot),
            (Duration::from_secs(60), 10, true)
        );
        assert_eq!(
            "heap-live>2GiB".parse::<Spec>().unwrap().rule,
            Rule::HeapLive(2 << 30)
        );
        assert_eq!(
            "span:request>2s".parse::<Spec>().unwrap().rule,
            Rule::Span("request".into(), Duration::from_secs(2))
        );
        assert_eq!("drops>0".parse::<Spec>().unwrap().rule, Rule::Drops(0));
        let t: Spec = "gc-pause>1s;cooldown=5m;max=2;snapshot=off;session=api;run=echo a;b"
            .parse()
            .unwrap();
        assert_eq!(t.cooldown, Duration::from_secs(300));
        assert_eq!((t.max, t.snapshot), (2, false));
        assert_eq!(t.session.as_deref(), Some("api"));
        assert_eq!(t.run.as_deref(), Some("echo a;b"));
        assert_eq!(t.name, "gc-pause>1s");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Spec>().unwrap_err();
        assert!(e("gc-pause").contains("no `>`"));
        assert!(e("gc-pause>fast").contains("bad duration \"fast\""));
        assert!(e("heap-live>lots").contains("bad size"));
        assert!(e("cpu>1").contains("unknown figure \"cpu\""));
        assert!(e("span:>1s").contains("unknown figure"));
        assert!(e("drops>-1").contains("bad count"));
        assert!(e("drops>0;cooldown").contains("not key=value"));
        assert!(e("drops>0;colour=red").contains("unknown option \"colour\""));
        assert!(e("drops>0;snapshot=maybe").contains("expected on or off"));
    }
}
