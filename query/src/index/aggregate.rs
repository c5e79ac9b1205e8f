//! Aggregating from columns: group rows by the ids of their `by` keys (and time bucket),
//! gather each aggregated key's ids in group order (a counting sort), and compute every
//! aggregate of a group from its slice. Percentiles here are exact (the nearest rank, as the
//! executor's sketch ranks).
//!
//! The groups then join the executor's (which aggregates the lines the columns could not
//! answer, and those past the last block): a group the executor has too is merged as state
//! (a percentile's values go into its sketch); any other is handed over as final values.

use std::borrow::Cow;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::IndexError;
use std::sync::Arc;

use super::bitmap::Bitmap;
use super::block::{Ids, Times};
use super::columns::column_of;
use super::dict::Dict;
use super::filter::BlockReader;
use super::search::SearchError;
use crate::exec::Cell;
use crate::exec::ExecError;
use crate::exec::agg::Accumulator;
use crate::exec::group::Grouper;
use crate::exec::sketch::Sketch;
use crate::lang::{Aggregate, Func, TableStage};

/// The most `by` keys aggregated from columns.
const MAX_BY: usize = 4;

/// A group: its bucket and the ids of its keys.
type Key = (i64, [u32; MAX_BY]);

/// An aggregation in progress over blocks' columns.
#[derive(Debug)]
pub(crate) struct ColumnAggregation<'q> {
    aggregate: &'q Aggregate,
    by: Vec<usize>,
    /// The distinct columns aggregated (not `count`).
    values: Vec<usize>,
    /// For each aggregate, its column's place in `values`.
    agg_value: Vec<Option<usize>>,
    /// One `by` key and no timechart: a row's group is its id.
    dense: bool,
    groups: FxHashMap<Key, u32>,
    keys: Vec<Key>,
    row_groups: Vec<u32>,
    row_values: Vec<Vec<u32>>,
    max_groups: usize,
}

impl<'q> ColumnAggregation<'q> {
    /// An aggregation from columns, when every key it reads is a column.
    pub(crate) fn new(aggregate: &'q Aggregate, max_groups: usize) -> Option<Self> {
        if aggregate.by.len() > MAX_BY {
            return None;
        }
        let by = aggregate
            .by
            .iter()
            .map(|k| column_of(k.as_bytes()))
            .collect::<Option<Vec<_>>>()?;
        let mut values: Vec<usize> = Vec::new();
        let mut agg_value = Vec::new();
        for agg in &aggregate.aggs {
            if agg.func == Func::Count {
                agg_value.push(None);
                continue;
            }
            let c = column_of(agg.key.as_bytes())?;
            let at = values.iter().position(|&v| v == c).unwrap_or_else(|| {
                values.push(c);
                values.len() - 1
            });
            agg_value.push(Some(at));
        }
        Some(ColumnAggregation {
            aggregate,
            dense: by.len() == 1 && aggregate.span.is_none(),
            by,
            row_values: vec![Vec::new(); values.len()],
            values,
            agg_value,
            groups: FxHashMap::default(),
            keys: Vec::new(),
            row_groups: Vec::new(),
            max_groups,
        })
    }

    /// Whether the block's columns can answer (no needed column overflowed its dictionary).
    pub(crate) fn can_read(&self, reader: &BlockReader<'_>) -> bool {
        let columns = &reader.block.header().columns;
        self.by
            .iter()
            .chain(&self.values)
            .all(|&c| columns.get(c).is_some_and(|h| !h.overflow))
    }

