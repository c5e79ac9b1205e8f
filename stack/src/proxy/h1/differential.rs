//! The request head parser against hyper's, on generated heads (tricky ones most of all): a
//! head ours takes, hyper takes too, with the same method, target and body length; a head
//! hyper refuses, ours refuses. Ours is the stricter (it refuses a head with both
//! `Content-Length` and `Transfer-Encoding`, which hyper reads as chunked).
//!
//! A test module throughout: `h1/mod.rs` declares it `#[cfg(test)]`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

use super::request::{BodyLength, parse};

/// What hyper's server read of a head: method, target, exact body length (`None`: chunked),
/// and whether the body is empty.
type Read = (String, String, Option<u64>, bool);

/// Serves `raw` to hyper's HTTP/1 server; what its service was handed, if it was called.
fn hyper_reads(raw: &[u8]) -> Option<Read> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let seen: Arc<Mutex<Option<Read>>> = Arc::default();
    let record = seen.clone();
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let read = (
                req.method().to_string(),
                req.uri().to_string(),
                req.body().size_hint().exact(),
                req.body().is_end_stream(),
            );
            *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(read);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let _ = client.write_all(raw).await;
        let _ = client.shutdown().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
    });
    seen.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Header lines, plain and tricky.
const FIELDS: &[&str] = &[
    "Host: a.test\r\n",
    "Content-Length: 5\r\n",
    "Content-Length: 6\r\n",
    "Content-Length: 0\r\n",
    "Content-Length: +5\r\n",
    "Content-Length: 5, 5\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "Transfer-Encoding: chunked, gzip\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive, Upgrade\r\n",
    "Upgrade: websocket\r\n",
    "X-Folded: a\r\n b\r\n",
    "X-Bare-Cr: a\rb\r\n",
    "X-Empty:\r\n",
    "Bad Name: v\r\n",
    "X-Request-Id: 0123456789abcdef0123\r\n",
];

fn head() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "GET", "POST", "PUT", "HEAD", "OPTIONS", "GET", "POST", "G@T",
            ][..],
        ),
        prop::sample::select(&["/", "/a?b=c", "*", "http://a.test/x", "/%zz"][..]),
        prop::sample::select(
            &[
                "HTTP/1.1",
                "HTTP/1.1",
                "HTTP/1.1",
                "HTTP/1.0",
                "HTTP/2.0",
                "HTTP/1.1 ",
            ][..],
        ),
        prop::collection::vec(prop::sample::select(FIELDS), 0..5),
        prop::sample::select(&["", "0\r\n\r\n", "hello"][..]),
    )
        .prop_map(|(method, target, version, fields, body)| {
            format!(
                "{method} {target} {version}\r\n{}\r\n{body}",
                fields.concat()
            )
            .into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn ours_is_hyper_s_reading_or_stricter(raw in head()) {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let ours = parse(&raw, &mut fields);
        let theirs = hyper_reads(&raw);
        match (ours, theirs) {
            (Ok(Some((head, _))), Some((method, target, exact, empty))) => {
                prop_assert_eq!(head.method, method.as_str());
                prop_assert_eq!(head.target, target.as_str());
                match head.body {
                    BodyLength::Empty => prop_assert!(empty),
                    BodyLength::Length(n) => prop_assert_eq!(exact, Some(n)),
                    BodyLength::Chunked => prop_assert_eq!(exact, None),
                }
            }
            (Ok(Some(_)), None) => {
                prop_assert!(false, "hyper refused a head ours took: {}", raw.escape_ascii());
            }
            (Ok(None), _) => prop_assert!(false, "incomplete: {}", raw.escape_ascii()),
            (Err(_), _) => {}
        }
    }
}
