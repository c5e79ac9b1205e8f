//! The query language: `FILTER [| STAGE]…`.
//!
//! The filter is `logfmt`'s predicate grammar (units, globs, `and`/`or`/`not`, parentheses),
//! read with the line's attributes (`source`, `process`, and `dyno`: the process, where
//! `dyno=web` holds for every `web.N`) and quoted phrases as full text; it may be empty or
//! `*` (every line). A `|` outside quotes starts a stage (`||` is the filter's `or`).
//!
//! | stage | what it does |
//! |---|---|
//! | `count` | one row: the number of lines |
//! | `count by K[,K…]` | a row per group: rows by count, highest first, ties by key |
//! | `top N K[,K…]` | `count by K \| sort -count \| head N` |
//! | `AGG[,AGG…] [by K[,K…]]` | `count`, `sum(K)`, `avg(K)`, `min(K)`, `max(K)`, `pNN(K)` (`p99`, `p99.9`) |
//! | `timechart SPAN [AGGS] [by K]` | a row per bucket of SPAN (`30s`, `1m`, `1h`, `1d`; ≥ 1 s) and group, by time |
//! | `fields K,…` | lines: only these logfmt fields; a table: only these columns |
//! | `sort [-]COLUMN` | a table's rows by a column named as written (`-p99(service)`), `-` for highest first |
//! | `head N` | the first N lines or rows (N ≤ 100,000) |
//!
//! One aggregating stage a query (`count`, an aggregate list, `top`, `timechart`); `head` and
//! `fields` may come before it (aggregate the first N lines), `sort`, `head` and `fields`
//! after it. Grouping keys and aggregated keys may be logfmt keys or the attributes.

mod error;
mod lex;
mod split;
mod stage;

use std::str::FromStr;

use logfmt::Predicate;

use error::Failure;
pub use error::QueryError;

/// The most rows `head` and `top` may ask for.
pub const MAX_ROWS: usize = 100_000;
/// The most keys in a `by` or `fields` list, and the most aggregates in a list.
pub const MAX_LIST: usize = 32;
/// The most stages a query.
pub const MAX_STAGES: usize = 32;
/// The longest query read, in bytes (the filter's own bound).
pub const MAX_QUERY_LEN: usize = Predicate::MAX_LEN;
/// The longest timechart span: 366 days.
pub(crate) const MAX_SPAN_MICROS: i64 = 366 * 86_400 * 1_000_000;

/// A parsed query: a filter and its stages.
///
/// ```
/// let q = query::Query::parse("status>=500 | p50(service),p99(service) by path | sort -p99(service)").unwrap();
/// assert_eq!(q.columns().unwrap(), ["path", "p50(service)", "p99(service)"]);
/// let e = query::Query::parse("status>=500 | cuont").unwrap_err();
/// assert_eq!(e.column, 15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub(crate) filter: Option<Predicate>,
    /// Stages on lines, before any aggregation: `head`, `fields`.
    pub(crate) before: Vec<LineStage>,
    pub(crate) aggregate: Option<Aggregate>,
    /// Stages on the table, after the aggregation: `sort`, `head`, `fields`.
    pub(crate) after: Vec<TableStage>,
    /// The filter as written (`*` when none): what a cluster's node asks the others for.
    pub(crate) filter_text: String,
}

/// A stage on lines.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LineStage {
    Head(usize),
    Fields(Vec<String>),
}

/// A stage on a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TableStage {
    Sort { column: String, descending: bool },
    Head(usize),
    Fields(Vec<String>),
}

/// The aggregating stage: aggregates by keys, per time bucket for a timechart.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Aggregate {
    pub aggs: Vec<Agg>,
    pub by: Vec<String>,
    /// A timechart's bucket, in microseconds.
    pub span: Option<i64>,
}

/// One aggregate: `p99(service)`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Agg {
    pub func: Func,
    /// The aggregated key (empty for `count`).
    pub key: String,
    /// Its column name, as written: `count`, `p99(service)`.
    pub name: String,
}

/// What an aggregate computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Func {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// The quantile, in (0, 1].
    Percentile(f64),
}

/// A stage as parsed, before its place in the pipeline is checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stage {
    Aggregate(Aggregate),
    Top(usize, Vec<String>),
    Fields(Vec<String>),
    Sort {
        column: String,
        descending: bool,
        at: usize,
    },
    Head(usize),
}

impl Aggregate {
    /// The table's columns: `time` for a timechart, the keys, the aggregates.
    pub(crate) fn columns(&self) -> Vec<String> {
        let time = self.span.map(|_| "time".to_owned());
        time.into_iter()
            .chain(self.by.iter().cloned())
            .chain(self.aggs.iter().map(|a| a.name.clone()))
            .collect()
    }
}

impl Query {
    /// The query's filter alone (no stages): the lines a node ships another.
    pub(crate) fn filter_only(&self) -> Query {
        Query {
            filter: self.filter.clone(),
            before: Vec::new(),
            aggregate: None,
            after: Vec::new(),
            filter_text: self.filter_text.clone(),
        }
    }

