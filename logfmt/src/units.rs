//! Numbers with units, as people write them in log lines: `12ms`, `1.5s`, `212MB`, `4KiB`,
//! `1532bytes`, `3pages`, and plain numbers.

/// A value read as a number with its unit, in base units so that values compare.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantity {
    /// A plain number, no unit: `200`, `-1.5`, `1e3`.
    Number(f64),
    /// A duration in seconds: `12ms`, `1.5s`, `3m` (minutes), `1h30m`, `250us`/`250µs`, `9ns`.
    Duration(f64),
    /// A size in bytes: `B`/`bytes`, SI `kB` `MB` `GB` `TB` (powers of 1000; `KB` is read as
    /// `kB`), binary `KiB` `MiB` `GiB` `TiB` (powers of 1024).
    Bytes(f64),
    /// A count of pages (`pgpgin=12pages` in runtime metrics), kept as a count.
    Pages(f64),
}

impl Quantity {
    /// The number in base units (seconds, bytes, pages or the plain number).
    pub fn value(self) -> f64 {
        match self {
            Quantity::Number(n)
            | Quantity::Duration(n)
            | Quantity::Bytes(n)
            | Quantity::Pages(n) => n,
        }
    }

    /// Both sides in base units when they can be compared: the same kind, or a plain number
    /// against a size (a plain number counts as bytes, as in the router's `bytes=512`).
    pub fn comparable(self, other: Quantity) -> Option<(f64, f64)> {
        use Quantity::*;
        match (self, other) {
            (Number(a), Number(b))
            | (Duration(a), Duration(b))
            | (Bytes(a), Bytes(b))
            | (Pages(a), Pages(b))
            | (Number(a), Bytes(b))
            | (Bytes(a), Number(b)) => Some((a, b)),
            _ => None,
        }
    }
}

/// Seconds per unit, as a fraction (numerator, denominator) so that `9ns` is exactly `9e-9`.
const DURATION_UNITS: &[(&str, f64, f64)] = &[
    ("ns", 1.0, 1e9),
    ("us", 1.0, 1e6),
    ("µs", 1.0, 1e6), // U+00B5 MICRO SIGN
    ("μs", 1.0, 1e6), // U+03BC GREEK SMALL LETTER MU
    ("ms", 1.0, 1e3),
    ("s", 1.0, 1.0),
    ("m", 60.0, 1.0),
    ("h", 3600.0, 1.0),
];

const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("bytes", 1.0),
    ("byte", 1.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("TB", 1e12),
    ("KiB", 1024.0),
    ("MiB", 1048576.0),
    ("GiB", 1073741824.0),
    ("TiB", 1099511627776.0),
];

/// Reads `text` as a number with an optional unit. Durations may be compound (`1h30m`).
pub fn parse_quantity(text: &[u8]) -> Option<Quantity> {
    let text = std::str::from_utf8(text).ok()?;
    let (number, unit) = split_number(text)?;
    if unit.is_empty() {
        return Some(Quantity::Number(number));
    }
    if let Some(&(_, scale)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
        return Some(Quantity::Bytes(number * scale));
    }
    if unit == "pages" || unit == "page" {
        return Some(Quantity::Pages(number));
    }
    parse_duration(text).map(Quantity::Duration)
}

/// A duration in seconds: one or more `number unit` parts (`1h30m`, `1.5s`), the sign on the
/// first applying to the whole, as in Go's `time.ParseDuration`.
pub fn parse_duration(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !(b.is_ascii_digit() || *b == b'.'))
            .count();
        let unit = &rest[..unit_len];
        let &(_, num, den) = DURATION_UNITS.iter().find(|(u, _, _)| *u == unit)?;
        total += number * num / den;
        rest = &rest[unit_len..];
    }
    Some(if negative { -total } else { total })
}

