//! Snapshots of an [`Analysis`]: a time range at a number of columns, built
//! from the retained structures (cheap: no event is walked again), and the
//! run's totals (what the compare view and the metrics read).

use serde::Serialize;

use crate::*;

/// The run's figures over everything seen.
#[derive(Clone, Debug, Serialize)]
pub struct RunTotals {
    pub info: Info,
    pub health: Health,
    pub start: u64,
    pub end: u64,
    /// StartGC..EndGC pairs per capability.
    pub gc_pauses: Totals,
    /// GCs (GCStatsGHC events) per generation.
    pub generations: Vec<(u16, GenStats, Totals)>,
    pub gcs: u64,
    pub syncs: u64,
    /// GC requests to their StartGC: the time spent stopping the others.
    pub sync_ns: u64,
    pub heap: HeapSample,
    pub heap_peak: HeapSample,
    pub max_heap: Option<u64>,
    pub threads: ThreadCounts,
    pub spans: Vec<SpanTotals>,
    pub user_messages: u64,
    pub markers: u64,
    pub heap_prof_samples: u64,
    pub bands: Vec<String>,
    /// Per capability: running and GC seconds over the run (their ratio to
    /// the elapsed time is the utilisation).
    pub caps: Vec<CapTotals>,
    pub pause_distribution: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SpanTotals {
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapTotals {
    pub cap: u16,
    pub running_ns: u64,
    pub gc_ns: u64,
    pub sparks: Option<SparkCounters>,
    pub spark_events: [u64; 7],
}

/// Heap figures over a range, each its own (time, bytes) series.
#[derive(Clone, Debug, Serialize)]
pub struct HeapSeries {
    pub size: Vec<(u64, u64)>,
    pub live: Vec<(u64, u64)>,
    pub blocks: Vec<(u64, u64)>,
    /// Total allocated: the sum over capabilities of each one's latest figure.
    pub allocated: Vec<(u64, u64)>,
}

/// A time range at `cols` columns.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub from: u64,
    pub to: u64,
    pub cols: usize,
    /// Per capability, per column: fraction of the column running, in GC.
    pub activity: Vec<Vec<[f32; 2]>>,
    /// Individual pauses in range (at most `limit`), else none and `pause_cols`.
    pub pauses: Vec<Pause>,
    /// Per column: GC pauses started, their total ns.
    pub pause_cols: Vec<[u64; 2]>,
    pub heap: HeapSeries,
    pub threads: Vec<(u64, ThreadCounts)>,
    pub sparks: Vec<Vec<(u64, SparkCounters)>>,
    pub prof: Vec<(u64, ProfSample)>,
    pub spans: Vec<Span>,
    pub markers: Vec<Marker>,
    /// Whether the range reached further back than the retained detail
    /// (columns there come from the coarser buckets).
    pub coarse: bool,
}

/// Items overlapping `[a, b]` in a deque sorted by start, none longer than `longest`.
fn in_range<T>(
    q: &VecDeque<T>,
    a: u64,
    b: u64,
    longest: u64,
    key: impl Fn(&T) -> (u64, u64),
) -> Vec<&T> {
    let lo = q.partition_point(|x| key(x).0 < a.saturating_sub(longest));
    let hi = q.partition_point(|x| key(x).0 <= b);
    q.range(lo..hi.max(lo)).filter(|x| key(x).1 >= a).collect()
}

impl Analysis {
    /// Stream time of the first and last events seen.
    pub fn span(&self) -> (u64, u64) {
        let start = self
            .caps
            .iter()
            .filter_map(|c| c.intervals.front().map(|i| i.start))
            .min()
            .unwrap_or(0);
        (start.min(self.health.time), self.health.time)
    }

