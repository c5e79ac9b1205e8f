//! The series kept, with the cardinality caps that bound them. Every series belongs to one
//! app and counts against that app's cap (`--metrics-max-series-per-app`) and its metric's
//! (`--metrics-max-series-per-metric`); a series refused at a cap is counted in
//! `paas_metrics_dropped_series_total{app,metric}`, whose own labels are capped the same way
//! (past the cap, `metric="other"`). A family's name belongs to the first kind that used it:
//! `sample#x` and `measure#x` cannot both be `paas_app_x`, so the later one is dropped and
//! counted too (one exposition may not hold two families of one name).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use logfmt::MetricKind;
use logplex::AppName;

use super::fxhash::{AppMap, FxMap};
use super::histogram::{self, Histogram};
use super::l2met::Observation;
use super::router::RouterSample;
use super::unique::Unique;
use super::units::{Rejection, Unit};

/// The caps and the `unique#` interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Series one app may have over every metric. Default 1,000.
    pub max_series_per_app: usize,
    /// Series one app may have of one metric (label sets of one family). Default 100.
    pub max_series_per_metric: usize,
    /// The interval `unique#` counts distinct values over. Default 60 s.
    pub unique_interval: Duration,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            max_series_per_app: 1000,
            max_series_per_metric: 100,
            unique_interval: Duration::from_secs(60),
        }
    }
}

/// One series' value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram(Histogram),
    Unique(Unique),
}

/// An extracted family (`paas_app_*`, `paas_dyno_*`): its kind, and its series by app and
/// the value of its one label besides `app`.
#[derive(Debug)]
pub(crate) struct Family {
    pub kind: MetricKind,
    pub label: &'static str,
    pub series: AppMap<FxMap<String, Value>>,
}

/// `paas_router_requests_total`'s labels besides `app`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RequestKey {
    pub process_type: String,
    pub status_class: &'static str,
    pub code: String,
}

/// An app's RED series from router lines.
#[derive(Debug, Default)]
pub(crate) struct RouterSeries {
    pub requests: Vec<(RequestKey, u64)>,
    pub service: Option<Histogram>,
    pub connect: Option<Histogram>,
    pub bytes: Option<u64>,
}

/// What is kept of one app besides its extracted families.
#[derive(Debug, Default)]
pub(crate) struct AppSeries {
    /// Series it has, over every metric (the per-app cap).
    pub series: usize,
    pub router: RouterSeries,
    /// Series refused at a cap, by metric.
    pub dropped: BTreeMap<String, u64>,
    /// Values refused, by reason.
    pub rejected: BTreeMap<Rejection, u64>,
}

/// Every series, under one lock held by the consumer per batch and by a scrape.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub limits: MetricsLimits,
    pub apps: AppMap<AppSeries>,
    pub families: FxMap<String, Family>,
    /// Every exposition name the families use (`x`, `x_total`, `x_bucket`, …).
    claimed: HashSet<String>,
}

impl Store {
    /// An empty store with these caps.
    pub(crate) fn new(limits: MetricsLimits) -> Store {
        Store {
            limits,
            ..Store::default()
        }
    }

    /// The app's series (an `AppName` clone is a reference count, not a copy).
    fn app(&mut self, app: &AppName) -> &mut AppSeries {
        self.apps.entry(app.clone()).or_default()
    }

    /// Counts one router line of `app`.
    pub(crate) fn observe_router(&mut self, app: &AppName, s: &RouterSample<'_>) {
        let limits = self.limits;
        // `get_mut` first: `entry` would clone the name (an atomic count) on every line.
        let a = match self.apps.get_mut(app) {
            Some(a) => a,
            None => self.apps.entry(app.clone()).or_default(),
        };
        let found = a.router.requests.iter().position(|(k, _)| {
            same(k.status_class, s.status_class)
                && same(&k.code, s.code)
                && same(&k.process_type, s.process_type)
        });
        match found {
            Some(i) => {
                if let Some((_, n)) = a.router.requests.get_mut(i) {
                    *n += 1;
                }
            }
            None if a.series < limits.max_series_per_app
                && a.router.requests.len() < limits.max_series_per_metric =>
            {
                a.series += 1;
                let key = RequestKey {
                    process_type: s.process_type.to_owned(),
                    status_class: s.status_class,
                    code: s.code.to_owned(),
                };
                a.router.requests.push((key, 1));
            }
            None => drop_series(&mut a.dropped, limits, "paas_router_requests_total"),
        }
        observe_timings(a, limits, s);
    }

