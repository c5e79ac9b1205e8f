//! The one time type of the router: UTC microseconds since the Unix epoch, read from and
//! written as RFC 3339 (`2026-11-21T12:00:00.123456+00:00`).
//!
//! Written by hand rather than with a date crate: every line is stamped and formatted on the
//! hot path, and the civil-date arithmetic (Howard Hinnant's `days_from_civil`) is a few lines.

use std::fmt;

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    micros: i64,
}

/// Why a timestamp did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp: {0}")]
pub struct TimestampError(&'static str);

impl Timestamp {
    /// The instant `micros` microseconds after 1970-01-01T00:00:00Z.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp { micros }
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.micros
    }

    /// The current time.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Timestamp { micros: since }
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as RFC 5424 allows (at most 6
    /// fraction digits there; more are read and cut to microseconds). `t` and `z` are
    /// accepted in lower case.
    pub fn parse_rfc3339(s: &[u8]) -> Result<Self, TimestampError> {
        Self::parse_rfc3339_cached(s, &mut TimeCache::default())
    }

    /// `parse_rfc3339`, skipping the date and time when they are the same second as the last
    /// timestamp read through `cache` (as most lines in a burst are).
    pub(crate) fn parse_rfc3339_cached(
        s: &[u8],
        cache: &mut TimeCache,
    ) -> Result<Self, TimestampError> {
        let secs = match s.get(..19) {
            Some(prefix) if cache.valid && prefix == cache.prefix => cache.secs,
            _ => {
                let secs = date_time_secs(s)?;
                if let Some(prefix) = s.get(..19) {
                    cache.prefix.copy_from_slice(prefix);
                    cache.secs = secs;
                    cache.valid = true;
                }
                secs
            }
        };
        let mut i = 19;
        let mut micros = 0i64;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(TimestampError("empty fraction"));
            }
            for (k, &b) in s[i..i + digits].iter().take(6).enumerate() {
                micros += i64::from(b - b'0') * 10i64.pow(5 - k as u32);
            }
            i += digits;
        }
        let offset_secs = match s.get(i) {
            Some(b'Z' | b'z') if i + 1 == s.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == s.len() && s[i + 3] == b':' => {
                let (h, m) = (
                    num(s, i + 1..i + 3, "offset hour")?,
                    num(s, i + 4..i + 6, "offset minute")?,
                );
                if h > 23 || m > 59 {
                    return Err(TimestampError("offset out of range"));
                }
                let secs = h * 3600 + m * 60;
                if sign == b'+' { secs } else { -secs }
            }
            _ => return Err(TimestampError("expected Z or ±HH:MM at the end")),
        };
        let secs = secs - offset_secs;
        Ok(Timestamp {
            micros: secs * 1_000_000 + micros,
        })
    }

    /// `write_rfc3339`, reusing the text of the date and time when they are the same second
    /// as the last timestamp written through `cache` (a drain writes many lines a second).
    pub fn write_rfc3339_cached(self, out: &mut Vec<u8>, cache: &mut TimeFormatCache) {
        let secs = self.micros.div_euclid(1_000_000);
        if !cache.valid || cache.secs != secs {
            let mut full = Vec::with_capacity(32);
            self.write_rfc3339(&mut full);
            cache.prefix.copy_from_slice(&full[..20]);
            cache.secs = secs;
            cache.valid = true;
        }
        out.extend_from_slice(&cache.prefix);
        let mut micros = self.micros.rem_euclid(1_000_000);
        let mut digits = [b'0'; 6];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"+00:00");
    }

    /// Appends `2026-11-21T12:00:00.123456+00:00` (always six fraction digits and `+00:00`,
    /// as Logplex writes).
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let secs = self.micros.div_euclid(1_000_000);
        let micros = self.micros.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400);
        let mut buf = [0u8; 32];
        let parts: [(i64, usize); 7] = [
            (year, 4),
            (month, 2),
            (day, 2),
            (of_day / 3600, 2),
            (of_day / 60 % 60, 2),
            (of_day % 60, 2),
            (micros, 6),
        ];
        let seps = [b'-', b'-', b'T', b':', b':', b'.', b'+'];
        let mut n = 0;
        for ((value, width), sep) in parts.into_iter().zip(seps) {
            let mut v = value.clamp(0, 10i64.pow(width as u32) - 1);
            for k in (0..width).rev() {
                buf[n + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            n += width;
            buf[n] = sep;
            n += 1;
        }
        buf[n..n + 5].copy_from_slice(b"00:00");
        out.extend_from_slice(&buf[..n + 5]);
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(32);
        self.write_rfc3339(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// The text `YYYY-MM-DDTHH:MM:SS.` of the last second written.
#[derive(Clone, Debug, Default)]
pub struct TimeFormatCache {
    prefix: [u8; 20],
    secs: i64,
    valid: bool,
}

/// The last date and time (to the second) read, and its seconds since the epoch (before the
/// offset is applied).
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeCache {
    prefix: [u8; 19],
    secs: i64,
    valid: bool,
}

/// The decimal number at `range` of `s`.
fn num(s: &[u8], range: std::ops::Range<usize>, what: &'static str) -> Result<i64, TimestampError> {
    let digits = s.get(range).ok_or(TimestampError(what))?;
    digits.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc * 10 + i64::from(b - b'0'))
            .ok_or(TimestampError(what))
    })
}