    pub fn totals(&self) -> RunTotals {
        let (start, end) = (0, self.health.time);
        let caps = self
            .caps
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut run = c.activity.sum(0, u64::MAX, RUN) as u64;
                let mut gc = c.activity.sum(0, u64::MAX, GC) as u64;
                let open = end.saturating_sub(c.since);
                match c.what {
                    Activity::Running => run += open,
                    Activity::Gc => gc += open,
                    Activity::Idle => {}
                }
                CapTotals {
                    cap: i as u16,
                    running_ns: run,
                    gc_ns: gc,
                    sparks: c.sparks,
                    spark_events: c.spark_events,
                }
            })
            .collect();
        let mut spans: Vec<SpanTotals> = self
            .span_names
            .iter()
            .zip(&self.span_hist)
            .map(|(n, h)| SpanTotals {
                name: n.clone(),
                totals: h.into(),
            })
            .collect();
        spans.sort_by_key(|s| std::cmp::Reverse(s.totals.total));
        RunTotals {
            info: self.info.clone(),
            health: self.health.clone(),
            start,
            end,
            gc_pauses: (&self.pause_hist).into(),
            generations: self
                .generations
                .iter()
                .map(|(g, s)| {
                    (
                        *g,
                        s.clone(),
                        self.gen_hist.get(g).map(Totals::from).unwrap_or_default(),
                    )
                })
                .collect(),
            gcs: self.gcs,
            syncs: self.syncs,
            sync_ns: self.sync_ns,
            heap: self.heap,
            heap_peak: self.heap_peak,
            max_heap: self.max_heap,
            threads: self.thread_counts,
            spans,
            user_messages: self.user_messages,
            markers: self.marker_count,
            heap_prof_samples: self.prof_samples,
            bands: self.bands.clone(),
            caps,
            pause_distribution: self.pause_hist.buckets(),
        }
    }

    /// The range `[from, to)` at `cols` columns, at most `limit` individual
    /// pauses, spans and markers.
    pub fn summary(&self, from: u64, to: u64, cols: usize, limit: usize) -> Summary {
        let cols = cols.clamp(1, 10_000);
        let to = to.max(from + cols as u64);
        let w = (to - from) as f64 / cols as f64;
        let col = |i: usize| {
            (
                from + (i as f64 * w) as u64,
                from + ((i + 1) as f64 * w) as u64,
            )
        };
        let mut coarse = false;
        let activity = self
            .caps
            .iter()
            .map(|c| {
                let mut out = vec![[0f32; 2]; cols];
                let detail_from = c.intervals.front().map_or(c.since, |i| i.start);
                let use_buckets = w >= c.activity.width() as f64 || from < detail_from;
                if use_buckets {
                    coarse |= from < detail_from;
                    for (i, o) in out.iter_mut().enumerate() {
                        let (a, b) = col(i);
                        let len = (b - a).max(1) as f32;
                        o[0] = c.activity.sum(a, b, RUN) as f32 / len;
                        o[1] = c.activity.sum(a, b, GC) as f32 / len;
                    }
                } else {
                    let lo = c.intervals.partition_point(|i| i.end < from);
                    let hi = c.intervals.partition_point(|i| i.start <= to);
                    for iv in c.intervals.range(lo..hi.max(lo)) {
                        add_interval(&mut out, from, w, iv.start, iv.end, iv.what);
                    }
                }
                // The interval still open.
                if c.what != Activity::Idle {
                    add_interval(
                        &mut out,
                        from,
                        w,
                        c.since.max(from),
                        self.health.time.min(to),
                        c.what,
                    );
                }
                for o in &mut out {
                    o[0] = o[0].clamp(0.0, 1.0);
                    o[1] = o[1].clamp(0.0, 1.0 - o[0]);
                }
                out
            })
            .collect();
        let ps = in_range(&self.pauses, from, to, self.max_pause, |p| (p.start, p.end));
        let (pauses, pause_cols) = if ps.len() <= limit {
            (ps.into_iter().copied().collect(), Vec::new())
        } else {
            let mut pc = vec![[0u64; 2]; cols];
            for p in ps {
                let i = (((p.start.max(from) - from) as f64 / w) as usize).min(cols - 1);
                pc[i][0] += 1;
                pc[i][1] += p.end - p.start;
            }
            (Vec::new(), pc)
        };
        let spans = in_range(&self.spans, from, to, self.max_span, |s| (s.start, s.end));
        let spans = spans.into_iter().take(limit).cloned().collect();
        let markers = in_range(&self.markers, from, to, 0, |m| (m.time, m.time));
        let markers = markers.into_iter().take(limit).cloned().collect();
        Summary {
            from,
            to,
            cols,
            activity,
            pauses,
            pause_cols,
            heap: HeapSeries {
                size: self.heap_series[0].range(from, to, cols),
                live: self.heap_series[1].range(from, to, cols),
                blocks: self.heap_series[2].range(from, to, cols),
                allocated: self.allocated_range(from, to, cols),
            },
            threads: self.thread_points.range(from, to, cols),
            sparks: self
                .caps
                .iter()
                .map(|c| c.spark_points.range(from, to, cols))
                .collect(),
            prof: self.prof_points.range(from, to, cols),
            spans,
            markers,
            coarse,
        }
    }

    /// The newest raw events matching `filter` (type name or text contains
    /// it, case-insensitive; empty = all), at most `n`, oldest first, decoded
    /// from the newest blocks kept.
    pub fn tail(&self, filter: &str, cap: Option<u16>, n: usize) -> Vec<TailEvent> {
        let Some(h) = self.header.as_ref() else {
            return Vec::new();
        };
        let f = filter.to_lowercase();
        let mut out = Vec::new();
        for (c, bytes) in self.tail.iter().filter(|(c, _)| cap.is_none() || *c == cap) {
            for ev in events(h, bytes).map_while(|e| e.ok()) {
                if ev.ty == EVENT_BLOCK_MARKER {
                    continue;
                }
                let name = h
                    .type_info(ev.ty)
                    .map_or_else(|| format!("type {}", ev.ty), |t| t.desc.clone());
                let text = match fields(ev.ty, ev.payload) {
                    Some(Fields::UserMessage { text } | Fields::UserMarker { text }) => Some(text),
                    Some(Fields::ThreadLabel { label, .. }) => Some(label),
                    _ => None,
                }
                .map(|t| String::from_utf8_lossy(t).into_owned());
                let detail = describe(ev.ty, ev.payload);
                let keep = f.is_empty()
                    || name.to_lowercase().contains(&f)
                    || text
                        .as_deref()
                        .is_some_and(|t| t.to_lowercase().contains(&f))
                    || detail.to_lowercase().contains(&f);
                if keep {
                    out.push(TailEvent {
                        time: ev.time,
                        cap: *c,
                        ty: ev.ty,
                        name,
                        text,
                        detail,
                    });
                }
            }
        }
        out.sort_by_key(|e| e.time);
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }

    /// The heap's allocation over `[from, to]`: per capability a step
    /// function (its latest HeapAllocated), summed at each sample time.
    fn allocated_range(&self, from: u64, to: u64, cols: usize) -> Vec<(u64, u64)> {
        let per: Vec<Vec<(u64, u64)>> = self
            .alloc_series
            .iter()
            .map(|p| p.range(0, to, usize::MAX))
            .collect();
        let mut times: Vec<u64> = per
            .iter()
            .flatten()
            .map(|p| p.0)
            .filter(|&t| t >= from)
            .collect();
        times.sort_unstable();
        times.dedup();
        let step = times.len().div_ceil(cols.max(1)).max(1);
        let mut idx = vec![0usize; per.len()];
        let mut last = vec![0u64; per.len()];
        let mut out = Vec::new();
        for (n, t) in times.into_iter().enumerate() {
            for (c, series) in per.iter().enumerate() {
                while idx[c] < series.len() && series[idx[c]].0 <= t {
                    last[c] = series[idx[c]].1;
                    idx[c] += 1;
                }
            }
            if n % step == 0 {
                out.push((t, last.iter().sum()));
            }
        }
        out
    }

    /// Approximate bytes held by the retained structures.
    pub fn memory(&self) -> usize {
        let caps: usize = self
            .caps
            .iter()
            .map(|c| c.intervals.len() * std::mem::size_of::<Interval>() + c.activity.memory())
            .sum();
        caps + self.pauses.len() * std::mem::size_of::<Pause>()
            + self.spans.len() * std::mem::size_of::<Span>()
            + self
                .markers
                .iter()
                .map(|m| m.text.len() + 48)
                .sum::<usize>()
            + self.tail_held
            + self
                .heap_series
                .iter()
                .map(|p| p.items.len() * 16)
                .sum::<usize>()
            + self
                .alloc_series
                .iter()
                .map(|p| p.items.len() * 16)
                .sum::<usize>()
            + self
                .prof_points
                .items
                .iter()
                .map(|p| p.1.bands.len() * 16 + 32)
                .sum::<usize>()
    }
}

