//! Bounded time series: fixed-width buckets that coarsen by doubling their
//! width (so any run fits in `max` buckets), a log histogram for
//! distributions, and thinned point samples.

use serde::Serialize;

/// Sums of `K` quantities per time bucket. The bucket width doubles (pairs
/// merge) whenever the time span needs more than `max` buckets: memory is
/// bounded and any time range sums without walking events again.
#[derive(Clone, Debug)]
pub struct Buckets<const K: usize> {
    width: u64,
    max: usize,
    vals: Vec<[u64; K]>,
}

impl<const K: usize> Buckets<K> {
    pub fn new(width: u64, max: usize) -> Self {
        Buckets {
            width: width.max(1),
            max: max.max(2),
            vals: Vec::new(),
        }
    }

    pub fn width(&self) -> u64 {
        self.width
    }

    fn slot(&mut self, t: u64) -> usize {
        let mut i = (t / self.width) as usize;
        while i >= self.max {
            self.coarsen();
            i = (t / self.width) as usize;
        }
        if i >= self.vals.len() {
            self.vals.resize(i + 1, [0; K]);
        }
        i
    }

    fn coarsen(&mut self) {
        let merged: Vec<[u64; K]> = self
            .vals
            .chunks(2)
            .map(|c| {
                let mut s = c[0];
                if let Some(b) = c.get(1) {
                    for k in 0..K {
                        s[k] += b[k];
                    }
                }
                s
            })
            .collect();
        self.vals = merged;
        self.width *= 2;
    }

    /// Adds `v` to quantity `k` at time `t`.
    pub fn add(&mut self, t: u64, k: usize, v: u64) {
        let i = self.slot(t);
        self.vals[i][k] += v;
    }

    /// Adds the length of `[a, b)` to quantity `k`, split over the buckets it covers.
    pub fn add_span(&mut self, a: u64, b: u64, k: usize) {
        if b <= a {
            return;
        }
        self.slot(b - 1);
        let mut t = a;
        while t < b {
            let i = (t / self.width) as usize;
            let end = ((i as u64 + 1) * self.width).min(b);
            self.vals[i][k] += end - t;
            t = end;
        }
    }

    /// Sum of quantity `k` over `[a, b)`, buckets partly inside counted pro rata.
    pub fn sum(&self, a: u64, b: u64, k: usize) -> f64 {
        if b <= a || self.vals.is_empty() {
            return 0.0;
        }
        let w = self.width;
        let first = (a / w) as usize;
        let last = (((b - 1) / w) as usize).min(self.vals.len() - 1);
        let mut s = 0.0;
        for i in first..=last.max(first) {
            let Some(v) = self.vals.get(i) else { break };
            let lo = (i as u64 * w).max(a);
            let hi = ((i as u64 + 1) * w).min(b);
            if hi > lo {
                s += v[k] as f64 * (hi - lo) as f64 / w as f64;
            }
        }
        s
    }

    pub fn memory(&self) -> usize {
        self.vals.capacity() * K * 8
    }
}

/// A log-linear histogram of non-negative values (nanoseconds, bytes):
/// 16 sub-buckets per power of two, so a quantile is within 1/16 (6%)
/// of the true value; exact count, sum, min and max.
#[derive(Clone, Debug, Default)]
pub struct LogHist {
    counts: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

const SUB: u32 = 16;

fn hist_index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros(); // >= 4
    let sub = (v >> (octave - 4)) as u32 & (SUB - 1);
    ((octave - 3) * SUB + sub) as usize
}

fn hist_lower(i: usize) -> u64 {
    let i = i as u32;
    if i < SUB {
        return i as u64;
    }
    let octave = i / SUB + 3;
    let sub = (i % SUB) as u64;
    (SUB as u64 + sub) << (octave - 4)
}

impl LogHist {
    pub fn record(&mut self, v: u64) {
        let i = hist_index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.count += 1;
        self.sum += v;
    }