/// `YYYY-MM-DDTHH:MM:SS` as seconds since the epoch, checked.
fn date_time_secs(s: &[u8]) -> Result<i64, TimestampError> {
    let sep = |i: usize, want: &[u8]| s.get(i).is_some_and(|b| want.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return Err(TimestampError("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (
        num(s, 0..4, "year")?,
        num(s, 5..7, "month")?,
        num(s, 8..10, "day")?,
    );
    let (hour, minute, second) = (
        num(s, 11..13, "hour")?,
        num(s, 14..16, "minute")?,
        num(s, 17..19, "second")?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(TimestampError("date out of range"));
    }
    // 60 is a leap second, read as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(TimestampError("time out of range"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse_rfc3339(s.as_bytes())
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap().as_micros(), 0);
        assert_eq!(
            parse("2026-11-21T12:00:00.123456+00:00")
                .unwrap()
                .as_micros(),
            1_795_262_400_123_456
        );
        assert_eq!(
            parse("2026-11-21T13:00:00.123456+01:00").unwrap(),
            parse("2026-11-21T12:00:00.123456Z").unwrap()
        );
        assert_eq!(
            parse("2012-07-22T00:06:26-07:00").unwrap(),
            parse("2012-07-22T07:06:26Z").unwrap()
        );
        assert_eq!(
            parse("2024-02-29T00:00:00.5Z").unwrap().as_micros() % 1_000_000,
            500_000
        );
        assert_eq!(
            parse("2024-02-29t00:00:00.1234567z").unwrap().as_micros() % 1_000_000,
            123_456
        );
    }

    #[test]
    fn written_as_logplex_does() {
        let t = parse("2015-04-02T11:52:34.520012+00:00").unwrap();
        assert_eq!(t.to_string(), "2015-04-02T11:52:34.520012+00:00");
        assert_eq!(
            Timestamp::from_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999+00:00"
        );
    }

    #[test]
    fn malformed_timestamps_are_errors() {
        for s in [
            "",
            "-",
            "2026-11-21",
            "2026-11-21T12:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T12:00:00.Z",
            "2026-11-21T12:00:00+0100",
            "2026-11-21T12:00:00Zjunk",
            "2026-11-21 12:00:00Z",
            "２026-11-21T12:00:00Z",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn write_then_parse_is_identity(micros in -62_135_596_800_000_000i64..253_402_300_799_999_999i64) {
            let t = Timestamp::from_micros(micros);
            let mut out = Vec::new();
            t.write_rfc3339(&mut out);
            prop_assert_eq!(Timestamp::parse_rfc3339(&out), Ok(t));
        }

        #[test]
        fn parsing_never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Timestamp::parse_rfc3339(&s);
        }

        /// The format cache writes what the plain writer writes.
        #[test]
        fn the_format_cache_changes_no_text(
            stamps in proptest::collection::vec(-62_135_596_800_000_000i64..253_402_300_799_999_999i64, 1..30),
            near in proptest::collection::vec(0i64..3_000_000, 1..30),
        ) {
            let mut cache = TimeFormatCache::default();
            for micros in stamps.iter().copied().chain(near.iter().map(|d| 1_795_262_400_000_000 + d)) {
                let t = Timestamp::from_micros(micros);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                t.write_rfc3339(&mut a);
                t.write_rfc3339_cached(&mut b, &mut cache);
                prop_assert_eq!(a, b);
            }
        }

        /// A shared cache never changes an answer: each timestamp of a run (many sharing
        /// their second, some malformed) reads as it does alone.
        #[test]
        fn the_cache_changes_no_answer(
            stamps in proptest::collection::vec(
                (0i64..3, 0u32..1_000_000, prop_oneof![Just("Z"), Just("+01:00"), Just("-05:30"), Just("x")]),
                1..40,
            )
        ) {
            let mut cache = TimeCache::default();
            for (sec, frac, zone) in stamps {
                let s = format!("2026-11-21T12:00:0{sec}.{frac:06}{zone}");
                prop_assert_eq!(
                    Timestamp::parse_rfc3339_cached(s.as_bytes(), &mut cache),
                    Timestamp::parse_rfc3339(s.as_bytes())
                );
            }
        }
    }
}
