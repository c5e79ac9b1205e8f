//! A dyno's response head, parsed in place with `httparse`, and the head the client gets,
//! written straight into a reused buffer: the dyno's status line and headers, hop-by-hop
//! headers dropped, `Via` gaining `1.1 paas`, the affinity cookie when the client moves to
//! another dyno, and the framing the client's side needs (RFC 9112 §6.3): a body of known
//! length keeps its `Content-Length`; a chunked body stays chunked for an HTTP/1.1 client; a
//! body delimited by the dyno closing is chunked for an HTTP/1.1 client, and for an HTTP/1.0
//! one ends with the connection.

use std::io::Write as _;

use crate::proxy::h1::forward::{named_by_connection, push_header};
use crate::proxy::h1::request::content_length;
use crate::proxy::headers::VIA;

/// How the dyno delimits its response's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (a HEAD request, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the dyno closes the connection.
    UntilClose,
}

/// A parsed response head from a dyno; its reason borrows the buffer it was read into.
#[derive(Debug)]
pub struct ResponseHead<'b> {
    /// The status code.
    pub status: u16,
    /// The reason phrase, as sent.
    pub reason: &'b str,
    /// The head's length in bytes: the body starts there.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the dyno keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Why a dyno's response is not one to forward (H17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadResponse {
    /// Not HTTP/1.x syntax, or more headers than room was given for.
    Syntax,
    /// A `Content-Length` that is not one number.
    ContentLength,
}

