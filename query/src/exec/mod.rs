//! The executor: runs a `Query` over lines, giving the matching lines or a table.
//!
//! It takes lines, one at a time, from whatever reads them (a scan of the spool today, an
//! index's hits later); the caller limits them to the time window and gives them oldest
//! first. Nothing here knows where lines are kept.

pub(crate) mod agg;
pub(crate) mod extract;
pub(crate) mod group;
pub(crate) mod render;
pub(crate) mod sketch;
mod table;

use std::collections::VecDeque;

use logplex::LogLine;

use crate::lang::{LineStage, Query};
use group::Grouper;

pub use group::DEFAULT_MAX_GROUPS;
pub use table::{Cell, Column, ColumnKind, Table};

/// Why a query could not be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// More groups than the executor keeps.
    #[error("more than {limit} groups: narrow the filter or group by fewer keys")]
    TooManyGroups {
        /// The bound passed.
        limit: usize,
    },
}

/// The lines a query without aggregation matched.
#[derive(Clone, Debug, PartialEq)]
pub struct Lines {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The logfmt fields to show (`fields K,…`), or `None` for the whole message.
    pub fields: Option<Vec<String>>,
    /// Matching lines left out: older than the newest `limit` kept.
    pub omitted: u64,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Matching lines (no aggregating stage).
    Lines(Lines),
    /// An aggregation's rows.
    Table(Table),
}

/// What the executor accumulates.
#[derive(Debug)]
enum State {
    Lines(VecDeque<LogLine>),
    Groups(Grouper),
}

/// Runs one query over lines pushed one at a time.
///
/// Without aggregation it keeps the matching lines: with `head N` the first N (and then it
/// is done), else the newest `limit` (older ones are counted in `Lines::omitted`).
#[derive(Debug)]
pub struct Executor<'q> {
    query: &'q Query,
    limit: usize,
    state: State,
    /// Lines that passed the filter, for `head` before an aggregation.
    passed: usize,
    /// The first `head` on lines.
    head: Option<usize>,
    omitted: u64,
    result: Result<(), ExecError>,
    /// What every matching line's message contains, looked for before the filter runs.
    literals: Vec<memchr::memmem::Finder<'static>>,
}

impl<'q> Executor<'q> {
    /// An executor for `query` keeping at most `limit` lines (when it gives lines), and at
    /// most `DEFAULT_MAX_GROUPS` groups.
    pub fn new(query: &'q Query, limit: usize) -> Self {
        Self::with_max_groups(query, limit, DEFAULT_MAX_GROUPS)
    }

    /// `new`, with another bound on groups.
    pub fn with_max_groups(query: &'q Query, limit: usize, max_groups: usize) -> Self {
        let state = match &query.aggregate {
            Some(a) => State::Groups(Grouper::new(a.clone(), max_groups)),
            None => State::Lines(VecDeque::new()),
        };
        let head = query
            .before
            .iter()
            .filter_map(|s| match s {
                LineStage::Head(n) => Some(*n),
                LineStage::Fields(_) => None,
            })
            .min();
        let literals = query.filter.as_ref().map_or_else(Vec::new, |p| {
            p.required_literals(&extract::is_attribute)
                .iter()
                .map(|l| memchr::memmem::Finder::new(l).into_owned())
                .collect()
        });
        Executor {
            query,
            limit,
            state,
            passed: 0,
            head,
            omitted: 0,
            result: Ok(()),
            literals,
        }
    }

    /// Whether more lines would change nothing (a `head` is full, or an error happened).
    pub fn is_done(&self) -> bool {
        self.result.is_err() || self.head.is_some_and(|n| self.passed >= n)
    }

    /// Takes one line.
    pub fn push(&mut self, line: LogLine) {
        if self.is_done() || !self.matches(&line) {
            return;
        }
        self.push_matched(line);
    }

    /// Takes a line the caller knows the filter holds on (an index evaluated it).
    pub(crate) fn push_matched(&mut self, line: LogLine) {
        if self.is_done() {
            return;
        }
        self.passed += 1;
        match &mut self.state {
            State::Groups(g) => self.result = g.add(&line),
            State::Lines(kept) => {
                let cap = self.head.map_or(self.limit, |n| n.min(self.limit));
                if cap == 0 {
                    self.omitted += 1;
                    return;
                }
                if kept.len() >= cap {
                    kept.pop_front();
                    self.omitted += 1;
                }
                kept.push_back(line);
            }
        }
    }

    /// Counts `n` matching lines the caller leaves out because they are older than the
    /// newest `limit` it gives next (a query that gives lines and has no `head`).
    pub(crate) fn omit_matched(&mut self, n: u64) {
        self.passed = self
            .passed
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
        self.omitted += n;
    }

    /// Lines a query that gives lines keeps: its `head` or its `limit`.
    pub(crate) fn lines_wanted(&self) -> (usize, bool) {
        match self.head {
            Some(n) => (n.min(self.limit), true),
            None => (self.limit, false),
        }
    }

    /// The groups, for a query that aggregates.
    pub(crate) fn grouper(&mut self) -> Option<&mut Grouper> {
        match &mut self.state {
            State::Groups(g) => Some(g),
            State::Lines(_) => None,
        }
    }

    /// Records a failure found outside the executor (too many groups in an index's part).
    pub(crate) fn fail(&mut self, e: ExecError) {
        if self.result.is_ok() {
            self.result = Err(e);
        }
    }

    fn matches(&self, line: &LogLine) -> bool {
        if !self
            .literals
            .iter()
            .all(|f| f.find(&line.message).is_some())
        {
            return false;
        }
        let attrs = extract::LineAttributes(line);
        self.query
            .filter
            .as_ref()
            .is_none_or(|p| p.matches_line(&line.message, &attrs))
    }

    /// The answer.
    pub fn finish(self) -> Result<Output, ExecError> {
        self.result?;
        Ok(match self.state {
            State::Groups(g) => {
                let mut table = g.finish();
                table.apply(&self.query.after);
                Output::Table(table)
            }
            State::Lines(kept) => Output::Lines(Lines {
                lines: kept.into(),
                fields: self.query.before.iter().rev().find_map(|s| match s {
                    LineStage::Fields(f) => Some(f.clone()),
                    LineStage::Head(_) => None,
                }),
                omitted: self.omitted,
            }),
        })
    }
}

/// Runs `query` over `lines` (oldest first, already within the time window), keeping at most
/// `limit` lines when it gives lines; stops reading once a `head` is full.
pub fn run(
    query: &Query,
    lines: impl IntoIterator<Item = LogLine>,
    limit: usize,
) -> Result<Output, ExecError> {
    let mut exec = Executor::new(query, limit);
    for line in lines {
        if exec.is_done() {
            break;
        }
        exec.push(line);
    }
    exec.finish()
}

#[cfg(test)]
pub(crate) mod tests;