    /// The `q` quantile (0..=1), clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = hist_lower(i + 1).saturating_sub(1);
                return upper.clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Values recorded in buckets lying wholly at or below `v`: exact when
    /// `v + 1` is a bucket edge, else short by at most the bucket holding
    /// `v` (width under `v / 16`). For fixed-bound histograms (Prometheus `le`).
    pub fn count_le(&self, v: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| hist_lower(i + 1) <= v.saturating_add(1))
            .map(|(_, c)| c)
            .sum()
    }

    /// Non-empty buckets as (lower bound, count), for distribution plots.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (hist_lower(i), *c))
            .collect()
    }
}

/// Totals of a histogram, as the views and the metrics show them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Totals {
    pub count: u64,
    pub total: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl From<&LogHist> for Totals {
    fn from(h: &LogHist) -> Totals {
        Totals {
            count: h.count,
            total: h.sum,
            mean: h.mean(),
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
            max: h.max,
        }
    }
}

/// Time-stamped samples, at most `max`: when full, every other sample is
/// dropped (the series keeps its whole time span at half the density).
#[derive(Clone, Debug)]
pub struct Points<T> {
    max: usize,
    pub items: Vec<(u64, T)>,
}

impl<T: Clone> Points<T> {
    pub fn new(max: usize) -> Self {
        Points {
            max: max.max(4),
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, t: u64, v: T) {
        if self.items.len() >= self.max {
            let mut keep = false;
            self.items.retain(|_| {
                keep = !keep;
                keep
            });
        }
        // Blocks of different capabilities interleave in time: keep order.
        let at = self.items.len() - self.items.iter().rev().take_while(|p| p.0 > t).count();
        self.items.insert(at, (t, v));
    }

    pub fn last(&self) -> Option<&(u64, T)> {
        self.items.last()
    }

    /// Samples in `[a, b]`, thinned to at most `n` (evenly by index).
    pub fn range(&self, a: u64, b: u64, n: usize) -> Vec<(u64, T)> {
        let lo = self.items.partition_point(|p| p.0 < a);
        let hi = self.items.partition_point(|p| p.0 <= b);
        let slice = &self.items[lo..hi];
        let n = n.max(1);
        if slice.len() <= n {
            return slice.to_vec();
        }
        (0..n).map(|i| slice[i * slice.len() / n].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_coarsen_and_keep_sums() {
        let mut b: Buckets<1> = Buckets::new(10, 8);
        b.add_span(0, 35, 0);
        assert_eq!(b.sum(0, 40, 0), 35.0);
        b.add_span(100, 150, 0); // needs 15 buckets of 10: width doubles to 20
        assert_eq!(b.width(), 20);
        assert_eq!(b.sum(0, 1000, 0), 85.0);
        assert_eq!(b.sum(100, 140, 0), 40.0);
    }

    #[test]
    fn histogram_quantiles_within_a_sixteenth() {
        let mut h = LogHist::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count, 1000);
        assert_eq!(h.max, 1_000_000);
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 1.0 / 16.0, "{p99}");
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 1.0 / 16.0, "{p50}");
        for i in 0..200 {
            assert!(hist_lower(i) <= hist_lower(i + 1));
            assert_eq!(hist_index(hist_lower(i)), i);
        }
    }

    #[test]
    fn count_le_is_exact_at_edges_and_close_elsewhere() {
        let mut h = LogHist::default();
        for v in [3u64, 15, 16, 1023, 1024, 1_000_000, 5_000_000] {
            h.record(v);
        }
        assert_eq!(h.count_le(2), 0);
        assert_eq!(h.count_le(3), 1);
        assert_eq!(h.count_le(1023), 4); // 1024 is an edge: exact
        assert_eq!(h.count_le(1024), 4); // 1024's bucket reaches 1087
        assert_eq!(h.count_le(u64::MAX), 7);
        // 1e6 lies inside a bucket: 1_000_000 may not count yet, 5e6 never.
        assert!((5..=6).contains(&h.count_le(1_000_000)));
        assert_eq!(h.count_le(1_048_575), 6);
    }

    #[test]
    fn points_thin_out_but_keep_the_span() {
        let mut p = Points::new(8);
        for t in 0..100u64 {
            p.push(t, t);
        }
        assert!(p.items.len() <= 8);
        assert_eq!(p.items[0].0, 0);
        assert_eq!(p.last().unwrap().0, 99);
        assert_eq!(p.range(0, 99, 3).len(), 3);
    }
}
