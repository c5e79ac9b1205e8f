//! Fuzzes the proxy's reading of a dyno's response head (`stack::h1::parse_response`) and the
//! head it writes for the client (`stack::h1::client_head`) on arbitrary bytes, for each kind of
//! client, and asserts for every input:
//!
//! - neither panics, and a head it takes ends within the input;
//! - the client's head is a complete HTTP/1.1 response head by `httparse`, of the same status,
//!   ending where it was written;
//! - it frames the body one way only: never both `Content-Length` and `Transfer-Encoding`,
//!   chunked only for an HTTP/1.1 client, and no hop-by-hop header of the dyno's gets through.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::h1::{ClientHead, client_head, parse_response};

fuzz_target!(|input: &[u8]| {
    for head_request in [false, true] {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let Ok(Some((head, fields))) = parse_response(input, &mut slots, head_request) else {
            continue;
        };
        assert!(head.len <= input.len());
        for (http11, keep_alive) in [(true, true), (true, false), (false, true)] {
            let client = ClientHead {
                http11,
                keep_alive,
                upgrade: false,
                cookie: Some("paas-session-affinity=web.2; Path=/"),
            };
            let mut out = Vec::new();
            client_head(&mut out, &head, fields, &client);
            let mut back = [httparse::EMPTY_HEADER; 128];
            let mut res = httparse::Response::new(&mut back);
            assert_eq!(
                res.parse(&out),
                Ok(httparse::Status::Complete(out.len())),
                "{}",
                out.escape_ascii()
            );
            assert_eq!(res.code, Some(head.status));
            let count = |name: &str| {
                res.headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(name))
                    .count()
            };
            let chunked = count("transfer-encoding");
            assert!(chunked <= 1);
            assert!(chunked == 0 || count("content-length") == 0, "{}", out.escape_ascii());
            assert!(chunked == 0 || http11);
            assert!(count("connection") <= 1);
            for hop in ["keep-alive", "te", "trailer", "proxy-connection", "upgrade"] {
                assert_eq!(count(hop), 0, "{hop}: {}", out.escape_ascii());
            }
        }
    }
});
