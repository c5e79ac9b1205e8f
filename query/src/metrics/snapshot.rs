//! One app's series as JSON (`GET /apps/{app}/metrics`), and the live RED view `paas metrics`
//! draws from two of them: requests a second by status class and H-code over the window
//! between them, service-time quantiles over that window (over everything so far when the
//! window saw no request), memory per dyno.

use std::collections::BTreeMap;
use std::time::Instant;

use logfmt::MetricKind;
use logplex::AppName;
use serde::{Deserialize, Serialize};

use super::histogram::{self, Histogram};
use super::registry::{Store, Value};

/// One app's series at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSnapshot {
    /// The app.
    pub app: String,
    /// Requests so far, by process type, status class and H-code.
    pub requests: Vec<RequestCount>,
    /// The service-time histogram so far.
    pub service: Buckets,
    /// Response bytes so far.
    pub response_bytes: u64,
    /// Each dyno's runtime gauges (`memory_total_bytes`, `load_avg_1m`, …) by dyno.
    pub dynos: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Requests of one label set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// `web`, or empty when no dyno was reached.
    pub process_type: String,
    /// `2xx` … `5xx`, `other`.
    pub status_class: String,
    /// `H12` …, or empty.
    pub code: String,
    /// How many.
    pub count: u64,
}

/// A histogram: finite upper bounds in seconds, and per-bucket counts (one more, for `+Inf`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// The finite upper bounds.
    pub bounds: Vec<f64>,
    /// Counts per bucket, not cumulative; the last is above every bound.
    pub counts: Vec<u64>,
}

impl Buckets {
    fn of(h: Option<&Histogram>) -> Buckets {
        let Some(h) = h else {
            return Buckets::default();
        };
        let b = h.buckets();
        Buckets {
            bounds: b
                .iter()
                .map(|(le, _)| *le)
                .filter(|le| le.is_finite())
                .collect(),
            counts: b.iter().map(|(_, c)| *c).collect(),
        }
    }