    /// The filter as written (`*` when none).
    pub(crate) fn filter_text(&self) -> &str {
        &self.filter_text
    }

    /// Parses a query; the error names the column and what was expected.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        parse(text).map_err(|f| QueryError::at(text, f.at, f.message))
    }

    /// The columns of the table the query makes, or `None` when it gives lines.
    pub fn columns(&self) -> Option<Vec<String>> {
        let mut columns = self.aggregate.as_ref()?.columns();
        for stage in &self.after {
            if let TableStage::Fields(keep) = stage {
                columns = keep.clone();
            }
        }
        Some(columns)
    }

    /// Whether the query aggregates (gives a table) rather than lines.
    pub fn is_aggregation(&self) -> bool {
        self.aggregate.is_some()
    }
}

impl FromStr for Query {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Query::parse(s)
    }
}

fn parse(text: &str) -> Result<Query, Failure> {
    if text.len() > MAX_QUERY_LEN {
        return Err(Failure::new(
            MAX_QUERY_LEN,
            format!("the query is longer than {MAX_QUERY_LEN} bytes"),
        ));
    }
    let segments = split::split(text);
    let (first, stages) = segments
        .split_first()
        .ok_or_else(|| Failure::new(0, "empty query"))?;
    if stages.len() > MAX_STAGES {
        return Err(Failure::new(
            stages.get(MAX_STAGES).map_or(0, |s| s.at),
            format!("more than {MAX_STAGES} stages"),
        ));
    }
    let filter_text = match first.text.trim() {
        "" => "*".to_owned(),
        t => t.to_owned(),
    };
    let mut query = Query {
        filter: filter(*first)?,
        before: Vec::new(),
        aggregate: None,
        after: Vec::new(),
        filter_text,
    };
    for segment in stages {
        let stage = stage::parse_stage(*segment)?;
        let start = segment.at + (segment.text.len() - segment.text.trim_start().len());
        place(&mut query, stage, start)?;
    }
    Ok(query)
}

/// The filter: empty or `*` keeps every line.
fn filter(segment: split::Segment<'_>) -> Result<Option<Predicate>, Failure> {
    let trimmed = segment.text.trim();
    if trimmed.is_empty() || trimmed == "*" {
        return Ok(None);
    }
    segment
        .text
        .parse::<Predicate>()
        .map(Some)
        .map_err(|e| Failure::new(segment.at + e.column.saturating_sub(1), e.msg))
}

/// Puts a stage in its place in the pipeline, checking that it may stand there.
fn place(query: &mut Query, stage: Stage, at: usize) -> Result<(), Failure> {
    let Some(columns) = query.columns() else {
        return place_on_lines(query, stage, at);
    };
    let missing = |names: &[String], at: usize| -> Result<(), Failure> {
        match names.iter().find(|n| !columns.contains(n)) {
            Some(n) => Err(Failure::new(
                at,
                format!("no column {n:?}; the columns are {}", columns.join(", ")),
            )),
            None => Ok(()),
        }
    };
    let table_stage = match stage {
        Stage::Aggregate(_) | Stage::Top(..) => {
            return Err(Failure::new(
                at,
                "one aggregation a query: this is a second",
            ));
        }
        Stage::Sort {
            column,
            descending,
            at,
        } => {
            missing(std::slice::from_ref(&column), at)?;
            TableStage::Sort { column, descending }
        }
        Stage::Head(n) => TableStage::Head(n),
        Stage::Fields(keep) => {
            missing(&keep, at)?;
            TableStage::Fields(keep)
        }
    };
    query.after.push(table_stage);
    Ok(())
}

fn place_on_lines(query: &mut Query, stage: Stage, at: usize) -> Result<(), Failure> {
    let aggregate = match stage {
        Stage::Head(n) => {
            query.before.push(LineStage::Head(n));
            return Ok(());
        }
        Stage::Fields(keys) => {
            query.before.push(LineStage::Fields(keys));
            return Ok(());
        }
        Stage::Sort { at, .. } => {
            return Err(Failure::new(
                at,
                "sort orders a table: put it after count, top, timechart or an aggregate",
            ));
        }
        Stage::Aggregate(a) => a,
        Stage::Top(n, by) => {
            query.after.push(TableStage::Sort {
                column: "count".into(),
                descending: true,
            });
            query.after.push(TableStage::Head(n));
            Aggregate {
                aggs: vec![Agg {
                    func: Func::Count,
                    key: String::new(),
                    name: "count".into(),
                }],
                by,
                span: None,
            }
        }
    };
    if query
        .before
        .iter()
        .any(|s| matches!(s, LineStage::Fields(_)))
    {
        return Err(Failure::new(
            at,
            "fields comes after the aggregation, not before",
        ));
    }
    let columns = aggregate.columns();
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(Failure::new(at, format!("the column {c:?} is named twice")));
        }
    }
    query.aggregate = Some(aggregate);
    Ok(())
}

#[cfg(test)]
mod tests;
