//! Fuzzes the query language: the input is split at its first 0 byte into query text (read
//! as lossy UTF-8) and lines (the rest, split at newlines, each a router line's message).
//! Asserts that parsing never panics, that an error's column lies within the text (or just
//! past it) and displays, and that a parsed query runs over the lines and renders both ways
//! without panicking.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use logplex::{AppName, LogLine, Timestamp};

fn lines(data: &[u8]) -> Vec<LogLine> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, message)| LogLine {
            received: Timestamp::from_micros(i as i64 * 7_000_000),
            time: Timestamp::from_micros(i as i64 * 7_000_000),
            app: AppName::from("fuzz"),
            source: Bytes::from_static(if i % 2 == 0 { b"paas" } else { b"app" }),
            process: Bytes::from_static(if i % 3 == 0 { b"router" } else { b"web.1" }),
            facility: 1,
            severity: 6,
            message: Bytes::copy_from_slice(message),
            seq: i as u64,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    match query::Query::parse(&text) {
        Ok(q) => {
            let Ok(output) = query::run(&q, lines(rest), 100) else {
                return;
            };
            let mut out = Vec::new();
            query::write_ndjson(&output, &mut out);
            query::write_human(&output, query::DEFAULT_CHART_WIDTH, &mut out);
        }
        Err(e) => {
            assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e:?}");
            let _ = e.to_string();
        }
    }
});
