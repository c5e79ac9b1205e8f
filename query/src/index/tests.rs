//! The index answers as a scan of every kept line does: the same queries, over the same
//! lines, through the index (blocks, token filters, the spool's tail) and through the
//! executor alone, give the same output.

use std::time::Duration;

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};

use super::indexer::catch_up;
use super::{Index, IndexConfig, answer};
use crate::exec::{Cell, Output};
use crate::spool::{Spool, SpoolConfig};
use crate::window::Window;
use crate::{Query, run};

const APP: &str = "0b7e6f1c-2b4a-4c1e-9d3f-5a6b7c8d9e0f";
const T0: i64 = 1_764_000_000_000_000;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "checkout",
    "Timeout",
    "retry",
    "cache",
    "miss",
    "connection",
    "reset",
];

/// Lines like the benchmark's, with what makes a column unable to answer: repeated keys,
/// quoted and escaped values, bare keys, keys no column has.
fn lines(n: usize, seed: u64) -> Vec<LogLine> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let micros = T0 + i as i64 * 250_000;
            let (source, process, message) = match rng.below(10) {
                0..=6 => {
                    let status = [200, 200, 200, 404, 500, 503][rng.below(6) as usize];
                    let code = if status == 503 { [" code=H12 desc=\"Request timeout\"", " code=H13"][rng.below(2) as usize] } else { "" };
                    let path = match rng.below(10) {
                        0 => "/healthz".to_owned(),
                        1 => "\"/a b\\\"c\"".to_owned(),
                        _ => format!("/api/items/{}", rng.below(40)),
                    };
                    let repeat = if rng.below(50) == 0 { " status=201" } else { "" };
                    (
                        "heroku",
                        "router".to_owned(),
                        format!(
                            "at={}{code} method={} path={path} host=shop.example.com request_id=r{i:06} dyno=web.{} connect={}ms service={}ms status={status}{repeat} bytes={} protocol=https",
                            if code.is_empty() { "info" } else { "error" },
                            ["GET", "POST"][rng.below(2) as usize],
                            1 + rng.below(3),
                            rng.below(5),
                            rng.below(3000),
                            100 + rng.below(5000),
                        ),
                    )
                }
                _ => (
                    "app",
                    format!("{}.{}", ["web", "worker"][rng.below(2) as usize], 1 + rng.below(2)),
                    format!(
                        "at=info msg=\"{}{} {}\" user={} duration={}ms{}",
                        ["", "", "", "x\\nretry ", "\\\"cache\\\" "][rng.below(5) as usize],
                        WORDS[rng.below(WORDS.len() as u64) as usize],
                        WORDS[rng.below(WORDS.len() as u64) as usize],
                        rng.below(100),
                        rng.below(2000),
                        [" flag", " tag=\"x\\\"y\"", " tag=xy", " tag=\"q\\nz\"", "", "", "", "", "", ""][rng.below(10) as usize],
                    ),
                ),
            };
            LogLine {
                received: Timestamp::from_micros(micros + 5),
                time: Timestamp::from_micros(micros),
                app: AppName::from("shop"),
                source: Bytes::from(source),
                process: Bytes::from(process),
                facility: 1,
                severity: 6,
                message: Bytes::from(message),
                seq: i as u64 + 1,
            }
        })
        .collect()
}

fn config() -> IndexConfig {
    IndexConfig {
        block_rows: 700,
        chunk_rows: 64,
        flush_after: Duration::ZERO,
        max_age: Duration::from_secs(100 * 365 * 86_400),
        ..IndexConfig::default()
    }
}

/// `text` over every line `index` and `spool` keep for the app.
fn ask(index: &Index, spool: &Spool, text: &str) -> Result<Output, super::SearchError> {
    let q = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let all = Window {
        since: None,
        until: None,
    };
    answer(index, spool, APP, &AppName::from("shop"), &q, all, 10)
}

struct Fixture {
    _dir: tempfile::TempDir,
    spool: Spool,
    index: Index,
    lines: Vec<LogLine>,
}

/// `n` lines: most in blocks, the last `tail` only in the spool.
fn fixture(n: usize, tail: usize) -> Fixture {
    fixture_with(n, tail, config())
}

fn fixture_with(n: usize, tail: usize, config: IndexConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        dir.path().join("spool"),
        SpoolConfig {
            segment_bytes: 64 << 10,
            max_age: Duration::from_secs(100 * 365 * 86_400),
            ..SpoolConfig::default()
        },
    )
    .unwrap();
    let index = Index::open(dir.path().join("index"), config).unwrap();
    let lines = lines(n, 7);
    let (indexed, rest) = lines.split_at(n - tail);
    for batch in indexed.chunks(300) {
        spool.append(APP, batch).unwrap();
        catch_up(&index, &spool, true).unwrap();
    }
    spool.append(APP, rest).unwrap();
    Fixture {
        _dir: dir,
        spool,
        index,
        lines,
    }
}

