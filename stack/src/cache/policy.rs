//! Whether a response may be stored by a shared cache, and for how long it is fresh (RFC 9111
//! §3, §4.2), as Varnish and nginx honour it: only an answer to a GET, of a status a cache
//! understands, with an explicit freshness (`s-maxage`, `max-age`, or `Expires` against
//! `Date`: heuristic freshness is off); never one with `no-store`, `private`, `Set-Cookie` or
//! `Vary: *`; an answer to a request with `Authorization` or a `Cookie` only when it says
//! `public` or `s-maxage`. What is stored is what the client would get, less the framing.

use std::time::SystemTime;

use crate::cache::control::{Control, MAX_DELTA, delta_seconds};

/// The most `Vary` names an entry keys on (more: not stored).
pub const MAX_VARY: usize = 16;

/// Why a response is not stored (the line says `cache=pass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Not a GET, or a status a cache does not keep.
    Kind,
    /// `no-store`, `private`, `Set-Cookie`, `Vary: *` or too many `Vary` names.
    Forbidden,
    /// The request had credentials and the response did not say it may be shared.
    Credentials,
    /// No explicit freshness (and heuristic freshness is off).
    NoFreshness,
}

/// What the cache keeps of a storable response's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Its `Cache-Control`.
    pub control: Control,
    /// How long it is fresh, in seconds.
    pub fresh_for: u64,
    /// Its age when it arrived, in seconds (`Age`, or how far `Date` is behind now).
    pub initial_age: u64,
    /// The request headers it varies on (lowercase).
    pub vary: Vec<String>,
    /// Its `ETag`.
    pub etag: Option<Vec<u8>>,
    /// Its `Last-Modified`.
    pub last_modified: Option<SystemTime>,
}

/// Statuses a cache keeps when the response says how long (RFC 9110 §15.1's heuristically
/// cacheable ones).
fn keeps(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Decides whether the response to a GET (`get`) with status `status` and headers `fields`
/// may be stored; `credentials`: the request had `Authorization` or a `Cookie`.
pub fn storable(
    get: bool,
    status: u16,
    fields: &[httparse::Header<'_>],
    credentials: bool,
    now: SystemTime,
) -> Result<Meta, Pass> {
    if !get || !keeps(status) {
        return Err(Pass::Kind);
    }
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value)
    };
    let control = Control::parse(values("cache-control"));
    if control.no_store || control.private || values("set-cookie").next().is_some() {
        return Err(Pass::Forbidden);
    }
    if credentials && !(control.public || control.s_maxage.is_some()) {
        return Err(Pass::Credentials);
    }
    let mut vary = Vec::new();
    for name in values("vary")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|n| !n.is_empty())
    {
        if name == b"*" || vary.len() >= MAX_VARY {
            return Err(Pass::Forbidden);
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if !vary.contains(&name) {
            vary.push(name);
        }
    }
    let date = values("date").next().and_then(http_date);
    let fresh_for = match control.freshness() {
        Some(seconds) => seconds,
        None => {
            // `Expires` against the response's own `Date` (or now); an invalid one is stale.
            let Some(expires) = values("expires").next() else {
                return Err(Pass::NoFreshness);
            };
            match http_date(expires) {
                Some(at) => at
                    .duration_since(date.unwrap_or(now))
                    .map_or(0, |d| d.as_secs().min(MAX_DELTA)),
                None => 0,
            }
        }
    };
    let age = values("age").next().and_then(delta_seconds).unwrap_or(0);
    let apparent = date
        .and_then(|d| now.duration_since(d).ok())
        .map_or(0, |d| d.as_secs());
    Ok(Meta {
        control,
        fresh_for,
        initial_age: age.max(apparent).min(MAX_DELTA),
        vary,
        etag: values("etag").next().map(<[u8]>::to_vec),
        last_modified: values("last-modified").next().and_then(http_date),
    })
}

/// An HTTP date, if `value` is one.
pub fn http_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(head: &str, credentials: bool) -> Result<Meta, Pass> {
        let raw = format!("HTTP/1.1 200 OK\r\n{head}\r\n");
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut slots);
        res.parse(raw.as_bytes()).unwrap();
        let now = httpdate::parse_http_date("Sat, 05 Dec 2026 05:00:00 GMT").unwrap();
        storable(true, 200, res.headers, credentials, now)
    }

    #[test]
    fn freshness_comes_from_s_maxage_max_age_or_expires() {
        assert_eq!(
            decide("Cache-Control: max-age=60, s-maxage=90\r\n", false)
                .unwrap()
                .fresh_for,
            90
        );
        let m = decide(
            "Date: Sat, 05 Dec 2026 04:59:50 GMT\r\nExpires: Sat, 05 Dec 2026 05:00:50 GMT\r\n",
            false,
        )
        .unwrap();
        assert_eq!((m.fresh_for, m.initial_age), (60, 10));
        assert_eq!(decide("Expires: 0\r\n", false).unwrap().fresh_for, 0);
        assert_eq!(decide("X-A: b\r\n", false), Err(Pass::NoFreshness));
        assert_eq!(
            decide("Cache-Control: max-age=60\r\nAge: 7\r\n", false)
                .unwrap()
                .initial_age,
            7
        );
    }

    #[test]
    fn what_may_not_be_shared_is_not_stored() {
        for head in [
            "Cache-Control: no-store, max-age=60\r\n",
            "Cache-Control: private, max-age=60\r\n",
            "Cache-Control: max-age=60\r\nSet-Cookie: a=b\r\n",
            "Cache-Control: max-age=60\r\nVary: *\r\n",
        ] {
            assert_eq!(decide(head, false), Err(Pass::Forbidden), "{head}");
        }
        assert_eq!(
            decide("Cache-Control: max-age=60\r\n", true),
            Err(Pass::Credentials)
        );
        assert!(decide("Cache-Control: public, max-age=60\r\n", true).is_ok());
        assert!(decide("Cache-Control: s-maxage=60\r\n", true).is_ok());
        let m = decide(
            "Cache-Control: max-age=60\r\nVary: Accept-Encoding, accept-encoding, X-B\r\n",
            false,
        )
        .unwrap();
        assert_eq!(m.vary, ["accept-encoding", "x-b"]);
        let many: String = (0..20).map(|i| format!("Vary: h{i}\r\n")).collect();
        assert_eq!(
            decide(&format!("Cache-Control: max-age=1\r\n{many}"), false),
            Err(Pass::Forbidden)
        );
    }
}
