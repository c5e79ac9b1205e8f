//! Fixed-bucket histograms: what `measure#` and the router's `service`/`connect` become.
//! Histograms (not summaries) because they add up across routers and apps in PromQL
//! (`histogram_quantile(0.99, sum by (le) (rate(…_bucket[5m])))`); the buckets are chosen per
//! unit so that the quantiles people ask (p50–p99 of a web request) fall between close bounds.

use super::units::Unit;

/// Seconds: 1 ms to 60 s, around the router's timeouts (H12 at 30 s).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bytes: 1 kB to 1 GB by decades.
const BYTES: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Plain numbers: 1 to a million, 1-2.5-5 per decade up to 10k.
const PLAIN: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 1e5, 1e6,
];

/// The upper bounds (without `+Inf`) for values in `unit`.
pub(crate) fn bounds(unit: Unit) -> &'static [f64] {
    match unit {
        Unit::Seconds => SECONDS,
        Unit::Bytes => BYTES,
        Unit::None => PLAIN,
    }
}

/// Counts per bucket (not cumulative; the last is `+Inf`), with the sum and count.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (plus `+Inf`).
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts `v` (finite, checked by the caller) in the first bucket whose bound is ≥ `v`.
    pub(crate) fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Values seen.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Their sum.
    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, count in that bucket)`, ending with `+Inf`: what the encoder wants.
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// The `q` quantile (0–1) estimated as PromQL's `histogram_quantile` does: linear within
    /// the bucket the rank falls in; the highest finite bound when it falls in `+Inf`.
    #[cfg(test)]
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.buckets(), q)
    }
}

/// [`Histogram::quantile`] over non-cumulative buckets (so also over a difference of two
/// snapshots).
pub(crate) fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().map(|(_, c)| c).sum();
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut lower = 0.0;
    for &(upper, count) in buckets {
        if count > 0 && (below + count) as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let within = (rank - below as f64) / count as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += count;
        if upper.is_finite() {
            lower = upper;
        }
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_at_or_above_them() {
        let mut h = Histogram::new(bounds(Unit::Seconds));
        for v in [0.001, 0.002, 0.012, 45.0, 100.0] {
            h.observe(v);
        }
        let b = h.buckets();
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[1], (0.0025, 1));
        assert_eq!(b[4], (0.025, 1));
        assert_eq!(b[14], (60.0, 1));
        assert_eq!(b[15], (f64::INFINITY, 1));
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 145.015).abs() < 1e-9);
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        let mut h = Histogram::new(bounds(Unit::Seconds));
        for _ in 0..90 {
            h.observe(0.02); // (0.01, 0.025]
        }
        for _ in 0..10 {
            h.observe(0.4); // (0.25, 0.5]
        }
        // rank 50 of 90 in (0.01, 0.025]: 0.01 + 0.015 * 50/90
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - (0.01 + 0.015 * 50.0 / 90.0)).abs() < 1e-12, "{p50}");
        // rank 99: 9 of 10 into (0.25, 0.5]
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 0.475).abs() < 1e-12, "{p99}");
        assert_eq!(Histogram::new(BYTES).quantile(0.5), None);
    }

    #[test]
    fn a_rank_in_the_open_bucket_reads_as_the_highest_bound() {
        let mut h = Histogram::new(bounds(Unit::Bytes));
        h.observe(5e9);
        assert_eq!(h.quantile(0.99), Some(1e9));
    }
}
