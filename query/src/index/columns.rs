//! The columns an index keeps: the line's attributes (`source`, `process`, `dyno`) and the
//! keys of Heroku's router line (`status`, `service`, `path`, …), each value as an id into
//! the app's dictionary of that column. Every other key is read from the kept line itself
//! (its pairs are in the chunk's token filter).

use logplex::LogLine;

/// Where a column's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The line's source (`app`, `heroku`, `paas`).
    Origin,
    /// The line's process (`web.1`, `router`).
    Process,
    /// The dyno a line is about (as `exec::extract` reads it: the message's `dyno`, else the
    /// process).
    Dyno,
    /// The first logfmt pair with the column's name.
    Pair,
}

/// One kept column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ColumnSpec {
    pub(crate) name: &'static str,
    pub(crate) source: Source,
}

/// The columns, in the order block files hold them (format version 1).
pub(crate) const COLUMNS: &[ColumnSpec] = &[
    attr("source", Source::Origin),
    attr("process", Source::Process),
    attr("dyno", Source::Dyno),
    pair("at"),
    pair("code"),
    pair("desc"),
    pair("method"),
    pair("path"),
    pair("host"),
    pair("connect"),
    pair("service"),
    pair("status"),
    pair("bytes"),
    pair("protocol"),
    // An app line's message text: full-text words found in it are answered from the
    // dictionary (its distinct values), not by decompressing lines.
    pair("msg"),
    pair("message"),
    pair("error"),
];

const fn attr(name: &'static str, source: Source) -> ColumnSpec {
    ColumnSpec { name, source }
}

const fn pair(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        source: Source::Pair,
    }
}

/// The column of `key`, if it is one.
pub(crate) fn column_of(key: &[u8]) -> Option<usize> {
    COLUMNS.iter().position(|c| c.name.as_bytes() == key)
}

/// Whether a column is one of the line's attributes (compared as attributes are).
pub(crate) fn is_attribute(column: usize) -> bool {
    COLUMNS
        .get(column)
        .is_some_and(|c| c.source != Source::Pair)
}

/// One line's column values.
#[derive(Debug, Default)]
pub(crate) struct RowValues<'a> {
    /// Per column: the value (unescaped; a bare key is empty), or `None` when absent.
    pub(crate) values: Vec<Option<std::borrow::Cow<'a, [u8]>>>,
    /// Per column: whether the key appears more than once in the message.
    pub(crate) repeated: Vec<bool>,
    /// Per pair column: where the value's raw bytes are in the message, and whether they hold
    /// an escape (then the raw bytes are not the value's).
    pub(crate) raw: Vec<Option<(std::ops::Range<usize>, bool)>>,
}

/// Reads `line`'s column values; `other` gets every pair of a key that is no column (key,
/// unescaped value, and whether it was written with an escape), for the token filter.
pub(crate) fn read_row<'a>(
    line: &'a LogLine,
    mut other: impl FnMut(&[u8], &[u8], bool),
) -> RowValues<'a> {
    let n = COLUMNS.len();
    let mut row = RowValues {
        values: vec![None; n],
        repeated: vec![false; n],
        raw: vec![None; n],
    };
    let base = line.message.as_ptr() as usize;
    let mut message_dyno: Option<&'a [u8]> = None;
    for p in logfmt::pairs(&line.message) {
        if p.key == b"dyno" && message_dyno.is_none() {
            message_dyno = Some(p.value.map_or(&[][..], |v| v.raw()));
        }
        let value = p
            .value
            .map_or(std::borrow::Cow::Borrowed(&[][..]), |v| v.unescaped());
        match COLUMNS
            .iter()
            .position(|c| c.source == Source::Pair && c.name.as_bytes() == p.key)
        {
            Some(c) => match row.values.get_mut(c) {
                Some(slot @ None) => {
                    let raw = p.value.map_or(&[][..], |v| v.raw());
                    let start = (raw.as_ptr() as usize).wrapping_sub(base);
                    let escaped = matches!(value, std::borrow::Cow::Owned(_));
                    *slot = Some(value);
                    if let Some(r) = row.raw.get_mut(c) {
                        *r = Some((start..start + raw.len(), escaped));
                    }
                }
                Some(Some(_)) => {
                    if let Some(r) = row.repeated.get_mut(c) {
                        *r = true;
                    }
                }
                None => {}
            },
            None => other(p.key, &value, matches!(value, std::borrow::Cow::Owned(_))),
        }
    }
    for (c, spec) in COLUMNS.iter().enumerate() {
        let value: &'a [u8] = match spec.source {
            Source::Pair => continue,
            Source::Origin => &line.source,
            Source::Process => &line.process,
            Source::Dyno => message_dyno
                .filter(|d| !d.is_empty())
                .unwrap_or(&line.process),
        };
        if let Some(slot) = row.values.get_mut(c) {
            *slot = Some(std::borrow::Cow::Borrowed(value));
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::tests::line;

    #[test]
    fn a_router_line_in_columns() {
        let l = line(
            0,
            "heroku",
            "router",
            r#"at=info method=GET path="/a b" dyno=web.2 status=200 status=201 request_id=x1 flag"#,
        );
        let mut others = Vec::new();
        let row = read_row(&l, |k, v, _| others.push((k.to_vec(), v.to_vec())));
        let get = |name: &str| {
            row.values[column_of(name.as_bytes()).unwrap()]
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("path").as_deref(), Some("/a b"));
        assert_eq!(get("status").as_deref(), Some("200"), "the first value");
        assert!(row.repeated[column_of(b"status").unwrap()]);
        assert_eq!(get("dyno").as_deref(), Some("web.2"));
        assert_eq!(get("process").as_deref(), Some("router"));
        assert_eq!(get("source").as_deref(), Some("heroku"));
        assert_eq!(get("service"), None);
        assert_eq!(
            others,
            [
                (b"dyno".to_vec(), b"web.2".to_vec()),
                (b"request_id".to_vec(), b"x1".to_vec()),
                (b"flag".to_vec(), Vec::new())
            ]
        );
        assert!(is_attribute(column_of(b"dyno").unwrap()));
        assert!(!is_attribute(column_of(b"path").unwrap()));
    }
}
