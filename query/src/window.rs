//! The time window of a query: `--since 15m` (a duration back from now) or
//! `--since 2026-12-01T10:00:00Z` (a time), and the same for `--until`. No bound is "every line
//! kept".

use logplex::Timestamp;

/// The window's bounds, inclusive of `since`, exclusive of `until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// The oldest time included.
    pub since: Option<Timestamp>,
    /// The first time no longer included.
    pub until: Option<Timestamp>,
}

/// Why a bound did not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} {text:?} is neither a duration back from now (15m, 1h30m, 7d) nor an RFC 3339 time (2026-12-01T10:00:00Z)"
)]
pub struct WindowError {
    /// `since` or `until`.
    pub flag: &'static str,
    /// What was given.
    pub text: String,
}

impl Window {
    /// Reads `since` and `until` as given (either may be absent or empty), relative to `now`.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        now: Timestamp,
    ) -> Result<Window, WindowError> {
        Ok(Window {
            since: bound("since", since, now)?,
            until: bound("until", until, now)?,
        })
    }

    /// Whether `time` falls in the window.
    pub fn contains(&self, time: Timestamp) -> bool {
        self.since.is_none_or(|s| time >= s) && self.until.is_none_or(|u| time < u)
    }
}

fn bound(
    flag: &'static str,
    text: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, WindowError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let err = || WindowError {
        flag,
        text: text.to_owned(),
    };
    if let Ok(t) = Timestamp::parse_rfc3339(text.as_bytes()) {
        return Ok(Some(t));
    }
    let seconds = match text.strip_suffix('d') {
        Some(days) => days.parse::<f64>().ok().map(|d| d * 86_400.0),
        None => logfmt::parse_duration(text),
    }
    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 100.0 * 365.0 * 86_400.0)
    .ok_or_else(err)?;
    let micros = (seconds * 1e6) as i64;
    Ok(Some(Timestamp::from_micros(
        now.as_micros().saturating_sub(micros),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_back_from_now_and_times() {
        let now = Timestamp::parse_rfc3339(b"2026-12-05T12:00:00Z").unwrap();
        let w = Window::parse(Some("15m"), Some("2026-12-05T11:59:00Z"), now).unwrap();
        assert_eq!(
            w.since,
            Timestamp::parse_rfc3339(b"2026-12-05T11:45:00Z").ok()
        );
        assert!(w.contains(Timestamp::parse_rfc3339(b"2026-12-05T11:50:00Z").unwrap()));
        assert!(!w.contains(Timestamp::parse_rfc3339(b"2026-12-05T11:59:00Z").unwrap()));
        let w = Window::parse(Some("7d"), None, now).unwrap();
        assert_eq!(
            w.since,
            Timestamp::parse_rfc3339(b"2026-11-28T12:00:00Z").ok()
        );
        assert_eq!(
            Window::parse(Some(" "), None, now).unwrap(),
            Window::default()
        );
        for bad in ["yesterday", "-5m", "1e400d", "15"] {
            let e = Window::parse(Some(bad), None, now).unwrap_err();
            assert!(e.to_string().starts_with("since"), "{e}");
        }
    }
}
