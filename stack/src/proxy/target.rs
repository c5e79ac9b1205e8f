//! Which host a request is for, as RFC 9112 §3.2 says: the request target's authority when it
//! has one (the absolute form, `GET http://a.example/x`, or HTTP/2's `:authority`), which then
//! wins over any `Host` header; else the one `Host` header. Two `Host` headers, one that is not
//! `host[:port]`, user info, a scheme other than `http`/`https`, or an HTTP/1.1 request without
//! a host are refused (400, H26), as Heroku's router refuses two `Host`s.

use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Uri, Version, header};

/// Why a request's host is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// More than one `Host` header (RFC 9112 §3.2).
    #[error("more than one Host header")]
    Repeated,
    /// A `Host` header that is not `host[:port]`.
    #[error("a Host header that is not host[:port]")]
    Invalid,
    /// An HTTP/1.1 request without a `Host` header.
    #[error("no Host header")]
    Missing,
    /// User info (`user@`) in the request target (RFC 9110 §4.2.4).
    #[error("user info in the request target")]
    UserInfo,
    /// A request target whose scheme is not `http` or `https`.
    #[error("a request target whose scheme is not http or https")]
    Scheme,
}

/// The host a request is for: `a.example` or `a.example:8080`; empty when an HTTP/1.0 or
/// HTTP/2 request names none.
pub fn request_host(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<String, HostError> {
    let hosts = headers
        .get_all(header::HOST)
        .iter()
        .map(HeaderValue::as_bytes);
    host_of(version == Version::HTTP_11, Some(uri), hosts)
}

/// An HTTP/1.x request's host (as [`request_host`]) and the path and query the dyno is asked
/// for, from its request target as sent and its `Host` headers' values (the proxy's own
/// HTTP/1.1 path, which has no `Uri` or `HeaderMap`). The origin form (`/x?y`) and `*` are
/// taken as they are; another target must be an absolute URI.
pub fn host_and_path<'h>(
    http11: bool,
    target: &str,
    hosts: impl Iterator<Item = &'h [u8]>,
) -> Result<(String, String), HostError> {
    if target.starts_with('/') || target == "*" {
        return Ok((host_of(http11, None, hosts)?, target.to_owned()));
    }
    let uri = Uri::try_from(target).map_err(|_| HostError::Invalid)?;
    let host = host_of(http11, Some(&uri), hosts)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((host, path))
}

/// The host of a request with `hosts` (the `Host` headers' values) and `uri` (its target,
/// when it is more than a path).
fn host_of<'h>(
    http11: bool,
    uri: Option<&Uri>,
    mut hosts: impl Iterator<Item = &'h [u8]>,
) -> Result<String, HostError> {
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Repeated);
    }
    // Even where the target's authority wins, an invalid Host is refused (RFC 9112 §3.2).
    let host = first.map(valid_host).transpose()?;
    if let Some(uri) = uri
        && let Some(authority) = uri.authority()
    {
        if !matches!(uri.scheme_str(), None | Some("http" | "https")) {
            return Err(HostError::Scheme);
        }
        return target_host(authority);
    }
    match host {
        Some(host) => Ok(host),
        None if http11 => Err(HostError::Missing),
        None => Ok(String::new()),
    }
}

/// The `Host` header as sent (the first one), for the line of a refused request.
pub fn raw_host(uri: &Uri, headers: &HeaderMap) -> String {
    match headers.get(header::HOST) {
        Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        None => uri.authority().map_or_else(String::new, |a| a.to_string()),
    }
}

/// A `Host` value: `uri-host [":" port]`, nothing else.
fn valid_host(value: &[u8]) -> Result<String, HostError> {
    let authority = Authority::try_from(value).map_err(|_| HostError::Invalid)?;
    if authority.as_str().contains('@') {
        return Err(HostError::Invalid);
    }
    checked(&authority).ok_or(HostError::Invalid)
}

/// The target's authority, without user info (which is refused).
fn target_host(authority: &Authority) -> Result<String, HostError> {
    if authority.as_str().contains('@') {
        return Err(HostError::UserInfo);
    }
    checked(authority).ok_or(HostError::Invalid)
}

