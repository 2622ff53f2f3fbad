//! The exported metrics as one list of families (name, help, unit, kind,
//! labelled rows), built from the figures: `/metrics` and OTLP encode the
//! same list, so they carry the same names and values.

use crate::figures::{CapFig, Figures, Hist, SessionFig};

pub type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic, cumulative since the session (or the source) began.
    Counter,
    Gauge,
    /// Cumulative, in seconds.
    Histogram,
}

#[derive(Clone, Debug)]
pub enum Value {
    Num(f64),
    Hist(Hist),
}

#[derive(Clone, Debug)]
pub struct Family {
    /// The base name: Prometheus adds the unit (`_seconds`, `_bytes`) and
    /// `_total` for counters.
    pub name: &'static str,
    pub help: &'static str,
    /// `seconds` or `bytes`.
    pub unit: Option<&'static str>,
    pub kind: Kind,
    pub rows: Vec<(Labels, Value)>,
    /// Unix time (s) each row counts from, for OTLP's start time (0: unknown).
    pub start: Vec<f64>,
}

impl Family {
    pub fn new(
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        kind: Kind,
    ) -> Family {
        Family {
            name,
            help,
            unit,
            kind,
            rows: Vec::new(),
            start: Vec::new(),
        }
    }

    pub fn push(&mut self, l: Labels, v: f64, start: f64) {
        self.rows.push((l, Value::Num(v)));
        self.start.push(start);
    }
}

pub fn lab(s: &str) -> Labels {
    vec![("session", s.to_string())]
}

/// A per-session figure: (name, help, unit, kind, value).
type Per = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Kind,
    fn(&SessionFig) -> f64,
);

const SECONDS: Option<&str> = Some("seconds");
const BYTES: Option<&str> = Some("bytes");

const PER_SESSION: &[Per] = &[
    (
        "ghc_gc_syncs",
        "GC global syncs (all capabilities stopped for a GC).",
        None,
        Kind::Counter,
        |s| s.syncs as f64,
    ),
    (
        "ghc_gc_sync",
        "Time from each GC request to the requesting capability's StartGC: \
         stopping the other capabilities (GHC's GC sync time).",
        SECONDS,
        Kind::Counter,
        |s| s.sync_ns as f64 / 1e9,
    ),
    (
        "ghc_heap_size",
        "Heap size (HeapSize), latest.",
        BYTES,
        Kind::Gauge,
        |s| s.heap.size as f64,
    ),
    (
        "ghc_heap_live",
        "Live heap after the latest GC (HeapLive).",
        BYTES,
        Kind::Gauge,
        |s| s.heap.live as f64,
    ),
    (
        "ghc_heap_blocks",
        "Bytes in allocated blocks (BlocksSize), latest.",
        BYTES,
        Kind::Gauge,
        |s| s.heap.blocks as f64,
    ),
    (
        "ghc_heap_allocated",
        "Bytes allocated since the program started (HeapAllocated).",
        BYTES,
        Kind::Counter,
        |s| s.heap.allocated as f64,
    ),
    (
        "ghc_allocation_rate_bytes_per_second",
        "Allocation rate over the last second of program time (from HeapAllocated).",
        None,
        Kind::Gauge,
        |s| s.alloc_rate,
    ),
    (
        "ghc_threads_created",
        "Haskell threads created.",
        None,
        Kind::Counter,
        |s| s.threads.created as f64,
    ),
    (
        "ghc_threads_finished",
        "Haskell threads finished.",
        None,
        Kind::Counter,
        |s| s.threads.finished as f64,
    ),
    (
        "ghc_user_messages",
        "User messages (traceEvent; START/STOP span messages included).",
        None,
        Kind::Counter,
        |s| s.user_messages as f64,
    ),
    (
        "ghc_user_markers",
        "User markers (traceMarker).",
        None,
        Kind::Counter,
        |s| s.markers as f64,
    ),
    (
        "ghc_program_time",
        "The program's own clock: time of the latest event.",
        SECONDS,
        Kind::Gauge,
        |s| s.time_s,
    ),
    (
        "elstream_session_bytes",
        "Eventlog bytes of the current session.",
        None,
        Kind::Counter,
        |s| s.bytes as f64,
    ),
    (
        "elstream_session_blocks",
        "Eventlog blocks of the current session.",
        None,
        Kind::Counter,
        |s| s.blocks as f64,
    ),
    (
        "elstream_session_events",
        "Events of the current session.",
        None,
        Kind::Counter,
        |s| s.events as f64,
    ),
    (
        "elstream_session_drop_notices",
        "In-band drop notices from the shim or a proxy (a slow reader skipped blocks).",
        None,
        Kind::Counter,
        |s| s.drop_notices as f64,
    ),
    (
        "elstream_session_dropped_blocks",
        "Blocks dropped upstream, from the in-band drop notices.",
        None,
        Kind::Counter,
        |s| s.dropped_blocks as f64,
    ),
    (
        "elstream_session_dropped",
        "Bytes dropped upstream, from the in-band drop notices.",
        BYTES,
        Kind::Counter,
        |s| s.dropped_bytes as f64,
    ),
    (
        "elstream_session_ended",
        "1 once the session's data end arrived (the program stopped its eventlog).",
        None,
        Kind::Gauge,
        |s| s.ended as u8 as f64,
    ),
    (
        "elstream_session_failed",
        "1 once the session's bytes stopped decoding (garbage).",
        None,
        Kind::Gauge,
        |s| s.failed as u8 as f64,
    ),
    (
        "elstream_session_number",
        "Which session of its source this is (1 = first; a restart counts up).",
        None,
        Kind::Gauge,
        |s| s.number as f64,
    ),
    (
        "elstream_session_start_time",
        "Unix time the session's header arrived.",
        SECONDS,
        Kind::Gauge,
        |s| s.started,
    ),
];

