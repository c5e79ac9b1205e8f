//! The executor over generated router lines, every answer checked against a computation
//! written here, apart from the engine.

use std::collections::BTreeMap;

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};

use crate::{Cell, ExecError, Executor, Output, Query, Table, run, write_human, write_ndjson};

/// 2026-11-21T12:00:00Z.
const T0: i64 = 1_795_262_400_000_000;

pub(crate) fn line(micros: i64, source: &str, process: &str, message: &str) -> LogLine {
    LogLine {
        received: Timestamp::from_micros(micros),
        time: Timestamp::from_micros(micros),
        app: AppName::from("shop"),
        source: Bytes::copy_from_slice(source.as_bytes()),
        process: Bytes::copy_from_slice(process.as_bytes()),
        facility: 1,
        severity: 6,
        message: Bytes::copy_from_slice(message.as_bytes()),
        seq: 0,
    }
}

/// One generated request: what the router line says, kept apart for the checks.
#[derive(Clone, Debug)]
struct Request {
    micros: i64,
    path: String,
    status: u16,
    dyno: String,
    service_ms: f64,
    bytes: f64,
}

/// A deterministic set of router lines (a few app lines between), spread over 10 minutes.
fn requests(n: usize) -> (Vec<Request>, Vec<LogLine>) {
    let mut x: u64 = 42;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    let (mut reqs, mut lines) = (Vec::new(), Vec::new());
    for i in 0..n {
        let micros = T0 + (i as i64) * 600_000_000 / n as i64;
        let status = [200, 200, 200, 304, 404, 500, 503][(next() % 7) as usize];
        let path = format!("/p{}", next() % 9);
        let dyno = format!("web.{}", 1 + next() % 3);
        let (service_ms, service) = match next() % 3 {
            0 => {
                let ms = (next() % 5000) as f64;
                (ms, format!("{ms}ms"))
            }
            1 => {
                let s = (next() % 40) as f64 / 4.0;
                (s * 1000.0, format!("{s}s"))
            }
            _ => {
                let us = (next() % 900) as f64;
                (us / 1000.0, format!("{us}us"))
            }
        };
        let (bytes, size) = if next() % 2 == 0 {
            let b = (next() % 100_000) as f64;
            (b, format!("{b}"))
        } else {
            let kb = (next() % 50) as f64 / 10.0;
            (kb * 1000.0, format!("{kb}kB"))
        };
        let code = if status >= 500 {
            " code=H12 desc=\"Request timeout\""
        } else {
            ""
        };
        let msg = format!(
            "at=info method=GET path={path} host=shop.example.com dyno={dyno} connect=1ms service={service} status={status} bytes={size}{code} protocol=http"
        );
        lines.push(line(micros, "paas", "router", &msg));
        reqs.push(Request {
            micros,
            path,
            status,
            dyno: dyno.clone(),
            service_ms,
            bytes,
        });
        if i % 10 == 0 {
            lines.push(line(
                micros,
                "app",
                &dyno,
                "Connection reset by peer while reading",
            ));
        }
    }
    (reqs, lines)
}

fn table(query: &str, lines: &[LogLine]) -> Table {
    let q = Query::parse(query).unwrap_or_else(|e| panic!("{e}"));
    match run(&q, lines.iter().cloned(), 1000).unwrap() {
        Output::Table(t) => t,
        Output::Lines(l) => panic!("lines: {l:?}"),
    }
}

fn out_lines(query: &str, lines: &[LogLine], limit: usize) -> crate::Lines {
    let q = Query::parse(query).unwrap_or_else(|e| panic!("{e}"));
    match run(&q, lines.iter().cloned(), limit).unwrap() {
        Output::Lines(l) => l,
        Output::Table(t) => panic!("table: {t:?}"),
    }
}

