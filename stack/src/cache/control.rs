//! `Cache-Control` read as RFC 9111 §5.2 says, with bounds: at most [`MAX_DIRECTIVES`]
//! directives are looked at (the rest of a hostile header is ignored), a delta-seconds past
//! 2^31 is 2^31 (§1.2.2), and one that is not a number makes the response stale rather than
//! fresh. Only the directives the cache acts on are kept.

/// The most directives of a response's `Cache-Control` headers that are read.
pub const MAX_DIRECTIVES: usize = 64;

/// The greatest delta-seconds (RFC 9111 §1.2.2).
pub const MAX_DELTA: u64 = 1 << 31;

/// What a response's `Cache-Control` says, for a shared cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (without field names: a field-named one is taken as the whole).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, seconds (a shared cache's own, over `max-age`).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate`, seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error`, seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
}

impl Control {
    /// Reads every `Cache-Control` value of a response (`values`, in order).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Control {
        let mut control = Control::default();
        let directives = values
            .into_iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|d| !d.is_empty())
            .take(MAX_DIRECTIVES);
        for directive in directives {
            let (name, value) = match directive.iter().position(|&b| b == b'=') {
                Some(i) => (
                    directive[..i].trim_ascii(),
                    Some(unquote(&directive[i + 1..])),
                ),
                None => (directive, None),
            };
            let is = |other: &str| name.eq_ignore_ascii_case(other.as_bytes());
            let seconds = || value.map_or(Some(0), delta_seconds).unwrap_or(0);
            if is("no-store") {
                control.no_store = true;
            } else if is("no-cache") {
                control.no_cache = true;
            } else if is("private") {
                control.private = true;
            } else if is("public") {
                control.public = true;
            } else if is("must-revalidate") || is("proxy-revalidate") {
                control.must_revalidate = true;
            } else if is("max-age") {
                control.max_age = Some(seconds());
            } else if is("s-maxage") {
                control.s_maxage = Some(seconds());
            } else if is("stale-while-revalidate") {
                control.stale_while_revalidate = Some(seconds());
            } else if is("stale-if-error") {
                control.stale_if_error = Some(seconds());
            }
        }
        control
    }

    /// How long the response is fresh by its directives, if they say (`s-maxage` over
    /// `max-age`).
    pub fn freshness(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }
}

/// A directive's value without its quotes (`"60"` is `60`).
fn unquote(value: &[u8]) -> &[u8] {
    let value = value.trim_ascii();
    value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value)
}

/// delta-seconds: digits only, capped at 2^31; `None` when not a number.
pub fn delta_seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in value {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if n >= MAX_DELTA {
            return Some(MAX_DELTA);
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Control {
        Control::parse([v.as_bytes()])
    }

    #[test]
    fn directives_are_read_case_blind_quoted_or_not() {
        let c = parse("Public, max-age=\"60\", S-MAXAGE=120, stale-while-revalidate=30");
        assert!(c.public);
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(120)));
        assert_eq!(c.freshness(), Some(120));
        assert_eq!(c.stale_while_revalidate, Some(30));
        let c = Control::parse([&b"no-cache"[..], b"private, no-store"]);
        assert!(c.no_cache && c.private && c.no_store);
        assert!(parse("proxy-revalidate").must_revalidate);
    }

    #[test]
    fn hostile_values_are_bounded() {
        // Absurd: capped at 2^31. Not a number: stale, not fresh.
        assert_eq!(
            parse("max-age=99999999999999999999999").max_age,
            Some(MAX_DELTA)
        );
        assert_eq!(parse("max-age=-1").max_age, Some(0));
        assert_eq!(parse("max-age=1e9").max_age, Some(0));
        assert_eq!(parse("max-age").max_age, Some(0));
        // Only the first 64 directives are read.
        let many = format!("{}max-age=60", "x, ".repeat(100));
        assert_eq!(parse(&many).max_age, None);
        assert_eq!(parse(",,, ,max-age=5,,").max_age, Some(5));
        assert_eq!(parse("").freshness(), None);
    }
}
