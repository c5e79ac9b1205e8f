//! `logfmt-peer`: the Rust half of `benches/peers/logfmt.sh`, a side-by-side throughput
//! measurement of our `logfmt` parser against the crates.io `logfmt` crate (0.0.2, renamed
//! `logfmt_crates` here) on the same file; the Go half is `benches/peers/go-logfmt`.
//!
//! ```text
//! logfmt-peer gen N FILE          write N router lines (Corpus::new(Mix::Router, 42)) to FILE
//! logfmt-peer bench IMPL FILE     time IMPL (ours | crates) over FILE, 5 passes, print
//!                                 `impl=IMPL bytes=B pairs=P median_mb_s=M` (MB = 1e6 bytes)
//! ```
//!
//! Each pass splits the in-memory file into lines with memchr and counts every pair of every
//! line, touching the key and value lengths so that nothing is optimised away. The crates.io
//! parser takes `&str`: the file is checked as UTF-8 once, before the timed passes, so neither
//! implementation pays for validation inside them.

use std::hint::black_box;
use std::process::exit;
use std::time::Instant;

use logfmt::corpus::{Corpus, Mix};

/// Timed passes per run; the median is reported.
const PASSES: usize = 5;

const USAGE: &str = "usage: logfmt-peer gen N FILE | logfmt-peer bench (ours|crates) FILE";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen", n, file] => {
            let n = n
                .parse::<usize>()
                .unwrap_or_else(|_| fail(&format!("gen: not a line count: {n}")));
            let text = Corpus::new(Mix::Router, 42).lines(n);
            if let Err(e) = std::fs::write(file, text) {
                fail(&format!("gen: {file}: {e}"));
            }
        }
        ["bench", imp, file] => {
            let data = std::fs::read(file).unwrap_or_else(|e| fail(&format!("bench: {file}: {e}")));
            let passes = match *imp {
                "ours" => time_passes(|| count_ours(&data)),
                "ours-iter" => time_passes(|| count_ours_iter(&data)),
                "crates" => {
                    let text = std::str::from_utf8(&data).unwrap_or_else(|e| {
                        fail(&format!(
                            "bench: {file}: not UTF-8 ({e}), the logfmt crate needs &str"
                        ))
                    });
                    time_passes(|| count_crates(text))
                }
                other => fail(&format!(
                    "bench: unknown implementation {other:?} (ours, ours-iter or crates)"
                )),
            };
            let mut mb_s: Vec<f64> = passes
                .secs
                .iter()
                .map(|secs| data.len() as f64 / secs / 1e6)
                .collect();
            mb_s.sort_by(f64::total_cmp);
            println!(
                "impl={imp} bytes={} pairs={} median_mb_s={:.1}",
                data.len(),
                passes.pairs,
                mb_s[PASSES / 2]
            );
        }
        _ => fail(USAGE),
    }
}

/// Prints `msg` and exits with status 1.
fn fail(msg: &str) -> ! {
    eprintln!("logfmt-peer: {msg}");
    exit(1)
}

/// What a run of [`PASSES`] timed passes found.
#[derive(Debug)]
struct Passes {
    /// Pairs counted in one pass (the same in every pass).
    pairs: usize,
    /// Wall time of each pass, in seconds.
    secs: Vec<f64>,
}

/// Runs `pass` [`PASSES`] times, timing each; `pass` returns (pairs, bytes touched).
fn time_passes(mut pass: impl FnMut() -> (usize, usize)) -> Passes {
    let mut pairs = 0;
    let mut secs = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let started = Instant::now();
        let (n, touched) = black_box(pass());
        secs.push(started.elapsed().as_secs_f64());
        black_box(touched);
        pairs = n;
    }
    Passes { pairs, secs }
}

/// Calls `f(start, end)` for the byte range of each non-empty line of `data`, without its '\n'.
fn each_line(data: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        if end > start {
            f(start, end);
        }
        start = end + 1;
    }
    if start < data.len() {
        f(start, data.len());
    }
}

/// One pass of our parser's pair iterator: (pairs, key and value bytes seen).
fn count_ours_iter(data: &[u8]) -> (usize, usize) {
    let (mut pairs, mut touched) = (0, 0);
    each_line(data, |start, end| {
        for pair in logfmt::pairs(&data[start..end]) {
            pairs += 1;
            touched += pair.key.len() + pair.value.map_or(0, |v| v.raw().len());
        }
    });
    (pairs, touched)
}

/// One pass of our parser's fastest way to visit every pair, `logfmt::for_each_pair`:
/// (pairs, key and value bytes seen).
fn count_ours(data: &[u8]) -> (usize, usize) {
    let (mut pairs, mut touched) = (0, 0);
    each_line(data, |start, end| {
        logfmt::for_each_pair(&data[start..end], |pair| {
            pairs += 1;
            touched += pair.key.len() + pair.value.map_or(0, |v| v.raw().len());
        });
    });
    (pairs, touched)
}

/// One pass of the crates.io `logfmt` crate: (pairs, key and value bytes seen).
fn count_crates(text: &str) -> (usize, usize) {
    let (mut pairs, mut touched) = (0, 0);
    each_line(text.as_bytes(), |start, end| {
        // A '\n' is never inside a UTF-8 sequence, so the range is on char boundaries.
        for pair in logfmt_crates::parse(&text[start..end]) {
            pairs += 1;
            touched += pair.key.len() + pair.val.as_ref().map_or(0, String::len);
        }
    });
    (pairs, touched)
}
