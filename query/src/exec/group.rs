//! Grouping lines by their keys (and time bucket) and aggregating each group.
//!
//! A line that lacks one of the `by` keys is in no group (as in Splunk's `stats … by`). The
//! number of groups is bounded (`Executor::max_groups`, by default `DEFAULT_MAX_GROUPS`): a
//! query past it fails with `ExecError::TooManyGroups` rather than answering wrongly.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use logplex::{LogLine, Timestamp};

use super::ExecError;
use super::agg::Accumulator;
use super::extract;
use super::table::{Cell, Column, ColumnKind, Table, compare};
use crate::lang::{Aggregate, Func};

/// The default bound on groups: enough for `count by path` over a busy app's distinct paths
/// (the benchmark has ~600,000), small enough to stay within a few hundred MB.
pub const DEFAULT_MAX_GROUPS: usize = 1_000_000;

/// A group: its bucket start (0 without a timechart) and key values.
type GroupKey = (i64, Vec<String>);

/// The groups of an aggregation, as lines arrive.
#[derive(Debug)]
pub(crate) struct Grouper {
    aggregate: Aggregate,
    groups: HashMap<GroupKey, Vec<Accumulator>>,
    max_groups: usize,
}

impl Grouper {
    pub(crate) fn new(aggregate: Aggregate, max_groups: usize) -> Self {
        Grouper {
            aggregate,
            groups: HashMap::new(),
            max_groups,
        }
    }

    /// Adds a line that passed the filter.
    pub(crate) fn add(&mut self, line: &LogLine) -> Result<(), ExecError> {
        let mut keys = Vec::with_capacity(self.aggregate.by.len());
        for key in &self.aggregate.by {
            let Some(text) = extract::text(line, key) else {
                return Ok(());
            };
            keys.push(String::from_utf8_lossy(&text).into_owned());
        }
        let bucket = self
            .aggregate
            .span
            .map_or(0, |s| line.time.as_micros().div_euclid(s).saturating_mul(s));
        let full = self.groups.len() >= self.max_groups;
        let accumulators = match self.groups.entry((bucket, keys)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if full => {
                return Err(ExecError::TooManyGroups {
                    limit: self.max_groups,
                });
            }
            Entry::Vacant(v) => {
                v.insert(self.aggregate.aggs.iter().map(Accumulator::new).collect())
            }
        };
        for (acc, agg) in accumulators.iter_mut().zip(&self.aggregate.aggs) {
            let value = match agg.func {
                Func::Count => None,
                _ => extract::number(line, &agg.key),
            };
            acc.add(value);
        }
        Ok(())
    }

    /// Whether no line is in a group yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether the group of `bucket` and `keys` has lines already.
    pub(crate) fn contains(&self, bucket: i64, keys: &[String]) -> bool {
        // The map's key is owned; a lookup by parts would need a second map type.
        self.groups.contains_key(&(bucket, keys.to_vec()))
    }

    /// Adds a group's aggregates computed elsewhere (an index's columns), merged into the
    /// group's if it has lines already.
    pub(crate) fn merge(
        &mut self,
        bucket: i64,
        keys: Vec<String>,
        accumulators: Vec<Accumulator>,
    ) -> Result<(), ExecError> {
        let full = self.groups.len() >= self.max_groups;
        match self.groups.entry((bucket, keys)) {
            Entry::Occupied(mut e) => {
                for (mine, theirs) in e.get_mut().iter_mut().zip(accumulators) {
                    mine.merge(theirs);
                }
            }
            Entry::Vacant(_) if full => {
                return Err(ExecError::TooManyGroups {
                    limit: self.max_groups,
                });
            }
            Entry::Vacant(v) => {
                v.insert(accumulators);
            }
        }
        Ok(())
    }

    /// The table, in the default order: a timechart by time then keys; with a `count`, by
    /// count (highest first) then keys; else by keys.
    pub(crate) fn finish(self) -> Table {
        let Grouper {
            aggregate,
            mut groups,
            ..
        } = self;
        if groups.is_empty() && aggregate.by.is_empty() && aggregate.span.is_none() {
            groups.insert(
                (0, Vec::new()),
                aggregate.aggs.iter().map(Accumulator::new).collect(),
            );
        }
        let mut columns = Vec::new();
        if aggregate.span.is_some() {
            columns.push(column("time", ColumnKind::Time));
        }
        columns.extend(aggregate.by.iter().map(|k| column(k, ColumnKind::Key)));
        columns.extend(
            aggregate
                .aggs
                .iter()
                .map(|a| column(&a.name, ColumnKind::Value)),
        );
        let mut rows: Vec<(GroupKey, Vec<Cell>)> = groups
            .into_iter()
            .map(|(key, accs)| {
                let values = accs.iter().map(Accumulator::value).collect();
                (key, values)
            })
            .collect();
        let count = aggregate.aggs.iter().position(|a| a.func == Func::Count);
        rows.sort_by(|(ka, va), (kb, vb)| {
            let by_count = match (aggregate.span, count) {
                (None, Some(i)) => compare(&vb[i], &va[i]),
                _ => std::cmp::Ordering::Equal,
            };
            ka.0.cmp(&kb.0).then(by_count).then_with(|| ka.1.cmp(&kb.1))
        });
        let rows = rows
            .into_iter()
            .map(|((bucket, keys), values)| {
                let time = aggregate
                    .span
                    .map(|_| Cell::Time(Timestamp::from_micros(bucket)));
                time.into_iter()
                    .chain(keys.into_iter().map(Cell::Text))
                    .chain(values)
                    .collect()
            })
            .collect();
        Table {
            columns,
            rows,
            span_micros: aggregate.span,
        }
    }
}

fn column(name: &str, kind: ColumnKind) -> Column {
    Column {
        name: name.to_owned(),
        kind,
    }
}