    fn pairs(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// The counts added since `before` (the same bounds; else all of these).
    fn since(&self, before: &Buckets) -> Buckets {
        if before.bounds != self.bounds || before.counts.len() != self.counts.len() {
            return self.clone();
        }
        let counts = self
            .counts
            .iter()
            .zip(&before.counts)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        Buckets {
            bounds: self.bounds.clone(),
            counts,
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What `paas metrics` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RedView {
    /// The app.
    pub app: String,
    /// Seconds between the two snapshots.
    pub window_seconds: f64,
    /// Requests a second over the window, by status class.
    pub requests_per_second: BTreeMap<String, f64>,
    /// Requests so far, by status class.
    pub requests_total: BTreeMap<String, u64>,
    /// Requests so far with an H-code, by code.
    pub error_codes: BTreeMap<String, u64>,
    /// Service-time quantiles in seconds (`p50`, `p95`, `p99`), when there were requests.
    pub service_seconds: BTreeMap<String, f64>,
    /// Whether the quantiles are over the window (else over everything so far).
    pub quantiles_over_window: bool,
    /// Each dyno's memory in use (`memory_total`), in bytes.
    pub memory_bytes: BTreeMap<String, f64>,
}

impl RedView {
    /// The view from `before` to `after`, `window_seconds` apart.
    pub fn between(before: &AppSnapshot, after: &AppSnapshot, window_seconds: f64) -> RedView {
        let mut view = RedView {
            app: after.app.clone(),
            window_seconds,
            ..RedView::default()
        };
        let by_class = |s: &AppSnapshot| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for r in &s.requests {
                *m.entry(r.status_class.clone()).or_default() += r.count;
            }
            m
        };
        let (was, now) = (by_class(before), by_class(after));
        for (class, n) in &now {
            let delta = n.saturating_sub(was.get(class).copied().unwrap_or(0));
            let rate = if window_seconds > 0.0 {
                delta as f64 / window_seconds
            } else {
                0.0
            };
            view.requests_per_second.insert(class.clone(), rate);
        }
        view.requests_total = now;
        for r in after.requests.iter().filter(|r| !r.code.is_empty()) {
            *view.error_codes.entry(r.code.clone()).or_default() += r.count;
        }
        let window = after.service.since(&before.service);
        view.quantiles_over_window = window.total() > 0;
        let over = if view.quantiles_over_window {
            window
        } else {
            after.service.clone()
        };
        for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            if let Some(v) = histogram::quantile(&over.pairs(), q) {
                view.service_seconds.insert(name.to_owned(), v);
            }
        }
        for (dyno, gauges) in &after.dynos {
            if let Some(m) = gauges.get("memory_total_bytes") {
                view.memory_bytes.insert(dyno.clone(), *m);
            }
        }
        view
    }
}

/// `app`'s snapshot out of `store`.
pub(crate) fn of(store: &mut Store, app: &AppName, now: Instant) -> AppSnapshot {
    let mut snap = AppSnapshot {
        app: app.as_str().to_owned(),
        ..AppSnapshot::default()
    };
    if let Some(a) = store.apps.get(app) {
        let mut requests: Vec<_> = a.router.requests.iter().collect();
        requests.sort();
        snap.requests = requests
            .into_iter()
            .map(|(k, n)| RequestCount {
                process_type: k.process_type.clone(),
                status_class: k.status_class.to_owned(),
                code: k.code.clone(),
                count: *n,
            })
            .collect();
        snap.service = Buckets::of(a.router.service.as_ref());
        snap.response_bytes = a.router.bytes.unwrap_or(0);
    }
    let interval = store.limits.unique_interval;
    for (name, family) in &mut store.families {
        let (Some(gauge), MetricKind::Sample, "dyno") =
            (name.strip_prefix("paas_dyno_"), family.kind, family.label)
        else {
            continue;
        };
        let Some(series) = family.series.get_mut(app) else {
            continue;
        };
        for (dyno, value) in series.iter_mut() {
            let v = match value {
                Value::Gauge(g) => *g,
                Value::Unique(u) => u.estimate(now, interval),
                Value::Counter(c) => *c,
                Value::Histogram(h) => h.sum(),
            };
            snap.dynos
                .entry(dyno.clone())
                .or_default()
                .insert(gauge.to_owned(), v);
        }
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::consumer::extract_line;
    use crate::metrics::registry::MetricsLimits;

    fn line(source: &'static str, process: &'static str, message: &str) -> logplex::LogLine {
        logplex::LogLine {
            received: logplex::Timestamp::from_micros(0),
            time: logplex::Timestamp::from_micros(0),
            app: AppName::from("shop"),
            source: source.into(),
            process: process.into(),
            facility: 1,
            severity: 6,
            message: message.to_owned().into(),
            seq: 0,
        }
    }

    #[test]
    fn the_red_view_over_a_window() {
        let mut store = Store::new(MetricsLimits::default());
        let (now, mut name) = (Instant::now(), String::new());
        let shop = AppName::from("shop");
        for _ in 0..4 {
            let l = line("paas", "router", "dyno=web.1 service=20ms status=200");
            extract_line(&mut store, &l, &mut name, now);
        }
        let mem = line(
            "paas",
            "web.1",
            "source=web.1 dyno=paas.shop.1 sample#memory_total=21.00MB sample#memory_rss=20.00MB",
        );
        extract_line(&mut store, &mem, &mut name, now);
        let before = of(&mut store, &shop, now);
        for status in ["200", "503", "503"] {
            let msg = format!("code=H12 dyno=web.1 service=400ms status={status}");
            let msg = if status == "200" {
                "dyno=web.1 service=400ms status=200".to_owned()
            } else {
                msg
            };
            extract_line(&mut store, &line("paas", "router", &msg), &mut name, now);
        }
        let after = of(&mut store, &shop, now);
        assert_eq!(after.dynos["web.1"]["memory_rss_bytes"], 20e6);
        let view = RedView::between(&before, &after, 2.0);
        assert_eq!(view.requests_per_second["2xx"], 0.5);
        assert_eq!(view.requests_per_second["5xx"], 1.0);
        assert_eq!(view.requests_total["2xx"], 5);
        assert_eq!(view.error_codes["H12"], 2);
        assert!(view.quantiles_over_window);
        // All three in the window fell in (0.25, 0.5].
        let p50 = view.service_seconds["p50"];
        assert!((0.25..=0.5).contains(&p50), "{p50}");
        assert_eq!(view.memory_bytes["web.1"], 21e6);
        // A quiet window falls back to everything so far.
        let quiet = RedView::between(&after, &after, 1.0);
        assert!(!quiet.quantiles_over_window);
        assert_eq!(quiet.requests_per_second["2xx"], 0.0);
        assert!(quiet.service_seconds["p50"] < 0.025);
        let json = serde_json::to_string(&after).unwrap();
        assert_eq!(serde_json::from_str::<AppSnapshot>(&json).unwrap(), after);
    }

    #[test]
    fn an_app_with_nothing_is_an_empty_snapshot() {
        let mut store = Store::new(MetricsLimits::default());
        let s = of(&mut store, &AppName::from("none"), Instant::now());
        assert_eq!(s.requests, []);
        let view = RedView::between(&s, &s, 1.0);
        assert!(view.service_seconds.is_empty());
    }
}
