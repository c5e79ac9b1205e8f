//! The store as Prometheus families, written at scrape time under the store's lock. Series
//! are sorted by app and label so that two scrapes of the same state read the same; a family
//! with no series is left out (its name alone would tell other tenants it exists).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use logfmt::MetricKind;
use logplex::AppName;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::histogram::Histogram;
use super::registry::{AppSeries, Store, Value};
use super::units::Rejection;

type Labels = Vec<(&'static str, String)>;
type Result = std::result::Result<(), std::fmt::Error>;

/// Writes every extracted series of `store` (at `now`, for `unique#` intervals): the
/// router's RED families, the l2met and dyno families, then what was dropped and refused.
pub(crate) fn encode_store(
    store: &mut Store,
    now: Instant,
    e: &mut DescriptorEncoder<'_>,
) -> Result {
    let mut apps: Vec<_> = store.apps.iter().collect();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    encode_router(&apps, e)?;
    encode_extracted(store, now, e)?;
    let mut apps: Vec<_> = store.apps.iter().collect();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    encode_accounting(&apps, e)
}

fn encode_router(apps: &[(&AppName, &AppSeries)], e: &mut DescriptorEncoder<'_>) -> Result {
    let mut requests = Vec::new();
    let (mut service, mut connect, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for (app, a) in apps {
        let app = || vec![("app", app.as_str().to_owned())];
        let mut keyed: Vec<_> = a.router.requests.iter().collect();
        keyed.sort();
        for (k, n) in keyed {
            let mut labels = app();
            labels.push(("process_type", k.process_type.clone()));
            labels.push(("status_class", k.status_class.to_owned()));
            labels.push(("code", k.code.clone()));
            requests.push((labels, *n));
        }
        if let Some(h) = &a.router.service {
            service.push((app(), h));
        }
        if let Some(h) = &a.router.connect {
            connect.push((app(), h));
        }
        if let Some(b) = a.router.bytes {
            bytes.push((app(), b));
        }
    }
    counters(
        e,
        "paas_router_requests",
        "Requests the router served (from router lines), by app, process type, status class and H-code.",
        &requests,
    )?;
    histograms(
        e,
        "paas_router_service_seconds",
        "Time the dyno took to answer (the router line's service=).",
        &service,
    )?;
    histograms(
        e,
        "paas_router_connect_seconds",
        "Time the router took to connect to the dyno (the router line's connect=).",
        &connect,
    )?;
    counters(
        e,
        "paas_router_response_bytes",
        "Bytes of responses the router sent (the router line's bytes=).",
        &bytes,
    )
}

/// The l2met and dyno families, sorted by name, then app, then label.
fn encode_extracted(store: &mut Store, now: Instant, e: &mut DescriptorEncoder<'_>) -> Result {
    let interval = store.limits.unique_interval;
    let mut families: Vec<_> = store.families.iter_mut().collect();
    families.sort_by(|a, b| a.0.cmp(b.0));
    for (name, family) in families {
        let mut series: Vec<_> = family
            .series
            .iter_mut()
            .filter(|(_, s)| !s.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        series.sort_by(|a, b| a.0.cmp(b.0));
        let ty = match family.kind {
            MetricKind::Count => MetricType::Counter,
            MetricKind::Sample | MetricKind::Unique => MetricType::Gauge,
            MetricKind::Measure => MetricType::Histogram,
        };
        let mut f = e.encode_descriptor(name, help(family.kind, family.label), None, ty)?;
        for (app, values) in series {
            let mut values: Vec<_> = values.iter_mut().collect();
            values.sort_by(|a, b| a.0.cmp(b.0));
            for (label, value) in values {
                let labels: Labels = vec![
                    ("app", app.as_str().to_owned()),
                    (family.label, label.clone()),
                ];
                encode_value(f.encode_family(&labels)?, value, now, interval)?;
            }
        }
    }
    Ok(())
}

/// What the caps dropped and what was refused, by app.
fn encode_accounting(apps: &[(&AppName, &AppSeries)], e: &mut DescriptorEncoder<'_>) -> Result {
    let (mut dropped, mut rejected) = (Vec::new(), Vec::new());
    for (app, a) in apps {
        for (metric, n) in &a.dropped {
            dropped.push((
                vec![("app", app.as_str().to_owned()), ("metric", metric.clone())],
                *n,
            ));
        }
        for why in Rejection::ALL {
            if let Some(n) = a.rejected.get(&why) {
                let reason = why.as_str().to_owned();
                rejected.push((
                    vec![("app", app.as_str().to_owned()), ("reason", reason)],
                    *n,
                ));
            }
        }
    }
    counters(
        e,
        "paas_metrics_dropped_series",
        "Series not kept because an app reached a cardinality cap (--metrics-max-series-per-app, \
         --metrics-max-series-per-metric) or the name belongs to a metric of another type; \
         past the cap on this metric's own labels, metric=\"other\".",
        &dropped,
    )?;
    counters(
        e,
        "paas_metrics_rejected_values",
        "l2met values not kept, by reason: not a finite number, past 1e15 in base units, a \
         negative count, or a name that sanitises to nothing or over 100 characters.",
        &rejected,
    )
}

fn help(kind: MetricKind, label: &str) -> &'static str {
    match (kind, label) {
        (_, "dyno") => "A dyno's runtime metric (the dyno manager's sample# lines), per dyno.",
        (MetricKind::Count, _) => "Sum of an app's count# values (l2met), by source=.",
        (MetricKind::Sample, _) => "Last sample# value of an app (l2met), by source=.",
        (MetricKind::Measure, _) => "Distribution of an app's measure# values (l2met), by source=.",
        (MetricKind::Unique, _) => {
            "Distinct unique# values of an app in the last interval (l2met; HyperLogLog, ~3% error), by source=."
        }
    }
}

fn encode_value(
    mut m: prometheus_client::encoding::MetricEncoder<'_>,
    value: &mut Value,
    now: Instant,
    interval: std::time::Duration,
) -> Result {
    match value {
        Value::Counter(c) => ConstCounter::new(*c).encode(m),
        Value::Gauge(g) => ConstGauge::new(*g).encode(m),
        Value::Histogram(h) => {
            m.encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)
        }
        Value::Unique(u) => ConstGauge::new(u.estimate(now, interval)).encode(m),
    }
}

/// A counter family (the encoder appends `_total`), unless it has no series.
pub(crate) fn counters(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels, u64)],
) -> Result {
    if values.is_empty() {
        return Ok(());
    }
    let mut f = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(*v).encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

fn histograms(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: &[(Labels, &Histogram)],
) -> Result {
    if values.is_empty() {
        return Ok(());
    }
    let mut f = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in values {
        f.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum(),
            h.count(),
            &h.buckets(),
            None,
        )?;
    }
    Ok(())
}

