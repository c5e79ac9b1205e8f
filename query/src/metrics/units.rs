//! Names and values as Prometheus wants them: an l2met name (`db.latency`, `memory-rss`)
//! becomes a metric name part (`db_latency`), a value with a unit (`20ms`, `212MB`) becomes a
//! number in base units (seconds, bytes) with the unit as the name's suffix. Whatever cannot be
//! made valid is refused with the reason, so that the caller counts it.

use std::borrow::Cow;

use logfmt::Quantity;

/// The longest name part kept (after sanitising); longer names are refused.
pub(crate) const MAX_NAME_LEN: usize = 100;
/// The largest magnitude kept, in base units (1e15 s is 31 million years, 1e15 bytes a
/// petabyte): past it a value is an id or garbage, and sums of such would reach infinity.
pub(crate) const MAX_MAGNITUDE: f64 = 1e15;
/// The longest label value kept, in characters; the rest is cut.
pub(crate) const MAX_LABEL_CHARS: usize = 64;

/// Why a name or value was not made into a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Rejection {
    /// The value is not a finite number (`abc`, `NaN`, `1e999`).
    NotANumber,
    /// The value is finite but past [`MAX_MAGNITUDE`].
    OutOfRange,
    /// A `count#` with a negative value (counters only go up).
    NegativeCount,
    /// The name is empty once sanitised, or longer than [`MAX_NAME_LEN`].
    BadName,
}

impl Rejection {
    /// Every reason, in the order they are exported.
    pub(crate) const ALL: [Rejection; 4] = [
        Rejection::NotANumber,
        Rejection::OutOfRange,
        Rejection::NegativeCount,
        Rejection::BadName,
    ];

    /// The `reason` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rejection::NotANumber => "not_a_number",
            Rejection::OutOfRange => "out_of_range",
            Rejection::NegativeCount => "negative_count",
            Rejection::BadName => "bad_name",
        }
    }
}

/// The base unit a value was normalised to, which becomes the name's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Unit {
    /// A plain number, or a unit Prometheus has no base for (`5jobs`): no suffix.
    None,
    /// A duration, in seconds.
    Seconds,
    /// A size, in bytes.
    Bytes,
}

impl Unit {
    /// The name suffix, without its `_`.
    pub(crate) fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Seconds => Some("seconds"),
            Unit::Bytes => Some("bytes"),
        }
    }
}

/// `value` (as written, `20ms`) in base units with its unit, or why not. `number` is what
/// l2met read before the unit, used when the unit is not one we know (`5jobs` is 5).
pub(crate) fn normalise(value: &[u8], number: f64) -> Result<(f64, Unit), Rejection> {
    if let Some(fast) = common_quantity(value) {
        return check(fast.0).map(|v| (v, fast.1));
    }
    let (v, unit) = match logfmt::parse_quantity(value) {
        Some(Quantity::Duration(s)) => (s, Unit::Seconds),
        Some(Quantity::Bytes(b)) => (b, Unit::Bytes),
        Some(Quantity::Number(n) | Quantity::Pages(n)) => (n, Unit::None),
        None => (number, Unit::None),
    };
    check(v).map(|v| (v, unit))
}

/// The forms most lines write (`20ms`, `1.5s`, `212.00MB`, `7`), read without going through
/// text and float parsing: a decimal whose digits make an exact integer (< 2^53), divided once
/// by its power of ten, so the result is the correctly rounded value `str::parse` would give.
/// Anything else (exponents, compound durations, other units) is `None`: the general path.
fn common_quantity(raw: &[u8]) -> Option<(f64, Unit)> {
    let digits = raw
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    let (number, unit) = raw.split_at(digits);
    let (mut whole, mut scale, mut dot) = (0u64, 1u64, false);
    if number.len() > 15 || !number.iter().any(u8::is_ascii_digit) {
        return None;
    }
    for &b in number {
        if b == b'.' {
            if dot {
                return None;
            }
            dot = true;
        } else {
            whole = whole * 10 + u64::from(b - b'0');
            if dot {
                scale *= 10;
            }
        }
    }
    let (unit, per) = match unit {
        b"" => (Unit::None, 1.0),
        b"ms" => (Unit::Seconds, 1e-3),
        b"s" => (Unit::Seconds, 1.0),
        b"B" | b"bytes" => (Unit::Bytes, 1.0),
        b"kB" | b"KB" => (Unit::Bytes, 1e3),
        b"MB" => (Unit::Bytes, 1e6),
        b"GB" => (Unit::Bytes, 1e9),
        _ => return None,
    };
    let n = whole as f64 / scale as f64;
    // `ms`: divide, as the general path does (`20 * 1 / 1e3`), for the same rounding.
    Some((if per < 1.0 { n / 1e3 } else { n * per }, unit))
}

/// `v` when it is a number we keep.
pub(crate) fn check(v: f64) -> Result<f64, Rejection> {
    if !v.is_finite() {
        Err(Rejection::NotANumber)
    } else if v.abs() > MAX_MAGNITUDE {
        Err(Rejection::OutOfRange)
    } else {
        Ok(v)
    }
}

