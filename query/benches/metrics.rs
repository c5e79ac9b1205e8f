//! Metric extraction throughput, one core, on generated real-shaped corpora
//! (`logfmt::corpus`): router lines into RED series (the common case, and what the issue's
//! target of ≥ 5 M lines/s per core is about), l2met lines into app series, plain lines
//! skipped, lines with two l2met metrics each (what benches/metrics/extract.sh sends), and
//! beside them the bare logfmt pass over the same router lines, which is the
//! floor: the difference is the cost of the series themselves (lookup, histogram, counters).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logfmt::corpus::{Corpus, Mix};
use logplex::{AppName, LogLine, Timestamp};
use query::{Extractor, MetricsLimits};
use std::hint::black_box;

const LINES: usize = 100_000;

fn line(app: &AppName, source: &'static str, process: &'static str, message: &str) -> LogLine {
    LogLine {
        received: Timestamp::from_micros(0),
        time: Timestamp::from_micros(0),
        app: app.clone(),
        source: Bytes::from_static(source.as_bytes()),
        process: Bytes::from_static(process.as_bytes()),
        facility: 1,
        severity: 6,
        message: Bytes::copy_from_slice(message.as_bytes()),
        seq: 0,
    }
}

/// Router lines of 4 apps (`paas[router]`); the app lines of the platform mix with l2met
/// pairs; those without.
fn corpora() -> Vec<(&'static str, Vec<LogLine>)> {
    let apps: Vec<AppName> = ["shop", "blog", "api", "www"].map(AppName::from).into();
    let router_text = Corpus::new(Mix::Router, 42).lines(LINES);
    let router = router_text
        .lines()
        .enumerate()
        .map(|(i, m)| line(&apps[i % 4], "paas", "router", m))
        .collect();
    let platform_text = Corpus::new(Mix::Platform, 7).lines(LINES * 4);
    let (mut l2met, mut plain) = (Vec::new(), Vec::new());
    for (i, m) in platform_text.lines().enumerate() {
        if m.contains('#') {
            l2met.push(line(&apps[i % 4], "app", "web.1", m));
        } else if !m.contains("status=") {
            plain.push(line(&apps[i % 4], "app", "web.1", m));
        }
    }
    l2met.truncate(LINES);
    plain.truncate(LINES);
    // What `benches/metrics/extract.sh` sends: a tenant's router-shaped line with two metrics.
    let tagged = router_text
        .lines()
        .enumerate()
        .map(|(i, m)| {
            let m = format!(
                "{m} source=web.{} measure#db.latency={}ms count#requests=1",
                i % 4 + 1,
                i % 50 + 1
            );
            line(&apps[i % 4], "app", "router", &m)
        })
        .collect();
    vec![
        ("router", router),
        ("l2met", l2met),
        ("l2met_two_per_line", tagged),
        ("plain", plain),
    ]
}

fn extract(c: &mut Criterion) {
    let mut group = c.benchmark_group("extract");
    for (name, lines) in corpora() {
        group.throughput(Throughput::Elements(lines.len() as u64));
        let mut extractor = Extractor::new(MetricsLimits::default());
        group.bench_function(name, |b| {
            b.iter(|| {
                // In takes of the engine's batch size.
                for batch in lines.chunks(4096) {
                    extractor.extract(black_box(batch));
                }
            })
        });
        black_box(extractor.series());
        if name == "router" {
            group.bench_function("router_logfmt_pass_only", |b| {
                b.iter(|| {
                    let mut n = 0u64;
                    for l in &lines {
                        logfmt::for_each_pair(black_box(&l.message), |_| n += 1);
                    }
                    n
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, extract);
criterion_main!(benches);