    /// Keeps one l2met observation of `app` (at `now`, for `unique#` intervals).
    pub(crate) fn observe(&mut self, app: &AppName, o: Observation<'_>, now: Instant) {
        let limits = self.limits;
        // Three lookups on the usual path (the series exists); the `None` arms make what is
        // missing.
        let family = match self.families.get_mut(o.family) {
            Some(f) => f,
            None => {
                if !self.claim(o.family, o.kind) {
                    drop_series(&mut self.app(app).dropped, limits, o.family);
                    return;
                }
                let fresh = Family {
                    kind: o.kind,
                    label: o.label.0,
                    series: AppMap::default(),
                };
                self.families.entry(o.family.to_owned()).or_insert(fresh)
            }
        };
        // The app's own entry (its counts against the caps) is looked up only when a series
        // is made or refused, not for every value of a series that exists.
        if family.kind != o.kind || !same(family.label, o.label.0) {
            let a = self.apps.entry(app.clone()).or_default();
            drop_series(&mut a.dropped, limits, o.family);
            return;
        }
        let series = match family.series.get_mut(app) {
            Some(s) => s,
            None => family.series.entry(app.clone()).or_default(),
        };
        let value = match series.get_mut(&*o.label.1) {
            Some(v) => v,
            None => {
                let a = self.apps.entry(app.clone()).or_default();
                if a.series >= limits.max_series_per_app
                    || series.len() >= limits.max_series_per_metric
                {
                    drop_series(&mut a.dropped, limits, o.family);
                    return;
                }
                a.series += 1;
                let fresh = match o.kind {
                    MetricKind::Count => Value::Counter(0.0),
                    MetricKind::Sample => Value::Gauge(0.0),
                    MetricKind::Measure => {
                        Value::Histogram(Histogram::new(histogram::bounds(unit_of(o.family))))
                    }
                    MetricKind::Unique => Value::Unique(Unique::new(now)),
                };
                series.entry(o.label.1.into_owned()).or_insert(fresh)
            }
        };
        match value {
            Value::Counter(c) => *c += o.value,
            Value::Gauge(g) => *g = o.value,
            Value::Histogram(h) => h.observe(o.value),
            Value::Unique(u) => u.insert(o.distinct, now, limits.unique_interval),
        }
    }

    /// Counts a value of `app` refused for `why`.
    pub(crate) fn refuse(&mut self, app: &AppName, why: Rejection) {
        let a = self.app(app);
        *a.rejected.entry(why).or_default() += 1;
    }

    /// Forgets a deleted app's series (its families stay, possibly empty of series).
    pub(crate) fn remove_app(&mut self, app: &AppName) {
        self.apps.remove(app);
        for family in self.families.values_mut() {
            family.series.remove(app);
        }
    }

    /// Claims the exposition names of a new family, unless one is taken.
    fn claim(&mut self, family: &str, kind: MetricKind) -> bool {
        let suffixes: &[&str] = match kind {
            MetricKind::Count => &["", "_total", "_created"],
            MetricKind::Measure => &["", "_bucket", "_sum", "_count", "_created"],
            MetricKind::Sample | MetricKind::Unique => &[""],
        };
        let names: Vec<String> = suffixes.iter().map(|s| format!("{family}{s}")).collect();
        if names.iter().any(|n| self.claimed.contains(n)) {
            return false;
        }
        self.claimed.extend(names);
        true
    }
}

/// The router line's `service`, `connect` and `bytes` of an app, within its cap.
fn observe_timings(a: &mut AppSeries, limits: MetricsLimits, s: &RouterSample<'_>) {
    let AppSeries {
        series,
        router,
        dropped,
        ..
    } = a;
    for (value, slot, name) in [
        (
            s.service,
            &mut router.service,
            "paas_router_service_seconds",
        ),
        (
            s.connect,
            &mut router.connect,
            "paas_router_connect_seconds",
        ),
    ] {
        let Some(v) = value else { continue };
        if slot.is_none() {
            if *series >= limits.max_series_per_app {
                drop_series(dropped, limits, name);
                continue;
            }
            *series += 1;
        }
        slot.get_or_insert_with(|| Histogram::new(histogram::bounds(Unit::Seconds)))
            .observe(v);
    }
    if let Some(b) = s.bytes {
        match &mut router.bytes {
            Some(total) => *total = total.saturating_add(b),
            None if *series < limits.max_series_per_app => {
                *series += 1;
                router.bytes = Some(b);
            }
            None => drop_series(dropped, limits, "paas_router_response_bytes_total"),
        }
    }
}

/// String equality in place: these are a few bytes long, compared for every router line,
/// where `==` would call memcmp.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Counts a series refused at a cap, under `metric` while the app's dropped counter has room
/// for one more label set, else under `other`.
fn drop_series(dropped: &mut BTreeMap<String, u64>, limits: MetricsLimits, metric: &str) {
    if let Some(n) = dropped.get_mut(metric) {
        *n += 1;
    } else if dropped.len() < limits.max_series_per_metric {
        dropped.insert(metric.to_owned(), 1);
    } else {
        *dropped.entry("other".to_owned()).or_default() += 1;
    }
}

