//! What a query reads from a line: its attributes (`source`, `process`, `dyno`) and its logfmt
//! values, as text and as numbers with units.

use std::borrow::Cow;

use logfmt::{Attributes, Quantity};
use logplex::LogLine;

/// A line's attributes as the filter and the stages see them: `source`, `process`, and
/// `dyno`, matched by type (`dyno=web` holds for `web.1`).
///
/// `dyno` is the dyno a line is about: the process of a dyno's own line (`app[web.1]`), and
/// for a line that names one in its message (the router's `dyno=web.1`: the dyno that served
/// the request) that one, so `count by dyno` over router lines counts by serving dyno rather
/// than giving one `router` row.
pub(crate) struct LineAttributes<'a>(pub &'a LogLine);

/// The attribute `key` of `line`, if `key` names one.
/// Whether `key` names one of the line's attributes (which may not be in its message).
pub(super) fn is_attribute(key: &[u8]) -> bool {
    matches!(key, b"source" | b"process" | b"dyno")
}

fn attribute<'a>(line: &'a LogLine, key: &[u8]) -> Option<&'a [u8]> {
    match key {
        b"source" => Some(&line.source),
        b"process" => Some(&line.process),
        b"dyno" => Some(
            logfmt::get(&line.message, b"dyno")
                .map(|v| v.raw())
                .filter(|v| !v.is_empty())
                .unwrap_or(&line.process),
        ),
        _ => None,
    }
}

impl Attributes for LineAttributes<'_> {
    fn attribute(&self, key: &[u8]) -> Option<&[u8]> {
        attribute(self.0, key)
    }

    fn matches_by_type(&self, key: &[u8]) -> bool {
        key == b"dyno"
    }
}

/// The text of `key` in `line`: an attribute, or the first logfmt pair with that key
/// (unescaped; a bare key reads as empty).
pub(crate) fn text<'a>(line: &'a LogLine, key: &str) -> Option<Cow<'a, [u8]>> {
    if let Some(value) = attribute(line, key.as_bytes()) {
        return Some(Cow::Borrowed(value));
    }
    let pair = logfmt::pairs(&line.message).find(|p| p.key == key.as_bytes())?;
    Some(pair.value.map_or(Cow::Borrowed(&[][..]), |v| v.unescaped()))
}

/// The number `key` holds in `line`, in the unit it aggregates in: a duration in
/// milliseconds, a size in bytes, a plain number (or pages) as it is. `None` when the key is
/// missing or its value is not a number.
pub(crate) fn number(line: &LogLine, key: &str) -> Option<f64> {
    number_of(&text(line, key)?)
}

/// A value's text as the number it aggregates as (see [`number`]).
pub(crate) fn number_of(text: &[u8]) -> Option<f64> {
    let quantity = logfmt::parse_quantity(text)?;
    let n = match quantity {
        Quantity::Duration(seconds) => seconds * 1000.0,
        Quantity::Number(n) | Quantity::Bytes(n) | Quantity::Pages(n) => n,
    };
    n.is_finite().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::tests::line;

    #[test]
    fn numbers_in_their_aggregating_units() {
        let l = line(
            0,
            "paas",
            "router",
            r#"service=1.5s connect=250us bytes=1.2MB n=7 m=x q="12ms""#,
        );
        assert_eq!(number(&l, "service"), Some(1500.0));
        assert_eq!(number(&l, "connect"), Some(0.25));
        assert_eq!(number(&l, "bytes"), Some(1_200_000.0));
        assert_eq!(number(&l, "n"), Some(7.0));
        assert_eq!(
            number(&l, "q"),
            Some(12.0),
            "quoted values are read unescaped"
        );
        assert_eq!(number(&l, "m"), None);
        assert_eq!(number(&l, "missing"), None);
        assert_eq!(number(&l, "source"), None);
        assert_eq!(text(&l, "dyno").as_deref(), Some(&b"router"[..]));
        assert_eq!(text(&l, "source").as_deref(), Some(&b"paas"[..]));
    }
}
