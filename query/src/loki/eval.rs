//! Evaluating a LogQL query on the query engine: a log query is one query of lines; a range
//! function is one aggregating query (a `timechart` of buckets for a range query), whose
//! buckets make each step's window; vector aggregations then combine the series here.
//!
//! Windows: a point at `t` covers `[t - range, t)`. A range query's start is aligned down to
//! a multiple of its step, as Loki does. `count_over_time`, `rate` and `sum_over_time`,
//! `min_over_time`, `max_over_time` are computed over buckets of `gcd(range, step)`, so every
//! step's window is exact; `avg_over_time` and `quantile_over_time` cannot be combined from
//! buckets, so they are computed over consecutive windows of the range, a point at each
//! window's end (the same as Loki's when the step equals the range, as Grafana's
//! `[$__interval]` gives).

use std::collections::BTreeMap;

use logplex::{LogLine, Timestamp};

use super::logql::{Expr, LogExpr, RangeFn, Unwrap, VecOp};
use super::translate::{self, Plan, PlanError};
use crate::index::SearchError;
use crate::service::QueryService;
use crate::window::Window;
use crate::{Cell, Output, Query};

/// The most points a series may have in a range query (Loki's bound).
pub const MAX_POINTS: i64 = 11_000;
/// The most buckets a range function's query may make a series.
pub const MAX_BUCKETS: i64 = 100_000;
/// The most lines read for a query with a regular expression, before it is applied.
pub const MAX_REGEX_LINES: usize = 100_000;

/// One series: its labels and its points (milliseconds → value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: BTreeMap<i64, f64>,
}

/// A stream of lines: its labels and its lines (nanoseconds, message).
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<(i64, String)>,
}

/// When a query is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// A range query: from `start` to `end` by `step`, in milliseconds.
    Range { start: i64, end: i64, step: i64 },
    /// An instant query at `time`, in milliseconds.
    Instant { time: i64 },
}

/// What a query gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Streams(Vec<Stream>),
    Matrix(Vec<Series>),
    Vector(Vec<Series>),
}

/// Why a query could not be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A 400: the query asks what cannot be answered.
    Invalid(String),
    /// A 403: the key may not read the app.
    Forbidden(String),
    /// A 500.
    Internal(String),
}

impl From<PlanError> for EvalError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Invalid(m) => EvalError::Invalid(m),
            PlanError::Forbidden(m) => EvalError::Forbidden(m),
        }
    }
}

impl From<SearchError> for EvalError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Exec(e) => EvalError::Invalid(format!("{e}")),
            e => EvalError::Internal(e.to_string()),
        }
    }
}

/// A log query's options.
#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    /// Lines at most.
    pub limit: usize,
    /// Oldest first (`true`) or newest first.
    pub forward: bool,
    /// The window of a log query, in milliseconds: `[since, until)`.
    pub since: i64,
    pub until: i64,
}

/// Evaluates `expr` for a caller who may read `allowed` (`None`: any app).
pub fn evaluate(
    service: &QueryService,
    expr: &Expr,
    allowed: Option<&str>,
    at: At,
    log: LogOptions,
) -> Result<Answer, EvalError> {
    if let At::Range { start, end, step } = at
        && (step <= 0 || (end - start) / step > MAX_POINTS)
    {
        return Err(EvalError::Invalid(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try increasing the value of the step parameter"
        )));
    }
    match expr {
        Expr::Log(l) => Ok(Answer::Streams(streams(service, l, allowed, log)?)),
        _ => {
            let series = series(service, expr, allowed, at, None)?;
            Ok(match at {
                At::Range { .. } => Answer::Matrix(series),
                At::Instant { .. } => Answer::Vector(series),
            })
        }
    }
}

/// The lines of a log query, as streams by source and process.
pub fn streams(
    service: &QueryService,
    log: &LogExpr,
    allowed: Option<&str>,
    options: LogOptions,
) -> Result<Vec<Stream>, EvalError> {
    let plan = translate::plan(log, allowed)?;
    let mut lines = log_lines(service, &plan, options)?;
    if !options.forward {
        lines.reverse();
    }
    Ok(group(&plan.app, lines))
}

/// The lines of a planned log query, oldest first.
pub fn log_lines(
    service: &QueryService,
    plan: &Plan,
    options: LogOptions,
) -> Result<Vec<LogLine>, EvalError> {
    let window = window(options.since, options.until);
    lines(service, plan, window, options.limit, options.forward)
}