/// A per-source figure.
type PerSource = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Kind,
    fn(&Figures) -> f64,
);

const PER_SOURCE: &[PerSource] = &[
    (
        "elstream_source_up",
        "1 while the source is connected.",
        None,
        Kind::Gauge,
        |f| f.connected as u8 as f64,
    ),
    (
        "elstream_source_sessions",
        "Sessions the source has had (a restart is a new one).",
        None,
        Kind::Counter,
        |f| f.sessions as f64,
    ),
    (
        "elstream_source_connects",
        "Connections made to the source.",
        None,
        Kind::Counter,
        |f| f.connects as f64,
    ),
    (
        "elstream_source_errors",
        "Failed connections, read errors and undecodable input.",
        None,
        Kind::Counter,
        |f| f.errors as f64,
    ),
    (
        "elstream_source_garbage",
        "Connections dropped because their bytes were not an eventlog.",
        None,
        Kind::Counter,
        |f| f.garbage as f64,
    ),
    (
        "elstream_source_bytes",
        "Bytes read from the source, over all sessions.",
        None,
        Kind::Counter,
        |f| f.bytes as f64,
    ),
    (
        "elstream_source_last_data",
        "Unix time bytes last arrived (0: never).",
        SECONDS,
        Kind::Gauge,
        |f| f.last_data,
    ),
];

fn with(n: &str, k: &'static str, v: String) -> Labels {
    vec![("session", n.to_string()), (k, v)]
}