fn text(c: &Cell) -> &str {
    match c {
        Cell::Text(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

fn num(c: &Cell) -> f64 {
    match c {
        Cell::Number(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

/// The exact nearest-rank percentile.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= want.abs() * rel + 1e-9
}

#[test]
fn count_by_path_sorted_by_count_then_key() {
    let (reqs, lines) = requests(3000);
    let t = table("status>=500 | count by path", &lines);
    let mut want: BTreeMap<&str, f64> = BTreeMap::new();
    for r in reqs.iter().filter(|r| r.status >= 500) {
        *want.entry(&r.path).or_default() += 1.0;
    }
    let mut want: Vec<(&str, f64)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let got: Vec<(&str, f64)> = t.rows.iter().map(|r| (text(&r[0]), num(&r[1]))).collect();
    assert_eq!(got, want);
    let all = table("| count", &lines);
    assert_eq!(num(&all.rows[0][0]), lines.len() as f64);
    let none = table("status=999 | count", &lines);
    assert_eq!(
        none.rows,
        [[Cell::Number(0.0)]],
        "a count of nothing is one row of 0"
    );
}

#[test]
fn every_aggregate_by_dyno_with_units() {
    let (reqs, lines) = requests(4000);
    let q = "source=paas | count, sum(bytes), avg(service), min(service), max(bytes), p50(service), p90(service), p95(service), p99(service), p99.9(bytes) by dyno";
    let t = table(q, &lines);
    assert_eq!(t.rows.len(), 3);
    for row in &t.rows {
        let dyno = text(&row[0]);
        let mine: Vec<&Request> = reqs.iter().filter(|r| r.dyno == dyno).collect();
        let mut service: Vec<f64> = mine.iter().map(|r| r.service_ms).collect();
        let mut bytes: Vec<f64> = mine.iter().map(|r| r.bytes).collect();
        assert_eq!(num(&row[1]), mine.len() as f64);
        assert!(close(num(&row[2]), bytes.iter().sum(), 1e-9), "sum");
        assert!(close(
            num(&row[3]),
            service.iter().sum::<f64>() / service.len() as f64,
            1e-9
        ));
        assert_eq!(
            num(&row[4]),
            service.iter().copied().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(num(&row[5]), bytes.iter().copied().fold(0.0, f64::max));
        for (i, q) in [(6, 0.5), (7, 0.9), (8, 0.95), (9, 0.99)] {
            let want = percentile(&mut service, q);
            assert!(
                close(num(&row[i]), want, 0.01),
                "p{q}: {} vs {want}",
                num(&row[i])
            );
        }
        assert!(close(num(&row[10]), percentile(&mut bytes, 0.999), 0.01));
    }
}

#[test]
fn values_that_are_not_numbers_are_skipped_and_counted() {
    let lines = [
        line(T0, "app", "web.1", "service=10ms"),
        line(T0, "app", "web.1", "service=fast"),
        line(T0, "app", "web.1", "other=1"),
        line(T0, "app", "web.1", "service=30ms"),
    ];
    let t = table(
        "| count, avg(service), sum(service), min(nothing), p50(nothing)",
        &lines,
    );
    assert_eq!(
        t.rows[0][..3],
        [Cell::Number(4.0), Cell::Number(20.0), Cell::Number(40.0)]
    );
    assert_eq!(t.rows[0][3..], [Cell::Empty, Cell::Empty]);
}

#[test]
fn top_sort_head_and_fields_on_the_table() {
    let (reqs, lines) = requests(2000);
    let t = table("| top 3 path", &lines);
    let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
    for r in &reqs {
        *counts.entry(&r.path).or_default() += 1.0;
    }
    let mut want: Vec<(&str, f64)> = counts.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    want.truncate(3);
    let got: Vec<(&str, f64)> = t.rows.iter().map(|r| (text(&r[0]), num(&r[1]))).collect();
    assert_eq!(got, want);

    let t = table(
        "| max(service), count by path | sort -max(service) | head 2 | fields max(service)",
        &lines,
    );
    let mut maxes: BTreeMap<&str, f64> = BTreeMap::new();
    for r in &reqs {
        let m = maxes.entry(&r.path).or_insert(f64::MIN);
        *m = m.max(r.service_ms);
    }
    let mut want: Vec<(&str, f64)> = maxes.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(t.columns.len(), 1);
    let got: Vec<f64> = t.rows.iter().map(|r| num(&r[0])).collect();
    assert_eq!(got, [want[0].1, want[1].1]);
    let asc = table("| count by path | sort path", &lines);
    let paths: Vec<&str> = asc.rows.iter().map(|r| text(&r[0])).collect();
    assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
}

#[test]
fn timechart_buckets_by_time_then_key() {
    let (reqs, lines) = requests(3000);
    let t = table("status>=500 | timechart 1m count by status", &lines);
    let mut want: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for r in reqs.iter().filter(|r| r.status >= 500) {
        let bucket = (r.micros - T0) / 60_000_000 * 60_000_000 + T0;
        *want.entry((bucket, r.status.to_string())).or_default() += 1.0;
    }
    let got: Vec<((i64, String), f64)> = t
        .rows
        .iter()
        .map(|r| match &r[0] {
            Cell::Time(ts) => ((ts.as_micros(), text(&r[1]).to_owned()), num(&r[2])),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    assert_eq!(t.span_micros, Some(60_000_000));
}

#[test]
fn dyno_is_the_process_and_matches_by_type() {
    let lines = [
        line(T0, "app", "web.1", "a=1"),
        line(T0, "app", "web.12", "a=2"),
        line(T0, "app", "worker.1", "a=3"),
        line(T0, "app", "webhook.1", "a=4"),
    ];
    let got = out_lines("dyno=web", &lines, 10);
    assert_eq!(got.lines, lines[..2]);
    assert_eq!(out_lines("dyno=web.1", &lines, 10).lines, lines[..1]);
    let t = table("| count by dyno, source | sort dyno", &lines);
    let dynos: Vec<&str> = t.rows.iter().map(|r| text(&r[0])).collect();
    assert_eq!(dynos, ["web.1", "web.12", "webhook.1", "worker.1"]);
    assert_eq!(
        out_lines("process=worker.1 source=app", &lines, 10).lines,
        lines[2..3]
    );
}

#[test]
fn full_text_and_lines_in_order_within_the_limit() {
    let (_, lines) = requests(500);
    let want: Vec<&LogLine> = lines.iter().filter(|l| l.source == "app").collect();
    let got = out_lines("\"connection RESET\"", &lines, 1000);
    assert_eq!(got.lines.iter().collect::<Vec<_>>(), want);
    assert_eq!(got.omitted, 0);
    let newest = out_lines("\"connection reset\"", &lines, 5);
    assert_eq!(
        newest.lines.iter().collect::<Vec<_>>(),
        want[want.len() - 5..]
    );
    assert_eq!(newest.omitted, want.len() as u64 - 5);
    let first = out_lines("\"connection reset\" | head 3", &lines, 1000);
    assert_eq!(first.lines.iter().collect::<Vec<_>>(), want[..3]);
}

#[test]
fn head_before_an_aggregation_stops_reading() {
    let (_, lines) = requests(100);
    let q = Query::parse("source=paas | head 10 | count").unwrap();
    let mut exec = Executor::new(&q, 10);
    let mut read = 0;
    for l in lines.iter().cloned() {
        if exec.is_done() {
            break;
        }
        read += 1;
        exec.push(l);
    }
    assert!(read < lines.len());
    let Output::Table(t) = exec.finish().unwrap() else {
        panic!()
    };
    assert_eq!(t.rows, [[Cell::Number(10.0)]]);
}

#[test]
fn too_many_groups_is_an_error() {
    let lines: Vec<LogLine> = (0..50)
        .map(|i| line(T0, "app", "web.1", &format!("id={i}")))
        .collect();
    let q = Query::parse("| count by id").unwrap();
    let mut exec = Executor::with_max_groups(&q, 10, 20);
    lines.iter().cloned().for_each(|l| exec.push(l));
    assert_eq!(exec.finish(), Err(ExecError::TooManyGroups { limit: 20 }));
    assert_eq!(
        ExecError::TooManyGroups { limit: 20 }.to_string(),
        "more than 20 groups: narrow the filter or group by fewer keys"
    );
}

#[test]
fn ndjson_lines_exactly() {
    let lines = [line(
        T0 + 123_456,
        "paas",
        "router",
        r#"at=info path="/a b" status=200 at=dup flag"#,
    )];
    let mut out = Vec::new();
    write_ndjson(&Output::Lines(out_lines("", &lines, 10)), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"time":"2026-11-21T12:00:00.123456+00:00","source":"paas","process":"router","#,
            r#""message":"at=info path=\"/a b\" status=200 at=dup flag","#,
            r#""fields":{"at":"info","path":"/a b","status":"200","flag":""}}"#,
            "\n"
        )
    );
    let mut out = Vec::new();
    write_ndjson(
        &Output::Lines(out_lines("| fields status", &lines, 10)),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"time":"2026-11-21T12:00:00.123456+00:00","source":"paas","process":"router","#,
            r#""message":"at=info path=\"/a b\" status=200 at=dup flag","fields":{"status":"200"}}"#,
            "\n"
        )
    );
}

#[test]
fn ndjson_rows_exactly() {
    let lines = [
        line(T0 + 5_000_000, "paas", "router", "path=/a service=10ms"),
        line(T0 + 70_000_000, "paas", "router", "path=/a service=1.5s"),
        line(T0 + 75_000_000, "paas", "router", "path=/b service=x"),
    ];
    let mut out = Vec::new();
    let q = Query::parse("| count, avg(service) by path").unwrap();
    write_ndjson(&run(&q, lines.iter().cloned(), 10).unwrap(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"path\":\"/a\",\"count\":2,\"avg(service)\":755}\n{\"path\":\"/b\",\"count\":1,\"avg(service)\":null}\n"
    );
    let mut out = Vec::new();
    let q = Query::parse("| timechart 1m count").unwrap();
    write_ndjson(&run(&q, lines.iter().cloned(), 10).unwrap(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"time\":\"2026-11-21T12:00:00.000000+00:00\",\"count\":1}\n{\"time\":\"2026-11-21T12:01:00.000000+00:00\",\"count\":2}\n"
    );
}

#[test]
fn human_lines_table_and_chart() {
    let lines = [
        line(T0, "app", "web.1", "path=/a status=500 code=H12"),
        line(
            T0 + 60_000_000,
            "paas",
            "router",
            "path=/long/path status=200",
        ),
        line(
            T0 + 180_000_000,
            "paas",
            "router",
            "path=/a status=503 code=H13",
        ),
    ];
    let mut out = Vec::new();
    write_human(
        &Output::Lines(out_lines("path=/a", &lines, 10)),
        50,
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2026-11-21T12:00:00.000000+00:00 app[web.1]: path=/a status=500 code=H12\n\
         2026-11-21T12:03:00.000000+00:00 paas[router]: path=/a status=503 code=H13\n"
    );
    let mut out = Vec::new();
    write_human(
        &Output::Table(table("| count by path", &lines)),
        50,
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "path        count\n/a              2\n/long/path      1\n"
    );
    let mut out = Vec::new();
    write_human(
        &Output::Table(table("code | timechart 1m count by code", &lines)),
        10,
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "count every 1m by code: █ H12  ▓ H13\n\
         2026-11-21 12:00:00 │██████████ 1\n\
         2026-11-21 12:01:00 │ 0\n\
         2026-11-21 12:02:00 │ 0\n\
         2026-11-21 12:03:00 │▓▓▓▓▓▓▓▓▓▓ 1\n"
    );
}

#[test]
fn dyno_on_router_lines_is_the_serving_dyno() {
    let lines = [
        line(T0, "paas", "router", "path=/ dyno=web.2 status=200"),
        line(T0, "paas", "router", "path=/ status=503 code=H14"),
        line(T0, "app", "web.2", "hello"),
    ];
    assert_eq!(
        out_lines("dyno=web", &lines, 10).lines,
        [lines[0].clone(), lines[2].clone()]
    );
    let t = table("| count by dyno | sort dyno", &lines);
    let got: Vec<(&str, f64)> = t.rows.iter().map(|r| (text(&r[0]), num(&r[1]))).collect();
    assert_eq!(got, [("router", 1.0), ("web.2", 2.0)]);
}