/// The store shared by the consumer (which fills it) and the scrape (which reads it).
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedStore(pub Arc<Mutex<Store>>);

impl SharedStore {
    /// The store, even if a panic elsewhere poisoned the lock (its data stays consistent:
    /// every update is a single assignment or push).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Collector for SharedStore {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result {
        encode_store(&mut self.lock(), Instant::now(), &mut e)
    }
}

/// The exposition of `collector` alone, as `/metrics` writes it.
#[cfg(test)]
pub(crate) fn exposition(collector: impl Collector + 'static) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    // Writing to a String fails only if a collector fails, which ours do not.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::l2met::Observation;
    use crate::metrics::registry::MetricsLimits;
    use crate::metrics::router::parse;
    use logplex::AppName;

    #[test]
    fn known_input_gives_exactly_these_series() {
        let shared = SharedStore::default();
        {
            let mut s = shared.lock();
            let shop = AppName::from("shop");
            s.observe_router(
                &shop,
                &parse(b"dyno=web.1 connect=1ms service=20ms status=200 bytes=100"),
            );
            s.observe_router(
                &shop,
                &parse(b"code=H12 dyno=web.2 connect=1ms service=30001ms status=503 bytes=0"),
            );
            let now = Instant::now();
            let o = Observation {
                kind: MetricKind::Count,
                family: "paas_app_signups",
                label: ("source", "api \"1\"".into()),
                value: 2.0,
                distinct: b"",
            };
            s.observe(&shop, o, now);
            s.refuse(&shop, Rejection::NotANumber);
        }
        let text = exposition(shared);
        for want in [
            "# TYPE paas_router_requests counter",
            "paas_router_requests_total{app=\"shop\",process_type=\"web\",status_class=\"2xx\",code=\"\"} 1",
            "paas_router_requests_total{app=\"shop\",process_type=\"web\",status_class=\"5xx\",code=\"H12\"} 1",
            "# TYPE paas_router_service_seconds histogram",
            "paas_router_service_seconds_bucket{le=\"0.025\",app=\"shop\"} 1",
            "paas_router_service_seconds_bucket{le=\"30.0\",app=\"shop\"} 1",
            "paas_router_service_seconds_bucket{le=\"60.0\",app=\"shop\"} 2",
            "paas_router_service_seconds_count{app=\"shop\"} 2",
            "paas_router_response_bytes_total{app=\"shop\"} 100",
            "paas_app_signups_total{app=\"shop\",source=\"api \\\"1\\\"\"} 2",
            "paas_metrics_rejected_values_total{app=\"shop\",reason=\"not_a_number\"} 1",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        assert!(!text.contains("paas_metrics_dropped_series"), "{text}");
        let _ = MetricsLimits::default();
    }
}
