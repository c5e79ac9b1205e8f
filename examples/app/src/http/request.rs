//! A request: its head parsed with `httparse`, owned, with the lookups the routes need.

use crate::error::RequestError;
use crate::http::{MAX_HEAD, MAX_HEADERS};

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// A request read from a connection. Header names are lowercase; values are bytes as sent.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The request target as sent: the path and the query.
    pub(crate) target: String,
    pub(crate) version: Version,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyLength {
    Length(u64),
    Chunked,
}

/// Parses a request head from the start of `buf`: the request (without its body) and the
/// head's length, or `None` while the head is incomplete.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(RequestError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(RequestError::BadHead(error)),
    };
    if len > MAX_HEAD {
        return Err(RequestError::HeadTooLarge);
    }
    // A complete parse sets all three; a missing one is read as a bad version.
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(RequestError::BadHead(httparse::Error::Version));
    };
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: if version == 0 {
            Version::Http10
        } else {
            Version::Http11
        },
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    Ok(Some((request, len)))
}

impl Request {
    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&self.target, |(path, _)| path)
    }

    /// The query, without the `?`.
    pub(crate) fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// A query parameter's raw value: `Some("")` for a bare `?name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The first value of a header (`name` lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Every value of a header, in order (`name` lowercase).
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Whether a comma-separated header (`Connection`, `Upgrade`) lists `token`, in any case.
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The comma-separated elements of every value of a header, trimmed.
    fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.headers_named(name)
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    }

    /// Whether the client wants the connection kept open after the response.
    pub(crate) fn wants_keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.version == Version::Http11 || self.has_token("connection", "keep-alive")
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self
                .header("expect")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
    }

    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// How the body is framed (RFC 9112 section 6.3): chunked when `Transfer-Encoding` ends in
    /// `chunked`, else `Content-Length`, else empty. Anything ambiguous is an error.
    pub(crate) fn body_length(&self) -> Result<BodyLength, RequestError> {
        let has_length = self.header("content-length").is_some();
        if let Some(last) = self.tokens("transfer-encoding").last() {
            if has_length {
                return Err(RequestError::AmbiguousLength);
            }
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(RequestError::UnsupportedTransferEncoding);
            }
            return Ok(BodyLength::Chunked);
        }
        if self.header("transfer-encoding").is_some() {
            return Err(RequestError::UnsupportedTransferEncoding);
        }
        let mut length = None;
        for value in self.tokens("content-length") {
            let n = parse_length(value).ok_or(RequestError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::BadContentLength);
            }
            length = Some(n);
        }
        match (has_length, length) {
            (true, None) => Err(RequestError::BadContentLength),
            (_, length) => Ok(BodyLength::Length(length.unwrap_or(0))),
        }
    }
}

/// A `Content-Length` value: digits only (no sign), at most 19 of them so it fits a `u64`.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Option<(Request, usize)>, RequestError> {
        parse_head(head.as_bytes())
    }

    fn request(head: &str) -> Request {
        match parse(head) {
            Ok(Some((request, _))) => request,
            other => panic!("{head:?} did not parse: {other:?}"),
        }
    }

    #[test]
    fn a_head_is_none_until_its_last_byte_at_every_split() {
        let head = "POST /echo?headers HTTP/1.1\r\nHost: x\r\nX-Thing: a b\r\n\r\nbody";
        let end = head.len() - "body".len();
        for i in 0..end {
            assert!(matches!(parse(&head[..i]), Ok(None)), "prefix of {i} bytes");
        }
        for i in end..=head.len() {
            let (request, len) = parse_head(&head.as_bytes()[..i]).unwrap().unwrap();
            assert_eq!(len, end);
            assert_eq!(request.method, "POST");
            assert_eq!(request.path(), "/echo");
            assert_eq!(request.param("headers"), Some(""));
            assert_eq!(request.header("x-thing"), Some(&b"a b"[..]));
        }
    }

    #[test]
    fn header_names_are_lowercased_and_repeats_kept_in_order() {
        let r = request("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
        assert_eq!(r.headers_named("x-a").collect::<Vec<_>>(), [b"1", b"2"]);
    }

    #[test]
    fn query_params() {
        let r = request("GET /drip?chunks=3&ms=10&flag HTTP/1.1\r\n\r\n");
        assert_eq!(r.path(), "/drip");
        assert_eq!(r.param("chunks"), Some("3"));
        assert_eq!(r.param("ms"), Some("10"));
        assert_eq!(r.param("flag"), Some(""));
        assert_eq!(r.param("nope"), None);
        assert_eq!(request("GET / HTTP/1.1\r\n\r\n").param("ms"), None);
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        assert!(request("GET / HTTP/1.1\r\n\r\n").wants_keep_alive());
        assert!(!request("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").wants_keep_alive());
        assert!(!request("GET / HTTP/1.0\r\n\r\n").wants_keep_alive());
        assert!(request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").wants_keep_alive());
        assert!(
            !request("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").wants_keep_alive()
        );
    }

    #[test]
    fn body_length_framing() {
        let length = |head: &str| request(head).body_length();
        assert!(matches!(
            length("GET / HTTP/1.1\r\n\r\n"),
            Ok(BodyLength::Length(0))
        ));
        assert!(matches!(
            length("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Ok(BodyLength::Length(12))
        ));
        assert!(matches!(
            length("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyLength::Length(5))
        ));
        assert!(matches!(
            length("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            Ok(BodyLength::Chunked)
        ));
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        ] {
            assert!(length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expect_continue_only_on_http11() {
        assert!(request("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expects_continue());
        assert!(!request("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    }

    #[test]
    fn bad_heads_are_errors() {
        assert!(matches!(
            parse("this is not http\r\n\r\n"),
            Err(RequestError::BadHead(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/2.0\r\n\r\n"),
            Err(RequestError::BadHead(_))
        ));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(
            parse(&many),
            Err(RequestError::BadHead(httparse::Error::TooManyHeaders))
        ));
    }

    #[test]
    fn a_head_over_the_limit_is_too_large_complete_or_not() {
        let long = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&long), Err(RequestError::HeadTooLarge)));
        assert!(matches!(
            parse(&format!("{long}\r\n")),
            Err(RequestError::HeadTooLarge)
        ));
    }
}