    /// Adds the block's `rows`; `times` are the rows' times (read when a timechart needs
    /// them).
    pub(crate) fn add(
        &mut self,
        reader: &mut BlockReader<'_>,
        rows: &Bitmap,
        times: Option<&Times>,
    ) -> Result<(), SearchError> {
        let by: Vec<Arc<Ids>> = self
            .by
            .iter()
            .map(|&c| reader.column(c))
            .collect::<Result<_, IndexError>>()?;
        let values: Vec<Arc<Ids>> = self
            .values
            .iter()
            .map(|&c| reader.column(c))
            .collect::<Result<_, IndexError>>()?;
        let span = self.aggregate.span;
        'rows: for row in rows.ones() {
            let group = if self.dense {
                match by.first().map(|ids| ids.get(row)) {
                    Some(id) if id != 0 => id,
                    _ => continue,
                }
            } else {
                let mut key: Key = (0, [0; MAX_BY]);
                for (slot, ids) in key.1.iter_mut().zip(&by) {
                    match ids.get(row) {
                        0 => continue 'rows,
                        id => *slot = id,
                    }
                }
                if let Some(s) = span {
                    let t = times.map_or(0, |t| t.get(row));
                    key.0 = t.div_euclid(s).saturating_mul(s);
                }
                let next = self.keys.len() as u32;
                let full = self.keys.len() >= self.max_groups;
                match self.groups.get(&key) {
                    Some(&g) => g,
                    None if full => {
                        return Err(ExecError::TooManyGroups {
                            limit: self.max_groups,
                        }
                        .into());
                    }
                    None => {
                        self.groups.insert(key, next);
                        self.keys.push(key);
                        next
                    }
                }
            };
            self.row_groups.push(group);
            for (out, ids) in self.row_values.iter_mut().zip(&values) {
                out.push(ids.get(row));
            }
        }
        Ok(())
    }

    /// Hands the groups to the executor's `grouper`. When the grouper has no group of its own
    /// and the table's first stage is `head N` in the default order, only the groups that can
    /// be among the first N are computed and handed over (`count by path | head 10` over
    /// 600,000 paths builds 10 rows, not 600,000).
    pub(crate) fn finish(
        self,
        dicts: &[Dict],
        grouper: &mut Grouper,
        after: &[TableStage],
    ) -> Result<(), ExecError> {
        let n_groups = if self.dense {
            self.by
                .first()
                .and_then(|&c| dicts.get(c))
                .map_or(0, |d| d.len() + 1)
        } else {
            self.keys.len()
        };
        let mut counts = vec![0u32; n_groups];
        for &g in &self.row_groups {
            if let Some(c) = counts.get_mut(g as usize) {
                *c += 1;
            }
        }
        let head = match after.first() {
            Some(TableStage::Head(n)) if grouper.is_empty() && self.aggregate.span.is_none() => {
                Some(*n)
            }
            _ => None,
        };
        let selected: Vec<u32> = match head {
            Some(n) => self.first_groups(n, &counts, dicts),
            None => (0..n_groups as u32)
                .filter(|&g| counts.get(g as usize).is_some_and(|&c| c > 0))
                .collect(),
        };
        if selected.len() > self.max_groups {
            return Err(ExecError::TooManyGroups {
                limit: self.max_groups,
            });
        }
        // The selected groups' slices of the rows, by a counting sort.
        let mut slot = vec![u32::MAX; n_groups];
        let mut starts = Vec::with_capacity(selected.len() + 1);
        let mut total = 0usize;
        for (i, &g) in selected.iter().enumerate() {
            if let Some(s) = slot.get_mut(g as usize) {
                *s = i as u32;
            }
            starts.push(total);
            total += counts.get(g as usize).copied().unwrap_or(0) as usize;
        }
        starts.push(total);
        let sorted: Vec<Vec<f64>> = self
            .values
            .iter()
            .zip(&self.row_values)
            .map(|(&c, ids)| {
                let dict = dicts.get(c);
                let mut fill = starts.clone();
                let mut out = vec![f64::NAN; total];
                for (&g, &id) in self.row_groups.iter().zip(ids) {
                    let s = slot.get(g as usize).copied().unwrap_or(u32::MAX);
                    if let Some(at) = fill.get_mut(s as usize) {
                        if let Some(v) = out.get_mut(*at) {
                            *v = dict.map_or(f64::NAN, |d| d.number(id));
                        }
                        *at += 1;
                    }
                }
                out
            })
            .collect();
        let mut numbers: Vec<Vec<f64>> = vec![Vec::new(); self.values.len()];
        for (i, &g) in selected.iter().enumerate() {
            let count = counts.get(g as usize).copied().unwrap_or(0);
            let (bucket, keys) = self.group_key(g, dicts);
            let (from, to) = (
                starts.get(i).copied().unwrap_or(0),
                starts.get(i + 1).copied().unwrap_or(0),
            );
            for (v, all) in numbers.iter_mut().zip(&sorted) {
                v.clear();
                v.extend(
                    all.get(from..to)
                        .unwrap_or_default()
                        .iter()
                        .copied()
                        .filter(|x| x.is_finite()),
                );
                v.sort_unstable_by(f64::total_cmp);
            }
            let merge = grouper.contains(bucket, &keys);
            let accumulators = self
                .aggregate
                .aggs
                .iter()
                .zip(&self.agg_value)
                .map(|(agg, at)| {
                    let values = at
                        .and_then(|i| numbers.get(i))
                        .map_or(&[][..], Vec::as_slice);
                    accumulate(agg.func, u64::from(count), values, merge)
                })
                .collect();
            grouper.merge(bucket, keys, accumulators)?;
        }
        Ok(())
    }

    /// Group `g`'s bucket and key texts.
    fn group_key(&self, g: u32, dicts: &[Dict]) -> (i64, Vec<String>) {
        let text = |c: usize, id: u32| {
            dicts
                .get(c)
                .and_then(|d| d.value(id))
                .map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned())
        };
        if self.dense {
            let c = self.by.first().copied().unwrap_or(0);
            return (0, vec![text(c, g)]);
        }
        match self.keys.get(g as usize) {
            Some(&(bucket, ids)) => (
                bucket,
                self.by
                    .iter()
                    .zip(ids)
                    .map(|(&c, id)| text(c, id))
                    .collect(),
            ),
            None => (0, Vec::new()),
        }
    }

    /// The groups that can be among the first `n` rows in the default order: by count
    /// (highest first) when the aggregation counts, then by keys; every group tied with the
    /// n-th is kept, for the grouper to order by keys.
    fn first_groups(&self, n: usize, counts: &[u32], dicts: &[Dict]) -> Vec<u32> {
        let live = || (0..counts.len() as u32).filter(|&g| counts[g as usize] > 0);
        if n == 0 {
            return Vec::new();
        }
        if self.aggregate.aggs.iter().any(|a| a.func == Func::Count) {
            let mut by_count: Vec<u32> = live().map(|g| counts[g as usize]).collect();
            if by_count.len() <= n {
                return live().collect();
            }
            let (_, &mut nth, _) = by_count.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
            return live().filter(|&g| counts[g as usize] >= nth).collect();
        }
        // By keys: the n least, compared as the grouper compares them (as text).
        let key = |g: u32| -> Vec<Cow<'_, str>> {
            let ids: Vec<(usize, u32)> = if self.dense {
                vec![(self.by.first().copied().unwrap_or(0), g)]
            } else {
                let ids = self.keys.get(g as usize).map_or([0; MAX_BY], |k| k.1);
                self.by.iter().copied().zip(ids).collect()
            };
            ids.into_iter()
                .map(|(c, id)| {
                    dicts
                        .get(c)
                        .and_then(|d| d.value(id))
                        .map_or(Cow::Borrowed(""), String::from_utf8_lossy)
                })
                .collect()
        };
        let mut heap: BinaryHeap<(Vec<Cow<'_, str>>, u32)> = BinaryHeap::new();
        for g in live() {
            let k = key(g);
            if heap.len() < n {
                heap.push((k, g));
            } else if heap.peek().is_some_and(|(top, _)| k < *top) {
                heap.pop();
                heap.push((k, g));
            }
        }
        heap.into_iter().map(|(_, g)| g).collect()
    }
}

