//! A DDSketch-class quantile sketch (Masson, Rim, Lee, VLDB 2019): values fall in bins whose
//! bounds grow by a factor γ = (1+α)/(1−α), so any quantile is answered within a relative
//! error α = 0.5% of the true value at its rank, in memory bounded by `MAX_BINS` bins.
//!
//! The rank asked is the nearest rank: the value at position ⌈q·n⌉ (1-based) of the sorted
//! values. Answers are clamped to the exact minimum and maximum, so `p100` is the maximum.
//! Past `MAX_BINS` bins the smallest magnitudes merge (the collapsing store of the paper):
//! quantiles high in the distribution (p50–p99.9, what latency questions ask) keep their
//! bound; only the lowest ones lose it, and only when values span over ~10 orders of
//! magnitude.

use std::collections::BTreeMap;

/// The relative accuracy of every answer.
pub(crate) const RELATIVE_ACCURACY: f64 = 0.005;
/// The most bins a sketch keeps (positive and negative together).
pub(crate) const MAX_BINS: usize = 2048;
/// Values smaller than this in magnitude count as zero.
const MIN_MAGNITUDE: f64 = 1e-9;

/// The sketch of one group's values.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sketch {
    positive: BTreeMap<i32, u64>,
    /// Bins of the magnitudes of negative values.
    negative: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
    min: f64,
    max: f64,
}

fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// The bin of a magnitude: the `i` with γ^(i−1) < x ≤ γ^i.
fn bin(magnitude: f64) -> i32 {
    (magnitude.ln() / ln_gamma()).ceil() as i32
}

/// The value a bin answers with: within α of everything in it.
fn representative(bin: i32) -> f64 {
    let gamma = ln_gamma().exp();
    2.0 * gamma.powi(bin) / (gamma + 1.0)
}

impl Sketch {
    pub(crate) fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.count += 1;
        if x.abs() < MIN_MAGNITUDE {
            self.zeros += 1;
            return;
        }
        let store = if x > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        *store.entry(bin(x.abs())).or_default() += 1;
        if self.positive.len() + self.negative.len() > MAX_BINS {
            self.collapse();
        }
    }

    /// Merges the two bins of the smallest magnitudes of the larger store.
    fn collapse(&mut self) {
        let store = if self.positive.len() >= self.negative.len() {
            &mut self.positive
        } else {
            &mut self.negative
        };
        if let Some((_, n)) = store.pop_first()
            && let Some(mut next) = store.first_entry()
        {
            *next.get_mut() += n;
        }
    }

    /// The value at quantile `q` (in (0, 1]), or `None` when the sketch is empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let negatives = self
            .negative
            .iter()
            .rev()
            .map(|(&b, &n)| (-representative(b), n));
        let zeros = std::iter::once((0.0, self.zeros));
        let positives = self.positive.iter().map(|(&b, &n)| (representative(b), n));
        let mut seen = 0;
        for (value, n) in negatives.chain(zeros).chain(positives) {
            seen += n;
            if seen >= rank {
                return Some(value.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// How many bins it holds.
    /// Adds `n` values `x` at once.
    pub(crate) fn add_n(&mut self, x: f64, n: u64) {
        if n == 0 || !x.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.count += n;
        if x.abs() < MIN_MAGNITUDE {
            self.zeros += n;
            return;
        }
        let store = if x > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        *store.entry(bin(x.abs())).or_default() += n;
        while self.positive.len() + self.negative.len() > MAX_BINS {
            self.collapse();
        }
    }

    /// Folds in another sketch's values.
    pub(crate) fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (other.min, other.max);
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.zeros += other.zeros;
        for (&b, &n) in &other.positive {
            *self.positive.entry(b).or_default() += n;
        }
        for (&b, &n) in &other.negative {
            *self.negative.entry(b).or_default() += n;
        }
        while self.positive.len() + self.negative.len() > MAX_BINS {
            self.collapse();
        }
    }

    #[cfg(test)]
    pub(crate) fn bins(&self) -> usize {
        self.positive.len() + self.negative.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact nearest-rank quantile, computed apart from the sketch.
    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn within(got: f64, want: f64) -> bool {
        (got - want).abs() <= want.abs() * 0.01 + 1e-12
    }

    #[test]
    fn quantiles_within_one_percent() {
        let mut values = Vec::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 11) as f64 / (1u64 << 53) as f64;
            values.push((r * 12.0).exp() - 1.0 - if x.is_multiple_of(7) { 50.0 } else { 0.0 });
        }
        values.push(0.0);
        let mut s = Sketch::default();
        values.iter().for_each(|&v| s.add(v));
        for q in [0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (s.quantile(q).unwrap(), exact(&values, q));
            assert!(within(got, want), "q={q}: got {got}, want {want}");
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn memory_is_bounded_and_high_quantiles_hold() {
        let mut s = Sketch::default();
        let values: Vec<f64> = (0..200_000).map(|i| 1e-3 * 1.00015f64.powi(i)).collect();
        values.iter().for_each(|&v| s.add(v));
        assert!(s.bins() <= MAX_BINS, "{}", s.bins());
        for q in [0.5, 0.9, 0.99] {
            assert!(within(s.quantile(q).unwrap(), exact(&values, q)), "q={q}");
        }
    }
}
