//! Lines and tables for people.

use logplex::TimeFormatCache;

use crate::exec::{Cell, Lines, Table};

/// Lines as `paas logs` prints them (tenants' text escaped for a terminal); with `fields`,
/// the message shows only those pairs.
pub(super) fn lines(lines: &Lines, out: &mut Vec<u8>) {
    let mut cache = TimeFormatCache::default();
    let mut shown_line = Vec::with_capacity(256);
    for line in &lines.lines {
        shown_line.clear();
        match &lines.fields {
            None => line.write_display_cached(&mut shown_line, &mut cache),
            Some(fields) => {
                let mut shown = line.clone();
                shown.message = selected(&line.message, fields).into();
                shown.write_display_cached(&mut shown_line, &mut cache);
            }
        }
        out.extend_from_slice(logplex::printable(&String::from_utf8_lossy(&shown_line)).as_bytes());
        out.push(b'\n');
    }
}

/// The pairs of `message` whose key is in `fields`, as written, in the message's order.
fn selected(message: &[u8], fields: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for pair in logfmt::pairs(message) {
        if !fields.iter().any(|k| k.as_bytes() == pair.key) {
            continue;
        }
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(pair.key);
        if let Some(v) = pair.value {
            out.push(b'=');
            if v.is_quoted() {
                out.push(b'"');
                out.extend_from_slice(v.raw());
                out.push(b'"');
            } else {
                out.extend_from_slice(v.raw());
            }
        }
    }
    out
}

/// A number for people: whole numbers as they are, others with at most 3 decimals.
pub(super) fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return format!("{}", n as i64);
    }
    let text = format!("{n:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub(super) fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(t) => logplex::printable(t).into_owned(),
        Cell::Number(n) => number(*n),
        Cell::Time(t) => t.to_string(),
        Cell::Empty => "-".into(),
    }
}

/// Aligned columns under a header: text to the left, numbers to the right.
pub(super) fn table(table: &Table, out: &mut Vec<u8>) {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let widths: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let widest = cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count());
            widest.fold(c.name.chars().count(), usize::max)
        })
        .collect();
    let right = |i: usize| {
        table
            .rows
            .first()
            .and_then(|r| r.get(i))
            .is_some_and(|c| matches!(c, Cell::Number(_) | Cell::Empty))
    };
    let mut write_row = |texts: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, (text, width)) in texts.zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(text.chars().count());
            if right(i) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(text);
            } else {
                line.push_str(text);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.extend_from_slice(line.trim_end().as_bytes());
        out.push(b'\n');
    };
    write_row(&mut table.columns.iter().map(|c| c.name.as_str()));
    for row in &cells {
        write_row(&mut row.iter().map(String::as_str));
    }
}