/// Appends the metric-name form of an l2met name to `out`: ASCII letters, digits and `_`
/// kept, every other byte (`.`, `-`, `/`, any non-ASCII) as `_`, runs of `_` as one, no
/// leading or trailing `_`. Refused when nothing is left or it is too long.
pub(crate) fn push_name(out: &mut String, name: &[u8]) -> Result<(), Rejection> {
    let start = out.len();
    for &b in name {
        let c = if b.is_ascii_alphanumeric() {
            b as char
        } else {
            '_'
        };
        if c == '_' && (out.len() == start || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    while out.len() > start && out.ends_with('_') {
        out.pop();
    }
    let len = out.len() - start;
    if len == 0 || len > MAX_NAME_LEN {
        out.truncate(start);
        return Err(Rejection::BadName);
    }
    Ok(())
}

/// Appends `_unit` unless the name already ends with it (`latency_seconds=2s` stays as is).
pub(crate) fn push_unit(out: &mut String, unit: Unit) {
    if let Some(suffix) = unit.suffix()
        && !(out.ends_with(suffix) && out[..out.len() - suffix.len()].ends_with('_'))
    {
        out.push('_');
        out.push_str(suffix);
    }
}

/// A label value from bytes off the wire: lossy UTF-8, control characters dropped, at most
/// [`MAX_LABEL_CHARS`] characters (the encoder escapes quotes and backslashes). Borrowed when
/// already so (short printable ASCII, the usual `web.1`), so that a line costs no allocation.
pub(crate) fn label_value(raw: &[u8]) -> Cow<'_, str> {
    if raw.len() <= MAX_LABEL_CHARS
        && raw.iter().all(|b| (0x20..0x7f).contains(b))
        && let Ok(s) = std::str::from_utf8(raw)
    {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        String::from_utf8_lossy(raw)
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_LABEL_CHARS)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Result<String, Rejection> {
        let mut s = String::from("paas_app_");
        push_name(&mut s, raw.as_bytes()).map(|()| s)
    }

    #[test]
    fn names_keep_letters_digits_and_one_underscore() {
        assert_eq!(name("db.latency").unwrap(), "paas_app_db_latency");
        assert_eq!(name("memory-rss").unwrap(), "paas_app_memory_rss");
        assert_eq!(name("..a..b..").unwrap(), "paas_app_a_b");
        assert_eq!(name("Ünïcode").unwrap(), "paas_app_n_code");
        assert_eq!(name("a\"b{c}").unwrap(), "paas_app_a_b_c");
    }

    #[test]
    fn empty_and_huge_names_are_refused() {
        for bad in ["", "...", "ü", "\u{0}"] {
            assert_eq!(name(bad), Err(Rejection::BadName), "{bad:?}");
        }
        assert_eq!(name(&"x".repeat(MAX_NAME_LEN + 1)), Err(Rejection::BadName));
        assert!(name(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn units_become_base_units_and_a_suffix() {
        assert_eq!(normalise(b"20ms", 20.0), Ok((0.02, Unit::Seconds)));
        assert_eq!(normalise(b"1.5s", 1.5), Ok((1.5, Unit::Seconds)));
        assert_eq!(normalise(b"212MB", 212.0), Ok((212e6, Unit::Bytes)));
        assert_eq!(normalise(b"4KB", 4.0), Ok((4e3, Unit::Bytes)));
        assert_eq!(normalise(b"2KiB", 2.0), Ok((2048.0, Unit::Bytes)));
        assert_eq!(normalise(b"42", 42.0), Ok((42.0, Unit::None)));
        assert_eq!(normalise(b"5jobs", 5.0), Ok((5.0, Unit::None)));
    }

    #[test]
    fn the_common_forms_read_as_the_general_path_reads_them() {
        for text in [
            "20ms",
            "40ms",
            "1.5s",
            "0.12",
            "212.00MB",
            "20.50MB",
            "4KB",
            "4kB",
            "100B",
            "7",
            "0",
            "123456789012345",
            "3.14159",
            "0.001s",
            "999ms",
            "12bytes",
            "1GB",
        ] {
            let general = match logfmt::parse_quantity(text.as_bytes()).unwrap() {
                Quantity::Duration(s) => (s, Unit::Seconds),
                Quantity::Bytes(b) => (b, Unit::Bytes),
                Quantity::Number(n) | Quantity::Pages(n) => (n, Unit::None),
            };
            assert_eq!(common_quantity(text.as_bytes()), Some(general), "{text}");
        }
        for other in [
            "1e3",
            "-5",
            "1h30m",
            "5jobs",
            "1.2.3",
            "",
            ".",
            "1234567890123456",
            "2KiB",
        ] {
            assert_eq!(common_quantity(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn hostile_values_are_refused_with_the_reason() {
        assert_eq!(check(f64::NAN), Err(Rejection::NotANumber));
        assert_eq!(check(f64::INFINITY), Err(Rejection::NotANumber));
        assert_eq!(check(-f64::INFINITY), Err(Rejection::NotANumber));
        assert_eq!(normalise(b"1e300", 1e300), Err(Rejection::OutOfRange));
        assert_eq!(normalise(b"2000000000ms", 2e9), Ok((2e6, Unit::Seconds)));
        assert_eq!(normalise(b"-3", -3.0), Ok((-3.0, Unit::None)));
    }

    #[test]
    fn the_unit_suffix_is_not_doubled() {
        let mut s = String::from("paas_app_latency_seconds");
        push_unit(&mut s, Unit::Seconds);
        assert_eq!(s, "paas_app_latency_seconds");
        let mut s = String::from("paas_app_nanoseconds");
        push_unit(&mut s, Unit::Seconds);
        assert_eq!(s, "paas_app_nanoseconds_seconds");
        let mut s = String::from("paas_app_rss");
        push_unit(&mut s, Unit::Bytes);
        assert_eq!(s, "paas_app_rss_bytes");
        push_unit(&mut s, Unit::None);
        assert_eq!(s, "paas_app_rss_bytes");
    }

    #[test]
    fn label_values_are_bounded_and_printable() {
        assert_eq!(label_value(b"web.1"), "web.1");
        assert_eq!(label_value(b"a\nb\"c"), "ab\"c");
        assert_eq!(label_value(b"\xff"), "\u{fffd}");
        assert_eq!(label_value("é".repeat(100).as_bytes()).chars().count(), 64);
    }
}