fn add_interval(out: &mut [[f32; 2]], from: u64, w: f64, a: u64, b: u64, what: Activity) {
    let k = match what {
        Activity::Running => 0,
        Activity::Gc => 1,
        Activity::Idle => return,
    };
    if b <= a {
        return;
    }
    let x0 = (a.saturating_sub(from)) as f64 / w;
    let x1 = (b.saturating_sub(from)) as f64 / w;
    let n = out.len();
    let mut i = x0.floor() as usize;
    while i < n && (i as f64) < x1 {
        let lo = x0.max(i as f64);
        let hi = x1.min(i as f64 + 1.0);
        out[i][k] += (hi - lo) as f32;
        i += 1;
    }
}

/// A short text of an event's fields, for the tail view.
fn describe(ty: u16, p: &[u8]) -> String {
    match fields(ty, p) {
        Some(Fields::RunThread { thread })
        | Some(Fields::CreateThread { thread })
        | Some(Fields::ThreadRunnable { thread }) => {
            format!("thread {thread}")
        }
        Some(Fields::StopThread { thread, status, .. }) => {
            format!("thread {thread} status {status}")
        }
        Some(Fields::MigrateThread { thread, new_cap }) => {
            format!("thread {thread} to cap {new_cap}")
        }
        Some(Fields::ThreadWakeup { thread, other_cap }) => {
            format!("thread {thread} from cap {other_cap}")
        }
        Some(Fields::HeapSize { bytes, .. })
        | Some(Fields::HeapLive { bytes, .. })
        | Some(Fields::BlocksSize { bytes, .. })
        | Some(Fields::HeapAllocated { bytes, .. }) => format!("{bytes} bytes"),
        Some(Fields::GcStats {
            generation, copied, ..
        }) => format!("generation {generation}, {copied} bytes copied"),
        Some(Fields::HeapProfSampleString {
            residency, label, ..
        }) => {
            format!("{} {residency} bytes", String::from_utf8_lossy(label))
        }
        _ => String::new(),
    }
}