/// Every family of the sources' figures (families with no rows left out).
pub fn families(figs: &[Figures], source_start: f64) -> Vec<Family> {
    let sessions: Vec<(&str, &SessionFig)> = figs
        .iter()
        .filter_map(|f| f.session.as_ref().map(|s| (f.name.as_str(), s)))
        .collect();
    let mut out = Vec::new();
    for (name, help, unit, kind, f) in PER_SESSION {
        let mut fam = Family::new(name, help, *unit, *kind);
        for (n, s) in &sessions {
            fam.push(lab(n), f(s), s.started);
        }
        out.push(fam);
    }
    let mut max = Family::new(
        "ghc_heap_max",
        "Maximum heap size (-M), when set.",
        BYTES,
        Kind::Gauge,
    );
    let mut pause = Family::new(
        "ghc_gc_pause",
        "GC pauses: StartGC..EndGC on each capability (a parallel GC counts once per capability).",
        SECONDS,
        Kind::Histogram,
    );
    let mut gcs = Family::new(
        "ghc_gc",
        "GCs by generation collected (GCStatsGHC events).",
        None,
        Kind::Counter,
    );
    let mut copied = Family::new(
        "ghc_gc_copied",
        "Bytes copied by GCs, by generation.",
        BYTES,
        Kind::Counter,
    );
    let mut mutator = Family::new(
        "ghc_capability_mutator",
        "Seconds each capability ran Haskell code (rate() = utilisation).",
        SECONDS,
        Kind::Counter,
    );
    let mut gc_s = Family::new(
        "ghc_capability_gc",
        "Seconds each capability spent in GC.",
        SECONDS,
        Kind::Counter,
    );
    let mut sparks = Family::new(
        "ghc_sparks",
        "Sparks by outcome, per capability (SparkCounters, -lp).",
        None,
        Kind::Counter,
    );
    let mut pool = Family::new(
        "ghc_spark_pool",
        "Sparks in each capability's pool.",
        None,
        Kind::Gauge,
    );
    let mut threads = Family::new(
        "ghc_threads",
        "Haskell threads by state.",
        None,
        Kind::Gauge,
    );
    let mut spans = Family::new(
        "ghc_span",
        "User spans (traceEvent \"START name\" .. \"STOP name\"), by name; names past the top N are folded into `other`.",
        SECONDS,
        Kind::Histogram,
    );
    for (n, s) in &sessions {
        let st = s.started;
        if let Some(m) = s.max_heap {
            max.push(lab(n), m as f64, st);
        }
        pause.rows.push((lab(n), Value::Hist(s.pauses.clone())));
        pause.start.push(st);
        for &(g, c, b) in &s.generations {
            gcs.push(with(n, "generation", g.to_string()), c as f64, st);
            copied.push(with(n, "generation", g.to_string()), b as f64, st);
        }
        for c in &s.caps {
            let CapFig {
                cap,
                mutator_s,
                gc_s: g,
                sparks: sp,
            } = c;
            mutator.push(with(n, "cap", cap.to_string()), *mutator_s, st);
            gc_s.push(with(n, "cap", cap.to_string()), *g, st);
            if let Some(k) = sp {
                for (kind, v) in [
                    ("created", k.created),
                    ("dud", k.dud),
                    ("overflowed", k.overflowed),
                    ("converted", k.converted),
                    ("gcd", k.gcd),
                    ("fizzled", k.fizzled),
                ] {
                    let mut l = with(n, "cap", cap.to_string());
                    l.push(("kind", kind.to_string()));
                    sparks.push(l, v as f64, st);
                }
                pool.push(with(n, "cap", cap.to_string()), k.remaining as f64, st);
            }
        }
        for (state, v) in [
            ("running", s.threads.running),
            ("runnable", s.threads.runnable),
            ("blocked", s.threads.blocked),
        ] {
            threads.push(with(n, "state", state.to_string()), v as f64, st);
        }
        for (sp, h) in &s.spans {
            spans
                .rows
                .push((with(n, "span", sp.clone()), Value::Hist(h.clone())));
            spans.start.push(st);
        }
    }
    out.extend([
        max, pause, gcs, copied, mutator, gc_s, sparks, pool, threads, spans,
    ]);
    for (name, help, unit, kind, f) in PER_SOURCE {
        let mut fam = Family::new(name, help, *unit, *kind);
        for x in figs {
            fam.push(lab(&x.name), f(x), source_start);
        }
        out.push(fam);
    }
    out.retain(|f| !f.rows.is_empty());
    out
}