/// One aggregate of a group from its sorted finite `values` (and its row `count`): as state
/// to merge, or as its final value.
fn accumulate(func: Func, count: u64, values: &[f64], merge: bool) -> Accumulator {
    let n = values.len();
    let sum = || values.iter().sum::<f64>();
    if merge {
        return match func {
            Func::Count => Accumulator::Count(count),
            Func::Sum => Accumulator::Sum(sum()),
            Func::Avg => Accumulator::Avg {
                sum: sum(),
                n: n as u64,
            },
            Func::Min => Accumulator::Min(values.first().copied()),
            Func::Max => Accumulator::Max(values.last().copied()),
            Func::Percentile(q) => {
                let mut sketch = Sketch::default();
                let mut i = 0;
                while let Some(&x) = values.get(i) {
                    let same = values[i..].iter().take_while(|&&y| y == x).count();
                    sketch.add_n(x, same as u64);
                    i += same;
                }
                Accumulator::Percentile(q, Box::new(sketch))
            }
        };
    }
    let number = |x: Option<f64>| x.map_or(Cell::Empty, Cell::Number);
    Accumulator::Done(match func {
        Func::Count => Cell::Number(count as f64),
        Func::Sum => Cell::Number(sum()),
        Func::Avg => number((n > 0).then(|| sum() / n as f64)),
        Func::Min => number(values.first().copied()),
        Func::Max => number(values.last().copied()),
        Func::Percentile(q) => {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
            number(values.get(rank - 1).copied())
        }
    })
}
