//! A request head as the dyno gets it, written straight from the client's parsed head into a
//! reused buffer (no header map): Vegur's rules as `headers.rs` states them for the hyper path.
//! The request line is `METHOD path HTTP/1.1`; `Host` is the host the request is for;
//! hop-by-hop headers (the standard ones and those `Connection` names) and `Expect` are
//! dropped; a valid `X-Request-Id` is kept, else a new one is made; the client is appended to
//! `X-Forwarded-For`; `X-Forwarded-Proto`, `X-Forwarded-Port` and `X-Request-Start` are the
//! proxy's; `Via` gains `1.1 paas`; a chunked body says so; an upgrade keeps
//! `Connection: upgrade` and `Upgrade`. The client's other headers go on as sent, in order.

use std::io::Write as _;

use crate::proxy::h1::request::{BodyLength, RequestHead};
use crate::proxy::headers::{self, Client, VIA};

/// What the rewrite decided that the request's router line tells.
#[derive(Debug)]
pub(crate) struct Forwarded {
    /// The request id: the client's, when valid, or a new one.
    pub request_id: String,
    /// The `X-Forwarded-For` chain the dyno gets (the line's `fwd`).
    pub fwd: String,
}

/// How a client's header is treated on the way to the dyno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Passed on as it is.
    Keep,
    /// Dropped (hop-by-hop, or set by the proxy).
    Drop,
    /// `Upgrade`: kept on an upgrade, else dropped.
    Upgrade,
    /// `X-Request-Id`: kept when valid.
    RequestId,
    /// `X-Forwarded-For`: the chain the client's address is appended to.
    ForwardedFor,
    /// `Via`: the chain `1.1 paas` is appended to.
    Via,
}

/// The treatment of the header `name` (matched by length first: most names are none of
/// these, and are told so by one comparison of lengths).
fn kind(name: &str) -> Kind {
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    match name.len() {
        2 if is("te") => Kind::Drop,
        3 if is("via") => Kind::Via,
        4 if is("host") => Kind::Drop,
        6 if is("expect") => Kind::Drop,
        7 if is("trailer") => Kind::Drop,
        7 if is("upgrade") => Kind::Upgrade,
        10 if is("connection") || is("keep-alive") => Kind::Drop,
        12 if is("x-request-id") => Kind::RequestId,
        15 if is("x-request-start") => Kind::Drop,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("proxy-connection") || is("x-forwarded-port") => Kind::Drop,
        17 if is("transfer-encoding") || is("x-forwarded-proto") => Kind::Drop,
        18 if is("proxy-authenticate") => Kind::Drop,
        19 if is("proxy-authorization") => Kind::Drop,
        _ => Kind::Keep,
    }
}

/// The header names `Connection` headers among `fields` list beyond the standard tokens
/// (`close`, `keep-alive`, `upgrade`): hop-by-hop headers of the sender's own (rarely any).
pub(crate) fn named_by_connection<'b>(fields: &[httparse::Header<'b>]) -> Vec<&'b [u8]> {
    fields
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !(t.is_empty()
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"upgrade"))
        })
        .collect()
}

