//! NDJSON, written field by field so that the keys keep the contract's order.

use crate::exec::{Cell, Lines, Table};

/// A JSON string of `bytes` (lossy UTF-8).
fn string(bytes: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(bytes);
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
}

/// A number: whole numbers without a fraction, others as the shortest text; `null` for none.
pub(super) fn number(n: f64, out: &mut Vec<u8>) {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        out.extend_from_slice((n as i64).to_string().as_bytes());
    } else if n.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &n);
    } else {
        out.extend_from_slice(b"null");
    }
}

pub(super) fn lines(lines: &Lines, out: &mut Vec<u8>) {
    for line in &lines.lines {
        out.extend_from_slice(b"{\"time\":\"");
        line.time.write_rfc3339(out);
        out.extend_from_slice(b"\",\"source\":");
        string(&line.source, out);
        out.extend_from_slice(b",\"process\":");
        string(&line.process, out);
        out.extend_from_slice(b",\"message\":");
        string(&line.message, out);
        out.extend_from_slice(b",\"fields\":{");
        let mut seen: Vec<&[u8]> = Vec::new();
        for pair in logfmt::pairs(&line.message) {
            let wanted = lines
                .fields
                .as_ref()
                .is_none_or(|f| f.iter().any(|k| k.as_bytes() == pair.key));
            if !wanted || seen.contains(&pair.key) {
                continue;
            }
            if !seen.is_empty() {
                out.push(b',');
            }
            seen.push(pair.key);
            string(pair.key, out);
            out.push(b':');
            string(&pair.value.map(|v| v.unescaped()).unwrap_or_default(), out);
        }
        out.extend_from_slice(b"}}\n");
    }
}

pub(super) fn rows(table: &Table, out: &mut Vec<u8>) {
    for row in &table.rows {
        out.push(b'{');
        for (i, (column, cell)) in table.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(column.name.as_bytes(), out);
            out.push(b':');
            match cell {
                Cell::Text(t) => string(t.as_bytes(), out),
                Cell::Number(n) => number(*n, out),
                Cell::Time(t) => {
                    out.push(b'"');
                    t.write_rfc3339(out);
                    out.push(b'"');
                }
                Cell::Empty => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"}\n");
    }
}
