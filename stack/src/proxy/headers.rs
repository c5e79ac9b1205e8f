//! The headers a request and its response get on the way through, as Vegur (Heroku's proxy)
//! sets them: a valid `X-Request-Id` kept (20–200 characters of letters, digits, `+/=-`) or a
//! new one made, `X-Request-Start` in epoch milliseconds, the client appended to
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Port` from the listener, `Via: 1.1
//! paas` on request and response, and hop-by-hop headers stripped both ways. The request's
//! limits (H25) are Vegur's: a request line of 8 KiB, header names of 1000 bytes, values of
//! 8 KiB, at most 1000 headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The `Via` this proxy adds.
pub const VIA: &str = "1.1 paas";

/// Vegur's limits on a request.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest header name.
pub const MAX_HEADER_NAME: usize = 1000;
/// The longest header value.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// The most headers.
pub const MAX_HEADERS: usize = 1000;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Which limit a request breaks, if any (H25).
pub fn check_limits(path_and_query: &str, method: &str, headers: &HeaderMap) -> Option<String> {
    // `METHOD SP target SP HTTP/1.1`
    let line = method.len() + path_and_query.len() + 10;
    if line > MAX_REQUEST_LINE {
        return Some(format!("request line of {line} bytes"));
    }
    if headers.len() > MAX_HEADERS {
        return Some(format!("{} headers", headers.len()));
    }
    for (name, value) in headers {
        if name.as_str().len() > MAX_HEADER_NAME {
            return Some(format!("header name of {} bytes", name.as_str().len()));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Some(format!("{} header of {} bytes", name, value.len()));
        }
    }
    None
}

/// Whether a client's request id is one to keep.
pub fn valid_request_id(id: &[u8]) -> bool {
    (20..=200).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-'))
}

/// Whether a request asks to switch protocols (`Connection: upgrade` with `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Removes hop-by-hop headers: the standard ones and those `Connection` names. An upgrade
/// keeps `Connection: upgrade` and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// The session affinity cookie's name.
pub const AFFINITY_COOKIE: &str = "paas-session-affinity";

/// The dyno a client's affinity cookie names, if any.
pub fn affinity(headers: &HeaderMap) -> Option<String> {
    affinity_in(
        headers
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

/// The dyno the affinity cookie among `cookies` (the `Cookie` headers' values) names, if any.
pub fn affinity_in<'a>(cookies: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    cookies
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(AFFINITY_COOKIE)?.strip_prefix('='))
        .filter(|d| {
            d.len() <= 64
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        })
        .map(str::to_owned)
}

/// The cookie that keeps a client on `dyno`.
pub fn affinity_cookie(dyno: &str) -> HeaderValue {
    header_value(&format!(
        "{AFFINITY_COOKIE}={dyno}; Path=/; HttpOnly; SameSite=Lax"
    ))
}

/// What the proxy knows of the client's connection.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The listener's port.
    pub port: u16,
}

/// Rewrites a request's headers for the dyno; returns its request id and the
/// `X-Forwarded-For` chain (the router line's `request_id` and `fwd`).
pub fn forward_request(
    headers: &mut HeaderMap,
    client: Client,
    start_ms: u128,
    upgrade: bool,
) -> (String, String) {
    strip_hop_by_hop(headers, upgrade);
    // The dyno gets the body as it comes; 100-continue is answered here.
    headers.remove(header::EXPECT);
    let id = match headers.get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v.as_bytes()) => v.to_str().unwrap_or_default().to_owned(),
        _ => {
            let id = new_request_id();
            headers.insert(X_REQUEST_ID, header_value(&id));
            id
        }
    };
    let ip = client.ip.to_string();
    let fwd = match headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(chain) => format!("{chain}, {ip}"),
        None => ip,
    };
    headers.insert(X_FORWARDED_FOR, header_value(&fwd));
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    headers.insert(X_FORWARDED_PORT, HeaderValue::from(client.port));
    headers.insert(X_REQUEST_START, header_value(&start_ms.to_string()));
    append_via(headers);
    (id, fwd)
}