/// Writes into `out` (cleared first) the head of `head` as the dyno gets it: `host` and `path`
/// as head handling read them, `client` the connection it came on, `start_ms` when it came
/// (epoch milliseconds).
pub(crate) fn request_head(
    out: &mut Vec<u8>,
    head: &RequestHead<'_>,
    fields: &[httparse::Header<'_>],
    host: &str,
    path: &str,
    client: Client,
    start_ms: u128,
) -> Forwarded {
    out.clear();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !host.is_empty() {
        push_header(out, "host", host.as_bytes());
    }
    let named = named_by_connection(fields);
    let mut request_id = None;
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    let mut via: Vec<&[u8]> = Vec::new();
    for field in fields {
        let kind = kind(field.name);
        if !named.is_empty()
            && named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(field.name.as_bytes()))
        {
            continue;
        }
        match kind {
            Kind::Keep => push_header(out, field.name, field.value),
            Kind::Drop => {}
            Kind::Upgrade if head.upgrade => push_header(out, field.name, field.value),
            Kind::Upgrade => {}
            Kind::RequestId => {
                if request_id.is_none() && headers::valid_request_id(field.value) {
                    request_id = std::str::from_utf8(field.value).ok().map(str::to_owned);
                }
            }
            Kind::ForwardedFor => {
                let value = field.value.trim_ascii();
                if !value.is_empty() {
                    forwarded_for.push(value);
                }
            }
            Kind::Via => {
                let value = field.value.trim_ascii();
                if !value.is_empty() {
                    via.push(value);
                }
            }
        }
    }
    let request_id = request_id.unwrap_or_else(headers::new_request_id);
    push_header(out, "x-request-id", request_id.as_bytes());
    let ip = client.ip.to_string();
    let fwd = if forwarded_for.is_empty() {
        ip
    } else {
        let mut chain = String::new();
        for prior in forwarded_for {
            chain.push_str(&String::from_utf8_lossy(prior));
            chain.push_str(", ");
        }
        chain.push_str(&ip);
        chain
    };
    push_header(out, "x-forwarded-for", fwd.as_bytes());
    let proto: &[u8] = if client.tls { b"https" } else { b"http" };
    push_header(out, "x-forwarded-proto", proto);
    let _ = write!(
        out,
        "x-forwarded-port: {}\r\nx-request-start: {start_ms}\r\nvia: ",
        client.port
    );
    for prior in via {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(VIA.as_bytes());
    out.extend_from_slice(b"\r\n");
    if head.body == BodyLength::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if head.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Forwarded { request_id, fwd }
}

/// `name: value\r\n`.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::h1::request;

    fn rewrite(raw: &[u8], tls: bool) -> (String, Forwarded) {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let (head, fields) = request::parse(raw, &mut slots).unwrap().unwrap();
        let client = Client {
            ip: [203, 0, 113, 7].into(),
            tls,
            port: if tls { 443 } else { 80 },
        };
        let mut out = Vec::new();
        let fwd = request_head(&mut out, &head, fields, "a.test", "/p?q", client, 1_700);
        (String::from_utf8(out).unwrap(), fwd)
    }

    #[test]
    fn vegur_s_headers_are_set_and_hop_by_hop_ones_go() {
        let (out, fwd) = rewrite(
            b"GET http://a.test/p?q HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 198.51.100.1\r\n\
              Via: 1.0 corp\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
              Keep-Alive: timeout=5\r\nTE: trailers\r\nExpect: 100-continue\r\nUpgrade: h2c\r\n\
              X-Forwarded-Proto: spoofed\r\nX-Request-Start: 1\r\nAccept: */*\r\n\r\n",
            true,
        );
        assert_eq!(fwd.fwd, "198.51.100.1, 203.0.113.7");
        assert_eq!(fwd.request_id.len(), 36);
        assert_eq!(
            out,
            format!(
                "GET /p?q HTTP/1.1\r\nhost: a.test\r\nAccept: */*\r\nx-request-id: {}\r\n\
                 x-forwarded-for: 198.51.100.1, 203.0.113.7\r\nx-forwarded-proto: https\r\n\
                 x-forwarded-port: 443\r\nx-request-start: 1700\r\nvia: 1.0 corp, 1.1 paas\r\n\r\n",
                fwd.request_id
            )
        );
    }

    #[test]
    fn a_valid_request_id_is_kept_and_a_chunked_body_and_an_upgrade_say_so() {
        let (out, fwd) = rewrite(
            b"POST / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abcdefghij0123456789\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(fwd.request_id, "abcdefghij0123456789");
        assert_eq!(fwd.fwd, "203.0.113.7");
        assert!(
            out.contains("x-request-id: abcdefghij0123456789\r\n"),
            "{out}"
        );
        assert!(out.contains("x-forwarded-proto: http\r\n"), "{out}");
        assert!(out.ends_with("transfer-encoding: chunked\r\n\r\n"), "{out}");
        let (out, _) = rewrite(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            false,
        );
        assert!(out.contains("Upgrade: websocket\r\n"), "{out}");
        assert!(out.ends_with("connection: upgrade\r\n\r\n"), "{out}");
        // A request id Vegur would not keep is replaced.
        let (out, fwd) = rewrite(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: short\r\n\r\n",
            false,
        );
        assert_ne!(fwd.request_id, "short");
        assert!(!out.contains("short"), "{out}");
    }
}
