//! A timechart as a terminal bar chart: a row per bucket (every bucket from the first to the
//! last, empty ones too, up to `MAX_FILLED` rows), bars scaled to the widest.
//!
//! The first aggregate is drawn. With a `by` key the series are the key's values, the
//! `MAX_SERIES` largest (by total) shown and the rest counted in a note: a count or a sum
//! stacks them in one bar a bucket (a glyph a series, with a legend); another aggregate (a
//! percentile, say) does not add up, so each series gets its own bar under the bucket's time.

use std::collections::BTreeMap;

use super::text;
use crate::exec::{Cell, ColumnKind, Table};

/// The most series drawn.
const MAX_SERIES: usize = 6;
/// The most buckets drawn with the empty ones filled in; past it only buckets with values.
const MAX_FILLED: i64 = 2000;
const GLYPHS: [char; MAX_SERIES] = ['█', '▓', '▒', '░', '#', '+'];

/// One bucket: its start and each series' value.
type Buckets = BTreeMap<i64, Vec<(usize, f64)>>;

/// A bucket's start and its values, if it has any.
type Row<'a> = (i64, Option<&'a [(usize, f64)]>);

pub(super) fn chart(table: &Table, width: usize, out: &mut Vec<u8>) {
    let kind = |k: ColumnKind| table.columns.iter().position(|c| c.kind == k);
    let (Some(value), Some(span)) = (kind(ColumnKind::Value), table.span_micros) else {
        return text::table(table, out);
    };
    let keys: Vec<usize> = (0..table.columns.len())
        .filter(|&i| {
            table
                .columns
                .get(i)
                .is_some_and(|c| c.kind == ColumnKind::Key)
        })
        .collect();
    let name = table.columns.get(value).map_or("", |c| c.name.as_str());
    let additive = name == "count" || name.starts_with("sum(");
    let (series, buckets) = collect(table, &keys, value);
    let mut order: Vec<usize> = (0..series.len()).collect();
    let total = |s: usize| -> f64 {
        buckets
            .values()
            .flatten()
            .filter(|(i, _)| *i == s)
            .map(|(_, v)| v)
            .sum()
    };
    order.sort_by(|&a, &b| {
        total(b)
            .total_cmp(&total(a))
            .then(series[a].cmp(&series[b]))
    });
    let hidden = order.len().saturating_sub(MAX_SERIES);
    order.truncate(MAX_SERIES);
    let shown = |bucket: &[(usize, f64)]| -> Vec<(usize, f64)> {
        order
            .iter()
            .enumerate()
            .map(|(slot, s)| {
                (
                    slot,
                    bucket.iter().filter(|(i, _)| i == s).map(|(_, v)| v).sum(),
                )
            })
            .collect()
    };
    let stacked = additive || order.len() <= 1;
    let widest = buckets
        .values()
        .map(|b| {
            let values = shown(b).into_iter().map(|(_, v)| v);
            if stacked {
                values.sum()
            } else {
                values.fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let header = format!("{name} every {}", span_text(span));
    out.extend_from_slice(header.as_bytes());
    if order.len() > 1 || hidden > 0 {
        let legend: Vec<String> = order
            .iter()
            .enumerate()
            .map(|(slot, &s)| format!("{} {}", GLYPHS.get(slot).unwrap_or(&'*'), series[s]))
            .collect();
        out.extend_from_slice(
            format!(" by {}: {}", key_names(table, &keys), legend.join("  ")).as_bytes(),
        );
    }
    out.push(b'\n');
    let scale = |v: f64| {
        if widest > 0.0 {
            (v / widest * width as f64).round() as usize
        } else {
            0
        }
    };
    for (start, bucket) in filled(&buckets, span) {
        let time = time_text(start);
        let values = bucket.map(&shown).unwrap_or_default();
        if stacked {
            let mut bar = String::new();
            for &(slot, v) in &values {
                let glyph = if order.len() > 1 {
                    GLYPHS[slot % MAX_SERIES]
                } else {
                    '█'
                };
                bar.extend(std::iter::repeat_n(glyph, scale(v)));
            }
            let sum: f64 = values.iter().map(|(_, v)| v).sum();
            out.extend_from_slice(format!("{time} │{bar} {}\n", text::number(sum)).as_bytes());
            continue;
        }
        let label = order
            .iter()
            .map(|&s| series[s].chars().count())
            .max()
            .unwrap_or(0);
        out.extend_from_slice(format!("{time}\n").as_bytes());
        for (slot, v) in values {
            let s = order
                .get(slot)
                .and_then(|&s| series.get(s))
                .map_or("", String::as_str);
            let bar: String = std::iter::repeat_n('█', scale(v)).collect();
            out.extend_from_slice(format!("  {s:label$} │{bar} {}\n", text::number(v)).as_bytes());
        }
    }
    if hidden > 0 {
        out.extend_from_slice(format!("({hidden} more series not shown)\n").as_bytes());
    }
}

/// The series names (key values joined by `,`) and each bucket's values by series.
fn collect(table: &Table, keys: &[usize], value: usize) -> (Vec<String>, Buckets) {
    let mut series: Vec<String> = Vec::new();
    let mut buckets = Buckets::new();
    for row in &table.rows {
        let Some(Cell::Time(t)) = row.iter().find(|c| matches!(c, Cell::Time(_))) else {
            continue;
        };
        let name: Vec<String> = keys
            .iter()
            .filter_map(|&i| row.get(i))
            .map(text::cell)
            .collect();
        let name = name.join(",");
        let index = match series.iter().position(|s| *s == name) {
            Some(i) => i,
            None => {
                series.push(name);
                series.len() - 1
            }
        };
        if let Some(Cell::Number(v)) = row.get(value) {
            buckets.entry(t.as_micros()).or_default().push((index, *v));
        }
    }
    (series, buckets)
}

/// Every bucket from the first to the last (or only those with values when too many).
fn filled(buckets: &Buckets, span: i64) -> Vec<Row<'_>> {
    let (Some((&first, _)), Some((&last, _))) =
        (buckets.first_key_value(), buckets.last_key_value())
    else {
        return Vec::new();
    };
    if span <= 0 || (last - first) / span > MAX_FILLED {
        return buckets
            .iter()
            .map(|(&t, b)| (t, Some(b.as_slice())))
            .collect();
    }
    (0..=(last - first) / span)
        .map(|k| first + k * span)
        .map(|t| (t, buckets.get(&t).map(Vec::as_slice)))
        .collect()
}

fn key_names(table: &Table, keys: &[usize]) -> String {
    let names: Vec<&str> = keys
        .iter()
        .filter_map(|&i| table.columns.get(i))
        .map(|c| c.name.as_str())
        .collect();
    names.join(",")
}

/// `2026-11-21 12:00:00`.
fn time_text(micros: i64) -> String {
    let full = logplex::Timestamp::from_micros(micros).to_string();
    full.get(..19).unwrap_or(&full).replacen('T', " ", 1)
}

fn span_text(micros: i64) -> String {
    let s = micros / 1_000_000;
    match s {
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}
