//! Parser and encoder throughput on generated real-shaped corpora (see `logfmt::corpus`):
//! iterate every pair, look up one key, evaluate a filter, encode. Reports MB/s (criterion's
//! bytes throughput) and, in the `pairs` groups, pairs/s (elements throughput).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logfmt::corpus::{Corpus, Mix};
use std::hint::black_box;

const LINES: usize = 10_000;

/// A key and its unescaped value, borrowing the corpus where nothing was escaped.
type BorrowedPair<'a> = (&'a [u8], Option<std::borrow::Cow<'a, [u8]>>);

fn corpora() -> Vec<(&'static str, String)> {
    vec![
        ("router", Corpus::new(Mix::Router, 42).lines(LINES)),
        ("platform", Corpus::new(Mix::Platform, 42).lines(LINES)),
    ]
}

/// The lines of a corpus, found with memchr as a real reader would.
fn lines(text: &str) -> impl Iterator<Item = &[u8]> {
    let bytes = text.as_bytes();
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes).map(move |end| {
        let line = &bytes[start..end];
        start = end + 1;
        line
    })
}

fn count_pairs(text: &str) -> u64 {
    text.lines()
        .map(|l| logfmt::pairs(l.as_bytes()).count() as u64)
        .sum()
}

fn iterate_pairs(c: &mut Criterion) {
    for (name, text) in corpora() {
        let n_pairs = count_pairs(&text);
        for (unit, throughput) in [
            ("bytes", Throughput::Bytes(text.len() as u64)),
            ("pairs", Throughput::Elements(n_pairs)),
        ] {
            let mut g = c.benchmark_group(format!("iterate_pairs/{unit}"));
            g.throughput(throughput);
            g.bench_with_input(BenchmarkId::new("fast", name), &text, |b, text| {
                b.iter(|| {
                    let mut n = 0usize;
                    for line in lines(text) {
                        for p in logfmt::pairs(line) {
                            n += p.key.len() + p.value.map_or(0, |v| v.raw().len());
                        }
                    }
                    black_box(n)
                })
            });
            g.bench_with_input(BenchmarkId::new("for_each_pair", name), &text, |b, text| {
                b.iter(|| {
                    let mut n = 0usize;
                    for line in lines(text) {
                        logfmt::for_each_pair(line, |p| {
                            n += p.key.len() + p.value.map_or(0, |v| v.raw().len());
                        });
                    }
                    black_box(n)
                })
            });
            if unit == "bytes" {
                g.bench_with_input(BenchmarkId::new("reference", name), &text, |b, text| {
                    b.iter(|| {
                        let mut n = 0usize;
                        for line in lines(text) {
                            n += logfmt::reference::pairs(line).len();
                        }
                        black_box(n)
                    })
                });
            }
            g.finish();
        }
    }
}

fn get_one_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("get_one_key");
    for (name, text) in corpora() {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("status", name), &text, |b, text| {
            b.iter(|| {
                let mut sum = 0i64;
                for line in lines(text) {
                    sum += logfmt::get(line, b"status")
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0);
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn filter(c: &mut Criterion) {
    let p: logfmt::Predicate = "status>=500 service>1s".parse().expect("valid filter");
    let mut g = c.benchmark_group("filter");
    for (name, text) in corpora() {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("status>=500 service>1s", name),
            &text,
            |b, text| b.iter(|| lines(text).filter(|l| p.matches(l)).count()),
        );
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (name, text) in corpora() {
        // Every line's pairs, flattened, borrowing the corpus: what a re-encoder holds.
        let mut pairs: Vec<BorrowedPair<'_>> = Vec::new();
        let mut line_ends = Vec::new();
        for line in lines(&text) {
            pairs.extend(logfmt::pairs(line).map(|p| (p.key, p.value.map(|v| v.unescaped()))));
            line_ends.push(pairs.len());
        }
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("pairs", name),
            &(pairs, line_ends),
            |b, (pairs, line_ends)| {
                let mut out = Vec::with_capacity(text.len() * 2);
                b.iter(|| {
                    out.clear();
                    let mut from = 0;
                    for &end in line_ends {
                        let mut enc = logfmt::Encoder::new(&mut out);
                        for (k, v) in &pairs[from..end] {
                            let _ = enc.pair(k, v.as_deref());
                        }
                        out.push(b'\n');
                        from = end;
                    }
                    black_box(out.len())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, iterate_pairs, get_one_key, filter, encode);
criterion_main!(benches);
