//! One aggregate of one group: `count`, `sum`, `avg`, `min`, `max`, a percentile.
//!
//! Numeric aggregates read the key's value with its unit (a duration in ms, a size in
//! bytes); a line without the key, or whose value is not a number, is skipped by them (and
//! still counted by `count`). A group with no number gets 0 for `sum` and no value (JSON
//! `null`) for `avg`, `min`, `max` and percentiles.

use super::sketch::Sketch;
use super::table::Cell;
use crate::lang::{Agg, Func};

/// The running state of one aggregate.
#[derive(Clone, Debug)]
pub(crate) enum Accumulator {
    Count(u64),
    Sum(f64),
    Avg {
        sum: f64,
        n: u64,
    },
    Min(Option<f64>),
    Max(Option<f64>),
    Percentile(f64, Box<Sketch>),
    /// A value computed elsewhere over every line of the group (an index's columns), when no
    /// other line of the group is left to add.
    Done(Cell),
}

impl Accumulator {
    pub(crate) fn new(agg: &Agg) -> Self {
        match agg.func {
            Func::Count => Accumulator::Count(0),
            Func::Sum => Accumulator::Sum(0.0),
            Func::Avg => Accumulator::Avg { sum: 0.0, n: 0 },
            Func::Min => Accumulator::Min(None),
            Func::Max => Accumulator::Max(None),
            Func::Percentile(q) => Accumulator::Percentile(q, Box::default()),
        }
    }

    /// Adds one line, whose value for the aggregate's key is `value` (`None`: not a number).
    pub(crate) fn add(&mut self, value: Option<f64>) {
        if let Accumulator::Count(n) = self {
            *n += 1;
            return;
        }
        let Some(x) = value else { return };
        match self {
            Accumulator::Count(_) | Accumulator::Done(_) => {}
            Accumulator::Sum(sum) => *sum += x,
            Accumulator::Avg { sum, n } => {
                *sum += x;
                *n += 1;
            }
            Accumulator::Min(m) => *m = Some(m.map_or(x, |m| m.min(x))),
            Accumulator::Max(m) => *m = Some(m.map_or(x, |m| m.max(x))),
            Accumulator::Percentile(_, sketch) => sketch.add(x),
        }
    }

    /// The aggregate's value.
    pub(crate) fn value(&self) -> Cell {
        let number = |n: Option<f64>| n.map_or(Cell::Empty, Cell::Number);
        match self {
            Accumulator::Count(n) => Cell::Number(*n as f64),
            Accumulator::Sum(sum) => Cell::Number(*sum),
            Accumulator::Avg { sum, n } => number((*n > 0).then(|| sum / *n as f64)),
            Accumulator::Min(m) | Accumulator::Max(m) => number(*m),
            Accumulator::Percentile(q, sketch) => number(sketch.quantile(*q)),
            Accumulator::Done(cell) => cell.clone(),
        }
    }

    /// Folds in the state of the same aggregate over other lines of the group. A `Done` on
    /// either side cannot be merged (it has no state): the other side's value is kept.
    pub(crate) fn merge(&mut self, other: Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b)) => *a += b,
            (Accumulator::Avg { sum, n }, Accumulator::Avg { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (Accumulator::Min(a), Accumulator::Min(b)) => {
                *a = match (*a, b) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            }
            (Accumulator::Max(a), Accumulator::Max(b)) => {
                *a = match (*a, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                }
            }
            (Accumulator::Percentile(_, a), Accumulator::Percentile(_, b)) => a.merge(&b),
            (me @ Accumulator::Done(_), other) => *me = other,
            (_, Accumulator::Done(_)) => {}
            (me, other) => {
                debug_assert!(false, "merging different aggregates: {me:?} {other:?}");
            }
        }
    }
}
