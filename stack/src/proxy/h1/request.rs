//! A client's HTTP/1.x request head, parsed in place with `httparse` and judged as Vegur
//! judges it: Vegur's limits (H25), and one reading of the body's length or none (H26): a
//! head with both `Content-Length` and `Transfer-Encoding`, differing `Content-Length`s, a
//! `Transfer-Encoding` that does not end in `chunked` or in HTTP/1.0, a folded line or a bare
//! CR is refused, so that no parser in front or behind can read another request into it.

use std::fmt;

use crate::proxy::headers::{MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_REQUEST_LINE};

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head; its strings borrow the buffer it was read into.
#[derive(Debug)]
pub struct RequestHead<'b> {
    /// The method.
    pub method: &'b str,
    /// The request target, as sent.
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The head's length in bytes, its blank line included: the body starts there.
    pub len: usize,
    /// How the body is delimited.
    pub body: BodyLength,
    /// Whether the client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// Whether it asks to switch protocols (`Connection: upgrade` with `Upgrade`).
    pub upgrade: bool,
}

/// Why a request head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x syntax (a folded line and a bare CR included); 400, H26.
    Syntax(httparse::Error),
    /// More headers than the parser was given room for; 431, H25.
    TooManyHeaders,
    /// A request line, header name or value past Vegur's limits; 400, H25.
    Limit(Limit),
    /// `Content-Length` and `Transfer-Encoding` together; 400, H26.
    AmbiguousLength,
    /// Two `Content-Length`s that differ, or one that is not a number; 400, H26.
    BadContentLength,
    /// A `Transfer-Encoding` that does not end in `chunked`, or any in HTTP/1.0; 400, H26.
    BadTransferEncoding,
}

/// Which of Vegur's limits a head broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The request line is longer than 8 KiB.
    RequestLine,
    /// A header name is longer than 1000 bytes.
    HeaderName,
    /// A header value is longer than 8 KiB.
    HeaderValue,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Syntax(e) => write!(f, "malformed request head: {e}"),
            HeadError::TooManyHeaders => f.write_str("too many headers"),
            HeadError::Limit(Limit::RequestLine) => f.write_str("request line too long"),
            HeadError::Limit(Limit::HeaderName) => f.write_str("header name too long"),
            HeadError::Limit(Limit::HeaderValue) => f.write_str("header value too long"),
            HeadError::AmbiguousLength => f.write_str("both Content-Length and Transfer-Encoding"),
            HeadError::BadContentLength => f.write_str("invalid or differing Content-Length"),
            HeadError::BadTransferEncoding => {
                f.write_str("Transfer-Encoding not ending in chunked")
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses the request head at the start of `buf` into `headers` (whose length is the most
/// headers taken): `Ok(None)` while the head is incomplete.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Option<(RequestHead<'b>, &'h [httparse::Header<'b>])>, HeadError> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // A request line past the limit is refused before the rest arrives.
            if !buf.contains(&b'\n') && buf.len() > MAX_REQUEST_LINE {
                return Err(HeadError::Limit(Limit::RequestLine));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Syntax(httparse::Error::Token));
    };
    // `METHOD SP target SP HTTP/1.1`
    if method.len() + target.len() + 10 > MAX_REQUEST_LINE {
        return Err(HeadError::Limit(Limit::RequestLine));
    }
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let fields = Fields::read(headers, minor_version)?;
    let body = fields.body(minor_version)?;
    Ok(Some((
        RequestHead {
            method,
            target,
            minor_version,
            len,
            body,
            keep_alive: fields.keep_alive,
            upgrade: fields.connection_upgrade && fields.has_upgrade && minor_version == 1,
        },
        headers,
    )))
}

/// What a head's fields say of its body and its connection.
struct Fields<'b> {
    length: Option<u64>,
    transfer_encoding: Option<&'b [u8]>,
    keep_alive: bool,
    connection_upgrade: bool,
    has_upgrade: bool,
}