/// Lines as streams by source and process, in the order given.
pub fn group(app: &str, lines: impl IntoIterator<Item = LogLine>) -> Vec<Stream> {
    let mut by_stream: BTreeMap<(Vec<u8>, Vec<u8>), Stream> = BTreeMap::new();
    for line in lines {
        let key = (line.source.to_vec(), line.process.to_vec());
        let stream = by_stream.entry(key).or_insert_with(|| Stream {
            labels: stream_labels(app, &line),
            values: Vec::new(),
        });
        stream.values.push((
            line.time.as_micros().saturating_mul(1000),
            String::from_utf8_lossy(&line.message).into_owned(),
        ));
    }
    by_stream.into_values().collect()
}

/// A line's stream labels.
pub fn stream_labels(app: &str, line: &LogLine) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), app.to_owned()),
        (
            "source".to_owned(),
            String::from_utf8_lossy(&line.source).into_owned(),
        ),
        (
            "process".to_owned(),
            String::from_utf8_lossy(&line.process).into_owned(),
        ),
    ])
}

fn window(since_ms: i64, until_ms: i64) -> Window {
    Window {
        since: Some(Timestamp::from_micros(since_ms.saturating_mul(1000))),
        until: Some(Timestamp::from_micros(until_ms.saturating_mul(1000))),
    }
}

fn app_id(service: &QueryService, app: &str) -> Result<String, EvalError> {
    service
        .app_id(app)
        .ok_or_else(|| EvalError::Invalid(format!("there is no app named {app:?}")))
}

fn parse_query(text: &str) -> Result<Query, EvalError> {
    Query::parse(text).map_err(|e| {
        EvalError::Invalid(format!(
            "the query does not translate into the query language ({text:?}): {e}"
        ))
    })
}

/// The lines `plan` matches in `window`: the newest `limit`, or the oldest when `forward`;
/// oldest first.
fn lines(
    service: &QueryService,
    plan: &Plan,
    window: Window,
    limit: usize,
    forward: bool,
) -> Result<Vec<LogLine>, EvalError> {
    let id = app_id(service, &plan.app)?;
    let regex = !plan.regexes.is_empty();
    let text = if forward && !regex {
        format!("{} | head {limit}", plan.filter)
    } else {
        plan.filter.clone()
    };
    let query = parse_query(&text)?;
    let read = if regex { MAX_REGEX_LINES } else { limit };
    let Output::Lines(found) = service.answer(&id, &plan.app, &query, window, read)? else {
        return Err(EvalError::Internal("a filter gave a table".to_owned()));
    };
    if !regex {
        return Ok(found.lines);
    }
    if found.omitted > 0 {
        return Err(too_many_for_regex());
    }
    let mut kept: Vec<LogLine> = found
        .lines
        .into_iter()
        .filter(|l| plan.passes(&String::from_utf8_lossy(&l.message)))
        .collect();
    if kept.len() > limit {
        if forward {
            kept.truncate(limit);
        } else {
            kept.drain(..kept.len() - limit);
        }
    }
    Ok(kept)
}

fn too_many_for_regex() -> EvalError {
    EvalError::Invalid(format!(
        "more than {MAX_REGEX_LINES} lines match before the regular expression is applied: narrow the selector, add a |= filter or shorten the time range"
    ))
}

