//! The figures exported per session, read from the analysis model under the
//! source's lock (cheap: totals and histograms, no event is walked again)
//! and then encoded without it, for `/metrics` and OTLP alike.

use elstream_analysis::{HeapSample, LogHist, SparkCounters, ThreadCounts};

use crate::source::{Source, SourceState};

/// GC pause bounds (seconds): 10 µs .. 10 s.
pub const PAUSE_BOUNDS: &[f64] = &[
    1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];
/// User span bounds (seconds): 100 µs .. 60 s.
pub const SPAN_BOUNDS: &[f64] = &[
    1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A fixed-bound histogram in seconds: per-bucket counts (not cumulative),
/// the last bucket `+Inf`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hist {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl Hist {
    pub fn from_log(h: &LogHist, bounds: &[f64]) -> Hist {
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0;
        for &b in bounds {
            let c = h.count_le((b * 1e9).round() as u64);
            buckets.push((b, c - below));
            below = c;
        }
        buckets.push((f64::MAX, h.count - below));
        Hist {
            sum: h.sum as f64 / 1e9,
            count: h.count,
            buckets,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CapFig {
    pub cap: u16,
    pub mutator_s: f64,
    pub gc_s: f64,
    pub sparks: Option<SparkCounters>,
}

#[derive(Clone, Debug, Default)]
pub struct SessionFig {
    pub number: u64,
    pub started: f64,
    pub ended: bool,
    pub failed: bool,
    pub bytes: u64,
    pub blocks: u64,
    pub events: u64,
    pub drop_notices: u64,
    pub dropped_blocks: u64,
    pub dropped_bytes: u64,
    /// Stream time (seconds).
    pub time_s: f64,
    pub pauses: Hist,
    /// (generation, GCs, bytes copied)
    pub generations: Vec<(u16, u64, u64)>,
    pub syncs: u64,
    pub sync_ns: u64,
    pub heap: HeapSample,
    pub max_heap: Option<u64>,
    pub alloc_rate: f64,
    pub caps: Vec<CapFig>,
    pub threads: ThreadCounts,
    pub spans: Vec<(String, Hist)>,
    pub user_messages: u64,
    pub markers: u64,
}

/// One source's row.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub name: String,
    pub connected: bool,
    pub sessions: u64,
    pub connects: u64,
    pub errors: u64,
    pub garbage: u64,
    pub bytes: u64,
    pub last_data: f64,
    pub session: Option<SessionFig>,
}

/// Allocation rate over the last second or so of stream time, from the
/// heap samples (HeapAllocated is posted per GC).
/// Bytes allocated per second over about the last second: each capability
/// posts its own running total (HeapAllocated), so the rate is the sum of
/// theirs.
fn alloc_rate(series: &[elstream_analysis::Points<u64>]) -> f64 {
    series
        .iter()
        .filter_map(|p| {
            let points = &p.items;
            let &(t1, last) = points.last()?;
            let from = t1.saturating_sub(1_000_000_000);
            let i = points.partition_point(|p| p.0 < from).min(points.len() - 1);
            let (t0, first) = points[i];
            (t1 > t0 && last >= first).then(|| (last - first) as f64 / ((t1 - t0) as f64 / 1e9))
        })
        .sum()
}

pub fn session_figures(s: &crate::source::Session) -> SessionFig {
    let a = &s.analysis;
    let t = a.totals();
    let h = &t.health;
    SessionFig {
        number: s.number,
        started: s.started,
        ended: h.data_end,
        failed: h.error.is_some(),
        bytes: s.bytes,
        blocks: h.blocks,
        events: h.events,
        drop_notices: h.drop_notices,
        dropped_blocks: h.dropped_blocks,
        dropped_bytes: h.dropped_bytes,
        time_s: h.time as f64 / 1e9,
        pauses: Hist::from_log(&a.pause_hist, PAUSE_BOUNDS),
        generations: t
            .generations
            .iter()
            .map(|(g, s, _)| (*g, s.gcs, s.copied))
            .collect(),
        syncs: t.syncs,
        sync_ns: t.sync_ns,
        heap: t.heap,
        max_heap: t.max_heap,
        alloc_rate: alloc_rate(&a.alloc_series),
        caps: t
            .caps
            .iter()
            .map(|c| CapFig {
                cap: c.cap,
                mutator_s: c.running_ns as f64 / 1e9,
                gc_s: c.gc_ns as f64 / 1e9,
                sparks: c.sparks,
            })
            .collect(),
        threads: t.threads,
        spans: a
            .span_names
            .iter()
            .zip(&a.span_hist)
            .map(|(n, h)| (n.clone(), Hist::from_log(h, SPAN_BOUNDS)))
            .collect(),
        user_messages: t.user_messages,
        markers: t.markers,
    }
}

pub fn figures(src: &Source) -> Figures {
    let st: std::sync::MutexGuard<'_, SourceState> = src.lock();
    Figures {
        name: src.name.clone(),
        connected: st.connected,
        sessions: st.sessions,
        connects: st.connects,
        errors: st.errors,
        garbage: st.garbage,
        bytes: st.bytes,
        last_data: st.last_data,
        session: st.session.as_ref().map(session_figures),
    }
}