/// `authority` as text if its host is not empty and its port, when given, is a port number.
fn checked(authority: &Authority) -> Option<String> {
    if authority.host().is_empty() {
        return None;
    }
    let text = authority.as_str();
    // The port: what follows the last `:` after the host (an IPv6 literal's in brackets).
    let after_host = text.rfind(']').map_or(text, |i| &text[i..]);
    if let Some((_, port)) = after_host.rsplit_once(':')
        && !port.is_empty()
        && !(port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
    {
        return None;
    }
    // `host:` (an empty port) is allowed by the grammar; it means the default port.
    Some(text.strip_suffix(':').unwrap_or(text).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(version: Version, target: &str, hosts: &[&str]) -> Result<String, HostError> {
        let uri: Uri = target.parse().unwrap();
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, HeaderValue::from_str(h).unwrap());
        }
        request_host(version, &uri, &headers)
    }

    const H11: Version = Version::HTTP_11;

    #[test]
    fn the_target_s_authority_wins_over_host() {
        assert_eq!(
            host(H11, "http://a.example/x", &["b.example"]).unwrap(),
            "a.example"
        );
        assert_eq!(
            host(H11, "https://a.example:8443/", &[]).unwrap(),
            "a.example:8443"
        );
        assert_eq!(
            host(H11, "/x", &["c.example:8080"]).unwrap(),
            "c.example:8080"
        );
        assert_eq!(host(H11, "/x", &["[::1]:5000"]).unwrap(), "[::1]:5000");
        assert_eq!(
            host(Version::HTTP_2, "https://a.example/", &["b.example"]).unwrap(),
            "a.example"
        );
    }

    #[test]
    fn two_hosts_invalid_ones_and_none_are_refused() {
        use HostError::*;
        assert_eq!(host(H11, "/", &["a.example", "b.example"]), Err(Repeated));
        assert_eq!(host(H11, "/", &["a.example", "a.example"]), Err(Repeated));
        for bad in [
            "a example",
            "evil@a.example",
            "a.example:http",
            "a.example:99999",
            "",
            ":80",
            "a/b",
        ] {
            assert_eq!(host(H11, "/", &[bad]), Err(Invalid), "{bad:?}");
        }
        assert_eq!(host(H11, "http://a.example/", &["a b"]), Err(Invalid));
        assert_eq!(host(H11, "/", &[]), Err(Missing));
        assert_eq!(
            host(H11, "http://u:p@a.example/", &["a.example"]),
            Err(UserInfo)
        );
        assert_eq!(host(H11, "ftp://a.example/", &["a.example"]), Err(Scheme));
    }

    #[test]
    fn an_http_1_target_gives_the_host_and_the_dyno_s_path() {
        let hp = |target: &str, hosts: &[&str]| {
            host_and_path(true, target, hosts.iter().map(|h| h.as_bytes()))
        };
        assert_eq!(
            hp("/a?b", &["x.example"]),
            Ok(("x.example".into(), "/a?b".into()))
        );
        assert_eq!(
            hp("http://a.example/x?y", &["b.example"]),
            Ok(("a.example".into(), "/x?y".into()))
        );
        assert_eq!(
            hp("*", &["x.example"]),
            Ok(("x.example".into(), "*".into()))
        );
        assert_eq!(hp("/", &["a", "b"]), Err(HostError::Repeated));
        assert_eq!(hp("no slash", &["a"]), Err(HostError::Invalid));
        assert_eq!(hp("ftp://a.example/", &[]), Err(HostError::Scheme));
        assert_eq!(
            host_and_path(false, "/", std::iter::empty()),
            Ok((String::new(), "/".into()))
        );
    }

    #[test]
    fn http_1_0_and_http_2_may_name_no_host() {
        assert_eq!(host(Version::HTTP_10, "/", &[]).unwrap(), "");
        assert_eq!(host(Version::HTTP_2, "/", &[]).unwrap(), "");
        assert_eq!(host(H11, "/", &["a.example:"]).unwrap(), "a.example");
    }
}