/// The series of a metric expression. `pushed`: the labels an enclosing `sum by` groups by,
/// which a range function may group by directly.
fn series(
    service: &QueryService,
    expr: &Expr,
    allowed: Option<&str>,
    at: At,
    pushed: Option<&[String]>,
) -> Result<Vec<Series>, EvalError> {
    match expr {
        Expr::Log(_) => Err(EvalError::Invalid(
            "a log query cannot be aggregated; wrap it in a range function".to_owned(),
        )),
        Expr::Range {
            func,
            log,
            range_ms,
            by,
        } => {
            let keys: Vec<String> = match (by, pushed) {
                (Some(by), _) => by.clone(),
                (None, Some(p)) => p.to_vec(),
                (None, None) => translate::STREAM_LABELS.map(str::to_owned).to_vec(),
            };
            range_series(service, *func, log, *range_ms, &keys, allowed, at)
        }
        Expr::Vector { op, by, inner } => {
            let by = by.as_deref();
            // A sum of sums is the sum grouped directly: the range function groups by the
            // sum's labels. Any other aggregation needs the streams' series.
            let pushed = match op {
                VecOp::Sum => Some(by.unwrap_or(&[])),
                _ => None,
            };
            let inner = series(service, inner, allowed, at, pushed)?;
            Ok(aggregate_series(*op, by, inner))
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Whether a range function's windows are summed from smaller buckets (its value combines),
/// or computed over whole windows of the range.
fn slides(func: RangeFn) -> bool {
    matches!(
        func,
        RangeFn::CountOverTime
            | RangeFn::Rate
            | RangeFn::SumOverTime
            | RangeFn::MinOverTime
            | RangeFn::MaxOverTime
    )
}

/// Labels → bucket start (ms) → value.
type Buckets = BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>>;

fn range_series(
    service: &QueryService,
    func: RangeFn,
    log: &LogExpr,
    range_ms: i64,
    keys: &[String],
    allowed: Option<&str>,
    at: At,
) -> Result<Vec<Series>, EvalError> {
    let plan = translate::plan(log, allowed)?;
    let engine_keys: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k != "app")
        .collect();
    let agg = translate::aggregate(func, plan.unwrap.as_ref());
    let by = if engine_keys.is_empty() {
        String::new()
    } else {
        format!(" by {}", engine_keys.join(","))
    };
    let (stage, window) = engine_stage(func, range_ms, at, &format!("{agg}{by}"))?;
    let Output::Table(table) = aggregate_query(service, &plan, &stage, window)? else {
        return Err(EvalError::Internal("an aggregation gave lines".to_owned()));
    };
    let with_app = keys.iter().any(|k| k == "app");
    let app = with_app.then_some(plan.app.as_str());
    let buckets = buckets_of(&table, &agg, &engine_keys, app, plan.unwrap.as_ref())?;
    Ok(buckets
        .into_iter()
        .map(|(labels, b)| Series {
            labels,
            points: points_of(func, range_ms, at, &b),
        })
        .filter(|s| !s.points.is_empty())
        .collect())
}

/// The query language's aggregating stage for a range function (`timechart 30s count by
/// path` for a range query), and the window it reads.
fn engine_stage(
    func: RangeFn,
    range_ms: i64,
    at: At,
    aggregate: &str,
) -> Result<(String, Window), EvalError> {
    let (start, end, step) = match at {
        At::Instant { time } => {
            return Ok((aggregate.to_owned(), window(time - range_ms, time)));
        }
        At::Range { start, end, step } => (start, end, step),
    };
    let bucket = if slides(func) {
        gcd(range_ms, step)
    } else {
        range_ms
    };
    if bucket % 1000 != 0 {
        return Err(EvalError::Invalid(
            "the step and the range must be whole seconds".to_owned(),
        ));
    }
    if (end - start + range_ms) / bucket > MAX_BUCKETS {
        return Err(EvalError::Invalid(format!(
            "the range and step make more than {MAX_BUCKETS} buckets a series: make the step a multiple of the range, or shorten the time range"
        )));
    }
    let first = (start - range_ms).div_euclid(bucket) * bucket;
    Ok((
        format!("timechart {}s {aggregate}", bucket / 1000),
        window(first, end),
    ))
}

/// The engine's rows as buckets per label set (with the app's label when `app` is given), the
/// values in the unit `unwrap` asks for.
fn buckets_of(
    table: &crate::Table,
    agg: &str,
    keys: &[&str],
    app: Option<&str>,
    unwrap: Option<&Unwrap>,
) -> Result<Buckets, EvalError> {
    let time_col = table.column("time");
    let value_col = table
        .column(agg)
        .ok_or_else(|| EvalError::Internal(format!("no column {agg}")))?;
    let key_cols: Vec<(&str, Option<usize>)> = keys.iter().map(|k| (*k, table.column(k))).collect();
    let mut buckets = Buckets::new();
    for row in &table.rows {
        let Some(Cell::Number(v)) = row.get(value_col) else {
            continue;
        };
        let mut labels = BTreeMap::new();
        if let Some(app) = app {
            labels.insert("app".to_owned(), app.to_owned());
        }
        for (k, col) in &key_cols {
            if let Some(Cell::Text(t)) = col.and_then(|c| row.get(c))
                && !t.is_empty()
            {
                labels.insert((*k).to_owned(), t.clone());
            }
        }
        let t = match time_col.and_then(|c| row.get(c)) {
            Some(Cell::Time(t)) => t.as_micros().div_euclid(1000),
            _ => 0,
        };
        buckets
            .entry(labels)
            .or_default()
            .insert(t, translate::convert(*v, unwrap));
    }
    Ok(buckets)
}

/// A series' points from its buckets: each step's window `[t - range, t)` combined from the
/// buckets in it, or (functions that do not combine) each window's own value at its end.
fn points_of(func: RangeFn, range_ms: i64, at: At, b: &BTreeMap<i64, f64>) -> BTreeMap<i64, f64> {
    let per_second = |v: f64| {
        if func == RangeFn::Rate {
            v / (range_ms as f64 / 1000.0)
        } else {
            v
        }
    };
    let mut points = BTreeMap::new();
    match at {
        At::Instant { time } => {
            if let Some(v) = b.values().next() {
                points.insert(time, per_second(*v));
            }
        }
        At::Range { start, end, step } if slides(func) => {
            let mut t = start;
            while t <= end {
                let inside = b.range(t - range_ms..t).map(|(_, v)| *v);
                let combined = match func {
                    RangeFn::MinOverTime => inside.reduce(f64::min),
                    RangeFn::MaxOverTime => inside.reduce(f64::max),
                    _ => inside.reduce(|a, b| a + b),
                };
                if let Some(v) = combined {
                    points.insert(t, per_second(v));
                }
                t += step;
            }
        }
        At::Range { start, end, .. } => {
            for (s, v) in b {
                let t = s + range_ms;
                if (start..=end).contains(&t) {
                    points.insert(t, *v);
                }
            }
        }
    }
    points
}

/// Runs `FILTER | STAGE` (the regular expressions applied between the two).
fn aggregate_query(
    service: &QueryService,
    plan: &Plan,
    stage: &str,
    window: Window,
) -> Result<Output, EvalError> {
    let id = app_id(service, &plan.app)?;
    if plan.regexes.is_empty() {
        let query = parse_query(&format!("{} | {stage}", plan.filter))?;
        return Ok(service.answer(&id, &plan.app, &query, window, 1)?);
    }
    let filter = parse_query(&plan.filter)?;
    let Output::Lines(found) = service.answer(&id, &plan.app, &filter, window, MAX_REGEX_LINES)?
    else {
        return Err(EvalError::Internal("a filter gave a table".to_owned()));
    };
    if found.omitted > 0 {
        return Err(too_many_for_regex());
    }
    let kept = found
        .lines
        .into_iter()
        .filter(|l| plan.passes(&String::from_utf8_lossy(&l.message)));
    let query = parse_query(&format!("* | {stage}"))?;
    crate::run(&query, kept, 1).map_err(|e| EvalError::Invalid(format!("{e}")))
}

/// A vector aggregation over `series`, point by point.
pub fn aggregate_series(op: VecOp, by: Option<&[String]>, series: Vec<Series>) -> Vec<Series> {
    let group_of = |s: &Series| -> BTreeMap<String, String> {
        match by {
            None => BTreeMap::new(),
            Some(keys) => s
                .labels
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<Series>> = BTreeMap::new();
    for s in series {
        groups.entry(group_of(&s)).or_default().push(s);
    }
    let mut out = Vec::new();
    for (labels, members) in groups {
        match op {
            VecOp::Topk(k) | VecOp::Bottomk(k) => {
                let top = matches!(op, VecOp::Topk(_));
                let mut kept: Vec<Series> = members
                    .iter()
                    .map(|s| Series {
                        labels: s.labels.clone(),
                        points: BTreeMap::new(),
                    })
                    .collect();
                let times: std::collections::BTreeSet<i64> = members
                    .iter()
                    .flat_map(|s| s.points.keys().copied())
                    .collect();
                for t in times {
                    let mut at: Vec<(usize, f64)> = members
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| s.points.get(&t).map(|v| (i, *v)))
                        .collect();
                    at.sort_by(|a, b| {
                        let o = a.1.total_cmp(&b.1);
                        if top { o.reverse() } else { o }
                    });
                    for (i, v) in at.into_iter().take(k) {
                        kept[i].points.insert(t, v);
                    }
                }
                out.extend(kept.into_iter().filter(|s| !s.points.is_empty()));
            }
            _ => {
                let mut points: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
                for s in &members {
                    for (t, v) in &s.points {
                        let e = points.entry(*t).or_insert((
                            match op {
                                VecOp::Min => f64::INFINITY,
                                VecOp::Max => f64::NEG_INFINITY,
                                _ => 0.0,
                            },
                            0.0,
                        ));
                        e.0 = match op {
                            VecOp::Min => e.0.min(*v),
                            VecOp::Max => e.0.max(*v),
                            VecOp::Count => e.0 + 1.0,
                            _ => e.0 + v,
                        };
                        e.1 += 1.0;
                    }
                }
                let points = points
                    .into_iter()
                    .map(|(t, (v, n))| (t, if op == VecOp::Avg { v / n } else { v }))
                    .collect();
                out.push(Series { labels, points });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            points: points.iter().copied().collect(),
        }
    }

    #[test]
    fn windows_are_summed_from_buckets_or_taken_whole() {
        // Buckets of 30 s: 2 lines at 0, 4 at 30 s, 6 at 90 s.
        let b: BTreeMap<i64, f64> = [(0, 2.0), (30_000, 4.0), (90_000, 6.0)].into();
        let at = At::Range {
            start: 30_000,
            end: 120_000,
            step: 30_000,
        };
        let counts = points_of(RangeFn::CountOverTime, 60_000, at, &b);
        // [t - 60 s, t): 30 → {0}, 60 → {0, 30}, 90 → {30}, 120 → {90}.
        let want: BTreeMap<i64, f64> =
            [(30_000, 2.0), (60_000, 6.0), (90_000, 4.0), (120_000, 6.0)].into();
        assert_eq!(counts, want);
        let rates = points_of(RangeFn::Rate, 60_000, at, &b);
        assert_eq!(rates[&60_000], 0.1);
        let max = points_of(RangeFn::MaxOverTime, 60_000, at, &b);
        assert_eq!(max[&60_000], 4.0);
        // Whole windows of the range, each at its end, inside [start, end].
        let q = points_of(RangeFn::QuantileOverTime(0.5), 30_000, at, &b);
        let want: BTreeMap<i64, f64> = [(30_000, 2.0), (60_000, 4.0), (120_000, 6.0)].into();
        assert_eq!(q, want);
        let instant = points_of(
            RangeFn::Rate,
            60_000,
            At::Instant { time: 5 },
            &[(0, 30.0)].into(),
        );
        assert_eq!(instant, [(5, 0.5)].into());
    }

    #[test]
    fn stages_are_timecharts_of_whole_second_buckets() {
        let at = At::Range {
            start: 60_000,
            end: 120_000,
            step: 20_000,
        };
        let (stage, w) = engine_stage(RangeFn::CountOverTime, 60_000, at, "count by path").unwrap();
        assert_eq!(stage, "timechart 20s count by path");
        assert_eq!(w.since.map(|t| t.as_micros()), Some(0));
        let (stage, _) = engine_stage(RangeFn::AvgOverTime, 60_000, at, "avg(x)").unwrap();
        assert_eq!(stage, "timechart 60s avg(x)");
        let odd = At::Range {
            start: 0,
            end: 1000,
            step: 1500,
        };
        assert!(engine_stage(RangeFn::CountOverTime, 60_000, odd, "count").is_err());
        let many = At::Range {
            start: 0,
            end: 10_000_000_000,
            step: 1000,
        };
        assert!(engine_stage(RangeFn::CountOverTime, 60_000, many, "count").is_err());
    }

    #[test]
    fn vector_aggregations_combine_point_by_point() {
        let all = vec![
            s(
                &[("path", "/a"), ("process", "web.1")],
                &[(0, 1.0), (10, 5.0)],
            ),
            s(&[("path", "/a"), ("process", "web.2")], &[(0, 2.0)]),
            s(
                &[("path", "/b"), ("process", "web.1")],
                &[(0, 7.0), (10, 1.0)],
            ),
        ];
        let by = ["path".to_owned()];
        let sum = aggregate_series(VecOp::Sum, Some(&by), all.clone());
        assert_eq!(
            sum,
            vec![
                s(&[("path", "/a")], &[(0, 3.0), (10, 5.0)]),
                s(&[("path", "/b")], &[(0, 7.0), (10, 1.0)])
            ]
        );
        let total = aggregate_series(VecOp::Sum, None, all.clone());
        assert_eq!(total, vec![s(&[], &[(0, 10.0), (10, 6.0)])]);
        let count = aggregate_series(VecOp::Count, None, all.clone());
        assert_eq!(count, vec![s(&[], &[(0, 3.0), (10, 2.0)])]);
        let avg = aggregate_series(VecOp::Avg, None, all.clone());
        assert_eq!(avg, vec![s(&[], &[(0, 10.0 / 3.0), (10, 3.0)])]);
        let max = aggregate_series(VecOp::Max, None, all.clone());
        assert_eq!(max, vec![s(&[], &[(0, 7.0), (10, 5.0)])]);
        let top = aggregate_series(VecOp::Topk(1), None, all.clone());
        assert_eq!(
            top,
            vec![
                s(&[("path", "/a"), ("process", "web.1")], &[(10, 5.0)]),
                s(&[("path", "/b"), ("process", "web.1")], &[(0, 7.0)]),
            ]
        );
        let bottom = aggregate_series(VecOp::Bottomk(1), Some(&by), all);
        assert_eq!(
            bottom,
            vec![
                s(
                    &[("path", "/a"), ("process", "web.1")],
                    &[(0, 1.0), (10, 5.0)]
                ),
                s(
                    &[("path", "/b"), ("process", "web.1")],
                    &[(0, 7.0), (10, 1.0)]
                ),
            ]
        );
    }
}
