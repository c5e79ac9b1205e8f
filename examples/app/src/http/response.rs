//! Response heads written by hand, and chunked framing for streamed bodies.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::http::Version;

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` for HTTP/1.1; for HTTP/1.0, which has no chunks, the body
    /// runs to the end of the connection.
    Chunked,
    /// No body and no framing or `Connection` header of our own: `101 Switching Protocols`.
    None,
}

/// A response's status and headers. Every head also says `Server: example-app`.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    headers: Vec<(Cow<'static, str>, String)>,
    close: bool,
}

impl Head {
    pub(crate) fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            close: false,
        }
    }

    pub(crate) fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Closes the connection after this response, whatever the client asked for.
    pub(crate) fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Whether the connection stays open after this response to a request of `version`
    /// that did (`wants_keep_alive`) or did not ask for that.
    pub(crate) fn keeps_alive(
        &self,
        version: Version,
        wants_keep_alive: bool,
        framing: Framing,
    ) -> bool {
        let close_delimited = framing == Framing::Chunked && version == Version::Http10;
        wants_keep_alive && !self.close && !close_delimited
    }

    /// The head's bytes, up to and with the empty line.
    pub(crate) fn encode(&self, version: Version, keep_alive: bool, framing: Framing) -> Vec<u8> {
        let mut out = String::with_capacity(128);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nServer: example-app\r\n",
            self.status,
            reason(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        match framing {
            Framing::Length(n) => {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
            Framing::Chunked if version == Version::Http11 => {
                out.push_str("Transfer-Encoding: chunked\r\n");
            }
            Framing::Chunked | Framing::None => {}
        }
        if framing != Framing::None {
            if !keep_alive {
                out.push_str("Connection: close\r\n");
            } else if version == Version::Http10 {
                out.push_str("Connection: keep-alive\r\n");
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// One chunk of a chunked body (never empty: an empty chunk ends the body).
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The chunk that ends a chunked body, with no trailers.
pub(crate) fn last_chunk() -> &'static [u8] {
    b"0\r\n\r\n"
}

/// The reason phrase of the statuses the app sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        500 => "Internal Server Error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(head: &Head, version: Version, keep_alive: bool, framing: Framing) -> String {
        String::from_utf8(head.encode(version, keep_alive, framing)).unwrap()
    }

    #[test]
    fn a_keep_alive_http11_head() {
        let head = Head::new(200).header("Content-Type", "text/plain");
        assert_eq!(
            text(&head, Version::Http11, true, Framing::Length(3)),
            "HTTP/1.1 200 OK\r\nServer: example-app\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn closing_and_http10_keep_alive_say_so() {
        let head = Head::new(404);
        assert!(
            text(&head, Version::Http11, false, Framing::Length(0))
                .ends_with("Connection: close\r\n\r\n")
        );
        assert!(
            text(&head, Version::Http10, true, Framing::Length(0))
                .ends_with("Connection: keep-alive\r\n\r\n")
        );
    }

    #[test]
    fn chunked_only_for_http11_and_http10_then_closes() {
        let head = Head::new(200);
        assert!(
            text(&head, Version::Http11, true, Framing::Chunked)
                .contains("Transfer-Encoding: chunked\r\n")
        );
        assert!(head.keeps_alive(Version::Http11, true, Framing::Chunked));
        assert!(!head.keeps_alive(Version::Http10, true, Framing::Chunked));
        let http10 = text(&head, Version::Http10, false, Framing::Chunked);
        assert!(!http10.contains("Transfer-Encoding"));
        assert!(http10.contains("Connection: close\r\n"));
    }

    #[test]
    fn a_closing_head_never_keeps_alive() {
        assert!(
            !Head::new(200)
                .close()
                .keeps_alive(Version::Http11, true, Framing::Length(0))
        );
    }

    #[test]
    fn switching_protocols_adds_no_framing() {
        let head = Head::new(101).header("Connection", "Upgrade");
        assert_eq!(
            text(&head, Version::Http11, true, Framing::None),
            "HTTP/1.1 101 Switching Protocols\r\nServer: example-app\r\nConnection: Upgrade\r\n\r\n"
        );
    }

    #[test]
    fn chunks() {
        assert_eq!(chunk(b"chunk 10\n"), b"9\r\nchunk 10\n\r\n");
        assert_eq!(chunk(&[0; 26]).get(..4), Some(&b"1a\r\n"[..]));
    }
}
