//! Credentials on API calls: `Authorization: Bearer KEY` (as the Platform API), or Basic with
//! the key as password (as the heroku CLI's netrc). On `POST /logs`, Basic with the ingest
//! token as password (as log-shuttle), or Bearer with the token.

use base64::Engine as _;
use http::{HeaderMap, header};

/// The user name (Basic only) and secret of a request's `Authorization` header.
pub fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| (None, rest.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!password.is_empty()).then(|| (Some(user.to_owned()), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic() {
        assert_eq!(
            credentials(&with("Bearer k.abc")),
            Some((None, "k.abc".into()))
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("token:t.123");
        assert_eq!(
            credentials(&with(&format!("Basic {basic}"))),
            Some((Some("token".into()), "t.123".into()))
        );
    }

    #[test]
    fn hostile_headers_are_no_credentials() {
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic !!!",
            "Basic dXNlcg==",
            "Digest x",
            "Basic Og==",
        ] {
            assert_eq!(credentials(&with(bad)), None, "{bad:?}");
        }
        assert_eq!(credentials(&HeaderMap::new()), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(credentials(&h), None);
    }
}
