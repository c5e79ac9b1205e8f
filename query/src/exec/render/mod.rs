//! Writing an `Output`: NDJSON (the `--json` and HTTP contract), or for people: lines as
//! `paas logs` prints them, an aligned table, a timechart as a terminal bar chart.

mod chart;
mod json;
mod text;

use super::Output;

/// The width of a chart's bars, in characters, unless told otherwise.
pub const DEFAULT_CHART_WIDTH: usize = 50;

/// Appends `output` as NDJSON: one object a line or a row, each ending in `\n`.
///
/// Lines are `{"time","source","process","message","fields":{…}}` (`fields`: the logfmt
/// pairs as text, the first of a repeated key); rows carry each group key under its name as
/// text, each aggregate under its name as written as a number (ms, bytes; `null` when there
/// is none), and a timechart's `"time"` (the bucket's start, RFC 3339).
pub fn write_ndjson(output: &Output, out: &mut Vec<u8>) {
    match output {
        Output::Lines(lines) => json::lines(lines, out),
        Output::Table(table) => json::rows(table, out),
    }
}

/// Appends `output` for people: lines as `TIME SOURCE[PROCESS]: MESSAGE`, a table with
/// aligned columns (numbers to the right), a timechart as bars `width` characters wide at
/// most.
pub fn write_human(output: &Output, width: usize, out: &mut Vec<u8>) {
    match output {
        Output::Lines(lines) => text::lines(lines, out),
        Output::Table(table) if table.span_micros.is_some() => chart::chart(table, width, out),
        Output::Table(table) => text::table(table, out),
    }
}