/// The unit a family's name ends with (its buckets follow).
fn unit_of(family: &str) -> Unit {
    if family.ends_with("_seconds") {
        Unit::Seconds
    } else if family.ends_with("_bytes") {
        Unit::Bytes
    } else {
        Unit::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(kind: MetricKind, family: &str, source: &str, value: f64) -> Observation<'static> {
        Observation {
            kind,
            family: Box::leak(family.to_owned().into_boxed_str()),
            label: ("source", source.to_owned().into()),
            value,
            distinct: b"v",
        }
    }

    fn sample(code: &'static str) -> RouterSample<'static> {
        RouterSample {
            status_class: "5xx",
            code,
            process_type: "web",
            service: Some(0.02),
            connect: Some(0.001),
            bytes: Some(10),
        }
    }

    #[test]
    fn router_lines_add_up_by_labels() {
        let mut s = Store::new(MetricsLimits::default());
        let shop = AppName::from("shop");
        for code in ["H12", "H12", ""] {
            s.observe_router(&shop, &sample(code));
        }
        let a = &s.apps[&shop];
        let counts: Vec<_> = a
            .router
            .requests
            .iter()
            .map(|(k, n)| (k.code.as_str(), *n))
            .collect();
        assert_eq!(counts, [("H12", 2), ("", 1)]);
        assert_eq!(a.router.service.as_ref().unwrap().count(), 3);
        assert_eq!(a.router.bytes, Some(30));
        assert_eq!(a.series, 5);
    }

    #[test]
    fn the_per_metric_cap_drops_and_counts() {
        let limits = MetricsLimits {
            max_series_per_metric: 3,
            ..MetricsLimits::default()
        };
        let mut s = Store::new(limits);
        let shop = AppName::from("shop");
        let now = Instant::now();
        for i in 0..10 {
            let o = obs(MetricKind::Count, "paas_app_hits", &format!("s{i}"), 1.0);
            s.observe(&shop, o, now);
        }
        assert_eq!(s.families["paas_app_hits"].series[&shop].len(), 3);
        assert_eq!(s.apps[&shop].dropped["paas_app_hits"], 7);
        assert_eq!(s.apps[&shop].series, 3);
    }

    #[test]
    fn the_per_app_cap_holds_over_every_metric_and_the_dropped_labels_are_capped_too() {
        let limits = MetricsLimits {
            max_series_per_app: 5,
            max_series_per_metric: 4,
            ..MetricsLimits::default()
        };
        let mut s = Store::new(limits);
        let (shop, other) = (AppName::from("shop"), AppName::from("other"));
        let now = Instant::now();
        for i in 0..10_000 {
            s.observe(
                &shop,
                obs(MetricKind::Sample, &format!("paas_app_m{i}"), "", 1.0),
                now,
            );
        }
        s.observe(&other, obs(MetricKind::Sample, "paas_app_m1", "", 2.0), now);
        let a = &s.apps[&shop];
        assert_eq!(a.series, 5);
        assert_eq!(a.dropped.len(), 5, "4 names and other: {:?}", a.dropped);
        assert_eq!(a.dropped.values().sum::<u64>(), 9_995);
        assert_eq!(a.dropped["other"], 9_995 - 4);
        // Another app is not held back by this one's cap.
        assert!(matches!(
            s.families["paas_app_m1"].series[&other][""],
            Value::Gauge(2.0)
        ));
    }

    #[test]
    fn a_name_belongs_to_the_first_kind_that_used_it() {
        let mut s = Store::new(MetricsLimits::default());
        let (shop, other) = (AppName::from("shop"), AppName::from("other"));
        let now = Instant::now();
        s.observe(&shop, obs(MetricKind::Measure, "paas_app_x", "", 1.0), now);
        s.observe(&other, obs(MetricKind::Sample, "paas_app_x", "", 1.0), now);
        s.observe(
            &other,
            obs(MetricKind::Sample, "paas_app_x_count", "", 1.0),
            now,
        );
        s.observe(&other, obs(MetricKind::Count, "paas_app_y", "", 1.0), now);
        s.observe(
            &other,
            obs(MetricKind::Sample, "paas_app_y_total", "", 1.0),
            now,
        );
        assert_eq!(s.apps[&other].dropped.len(), 3);
        assert_eq!(s.families.len(), 2);
    }

    #[test]
    fn measures_keep_a_histogram_in_their_unit_and_samples_the_last_value() {
        let mut s = Store::new(MetricsLimits::default());
        let shop = AppName::from("shop");
        let now = Instant::now();
        for v in [0.02, 0.03] {
            s.observe(
                &shop,
                obs(MetricKind::Measure, "paas_app_db_seconds", "a", v),
                now,
            );
            s.observe(
                &shop,
                obs(MetricKind::Sample, "paas_app_depth", "a", v),
                now,
            );
        }
        match &s.families["paas_app_db_seconds"].series[&shop]["a"] {
            Value::Histogram(h) => {
                assert_eq!((h.count(), h.buckets()[4]), (2, (0.025, 1)));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            s.families["paas_app_depth"].series[&shop]["a"],
            Value::Gauge(0.03)
        ));
    }

    #[test]
    fn a_deleted_app_leaves_nothing() {
        let mut s = Store::new(MetricsLimits::default());
        let shop = AppName::from("shop");
        s.observe_router(&shop, &sample("H12"));
        s.observe(
            &shop,
            obs(MetricKind::Count, "paas_app_hits", "", 1.0),
            Instant::now(),
        );
        s.remove_app(&shop);
        assert!(s.apps.is_empty());
        assert!(s.families["paas_app_hits"].series.is_empty());
    }
}