impl<'b> Fields<'b> {
    /// Reads `headers` under Vegur's limits; differing `Content-Length`s are refused here.
    fn read(headers: &[httparse::Header<'b>], minor_version: u8) -> Result<Self, HeadError> {
        let mut fields = Fields {
            length: None,
            transfer_encoding: None,
            keep_alive: minor_version == 1,
            connection_upgrade: false,
            has_upgrade: false,
        };
        for h in headers {
            if h.name.len() > MAX_HEADER_NAME {
                return Err(HeadError::Limit(Limit::HeaderName));
            }
            if h.value.len() > MAX_HEADER_VALUE {
                return Err(HeadError::Limit(Limit::HeaderValue));
            }
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = content_length(h.value).ok_or(HeadError::BadContentLength)?;
                if fields.length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::BadContentLength);
                }
                fields.length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding of the last header is the one that frames the body.
                fields.transfer_encoding = Some(h.value);
            } else if h.name.eq_ignore_ascii_case("connection") {
                fields.connection(h.value, minor_version);
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                fields.has_upgrade = true;
            }
        }
        Ok(fields)
    }

    /// The tokens of a `Connection` header.
    fn connection(&mut self, value: &[u8], minor_version: u8) {
        for token in tokens(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.keep_alive = false;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.connection_upgrade = true;
            }
        }
    }

    /// The body's one length, or why there is not one.
    fn body(&self, minor_version: u8) -> Result<BodyLength, HeadError> {
        match (self.length, self.transfer_encoding) {
            (Some(_), Some(_)) => Err(HeadError::AmbiguousLength),
            (None, Some(te)) => {
                let last = tokens(te).last();
                if minor_version == 0 || !last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")) {
                    return Err(HeadError::BadTransferEncoding);
                }
                Ok(BodyLength::Chunked)
            }
            (Some(0), None) | (None, None) => Ok(BodyLength::Empty),
            (Some(n), None) => Ok(BodyLength::Length(n)),
        }
    }
}

/// A `Content-Length` value: digits only (no sign, no list), at most 19 of them.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `head` whole, and again split at every byte (each prefix is incomplete or the
    /// same answer), as a connection reading it in pieces would.
    fn parse_all(head: &[u8]) -> Result<(BodyLength, bool, bool, usize), HeadError> {
        let whole = {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            parse(head, &mut headers)
                .map(|r| r.map(|(h, _)| (h.body, h.keep_alive, h.upgrade, h.len)))
        };
        for split in 0..head.len() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            match parse(&head[..split], &mut headers) {
                Ok(None) => {}
                Ok(Some((h, _))) => assert_eq!(
                    whole,
                    Ok(Some((h.body, h.keep_alive, h.upgrade, h.len))),
                    "{split}"
                ),
                Err(e) => assert_eq!(whole, Err(e), "split at {split}"),
            }
        }
        whole.map(|r| r.unwrap_or_else(|| panic!("incomplete: {}", head.escape_ascii())))
    }

    #[test]
    fn bodies_are_framed_one_way() {
        let get = b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse_all(get),
            Ok((BodyLength::Empty, true, false, get.len()))
        );
        let post = b"POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\nbody";
        assert_eq!(parse_all(post).map(|r| r.0), Ok(BodyLength::Length(12)));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse_all(chunked).map(|r| r.0), Ok(BodyLength::Chunked));
        let old = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(parse_all(old).map(|r| r.1), Ok(true));
        let close = b"GET / HTTP/1.1\r\nConnection: a, close\r\n\r\n";
        assert_eq!(parse_all(close).map(|r| r.1), Ok(false));
        let ws = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(parse_all(ws).map(|r| r.2), Ok(true));
    }

    #[test]
    fn smuggling_is_refused() {
        let cases: [(&[u8], HeadError); 7] = [
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                HeadError::AmbiguousLength,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                HeadError::AmbiguousLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                HeadError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                HeadError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                HeadError::BadTransferEncoding,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                HeadError::BadTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                HeadError::BadContentLength,
            ),
        ];
        for (head, error) in cases {
            assert_eq!(parse_all(head), Err(error), "{}", head.escape_ascii());
        }
        // A folded line and a bare CR are not HTTP/1.1 syntax.
        for head in [
            &b"GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n"[..],
            &b"GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n"[..],
        ] {
            assert!(
                matches!(parse_all(head), Err(HeadError::Syntax(_))),
                "{head:?}"
            );
        }
    }

    #[test]
    fn vegur_s_limits_are_kept() {
        let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(
            parse_all(line.as_bytes()),
            Err(HeadError::Limit(Limit::RequestLine))
        );
        // Refused before the line ends.
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(
            parse(partial.as_bytes(), &mut headers).map(|r| r.is_some()),
            Err(HeadError::Limit(Limit::RequestLine))
        );
        let value = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEADER_VALUE + 1)
        );
        assert_eq!(
            parse_all(value.as_bytes()),
            Err(HeadError::Limit(Limit::HeaderValue))
        );
        let name = format!(
            "GET / HTTP/1.1\r\n{}: v\r\n\r\n",
            "n".repeat(MAX_HEADER_NAME + 1)
        );
        assert_eq!(
            parse_all(name.as_bytes()),
            Err(HeadError::Limit(Limit::HeaderName))
        );
        let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_all(many.as_bytes()), Err(HeadError::TooManyHeaders));
    }
}