/// One thread of [`ThreadTable`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadRow {
    pub id: u32,
    /// `running`, `runnable`, `blocked`, or `finished` (a labelled thread
    /// that finished, or one not seen since its label).
    pub state: &'static str,
    pub label: Option<String>,
}

/// The threads of the run: labelled ones (by id), then the other live ones.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadTable {
    pub live: u64,
    pub labelled: u64,
    /// Rows there are: labelled threads and unlabelled live ones.
    pub total: u64,
    /// At most the asked number.
    pub rows: Vec<ThreadRow>,
}

impl Analysis {
    pub fn thread_table(&self, limit: usize) -> ThreadTable {
        let state = |id: u32| match self.threads.get(id as usize).copied().flatten() {
            Some(ThreadState::Running) => "running",
            Some(ThreadState::Runnable) => "runnable",
            Some(ThreadState::Blocked) => "blocked",
            None => "finished",
        };
        let mut labelled: Vec<u32> = self.labels.keys().copied().collect();
        labelled.sort_unstable();
        let live: Vec<u32> = (0..self.threads.len() as u32)
            .filter(|&i| self.threads[i as usize].is_some())
            .collect();
        let mut rows: Vec<ThreadRow> = labelled
            .iter()
            .take(limit)
            .map(|&id| ThreadRow {
                id,
                state: state(id),
                label: self.labels.get(&id).cloned(),
            })
            .collect();
        let more: Vec<u32> = live
            .iter()
            .copied()
            .filter(|id| !self.labels.contains_key(id))
            .collect();
        let total = (labelled.len() + more.len()) as u64;
        rows.extend(more.iter().take(limit - rows.len()).map(|&id| ThreadRow {
            id,
            state: state(id),
            label: None,
        }));
        ThreadTable {
            live: live.len() as u64,
            labelled: labelled.len() as u64,
            total,
            rows,
        }
    }
}
