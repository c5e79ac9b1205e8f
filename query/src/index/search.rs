//! Answering a query from an app's index: the blocks first (columns, filters, and the lines
//! where those cannot decide), then the spool past the last block, all through one
//! executor, so that the answer is the one a scan of every kept line gives.

use logfmt::Predicate;
use logplex::{AppName, LogLine};

use super::aggregate::ColumnAggregation;
use super::bitmap::Bitmap;
use super::block::{BlockFile, ChunkLines};
use super::filter::{BlockReader, Plan};
use super::{Index, IndexError};
use crate::exec::extract::LineAttributes;
use crate::exec::{DEFAULT_MAX_GROUPS, ExecError, Executor, Output};
use crate::lang::{LineStage, Query};
use crate::spool::{Position, Spool, SpoolError};
use crate::window::Window;

/// Why a query got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SearchError {
    /// The query asks too much (the caller's to fix).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The spool could not be read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// In a cluster, an answer that would lack some nodes' lines (for the callers that have
    /// no way to say an answer is partial: the Loki API).
    #[error("the answer would lack some nodes' lines: {0}")]
    Partial(String),
}

/// Runs `query` over the app's kept lines in `window`: its blocks, then its spool past them.
pub(crate) fn answer(
    index: &Index,
    spool: &Spool,
    app_id: &str,
    app: &AppName,
    query: &Query,
    window: Window,
    limit: usize,
) -> Result<Output, SearchError> {
    let app_index = index.app(app_id)?;
    let published = app_index.published();
    let dicts = app_index.dicts();
    let (plan, over_budget) = Plan::new(
        query.filter.as_ref(),
        &dicts,
        index.config().max_value_tests,
    );
    if over_budget {
        index
            .inner
            .plans_over_budget
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut exec = Executor::new(query, limit);
    let head_before = query.before.iter().any(|s| matches!(s, LineStage::Head(_)));
    let mut columns = query
        .aggregate
        .as_ref()
        .filter(|_| !head_before)
        .and_then(|a| ColumnAggregation::new(a, DEFAULT_MAX_GROUPS));
    let since = window.since.map(|t| t.as_micros());
    let until = window.until.map(|t| t.as_micros());
    let in_window = |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
    let mut matched: Vec<(&BlockFile, Bitmap)> = Vec::new();
    for block in &published.blocks {
        if exec.is_done() {
            break;
        }
        let h = block.header();
        let overlaps =
            since.is_none_or(|s| h.time_max >= s) && until.is_none_or(|u| h.time_min < u);
        if h.rows == 0 || !overlaps {
            continue;
        }
        let mut reader = BlockReader::new(block, index.cache());
        let selected = reader.eval(&plan)?;
        let (mut rows, mut maybe) = (selected.yes, selected.maybe);
        let inside = in_window(h.time_min) && in_window(h.time_max);
        let needs_times = !inside || query.aggregate.as_ref().is_some_and(|a| a.span.is_some());
        let times = if needs_times && !(rows.is_empty() && maybe.is_empty()) {
            Some(reader.times()?)
        } else {
            None
        };
        if let (false, Some(t)) = (inside, &times) {
            let window = Bitmap::from_fn(rows.len(), |i| in_window(t.get(i)));
            rows.and(&window);
            maybe.and(&window);
        }
        if !maybe.is_empty()
            && let Some(filter) = &query.filter
        {
            decide(block, app, filter, &mut maybe)?;
            rows.or(&maybe);
        }
        if rows.is_empty() {
            continue;
        }
        match (&query.aggregate, &mut columns) {
            (Some(_), Some(c)) if c.can_read(&reader) => {
                c.add(&mut reader, &rows, times.as_deref())?
            }
            (Some(_), _) => for_each_line(block, app, &rows, |line| {
                exec.push_matched(line);
                !exec.is_done()
            })?,
            (None, _) => matched.push((block, rows)),
        }
    }
    if query.aggregate.is_none() {
        give_lines(&mut exec, &matched, app)?;
    }
    drop(matched);
    // The lines past the last block.
    let mut scan = spool.scan_from(app_id, Position(published.end))?;
    while !exec.is_done() {
        match scan.next() {
            Some(Ok(line)) if in_window(line.time.as_micros()) => exec.push(line),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    if let Some(c) = columns
        && let Some(grouper) = exec.grouper()
        && let Err(e) = c.finish(&dicts, grouper, &query.after)
    {
        exec.fail(e);
    }
    Ok(exec.finish()?)
}

/// Keeps the candidate `rows` whose line `filter` holds on.
fn decide(
    block: &BlockFile,
    app: &AppName,
    filter: &Predicate,
    rows: &mut Bitmap,
) -> Result<(), IndexError> {
    let mut out = Bitmap::none(rows.len());
    for_each_row(block, app, rows, |row, line| {
        if filter.matches_line(&line.message, &LineAttributes(&line)) {
            out.set(row);
        }
        true
    })?;
    *rows = out;
    Ok(())
}

/// Calls `f` with each line of `rows`, in order, while it returns true.
fn for_each_line(
    block: &BlockFile,
    app: &AppName,
    rows: &Bitmap,
    mut f: impl FnMut(LogLine) -> bool,
) -> Result<(), IndexError> {
    for_each_row(block, app, rows, |_, line| f(line))
}

fn for_each_row(
    block: &BlockFile,
    app: &AppName,
    rows: &Bitmap,
    mut f: impl FnMut(usize, LogLine) -> bool,
) -> Result<(), IndexError> {
    let mut chunk: Option<(usize, ChunkLines)> = None;
    for row in rows.ones() {
        let (k, i) = block.header().chunk_of(row);
        if chunk.as_ref().is_none_or(|(have, _)| *have != k) {
            chunk = Some((k, block.lines(k, app)?));
        }
        let Some(line) = chunk.as_ref().and_then(|(_, lines)| lines.line(i)) else {
            return Err(IndexError::corrupt(
                block.path(),
                format!("row {row} is not in its chunk"),
            ));
        };
        if !f(row, line) {
            break;
        }
    }
    Ok(())
}

/// Gives the executor the matching lines of the blocks it keeps: with a `head`, the first;
/// else the newest `limit` (the older ones counted, never decompressed).
fn give_lines(
    exec: &mut Executor<'_>,
    matched: &[(&BlockFile, Bitmap)],
    app: &AppName,
) -> Result<(), IndexError> {
    let total: usize = matched.iter().map(|(_, rows)| rows.count()).sum();
    let (want, head) = exec.lines_wanted();
    let mut skip = if head { 0 } else { total.saturating_sub(want) };
    exec.omit_matched(skip as u64);
    for (block, rows) in matched {
        let n = rows.count();
        if skip >= n {
            skip -= n;
            continue;
        }
        let mut keep = rows.clone();
        for row in rows.ones().take(skip) {
            keep.clear_range(row, row + 1);
        }
        skip = 0;
        for_each_line(block, app, &keep, |line| {
            exec.push_matched(line);
            !exec.is_done()
        })?;
        if exec.is_done() {
            break;
        }
    }
    Ok(())
}
