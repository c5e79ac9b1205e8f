//! l2met's conventions on any line (l2met, Heroku's log-runtime-metrics, Librato):
//! `count#NAME=N` a counter, `sample#NAME=V` a gauge (last value), `measure#NAME=V` a
//! histogram, `unique#NAME=V` distinct values per interval; `source=` the label. The dyno
//! manager's runtime lines (`source=web.1 dyno=… sample#memory_rss=20MB`, written by the
//! platform) become `paas_dyno_*` gauges per dyno instead.

use std::borrow::Cow;

use logfmt::{MetricKind, Value};
use logplex::LogLine;

use super::units::{self, Rejection, Unit};

/// What the store is asked to keep for one `kind#name=value` pair.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation<'a> {
    /// Its l2met kind.
    pub kind: MetricKind,
    /// The family name, sanitised, with its unit suffix (`paas_app_db_latency_seconds`).
    pub family: &'a str,
    /// The label besides `app`: `source` for app metrics, `dyno` for runtime ones.
    pub label: (&'static str, Cow<'a, str>),
    /// The value in base units (1 for `unique#`).
    pub value: f64,
    /// For `unique#`, the value counted.
    pub distinct: &'a [u8],
}

/// Whether the line may hold l2met pairs at all (a `#` somewhere): most lines do not, and
/// this skips the parse for them.
pub(crate) fn may_have_metrics(message: &[u8]) -> bool {
    memchr::memchr(b'#', message).is_some()
}

/// One `kind#name=value` pair, as the single pass over a line finds it.
struct Found<'a> {
    kind: MetricKind,
    name: &'a [u8],
    value: Option<Value<'a>>,
}