/// Splits `12.5ms` into `12.5` and `ms`. The number is decimal with an optional sign, fraction
/// and exponent; `inf` and `nan` are not numbers here.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - digits_start;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        mantissa_digits += j - frac_start;
        i = j;
    }
    if mantissa_digits == 0 {
        return None;
    }
    // An exponent only when digits follow, so that `3e` is not eaten from a unit.
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_digits = b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    let number = text[..i].parse().ok()?;
    Some((number, &text[i..]))
}

/// A decimal integer with an optional sign.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A decimal number: `1.5`, `-2`, `1e3` (no `inf` or `nan`).
pub fn parse_f64(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    match split_number(text)? {
        (n, "") => Some(n),
        _ => None,
    }
}

/// `true`/`false`, `t`/`f`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
pub fn parse_bool(text: &[u8]) -> Option<bool> {
    const TRUE: &[&[u8]] = &[b"true", b"t", b"1", b"yes", b"y", b"on"];
    const FALSE: &[&[u8]] = &[b"false", b"f", b"0", b"no", b"n", b"off"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Quantity::*;

    fn q(s: &str) -> Option<Quantity> {
        parse_quantity(s.as_bytes())
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(q("12ms"), Some(Duration(0.012)));
        assert_eq!(q("1.5s"), Some(Duration(1.5)));
        assert_eq!(q("3m"), Some(Duration(180.0)));
        assert_eq!(q("2h"), Some(Duration(7200.0)));
        assert_eq!(q("9ns"), Some(Duration(9e-9)));
        assert_eq!(q("250us"), Some(Duration(250e-6)));
        assert_eq!(q("250µs"), Some(Duration(250e-6)));
        assert_eq!(q("250μs"), Some(Duration(250e-6)));
        assert_eq!(q("1h30m"), Some(Duration(5400.0)));
        assert_eq!(q("-1.5s"), Some(Duration(-1.5)));
    }

    #[test]
    fn sizes_si_and_binary() {
        assert_eq!(q("212MB"), Some(Bytes(212e6)));
        assert_eq!(q("1kB"), Some(Bytes(1000.0)));
        assert_eq!(q("1KB"), Some(Bytes(1000.0)));
        assert_eq!(q("2GB"), Some(Bytes(2e9)));
        assert_eq!(q("4KiB"), Some(Bytes(4096.0)));
        assert_eq!(q("1MiB"), Some(Bytes(1048576.0)));
        assert_eq!(q("1GiB"), Some(Bytes(1073741824.0)));
        assert_eq!(q("1532bytes"), Some(Bytes(1532.0)));
        assert_eq!(q("10B"), Some(Bytes(10.0)));
        assert_eq!(q("12pages"), Some(Pages(12.0)));
    }

    #[test]
    fn plain_numbers() {
        assert_eq!(q("200"), Some(Number(200.0)));
        assert_eq!(q("-3"), Some(Number(-3.0)));
        assert_eq!(q("1e3"), Some(Number(1000.0)));
        assert_eq!(q(".5"), Some(Number(0.5)));
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"4.2"), None);
    }

    #[test]
    fn not_quantities() {
        for s in [
            "",
            "ms",
            "abc",
            "12parsecs",
            "1.2.3s",
            "inf",
            "nan",
            "12 ms",
            "-",
            "1h-3m",
            "0x10",
        ] {
            assert_eq!(q(s), None, "{s:?}");
        }
        assert_eq!(parse_f64(b"12ms"), None);
    }

    #[test]
    fn comparing_kinds() {
        assert_eq!(Duration(1.0).comparable(Duration(2.0)), Some((1.0, 2.0)));
        assert_eq!(Number(512.0).comparable(Bytes(1e6)), Some((512.0, 1e6)));
        assert_eq!(Number(12.0).comparable(Duration(1.0)), None);
        assert_eq!(Bytes(1.0).comparable(Duration(1.0)), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool(b"TRUE"), Some(true));
        assert_eq!(parse_bool(b"off"), Some(false));
        assert_eq!(parse_bool(b"maybe"), None);
    }
}