/// Rewrites a response's headers for the client.
pub fn forward_response(headers: &mut HeaderMap, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    append_via(headers);
}

fn append_via(headers: &mut HeaderMap) {
    let via = match headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.is_empty() => header_value(&format!("{prior}, {VIA}")),
        _ => HeaderValue::from_static(VIA),
    };
    headers.insert(header::VIA, via);
}

/// A new request id: a version-4 UUID, as Heroku's router makes, from a per-thread generator
/// seeded once from the OS (a request id must not repeat; it need not be secret, and a
/// `getrandom` call a request was a measurable part of the proxy's CPU).
pub fn new_request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    // wyrand: two 64-bit draws make the 122 random bits.
    let draw = || {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(x);
            let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) as u64) ^ (t as u64)
        })
    };
    let bits = (u128::from(draw()) << 64) | u128::from(draw());
    let mut buf = uuid::Uuid::encode_buffer();
    uuid::Builder::from_random_bytes(bits.to_le_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// A header value from text made here (always valid; anything else would be a bug, and is
/// replaced rather than trusted).
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            ip: "203.0.113.7".parse().unwrap(),
            tls: true,
            port: 443,
        }
    }

    #[test]
    fn request_ids_are_kept_when_valid_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-request-id",
            HeaderValue::from_static("abcdefghij0123456789"),
        );
        let (id, _) = forward_request(&mut h, client(), 1, false);
        assert_eq!(id, "abcdefghij0123456789");
        for bad in [
            "short",
            "has spaces in it, too many of them",
            &"x".repeat(201),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", HeaderValue::from_str(bad).unwrap());
            let (id, _) = forward_request(&mut h, client(), 1, false);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 36);
            assert_eq!(h["x-request-id"], id.as_str());
        }
    }

    #[test]
    fn made_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn forwarding_headers_and_via_are_set_and_hop_by_hop_ones_go() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        h.insert("via", HeaderValue::from_static("1.0 corp"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("expect", HeaderValue::from_static("100-continue"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        let (_, fwd) = forward_request(&mut h, client(), 1_700_000_000_123, false);
        assert_eq!(fwd, "198.51.100.1, 203.0.113.7");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-request-start"], "1700000000123");
        assert_eq!(h["via"], "1.0 corp, 1.1 paas");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "expect",
            "upgrade",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        forward_request(&mut h, client(), 1, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn the_affinity_cookie_is_read_among_others_and_checked() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("a=1; paas-session-affinity=web.2; b=2"),
        );
        assert_eq!(affinity(&h).as_deref(), Some("web.2"));
        h.insert(
            "cookie",
            HeaderValue::from_static("paas-session-affinity=web.2\"; x"),
        );
        assert_eq!(affinity(&h), None);
        assert_eq!(affinity(&HeaderMap::new()), None);
        assert_eq!(
            affinity_cookie("web.3"),
            "paas-session-affinity=web.3; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn limits_are_vegur_s() {
        let ok = HeaderMap::new();
        assert_eq!(check_limits("/", "GET", &ok), None);
        let long = format!("/{}", "a".repeat(MAX_REQUEST_LINE));
        assert!(
            check_limits(&long, "GET", &ok)
                .unwrap()
                .starts_with("request line")
        );
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_str(&"c".repeat(MAX_HEADER_VALUE + 1)).unwrap(),
        );
        assert_eq!(
            check_limits("/", "GET", &h).unwrap(),
            format!("cookie header of {} bytes", MAX_HEADER_VALUE + 1)
        );
        let mut h = HeaderMap::new();
        let name = HeaderName::from_bytes("n".repeat(MAX_HEADER_NAME + 1).as_bytes()).unwrap();
        h.insert(name, HeaderValue::from_static("1"));
        assert!(
            check_limits("/", "GET", &h)
                .unwrap()
                .starts_with("header name")
        );
    }
}