/// Parses the response head at the start of `buf` into `slots`: `Ok(None)` while incomplete.
/// `head_request`: the request was a HEAD (the response has no body whatever it says).
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut [httparse::Header<'b>],
    head_request: bool,
) -> Result<Option<(ResponseHead<'b>, &'h [httparse::Header<'b>])>, BadResponse> {
    let mut res = httparse::Response::new(slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Syntax),
    };
    let (Some(status), Some(minor_version)) = (res.code, res.version) else {
        return Err(BadResponse::Syntax);
    };
    let reason = res.reason.unwrap_or("");
    let fields: &'h [httparse::Header<'b>] = res.headers;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut keep_alive = minor_version == 1;
    for field in fields {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(field.value).ok_or(BadResponse::ContentLength)?;
            if length.is_some_and(|prev| prev != n) {
                return Err(BadResponse::ContentLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = field
                .value
                .split(|&b| b == b',')
                .next_back()
                .map(<[u8]>::trim_ascii);
            chunked = Some(last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if head_request || (100..200).contains(&status) || matches!(status, 204 | 304) {
        Framing::Empty
    } else {
        match (chunked, length) {
            // A transfer coding wins over a length (RFC 9112 §6.3).
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some((
        ResponseHead {
            status,
            reason,
            len,
            framing,
            keep_alive,
        },
        fields,
    )))
}

/// How the client's side of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFraming {
    /// As the dyno sent it: no body, a `Content-Length`, or chunks passed on.
    AsSent,
    /// The dyno's body (delimited by its close) in chunks made here.
    Rechunked,
    /// The body ends when the connection closes (an HTTP/1.0 client).
    Close,
}

/// What the client's head says beyond the dyno's headers.
#[derive(Debug)]
pub struct ClientHead<'a> {
    /// The client speaks HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// The client's connection stays open after this response.
    pub keep_alive: bool,
    /// A protocol switch (101): `Connection: upgrade` and `Upgrade` are kept.
    pub upgrade: bool,
    /// The affinity cookie's value, when the client moves to this dyno.
    pub cookie: Option<&'a str>,
}

/// Writes into `out` (cleared first) the client's head for the dyno's `head`; returns how the
/// body is delimited on the client's side.
pub fn client_head(
    out: &mut Vec<u8>,
    head: &ResponseHead<'_>,
    fields: &[httparse::Header<'_>],
    client: &ClientHead<'_>,
) -> ClientFraming {
    out.clear();
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut via: Vec<&[u8]> = Vec::new();
    let mut dated = false;
    let framed_otherwise = matches!(head.framing, Framing::Chunked | Framing::UntilClose);
    let named = named_by_connection(fields);
    for field in fields {
        let name = field.name;
        if !named.is_empty()
            && named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        {
            continue;
        }
        let hop = match name.len() {
            4 => {
                dated |= name.eq_ignore_ascii_case("date");
                false
            }
            2 => name.eq_ignore_ascii_case("te"),
            3 if name.eq_ignore_ascii_case("via") => {
                let value = field.value.trim_ascii();
                if !value.is_empty() {
                    via.push(value);
                }
                true
            }
            7 => {
                name.eq_ignore_ascii_case("trailer")
                    || (name.eq_ignore_ascii_case("upgrade") && !client.upgrade)
            }
            10 => {
                name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive")
            }
            // A length beside a transfer coding is not the body's.
            14 => framed_otherwise && name.eq_ignore_ascii_case("content-length"),
            16 => name.eq_ignore_ascii_case("proxy-connection"),
            17 => name.eq_ignore_ascii_case("transfer-encoding"),
            18 => name.eq_ignore_ascii_case("proxy-authenticate"),
            19 => name.eq_ignore_ascii_case("proxy-authorization"),
            _ => false,
        };
        if !hop {
            push_header(out, name, field.value);
        }
    }
    out.extend_from_slice(b"via: ");
    for prior in via {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(VIA.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !dated {
        // A proxy adds the `Date` a response lacks (RFC 9110 §6.6.1).
        out.extend_from_slice(b"date: ");
        now_http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(cookie) = client.cookie {
        push_header(out, "set-cookie", cookie.as_bytes());
    }
    let framing = match head.framing {
        Framing::Empty | Framing::Length(_) => ClientFraming::AsSent,
        Framing::Chunked | Framing::UntilClose if !client.http11 => ClientFraming::Close,
        Framing::Chunked => ClientFraming::AsSent,
        Framing::UntilClose => ClientFraming::Rechunked,
    };
    if client.http11 && matches!(head.framing, Framing::Chunked | Framing::UntilClose) {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if client.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if !client.keep_alive || framing == ClientFraming::Close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !client.http11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Appends the current time as an HTTP date, formatted once a second per thread.
fn now_http_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8], head_request: bool) -> Result<Option<(u16, Framing, bool)>, BadResponse> {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        parse(raw, &mut slots, head_request)
            .map(|r| r.map(|(h, _)| (h.status, h.framing, h.keep_alive)))
    }

    #[test]
    fn a_response_s_body_is_delimited_as_rfc_9112_says() {
        use Framing::*;
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Ok(Some((200, Length(5), true)))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Ok(Some((200, Empty, true)))
        );
        assert_eq!(
            head(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Ok(Some((204, Empty, true)))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Ok(Some((304, Empty, true)))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Ok(Some((200, Chunked, true)))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Ok(Some((200, UntilClose, false)))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Ok(Some((200, UntilClose, false)))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            Ok(Some((200, Length(0), false)))
        );
        assert_eq!(
            head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            Ok(Some((200, Length(0), false)))
        );
        assert_eq!(head(b"HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None));
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            Err(BadResponse::ContentLength)
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false),
            Err(BadResponse::ContentLength)
        );
        assert_eq!(head(b"garbage\r\n\r\n", false), Err(BadResponse::Syntax));
    }

    fn client(raw: &[u8], client: &ClientHead<'_>) -> (String, ClientFraming) {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let (h, fields) = parse(raw, &mut slots, false).unwrap().unwrap();
        let mut out = Vec::new();
        let framing = client_head(&mut out, &h, fields, client);
        let text = String::from_utf8(out).unwrap();
        // The date the proxy adds is now's: checked once, then left out.
        let date = text.lines().find(|l| l.starts_with("date: ")).unwrap();
        assert!(httpdate::parse_http_date(&date[6..]).is_ok(), "{date}");
        (text.replace(&format!("{date}\r\n"), ""), framing)
    }

    #[test]
    fn the_client_s_head_drops_hop_by_hop_headers_and_frames_the_body_for_it() {
        let plain = ClientHead {
            http11: true,
            keep_alive: true,
            upgrade: false,
            cookie: None,
        };
        let (out, framing) = client(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nVia: 1.0 x\r\nX-A: b\r\n\r\n",
            &plain,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\nvia: 1.0 x, 1.1 paas\r\n\r\n"
        );
        assert_eq!(framing, ClientFraming::AsSent);
        let (out, framing) = client(b"HTTP/1.1 200 OK\r\n\r\n", &plain);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nvia: 1.1 paas\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, ClientFraming::Rechunked);
        let old = ClientHead {
            http11: false,
            keep_alive: true,
            ..plain
        };
        let (out, framing) = client(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &old,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nvia: 1.1 paas\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(framing, ClientFraming::Close);
        let (out, _) = client(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &old);
        assert!(out.ends_with("connection: keep-alive\r\n\r\n"), "{out}");
        let moved = ClientHead {
            cookie: Some("paas-session-affinity=web.2"),
            keep_alive: false,
            ..plain
        };
        let (out, _) = client(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &moved);
        assert!(
            out.ends_with("set-cookie: paas-session-affinity=web.2\r\nconnection: close\r\n\r\n"),
            "{out}"
        );
        let ws = ClientHead {
            upgrade: true,
            ..plain
        };
        let (out, _) = client(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &ws);
        assert_eq!(
            out,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nvia: 1.1 paas\r\nconnection: upgrade\r\n\r\n"
        );
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        /// A response head from parts a dyno might send, in any mix and order.
        fn response() -> impl Strategy<Value = Vec<u8>> {
            let field = prop::sample::select(vec![
                "Content-Length: 5",
                "Content-Length: 0",
                "Content-Length: 7",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip",
                "Transfer-Encoding: gzip, chunked",
                "Connection: close",
                "Connection: keep-alive, X-A",
                "Connection: upgrade",
                "Keep-Alive: timeout=5",
                "Upgrade: websocket",
                "TE: trailers",
                "Trailer: X-Sum",
                "Proxy-Connection: keep-alive",
                "Via: 1.0 corp",
                "Date: Sat, 05 Dec 2026 05:00:00 GMT",
                "X-A: b",
            ]);
            let status = prop::sample::select(vec![100u16, 101, 103, 200, 204, 304, 404, 503]);
            (status, prop::bool::ANY, prop::collection::vec(field, 0..8)).prop_map(
                |(status, http11, fields)| {
                    let mut head = format!("HTTP/1.{} {status} X\r\n", u8::from(http11));
                    for f in fields {
                        head.push_str(f);
                        head.push_str("\r\n");
                    }
                    head.push_str("\r\n");
                    head.into_bytes()
                },
            )
        }

        proptest! {
            /// Whatever the dyno's head, the client's is one HTTP/1.1 head of the same status
            /// that frames the body one way, for the client it goes to, with none of the
            /// dyno's hop-by-hop headers.
            #[test]
            fn the_client_s_head_frames_the_body_one_way(raw in response(), head_request: bool) {
                let mut slots = [httparse::EMPTY_HEADER; 16];
                let Ok(Some((head, fields))) = parse(&raw, &mut slots, head_request) else {
                    return Ok(());
                };
                for (http11, keep_alive) in [(true, true), (true, false), (false, true)] {
                    let client = ClientHead { http11, keep_alive, upgrade: false, cookie: None };
                    let mut out = Vec::new();
                    let framing = client_head(&mut out, &head, fields, &client);
                    let mut back = [httparse::EMPTY_HEADER; 32];
                    let mut res = httparse::Response::new(&mut back);
                    prop_assert_eq!(res.parse(&out), Ok(httparse::Status::Complete(out.len())));
                    prop_assert_eq!(res.code, Some(head.status));
                    let count = |name: &str| {
                        res.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count()
                    };
                    let chunked = count("transfer-encoding");
                    prop_assert!(chunked <= 1 && count("connection") == usize::from(!keep_alive || !http11 && framing != ClientFraming::Close || framing == ClientFraming::Close));
                    prop_assert!(chunked == 0 || (count("content-length") == 0 && http11));
                    prop_assert_eq!(chunked == 1, http11 && matches!(head.framing, Framing::Chunked | Framing::UntilClose));
                    for hop in ["keep-alive", "te", "trailer", "proxy-connection", "upgrade"] {
                        prop_assert_eq!(count(hop), 0, "{}", hop);
                    }
                    // `Connection` naming it makes it hop-by-hop too.
                    let named = raw.windows(5).any(|w| w == b", X-A");
                    let sent = raw.windows(7).filter(|w| *w == b"\nX-A: b").count();
                    prop_assert_eq!(count("x-a"), if named { 0 } else { sent });
                }
            }
        }
    }
}