impl Fixture {
    fn both(&self, text: &str, window: Window, limit: usize) -> (Output, Output) {
        let q = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = answer(
            &self.index,
            &self.spool,
            APP,
            &AppName::from("shop"),
            &q,
            window,
            limit,
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let want = run(
            &q,
            self.lines
                .iter()
                .filter(|l| window.contains(l.time))
                .cloned(),
            limit,
        )
        .unwrap();
        (got, want)
    }
}

const QUERIES: &[&str] = &[
    "status=503 path=/healthz | count",
    "status=503 path=/healthz",
    "service>1000ms | count",
    "* | count by path | head 10",
    "request_id=r000777",
    "request_id=r000777 or request_id=r001234 | count",
    "\"timeout\" | count",
    "\"connection reset\" | count by process",
    "* | timechart 1m count by status",
    "status>=500",
    "status>=500 | head 5",
    "dyno=web | count by dyno",
    "source=app | count by process",
    "not status=200 | count by status,method",
    "path=/api/* | top 5 path",
    "status!=200 | count, avg(service), sum(bytes), min(connect), max(service) by code",
    "user>50 | count by user",
    "msg~pay | count",
    "at=error or code=H12 | count by code",
    "!code | count",
    "code | count",
    "status=201 | count",
    "flag | count by source",
    "path=\"/a b\\\"c\" | count",
    "duration>1s | count, max(duration) by process",
    "method=POST (status=404 or status=500) | fields path,status",
    "* | count",
    "nosuchkey=1 | count",
    "service>=2s dyno=web.2 | count by host | sort -count",
    "* | max(service), count by path | head 3",
    "* | max(service), min(bytes) by path | head 4",
    "status>=500 | count by path,status | head 5",
    "* | count by method | head 1",
    "\"request timeout\" | count",
    "\"items\" | count",
    "\"web\" | count by source",
    "\"h12\" or \"nretry\" | count",
    "\"retry\" | count by msg | head 50",
    "\"shop.example.com\" | count",
    "\"info msg\" | count",
    "\"cache\" and not \"miss\" | count",
    "msg=\"timeout retry\" | count",
    "\"b\\\"c\" | count",
    "tag=\"x\\\"y\" | count",
    "tag=xy | count",
    "tag=\"q\\nz\" | count",
    "tag | count by process",
];

#[test]
fn the_index_answers_as_a_scan_does() {
    every_query_agrees(&fixture(5_000, 450));
}

#[test]
fn the_index_answers_as_a_scan_does_with_every_line_in_blocks() {
    every_query_agrees(&fixture(5_000, 0));
}

#[test]
fn past_its_planning_budget_a_query_is_answered_by_the_lines() {
    let f = fixture_with(
        2_000,
        100,
        IndexConfig {
            max_value_tests: 0,
            ..config()
        },
    );
    every_query_agrees(&f);
    assert!(f.index.plans_over_budget() > 0, "counted");
}

#[test]
fn past_their_memory_budget_dictionaries_leave_values_to_the_lines() {
    let f = fixture_with(
        2_000,
        100,
        IndexConfig {
            max_dict_bytes: 4096,
            ..config()
        },
    );
    every_query_agrees(&f);
    assert!(f.index.dict_refusals() > 0, "counted");
}

fn every_query_agrees(f: &Fixture) {
    assert!(
        f.index.app_stats(APP).unwrap().blocks >= 6,
        "several blocks"
    );
    let mid = Timestamp::from_micros(T0 + 2_000 * 250_000 + 17);
    let windows = [
        Window {
            since: None,
            until: None,
        },
        Window {
            since: Some(mid),
            until: None,
        },
        Window {
            since: None,
            until: Some(mid),
        },
    ];
    for window in windows {
        for q in QUERIES {
            for limit in [10_000, 7] {
                let (got, want) = f.both(q, window, limit);
                assert_eq!(got, want, "{q} over {window:?}, limit {limit}");
            }
        }
    }
}

#[test]
fn percentiles_from_columns_are_exact_or_within_a_percent() {
    let f = fixture(3_000, 200);
    let (got, want) = f.both(
        "* | p50(service), p95(service), p99(service), count by dyno",
        Window {
            since: None,
            until: None,
        },
        100,
    );
    let (Output::Table(got), Output::Table(want)) = (got, want) else {
        panic!("tables");
    };
    assert_eq!(got.rows.len(), want.rows.len());
    for (g, w) in got.rows.iter().zip(&want.rows) {
        for (a, b) in g.iter().zip(w) {
            match (a, b) {
                (Cell::Number(x), Cell::Number(y)) => {
                    assert!((x - y).abs() <= y.abs() * 0.01, "{x} vs {y}")
                }
                _ => assert_eq!(a, b),
            }
        }
    }
    // And exact against the values themselves.
    let mut services: Vec<f64> = f
        .lines
        .iter()
        .filter(|l| l.process.as_ref() == b"router")
        .filter(|l| logfmt::get(&l.message, b"dyno").is_some_and(|d| d.raw() == b"web.1"))
        .filter_map(|l| crate::exec::extract::number(l, "service"))
        .collect();
    services.sort_by(f64::total_cmp);
    let rank = ((0.95 * services.len() as f64).ceil() as usize).clamp(1, services.len());
    let row = got
        .rows
        .iter()
        .find(|r| r[0] == Cell::Text("web.1".into()))
        .unwrap();
    let p95 = match row[2] {
        Cell::Number(x) => x,
        ref c => panic!("{c:?}"),
    };
    assert!((p95 - services[rank - 1]).abs() <= services[rank - 1] * 0.01);
}

#[test]
fn blocks_let_the_spool_go_and_survive_a_reopen() {
    let f = fixture(3_000, 0);
    let stats = f.spool.app_stats(APP).unwrap();
    assert!(
        stats.lines < 3_000,
        "the spool keeps only what no block has: {stats:?}"
    );
    let count = |index: &Index| ask(index, &f.spool, "* | count").unwrap();
    let before = count(&f.index);
    let reopened = Index::open(f._dir.path().join("index"), config()).unwrap();
    assert_eq!(count(&reopened), before);
    let Output::Table(t) = before else { panic!() };
    assert_eq!(t.rows[0][0], Cell::Number(3_000.0));
}

#[test]
fn a_damaged_block_is_an_error_naming_it() {
    let f = fixture(1_000, 0);
    let blocks = f._dir.path().join("index").join(APP).join("blocks");
    let first = std::fs::read_dir(&blocks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let index = Index::open(f._dir.path().join("index"), config()).unwrap();
    let e = ask(&index, &f.spool, "\"timeout\" | count")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&first.display().to_string()) && e.contains("checksum"),
        "{e}"
    );
    // A deleted block is missing, not silently a gap.
    std::fs::remove_file(&first).unwrap();
    let last = std::fs::read_dir(&blocks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    std::fs::remove_file(&last).unwrap();
    let e = Index::open(f._dir.path().join("index"), config())
        .and_then(|i| i.app_stats(APP))
        .unwrap_err()
        .to_string();
    assert!(e.contains("blocks are missing"), "{e}");
}

#[test]
fn a_million_lines_answer_as_computed_here() {
    let n = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        dir.path().join("spool"),
        SpoolConfig {
            max_age: Duration::from_secs(100 * 365 * 86_400),
            ..SpoolConfig::default()
        },
    )
    .unwrap();
    let index = Index::open(
        dir.path().join("index"),
        IndexConfig {
            flush_after: Duration::ZERO,
            max_age: Duration::from_secs(100 * 365 * 86_400),
            ..IndexConfig::default()
        },
    )
    .unwrap();
    // Short router lines: path, status and service vary with i.
    let line = |i: usize| LogLine {
        received: Timestamp::from_micros(T0 + i as i64),
        time: Timestamp::from_micros(T0 + i as i64 * 1000),
        app: AppName::from("shop"),
        source: Bytes::from_static(b"heroku"),
        process: Bytes::from_static(b"router"),
        facility: 1,
        severity: 6,
        message: Bytes::from(format!(
            "path=/p{} status={} service={}ms",
            i % 1000,
            if i.is_multiple_of(7) { 503 } else { 200 },
            i % 997
        )),
        seq: i as u64 + 1,
    };
    let batch: Vec<LogLine> = (0..n).map(line).collect();
    for part in batch.chunks(100_000) {
        spool.append(APP, part).unwrap();
    }
    catch_up(&index, &spool, true).unwrap();
    assert_eq!(index.app_stats(APP).unwrap().lines, n as u64);
    let table = |text: &str| {
        let Output::Table(t) = ask(&index, &spool, text).unwrap() else {
            panic!("a table")
        };
        t
    };
    let t = table("status=503 | count");
    assert_eq!(
        t.rows[0][0],
        Cell::Number((0..n).filter(|i| i.is_multiple_of(7)).count() as f64)
    );
    let t = table("* | count, max(service), p50(service) by path | head 3");
    // Every path has 1,000 lines: ties by count, so the first paths by name.
    let mut paths: Vec<String> = (0..1000).map(|p| format!("/p{p}")).collect();
    paths.sort();
    for (row, path) in t.rows.iter().zip(&paths) {
        let p: usize = path[2..].parse().unwrap();
        let mut services: Vec<usize> = (0..n).filter(|i| i % 1000 == p).map(|i| i % 997).collect();
        services.sort_unstable();
        assert_eq!(row[0], Cell::Text(path.clone()));
        assert_eq!(row[1], Cell::Number(1000.0));
        assert_eq!(row[2], Cell::Number(*services.last().unwrap() as f64));
        assert_eq!(row[3], Cell::Number(services[499] as f64));
    }
}
