//! Properties of extraction over arbitrary streams: whatever the lines, every app stays
//! within its caps, the per-app count of series is the number it has, every refused value is
//! counted, and the exposition is written without a panic or a non-finite sample.

use std::time::Instant;

use logplex::{AppName, LogLine, Timestamp};
use proptest::prelude::*;

use super::collector::{SharedStore, exposition};
use super::consumer::extract_line;
use super::registry::{MetricsLimits, Store, Value};

fn line(app: &str, source: &'static str, process: &'static str, message: String) -> LogLine {
    LogLine {
        received: Timestamp::from_micros(0),
        time: Timestamp::from_micros(0),
        app: AppName::from(app),
        source: source.into(),
        process: process.into(),
        facility: 1,
        severity: 6,
        message: message.into(),
        seq: 0,
    }
}

/// A pair as tenants write them, well or badly.
fn pair() -> impl Strategy<Value = String> {
    let kind = prop_oneof!["count", "sample", "measure", "unique", "bogus"];
    let name = prop_oneof!["a", "b.c", "d-e", "x_total", "ü", "", "[a-z]{1,3}"];
    let value = prop_oneof![
        "[0-9]{1,4}",
        "[0-9]{1,3}ms",
        "[0-9]\\.[0-9]s",
        "[0-9]{1,3}MB",
        "-[0-9]",
        "NaN|inf|1e999|1e300|abc|",
        "\\PC{0,6}",
    ];
    prop_oneof![
        (kind, name, value).prop_map(|(k, n, v)| format!("{k}#{n}={v}")),
        "source=[a-z.0-9]{0,4}".prop_map(String::from),
        "status=[1-6][0-9]{2} code=H[0-9]{2} dyno=[a-z]{1,3}\\.[0-9] service=[0-9]{1,5}ms"
            .prop_map(String::from),
    ]
}

fn stream() -> impl Strategy<Value = Vec<(usize, bool, Vec<String>)>> {
    proptest::collection::vec(
        (
            0..3usize,
            any::<bool>(),
            proptest::collection::vec(pair(), 0..6),
        ),
        0..80,
    )
}

proptest! {
    #[test]
    fn every_app_stays_within_its_caps_and_every_refusal_is_counted(lines in stream()) {
        let limits = MetricsLimits {
            max_series_per_app: 12,
            max_series_per_metric: 3,
            ..MetricsLimits::default()
        };
        let mut store = Store::new(limits);
        let (now, mut name) = (Instant::now(), String::new());
        let apps = ["shop", "blog", "api"];
        for (app, router, pairs) in &lines {
            let (source, process) = if *router { ("paas", "router") } else { ("app", "web.1") };
            extract_line(&mut store, &line(apps[*app], source, process, pairs.join(" ")), &mut name, now);
        }
        for (app, a) in &store.apps {
            let extracted: usize = store
                .families
                .values()
                .filter_map(|f| f.series.get(app))
                .map(|s| {
                    prop_assert!(s.len() <= limits.max_series_per_metric);
                    Ok(s.len())
                })
                .sum::<Result<usize, TestCaseError>>()?;
            let router = a.router.requests.len()
                + usize::from(a.router.service.is_some())
                + usize::from(a.router.connect.is_some())
                + usize::from(a.router.bytes.is_some());
            prop_assert!(a.router.requests.len() <= limits.max_series_per_metric);
            prop_assert_eq!(a.series, extracted + router, "the count is the series it has");
            prop_assert!(a.series <= limits.max_series_per_app);
            prop_assert!(a.dropped.len() <= limits.max_series_per_metric + 1);
        }
        for family in store.families.values() {
            for series in family.series.values() {
                for v in series.values() {
                    let finite = match v {
                        Value::Counter(c) => c.is_finite() && *c >= 0.0,
                        Value::Gauge(g) => g.is_finite(),
                        Value::Histogram(h) => h.sum().is_finite(),
                        Value::Unique(_) => true,
                    };
                    prop_assert!(finite, "{v:?}");
                }
            }
        }
        let shared = SharedStore::default();
        *shared.lock() = store;
        let text = exposition(shared);
        prop_assert!(!text.contains("NaN") && !text.contains(" inf"), "{text}");
        prop_assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_refusal_is_counted_once_per_bad_pair(values in proptest::collection::vec("NaN|inf|1e999|1e300|abc|-1", 1..20)) {
        let mut store = Store::new(MetricsLimits::default());
        let message = values.iter().map(|v| format!("count#c={v}")).collect::<Vec<_>>().join(" ");
        extract_line(&mut store, &line("shop", "app", "web.1", message), &mut String::new(), Instant::now());
        let refused: u64 = store.apps[&AppName::from("shop")].rejected.values().sum();
        prop_assert_eq!(refused, values.len() as u64);
    }
}
