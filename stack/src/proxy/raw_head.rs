//! A request head as it arrived, before hyper parsed it. hyper is the parser; what it cannot
//! tell the handler is what a smuggler sends: it answers a malformed head (two differing
//! `Content-Length`s, a folded line, a bare CR, a `Transfer-Encoding` not ending in chunked)
//! with 400 itself, and reads a head with both `Content-Length` and `Transfer-Encoding` as
//! chunked, dropping the length. So each connection keeps the first bytes of the head it is
//! reading (`HeadCapture`, bounded), which are scanned leniently (`RawHead`) for two things:
//! the router line of a head hyper refused, and the refusal of a head with both lengths, as
//! Vegur and nginx refuse it.

/// How many bytes of a head are kept: Vegur's longest request line.
pub const MAX_CAPTURE: usize = 8 * 1024;

/// The first bytes of the request head a connection is reading (at most [`MAX_CAPTURE`]).
#[derive(Debug, Default)]
pub struct HeadCapture {
    bytes: Vec<u8>,
}

impl HeadCapture {
    /// Bytes read from the client while it sends a head.
    pub fn push(&mut self, read: &[u8]) {
        let room = MAX_CAPTURE.saturating_sub(self.bytes.len());
        if room > 0 {
            self.bytes.extend_from_slice(&read[..read.len().min(room)]);
        }
    }

    /// The head kept so far.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A new head begins (the buffer is kept).
    pub fn clear(&mut self) {
        self.bytes.clear();
    }
}

/// What a lenient scan of a head's bytes finds: the request line's method and target, and
/// the first `Host` and `X-Request-Id`, whatever else is wrong with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RawHead<'a> {
    /// The method, as sent.
    pub method: &'a [u8],
    /// The request target, as sent.
    pub target: &'a [u8],
    /// The first `Host` header's value.
    pub host: Option<&'a [u8]>,
    /// The first `X-Request-Id` header's value.
    pub request_id: Option<&'a [u8]>,
    /// Whether any `Content-Length` header is there.
    pub content_length: bool,
}

impl<'a> RawHead<'a> {
    /// Scans `bytes`, which start with a request line, up to the head's end (or the bytes').
    /// Lines end at LF (a CR before it is dropped); a line without a colon is skipped.
    pub fn scan(bytes: &'a [u8]) -> RawHead<'a> {
        let mut lines = bytes
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let mut head = RawHead::default();
        let mut words = lines
            .next()
            .unwrap_or_default()
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty());
        head.method = words.next().unwrap_or_default();
        head.target = words.next().unwrap_or_default();
        for line in lines.take_while(|l| !l.is_empty()) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = line[..colon].trim_ascii();
            let value = line[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                head.content_length = true;
            } else if name.eq_ignore_ascii_case(b"host") {
                head.host.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"x-request-id") {
                head.request_id.get_or_insert(value);
            }
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"POST /echo?a=b HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: abc\r\n\
        Transfer-Encoding: chunked\r\ncontent-length : 5\r\n\r\n0\r\n\r\nHost: not.this\r\n";

    #[test]
    fn a_head_s_line_host_id_and_lengths_are_found() {
        let head = RawHead::scan(HEAD);
        assert_eq!(head.method, b"POST");
        assert_eq!(head.target, b"/echo?a=b");
        assert_eq!(head.host, Some(&b"a.test"[..]));
        assert_eq!(head.request_id, Some(&b"abc"[..]));
        assert!(head.content_length);
        // The body and what follows it are not the head.
        let head = RawHead::scan(b"GET / HTTP/1.1\nHost: b\n\nContent-Length: 1\n");
        assert_eq!(head.host, Some(&b"b"[..]));
        assert!(!head.content_length);
    }

    #[test]
    fn malformed_heads_still_give_what_they_have() {
        // A bare CR, a folded line, no colon, nothing at all.
        let head =
            RawHead::scan(b"GET /x HTTP/1.1\r\nX-A: 1\r2\r\n  folded\r\nnocolon\r\nHost: h\r\n");
        assert_eq!((head.method, head.target), (&b"GET"[..], &b"/x"[..]));
        assert_eq!(head.host, Some(&b"h"[..]));
        assert_eq!(RawHead::scan(b""), RawHead::default());
        assert_eq!(RawHead::scan(b"GET").method, b"GET");
    }

    #[test]
    fn the_capture_keeps_at_most_its_limit_split_anywhere() {
        for split in 0..=HEAD.len() {
            let mut capture = HeadCapture::default();
            capture.push(&HEAD[..split]);
            capture.push(&HEAD[split..]);
            assert_eq!(capture.bytes(), HEAD);
            assert!(RawHead::scan(capture.bytes()).content_length);
        }
        let mut capture = HeadCapture::default();
        capture.push(&[b'a'; MAX_CAPTURE - 1]);
        capture.push(b"bcd");
        assert_eq!(capture.bytes().len(), MAX_CAPTURE);
        assert_eq!(capture.bytes().last(), Some(&b'b'));
        capture.clear();
        assert!(capture.bytes().is_empty());
    }
}
