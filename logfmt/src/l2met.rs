//! l2met conventions: metrics written as pairs of a log line, `measure#db.latency=20ms`,
//! `count#signups=1`, `sample#memory_rss=212MB`, `unique#user=42`, named for the `source=` of
//! the line.

use crate::pair::Value;
use crate::scan::{Pairs, get, pairs};
use crate::units::{self, Quantity};

/// The four l2met kinds, by their key prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `measure#name=value[unit]`: a distribution (percentiles, mean, min, max).
    Measure,
    /// `count#name=value`: a sum over the period; an empty value counts 1.
    Count,
    /// `sample#name=value[unit]`: the last value in the period (a gauge).
    Sample,
    /// `unique#name=value`: the number of distinct values in the period.
    Unique,
}

impl MetricKind {
    /// The key prefix, without the `#`.
    pub fn prefix(self) -> &'static str {
        match self {
            MetricKind::Measure => "measure",
            MetricKind::Count => "count",
            MetricKind::Sample => "sample",
            MetricKind::Unique => "unique",
        }
    }

    fn of_key(key: &[u8]) -> Option<(MetricKind, &[u8])> {
        let hash = key.iter().position(|&b| b == b'#')?;
        let kind = match &key[..hash] {
            b"measure" => MetricKind::Measure,
            b"count" => MetricKind::Count,
            b"sample" => MetricKind::Sample,
            b"unique" => MetricKind::Unique,
            _ => return None,
        };
        Some((kind, &key[hash + 1..]))
    }
}

/// One metric of a line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric<'a> {
    /// Which of the four.
    pub kind: MetricKind,
    /// The name after the `#` (`db.latency`).
    pub name: &'a [u8],
    /// For measure, count and sample: the number, before its unit (`20` of `20ms`).
    pub number: f64,
    /// The unit as written after the number (`ms`, `MB`, or empty); l2met keeps any word.
    pub unit: &'a [u8],
    /// The value as written (`20ms`; for unique, the value counted).
    pub value: Value<'a>,
    /// The line's `source=` value, when it has one.
    pub source: Option<Value<'a>>,
}

impl Metric<'_> {
    /// The value in base units when its unit is one this crate knows (`20ms` is 0.02 s).
    pub fn quantity(&self) -> Option<Quantity> {
        units::parse_quantity(&self.value.unescaped())
    }
}

/// A `kind#name` pair whose value is not a number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("l2met {key}: value {value:?} is not a number")]
pub struct MetricError {
    /// The whole key, `measure#db.latency`.
    pub key: String,
    /// The value as written.
    pub value: String,
}

/// Iterates the l2met metrics of a line. Made by [`metrics`].
#[derive(Clone, Debug)]
pub struct Metrics<'a> {
    pairs: Pairs<'a>,
    source: Option<Value<'a>>,
}

/// The l2met metrics of a line, in order; a `kind#name` whose value is not a number (other than
/// for `unique#`) comes as an error, so that a caller can count it.
///
/// ```
/// let line = b"source=web.1 measure#db.latency=20ms count#signups sample#memory_rss=212MB";
/// let m: Vec<_> = logfmt::metrics(line).collect::<Result<_, _>>().unwrap();
/// assert_eq!((m[0].name, m[0].number, m[0].unit), (&b"db.latency"[..], 20.0, &b"ms"[..]));
/// assert_eq!(m[1].number, 1.0);
/// assert_eq!(m[2].source.unwrap().raw(), b"web.1");
/// ```
pub fn metrics(line: &[u8]) -> Metrics<'_> {
    Metrics {
        pairs: pairs(line),
        source: get(line, b"source"),
    }
}

impl<'a> Iterator for Metrics<'a> {
    type Item = Result<Metric<'a>, MetricError>;

    fn next(&mut self) -> Option<Self::Item> {
        for pair in self.pairs.by_ref() {
            let Some((kind, name)) = MetricKind::of_key(pair.key) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let value = pair.value.unwrap_or(Value::plain(&[]));
            let raw = value.raw();
            let (number, unit) = match (kind, split_unit(raw)) {
                (MetricKind::Unique, _) => (1.0, &raw[..0]),
                (MetricKind::Count, _) if raw.is_empty() => (1.0, raw),
                (_, Some(parsed)) => parsed,
                (_, None) => {
                    return Some(Err(MetricError {
                        key: String::from_utf8_lossy(pair.key).into_owned(),
                        value: value.to_str_lossy().into_owned(),
                    }));
                }
            };
            return Some(Ok(Metric {
                kind,
                name,
                number,
                unit,
                value,
                source: self.source,
            }));
        }
        None
    }
}

/// `20ms` into 20 and `ms`: the longest prefix that is a number, then any unit.
fn split_unit(raw: &[u8]) -> Option<(f64, &[u8])> {
    let end = raw
        .iter()
        .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')))
        .unwrap_or(raw.len());
    // Back off over exponent letters that turn out to start the unit (`5e` of `5eggs`).
    (1..=end).rev().find_map(|n| {
        let number = units::parse_f64(&raw[..n])?;
        number.is_finite().then_some((number, &raw[n..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(line: &str) -> Vec<Result<Metric<'_>, MetricError>> {
        metrics(line.as_bytes()).collect()
    }

    #[test]
    fn the_four_kinds() {
        let line = "at=info source=web.1 measure#db.latency=20ms count#signups=2 sample#memory_rss=212MB unique#user=42 msg=x";
        let m: Vec<_> = all(line).into_iter().map(|r| r.unwrap()).collect();
        let kinds: Vec<_> = m.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                MetricKind::Measure,
                MetricKind::Count,
                MetricKind::Sample,
                MetricKind::Unique
            ]
        );
        assert_eq!(m[0].quantity(), Some(Quantity::Duration(0.02)));
        assert_eq!((m[1].number, m[1].unit), (2.0, &b""[..]));
        assert_eq!(m[2].quantity(), Some(Quantity::Bytes(212e6)));
        assert_eq!(m[3].value.raw(), b"42");
        assert!(
            m.iter()
                .all(|m| m.source.map(|s| s.raw()) == Some(&b"web.1"[..]))
        );
    }

    #[test]
    fn count_without_value_counts_one() {
        let m = all("count#hits count#misses=");
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|r| r.as_ref().unwrap().number == 1.0));
    }

    #[test]
    fn free_units_and_exponents() {
        let m = all("measure#queue=5jobs measure#big=1e3ms measure#eggs=5eggs");
        let got: Vec<_> = m
            .iter()
            .map(|r| r.as_ref().map(|m| (m.number, m.unit)).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                (5.0, &b"jobs"[..]),
                (1000.0, &b"ms"[..]),
                (5.0, &b"eggs"[..])
            ]
        );
    }

    #[test]
    fn not_a_number_is_an_error_not_a_panic() {
        let m = all("measure#x=fast sample#y= count#z=-");
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(Result::is_err));
        assert_eq!(
            m[0].as_ref().unwrap_err().to_string(),
            "l2met measure#x: value \"fast\" is not a number"
        );
    }

    #[test]
    fn other_keys_with_hash_are_not_metrics() {
        assert!(all("foo#bar=1 measure#=3 measure=1 #=2").is_empty());
    }
}