/// Hands each metric of `line` to `each`, or why it was refused. `name` is scratch space
/// reused across lines. One pass of logfmt's SIMD scanner finds the metrics, `source=` (the
/// first) and `dyno=`; this reads what logfmt's `metrics()` reads (tested against it),
/// without its second scan for `source` and its per-pair iterator.
pub(crate) fn extract(
    line: &LogLine,
    name: &mut String,
    mut each: impl FnMut(Result<Observation<'_>, Rejection>),
) {
    let mut found: Vec<Found<'_>> = Vec::new();
    let (mut source, mut source_seen, mut has_dyno) = (None, false, false);
    logfmt::for_each_pair(&line.message, |pair| match pair.key {
        [b's', b'o', b'u', b'r', b'c', b'e'] => {
            if !std::mem::replace(&mut source_seen, true) {
                source = pair.value;
            }
        }
        [b'd', b'y', b'n', b'o'] => has_dyno = true,
        key => {
            if let Some((kind, name)) = of_key(key)
                && !name.is_empty()
            {
                found.push(Found {
                    kind,
                    name,
                    value: pair.value,
                });
            }
        }
    });
    // A platform line (`paas[…]`) with `dyno=`: the dyno manager's runtime metrics. An app
    // cannot write such a line (its lines have source `app` or a token's name).
    let runtime = has_dyno && matches!(&line.source[..], [b'p', b'a', b'a', b's']);
    for m in found {
        name.clear();
        let dyno_gauge = runtime && m.kind == MetricKind::Sample && is_runtime_name(m.name);
        name.push_str(if dyno_gauge {
            "paas_dyno_"
        } else {
            "paas_app_"
        });
        if let Err(r) = units::push_name(name, m.name) {
            each(Err(r));
            continue;
        }
        let raw = m.value.map_or(&[][..], |v| v.raw());
        let normalised = value_of(m.kind, m.value);
        let (value, unit) = match normalised {
            Ok(v) => v,
            Err(r) => {
                each(Err(r));
                continue;
            }
        };
        units::push_unit(name, unit);
        match m.kind {
            MetricKind::Unique => name.push_str("_unique"),
            // The exposition adds `_total` to a counter: `count#requests_total` is not
            // `paas_app_requests_total_total`.
            MetricKind::Count
                if name.ends_with("_total") && name.len() > "paas_app__total".len() =>
            {
                name.truncate(name.len() - "_total".len());
            }
            _ => {}
        }
        let source = source.map_or(Cow::Borrowed(""), |s| units::label_value(s.raw()));
        let label = (if dyno_gauge { "dyno" } else { "source" }, source);
        each(Ok(Observation {
            kind: m.kind,
            family: name,
            label,
            value,
            distinct: raw,
        }));
    }
}

/// A metric's value in base units with its unit, as l2met reads it: `unique#` counts 1 (its
/// value is what is counted), `count#` with no value counts 1, a count is never negative.
fn value_of(kind: MetricKind, value: Option<Value<'_>>) -> Result<(f64, Unit), Rejection> {
    let raw = value.map_or(&[][..], |v| v.raw());
    match kind {
        MetricKind::Unique => Ok((1.0, Unit::None)),
        MetricKind::Count if raw.is_empty() => Ok((1.0, Unit::None)),
        MetricKind::Count => match units::check(leading_number(raw).ok_or(Rejection::NotANumber)?)?
        {
            n if n < 0.0 => Err(Rejection::NegativeCount),
            n => Ok((n, Unit::None)),
        },
        MetricKind::Sample | MetricKind::Measure => {
            let number = leading_number(raw).ok_or(Rejection::NotANumber)?;
            let text = value.map(|v| v.unescaped()).unwrap_or_default();
            units::normalise(&text, number)
        }
    }
}

/// `measure#db.latency` into its kind and name (l2met's four prefixes).
fn of_key(key: &[u8]) -> Option<(MetricKind, &[u8])> {
    // Most keys are not metrics: look no further than their first letter.
    if !matches!(key.first(), Some(b'm' | b'c' | b's' | b'u')) {
        return None;
    }
    let hash = key.iter().take(8).position(|&b| b == b'#')?;
    let (prefix, rest) = key.split_at(hash);
    let kind = match prefix {
        [b'm', b'e', b'a', b's', b'u', b'r', b'e'] => MetricKind::Measure,
        [b'c', b'o', b'u', b'n', b't'] => MetricKind::Count,
        [b's', b'a', b'm', b'p', b'l', b'e'] => MetricKind::Sample,
        [b'u', b'n', b'i', b'q', b'u', b'e'] => MetricKind::Unique,
        _ => return None,
    };
    Some((kind, rest.get(1..).unwrap_or_default()))
}

/// The number l2met reads before a unit: the longest prefix of digits, signs, dots and
/// exponent letters that is a finite number (`20` of `20ms`, `5` of `5eggs`).
fn leading_number(raw: &[u8]) -> Option<f64> {
    let end = raw
        .iter()
        .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')))
        .unwrap_or(raw.len());
    (1..=end).rev().find_map(|n| {
        let text = std::str::from_utf8(raw.get(..n)?).ok()?;
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(v)
    })
}

/// The runtime metrics' names: memory, load and CPU.
fn is_runtime_name(name: &[u8]) -> bool {
    [&b"memory_"[..], b"load_avg_", b"cpu_"]
        .iter()
        .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source: &'static str, message: &str) -> LogLine {
        LogLine {
            received: logplex::Timestamp::from_micros(0),
            time: logplex::Timestamp::from_micros(0),
            app: logplex::AppName::from("shop"),
            source: source.into(),
            process: "web.1".into(),
            facility: 1,
            severity: 6,
            message: message.to_owned().into(),
            seq: 0,
        }
    }

    type Seen = (MetricKind, String, (&'static str, String), f64);

    fn run(line: &LogLine) -> (Vec<Seen>, Vec<Rejection>) {
        let (mut seen, mut refused) = (Vec::new(), Vec::new());
        extract(line, &mut String::new(), |r| match r {
            Ok(o) => seen.push((
                o.kind,
                o.family.to_owned(),
                (o.label.0, o.label.1.into_owned()),
                o.value,
            )),
            Err(r) => refused.push(r),
        });
        (seen, refused)
    }

    fn source(s: &str) -> (&'static str, String) {
        ("source", s.to_owned())
    }

    #[test]
    fn each_convention_with_its_unit() {
        let (seen, refused) = run(&line(
            "app",
            "source=api measure#db.latency=20ms count#signups=2 sample#queue-depth=7 sample#cache.size=4KB unique#user=42 count#hits",
        ));
        assert!(refused.is_empty());
        assert_eq!(
            seen,
            [
                (
                    MetricKind::Measure,
                    "paas_app_db_latency_seconds".into(),
                    source("api"),
                    0.02
                ),
                (
                    MetricKind::Count,
                    "paas_app_signups".into(),
                    source("api"),
                    2.0
                ),
                (
                    MetricKind::Sample,
                    "paas_app_queue_depth".into(),
                    source("api"),
                    7.0
                ),
                (
                    MetricKind::Sample,
                    "paas_app_cache_size_bytes".into(),
                    source("api"),
                    4000.0
                ),
                (
                    MetricKind::Unique,
                    "paas_app_user_unique".into(),
                    source("api"),
                    1.0
                ),
                (
                    MetricKind::Count,
                    "paas_app_hits".into(),
                    source("api"),
                    1.0
                ),
            ]
        );
    }

    #[test]
    fn a_counter_named_total_is_not_total_twice() {
        let (seen, _) = run(&line("app", "count#requests_total=2 count#total=1"));
        assert_eq!(seen[0].1, "paas_app_requests");
        assert_eq!(seen[1].1, "paas_app_total");
    }

    #[test]
    fn no_source_is_an_empty_label() {
        let (seen, _) = run(&line("app", "measure#render=1.5s"));
        assert_eq!(seen[0].2, source(""));
        assert_eq!(seen[0].3, 1.5);
    }

    #[test]
    fn runtime_lines_of_the_platform_are_dyno_gauges() {
        let (seen, _) = run(&line(
            "paas",
            "source=web.1 dyno=paas.shop.1 sample#memory_rss=20.50MB sample#load_avg_1m=0.12 sample#cpu_time=1.50s",
        ));
        let dyno = ("dyno", "web.1".to_owned());
        assert_eq!(
            seen,
            [
                (
                    MetricKind::Sample,
                    "paas_dyno_memory_rss_bytes".into(),
                    dyno.clone(),
                    20.5e6
                ),
                (
                    MetricKind::Sample,
                    "paas_dyno_load_avg_1m".into(),
                    dyno.clone(),
                    0.12
                ),
                (
                    MetricKind::Sample,
                    "paas_dyno_cpu_time_seconds".into(),
                    dyno,
                    1.5
                ),
            ]
        );
        // The same text from an app is an app's metric.
        let (seen, _) = run(&line("app", "source=web.1 dyno=x sample#memory_rss=1MB"));
        assert_eq!(seen[0].1, "paas_app_memory_rss_bytes");
    }

    #[test]
    fn hostile_pairs_are_refused_and_counted() {
        let (seen, refused) = run(&line(
            "app",
            "measure#a=NaN measure#b=inf sample#c=1e999 sample#d=1e300 count#e=-1 count#ü=1 measure#=5 measure#f=abc sample#ok=1",
        ));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].1, "paas_app_ok");
        assert_eq!(
            refused,
            [
                Rejection::NotANumber,
                Rejection::NotANumber,
                Rejection::NotANumber,
                Rejection::OutOfRange,
                Rejection::NegativeCount,
                Rejection::BadName,
                Rejection::NotANumber,
            ]
        );
    }

    /// What logfmt's own l2met reader (`logfmt::metrics`) makes of a line, through the same
    /// rules: the reference the single pass is checked against.
    fn reference(line: &LogLine) -> Vec<Result<(MetricKind, f64), Rejection>> {
        logfmt::metrics(&line.message)
            .map(|m| {
                let m = m.map_err(|_| Rejection::NotANumber)?;
                let mut name = String::new();
                units::push_name(&mut name, m.name)?;
                match m.kind {
                    MetricKind::Unique => Ok((m.kind, 1.0)),
                    MetricKind::Count => match units::check(m.number)? {
                        n if n < 0.0 => Err(Rejection::NegativeCount),
                        n => Ok((m.kind, n)),
                    },
                    _ => units::normalise(&m.value.unescaped(), m.number).map(|(v, _)| (m.kind, v)),
                }
            })
            .collect()
    }

    #[test]
    fn the_single_pass_reads_what_logfmts_l2met_reader_reads() {
        let corpus = logfmt::corpus::Corpus::new(logfmt::corpus::Mix::Platform, 3).lines(5000);
        let hostile = [
            "count#a count#b= count#c=\"4\" measure#d=\"12ms\" sample#e=5eggs measure#f=1e3ms",
            "source=x source=y count#=1 count# #=1 count#g=-0 sample#h=+7 sample#i=.5 measure#j=1.",
            "measure#k=\"unterminated count#l=2 unique#m unique#n=\"a b\" measure.legacy=3",
            "source count#o=1 sample#p=NaN sample#q=0x10 sample#r=1_000 count#s=1e400",
        ];
        let mut checked = 0;
        for text in corpus.lines().chain(hostile) {
            let l = line("app", text);
            let mut ours = Vec::new();
            extract(&l, &mut String::new(), |r| {
                ours.push(r.map(|o| (o.kind, o.value)))
            });
            assert_eq!(ours, reference(&l), "{text}");
            checked += ours.len();
        }
        assert!(checked > 1000, "the corpus has metrics: {checked}");
    }

    #[test]
    fn lines_without_a_hash_are_skipped_cheaply() {
        assert!(!may_have_metrics(b"at=info status=200"));
        assert!(may_have_metrics(b"count#x=1"));
    }
}
