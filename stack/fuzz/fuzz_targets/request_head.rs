//! Fuzzes the proxy's request head parser (`stack::h1::parse`) on arbitrary bytes and asserts,
//! for every input:
//!
//! - it never panics, and a head it takes ends within the input, after its request line;
//! - it agrees with `httparse` (which it runs on): a head it takes is complete for `httparse`
//!   too, and it calls no head incomplete that `httparse` has complete;
//! - the answer does not depend on what follows the head: the head alone parses the same, and
//!   every shorter prefix is incomplete or refused the same way;
//! - a head it takes frames its body one way only: no `Content-Length` with a
//!   `Transfer-Encoding`, no two `Content-Length`s of different numbers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::h1::{BodyLength, parse};

fuzz_target!(|input: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let ours = parse(input, &mut headers);
    let mut theirs_headers = [httparse::EMPTY_HEADER; 64];
    let theirs = httparse::Request::new(&mut theirs_headers).parse(input);
    let Ok(Some((head, fields))) = ours else {
        if let Ok(None) = ours {
            assert!(
                !matches!(theirs, Ok(httparse::Status::Complete(_))),
                "incomplete for us, complete for httparse: {}",
                input.escape_ascii()
            );
        }
        return;
    };
    assert_eq!(theirs, Ok(httparse::Status::Complete(head.len)));
    assert!(head.len <= input.len());
    assert!(head.len > head.method.len() + head.target.len());
    // Each `Content-Length` as a number (`03` and `3` are the same length).
    let lengths: Vec<Option<u64>> = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
        .map(|f| std::str::from_utf8(f.value.trim_ascii()).ok()?.parse().ok())
        .collect();
    let chunked = fields
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("transfer-encoding"));
    assert!(
        !chunked || lengths.is_empty(),
        "both lengths: {}",
        input.escape_ascii()
    );
    assert!(lengths.iter().all(|n| n.is_some() && *n == lengths[0]));
    match head.body {
        BodyLength::Chunked => assert!(chunked),
        BodyLength::Length(n) => assert!(n > 0 && !lengths.is_empty()),
        BodyLength::Empty => assert!(!chunked),
    }
    let (len, body, keep_alive) = (head.len, head.body, head.keep_alive);
    let mut again = [httparse::EMPTY_HEADER; 64];
    let alone =
        parse(&input[..len], &mut again).map(|r| r.map(|(h, _)| (h.len, h.body, h.keep_alive)));
    assert_eq!(alone, Ok(Some((len, body, keep_alive))));
    for split in 0..len {
        let mut prefix = [httparse::EMPTY_HEADER; 64];
        if let Ok(Some((h, _))) = parse(&input[..split], &mut prefix) {
            panic!(
                "a prefix of {split} bytes is a head of {}: {}",
                h.len,
                input.escape_ascii()
            );
        }
    }
});
