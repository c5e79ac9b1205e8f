//! `GET /metrics`: the router's own counters in Prometheus text, read at scrape time from the
//! counters the router keeps anyway (nothing is counted twice on the hot path), then those of
//! the collectors other parts registered (`ApiState::register_metrics`: the proxy's, the
//! drains', the query engine's, the extracted metrics). An operator key sees every series; an
//! app key only the series labelled with its app (`app="shop"`), and only the names of the
//! families that have one, so that no tenant learns another's metric names.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use http::{Response, StatusCode};

use crate::api::ApiState;
use crate::api::limits::Refusal;
use crate::api::response::{Body, error, full};
use crate::ingest::ListenerStats;
use crate::platform::{PlatformEvent, PlatformEvents};
use crate::registry::KeyScope;
use crate::router::{Channel, Limit, Reject, Router};

#[derive(Debug)]
struct RouterCollector(Router);

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Vec<(&'static str, String)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, v) in values {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Vec<(&'static str, String)>, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for RouterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let router = &self.0;
        let channels = router.all_channels();
        let stats: Vec<_> = channels.iter().map(|c| c.stats()).collect();
        let app = |a: &str| vec![("app", a.to_owned())];
        counter(
            &mut encoder,
            "logplex_lines_accepted",
            "Lines accepted into an app's channel.",
            stats.iter().map(|s| (app(&s.app), s.accepted)),
        )?;
        let mut rejected = Vec::new();
        for s in &stats {
            for (reason, n) in &s.rejected {
                rejected.push((
                    vec![("app", s.app.clone()), ("reason", (*reason).to_owned())],
                    *n,
                ));
            }
        }
        for reason in Reject::ALL {
            rejected.push((
                vec![
                    ("app", String::new()),
                    ("reason", reason.as_str().to_owned()),
                ],
                router.unattributed().get(reason),
            ));
        }
        counter(
            &mut encoder,
            "logplex_lines_rejected",
            "Lines or frames refused at ingest, by app (empty: no valid token) and reason.",
            rejected,
        )?;
        // Summed per app and kind of consumer (tails come and go; each drain's own figures
        // are in the drains API), so that series stay few and stable.
        let mut per_kind: std::collections::BTreeMap<(String, String), (u64, i64)> =
            std::collections::BTreeMap::new();
        for s in &stats {
            for c in &s.consumers {
                let e = per_kind.entry((s.app.clone(), c.kind.clone())).or_default();
                e.0 += c.dropped;
                e.1 += c.buffered as i64;
            }
        }
        for c in router.consumer_stats() {
            let e = per_kind.entry((String::new(), c.kind.clone())).or_default();
            e.0 += c.dropped;
            e.1 += c.buffered as i64;
        }
        let labels =
            |(app, kind): &(String, String)| vec![("app", app.clone()), ("consumer", kind.clone())];
        let dropped: Vec<_> = per_kind.iter().map(|(k, v)| (labels(k), v.0)).collect();
        let buffered: Vec<_> = per_kind.iter().map(|(k, v)| (labels(k), v.1)).collect();
        counter(
            &mut encoder,
            "logplex_lines_dropped",
            "Lines dropped after acceptance because a reader (tail, drain, index) was behind.",
            dropped,
        )?;
        gauge(
            &mut encoder,
            "logplex_lines_buffered",
            "Lines waiting for a reader.",
            buffered,
        )?;
        gauge(
            &mut encoder,
            "logplex_history_lines",
            "Lines in an app's history.",
            stats.iter().map(|s| (app(&s.app), s.history.lines as i64)),
        )?;
        gauge(
            &mut encoder,
            "logplex_history_bytes",
            "Bytes of an app's history.",
            stats.iter().map(|s| (app(&s.app), s.history.bytes as i64)),
        )?;
        gauge(
            &mut encoder,
            "logplex_tail_sessions",
            "Tail sessions open.",
            stats.iter().map(|s| (app(&s.app), s.tails as i64)),
        )?;
        platform_events(&mut encoder, &channels)?;
        let ingest = router.ingest_stats();
        let listeners = [
            ("tcp", &ingest.tcp),
            ("tls", &ingest.tls),
            ("udp", &ingest.udp),
            ("http", &ingest.http),
            ("api", &ingest.api),
        ];
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        counter(
            &mut encoder,
            "logplex_connections_accepted",
            "Connections (HTTP: requests; UDP: datagrams) accepted, by listener.",
            listeners
                .iter()
                .map(|(n, l)| (vec![("listener", (*n).to_owned())], load(&l.accepted))),
        )?;
        connection_ends(&mut encoder, &listeners[..])?;
        gauge(
            &mut encoder,
            "logplex_connections_open",
            "Connections open, by listener.",
            listeners
                .iter()
                .map(|(n, l)| (vec![("listener", (*n).to_owned())], load(&l.open) as i64)),
        )?;
        counter(
            &mut encoder,
            "logplex_ingest_bytes",
            "Bytes read by the ingest listeners.",
            listeners
                .iter()
                .filter(|(n, _)| *n != "api")
                .map(|(n, l)| (vec![("listener", (*n).to_owned())], load(&l.bytes))),
        )?;
        counter(
            &mut encoder,
            "logplex_limit_refusals",
            "Requests refused at a tenant limit outside the line path, by limit.",
            Limit::ALL.iter().map(|l| {
                (
                    vec![("limit", l.as_str().to_owned())],
                    router.limits().get(*l),
                )
            }),
        )?;
        let invalid = ConstCounter::new(ingest.invalid_utf8_total());
        invalid.encode(encoder.encode_descriptor(
            "logplex_invalid_utf8_messages",
            "Messages accepted that are not valid UTF-8 (kept as bytes).",
            None,
            invalid.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The router's own lines (L10, L11, L12, L14, refused drains) told in each app's stream, and
/// the lines they told lost: read from the counts their one emit keeps, so the stream and
/// these series agree.
fn platform_events(
    encoder: &mut DescriptorEncoder<'_>,
    channels: &[std::sync::Arc<Channel>],
) -> Result<(), std::fmt::Error> {
    let by = |read: fn(&PlatformEvents, &str) -> u64| {
        let mut values = Vec::with_capacity(channels.len() * PlatformEvent::CODES.len());
        for c in channels {
            for code in PlatformEvent::CODES {
                let labels = vec![("app", c.app().to_string()), ("code", code.to_owned())];
                values.push((labels, read(c.platform_events(), code)));
            }
        }
        values
    };
    counter(
        encoder,
        "logplex_platform_events",
        "Lines the router told in an app's stream about itself, by code: L10 drain buffer \
         overflow, L11 tail buffer overflow, L12 app rate limit, L14 drain certificate, refused \
         drain destination.",
        by(PlatformEvents::count),
    )?;
    counter(
        encoder,
        "logplex_platform_dropped_messages",
        "Lines those platform events told lost (L10, L11, L12), by app and code.",
        by(PlatformEvents::dropped),
    )
}

/// Connections refused and closed, by listener and why, and failed accepts: for the
/// listeners that hold connections (not UDP, nor `http`, which counts requests).
fn connection_ends(
    encoder: &mut DescriptorEncoder<'_>,
    listeners: &[(&str, &ListenerStats)],
) -> Result<(), std::fmt::Error> {
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    let held = || {
        listeners
            .iter()
            .filter(|(n, _)| matches!(*n, "tcp" | "tls" | "api"))
    };
    let by =
        |reason: &str, n: &str| vec![("listener", n.to_owned()), ("reason", reason.to_owned())];
    let refused = held().flat_map(|(n, l)| {
        [
            (by("limit", n), load(&l.refused)),
            (by("per_ip", n), load(&l.refused_per_ip)),
            (by("handshake", n), load(&l.handshake_failed)),
        ]
    });
    counter(
        encoder,
        "logplex_connections_refused",
        "Connections refused, by listener and why: at the listener's limit, at the limit of one \
         address, or failing their TLS handshake.",
        refused.collect::<Vec<_>>(),
    )?;
    let closed = held().flat_map(|(n, l)| {
        [
            (by("idle", n), load(&l.closed_idle)),
            (by("unauthenticated", n), load(&l.closed_unauthenticated)),
            (by("stalled", n), load(&l.closed_stalled)),
        ]
    });
    counter(
        encoder,
        "logplex_connections_closed",
        "Connections the router closed, by listener and why: idle too long, no frame with a \
         valid token in time, or stalled inside a frame.",
        closed.collect::<Vec<_>>(),
    )?;
    counter(
        encoder,
        "logplex_accept_errors",
        "Accepts that failed (out of file descriptors and the like), by listener.",
        held()
            .map(|(n, l)| (vec![("listener", (*n).to_owned())], load(&l.accept_errors)))
            .collect::<Vec<_>>(),
    )
}

/// The API's own limits at work.
#[derive(Debug)]
struct ApiCollector(std::sync::Arc<ApiState>);

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        counter(
            &mut encoder,
            "logplex_api_refused",
            "API requests refused at a limit, by reason: body_timeout (408), body_budget (503), \
             sessions_per_app (429), filter_too_long (422).",
            Refusal::ALL.map(|r| {
                (
                    vec![("reason", r.as_str().to_owned())],
                    state.limits.refusals.get(r),
                )
            }),
        )?;
        let budget = &state.limits.body_budget;
        single_gauge(
            &mut encoder,
            "logplex_api_body_bytes_inflight",
            "Bytes of request bodies being read now, over every connection.",
            budget.in_flight(),
        )?;
        single_gauge(
            &mut encoder,
            "logplex_api_body_bytes_budget",
            "The most bytes of request bodies read at once (--inflight-body-mb).",
            budget.bytes(),
        )?;
        single_gauge(
            &mut encoder,
            "logplex_log_sessions_pending",
            "Log sessions made and not yet expired, of every app.",
            state.sessions.pending(),
        )
    }
}

/// A gauge with no labels.
fn single_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// Another part's collector, registered through `ApiState::register_metrics`.
#[derive(Debug)]
struct Registered(std::sync::Arc<dyn Collector>);

impl Collector for Registered {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// The Prometheus text of the router's counters, the API's, then those of the collectors
/// other parts registered; for an app key, only its app's series. The text is OpenMetrics
/// (what the encoder writes), labelled so when the scraper asks for it (Prometheus does).
pub(crate) fn render(
    state: &std::sync::Arc<ApiState>,
    scope: &KeyScope,
    headers: &http::HeaderMap,
) -> Response<Body> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(RouterCollector(state.router.clone())));
    registry.register_collector(Box::new(ApiCollector(state.clone())));
    for other in state.collectors() {
        registry.register_collector(Box::new(Registered(other)));
    }
    let mut out = String::new();
    let openmetrics = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match prometheus_client::encoding::text::encode(&mut out, &registry) {
        Ok(()) => {
            let out = match scope {
                KeyScope::Operator => out,
                KeyScope::App(app) => only_app(&out, app),
            };
            let out = if openmetrics { out } else { classic(&out) };
            full(StatusCode::OK, content_type, out)
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Metrics could not be written.",
        ),
    }
}

/// OpenMetrics text as the classic Prometheus text format (0.0.4) reads it: a counter family
/// is named with its `_total` (`# TYPE x_total counter`, as its samples are), and the lines
/// that format has not (`# UNIT`, `# EOF`) go. Without this, a classic parser (promtool,
/// older scrapers) reads every counter as an untyped family with no help.
fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 1024);
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        let counter = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"));
        if let Some(name) = counter {
            if let Some(h) = help.take() {
                let text = h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name));
                match text {
                    Some(text) => out.push_str(&format!("# HELP {name}_total{text}\n")),
                    None => {
                        out.push_str(h);
                        out.push('\n');
                    }
                }
            }
            out.push_str(&format!("# TYPE {name}_total counter\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// The series of `exposition` labelled `app="APP"`, each with its family's metadata (written
/// only when the family has one), and the closing `# EOF`. Label values are escaped by the
/// encoder (a `"` inside one is `\"`), so `{app="APP"` or `,app="APP"` is always a label.
fn only_app(exposition: &str, app: &str) -> String {
    let (first, later) = (format!("{{app=\"{app}\""), format!(",app=\"{app}\""));
    let mut out = String::new();
    let mut meta = String::new();
    for line in exposition.lines() {
        if line == "# EOF" {
            out.push_str("# EOF\n");
        } else if line.starts_with("# HELP ") {
            meta.clear();
            meta.push_str(line);
            meta.push('\n');
        } else if line.starts_with('#') {
            if !meta.is_empty() {
                meta.push_str(line);
                meta.push('\n');
            }
        } else if line.contains(&first) || line.contains(&later) {
            out.push_str(&meta);
            meta.clear();
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_sees_its_own_series_and_the_names_of_those_families_only() {
        let text = "# HELP a_total A.\n# TYPE a counter\na_total{app=\"shop\"} 1\na_total{app=\"shop2\"} 2\n\
            # HELP b B.\n# TYPE b gauge\nb{app=\"blog\"} 3\n\
            # HELP c C.\n# TYPE c histogram\nc_bucket{le=\"1.0\",app=\"shop\"} 1\nc_count{app=\"shop\"} 1\n\
            # HELP d D.\n# TYPE d gauge\nd{source=\"x,app=\\\"shop\\\"\",app=\"blog\"} 4\n\
            # HELP e E.\n# TYPE e gauge\ne 5\n# EOF\n";
        assert_eq!(
            only_app(text, "shop"),
            "# HELP a_total A.\n# TYPE a counter\na_total{app=\"shop\"} 1\n\
             # HELP c C.\n# TYPE c histogram\nc_bucket{le=\"1.0\",app=\"shop\"} 1\nc_count{app=\"shop\"} 1\n# EOF\n"
        );
        assert_eq!(only_app(text, "none"), "# EOF\n");
    }

    #[test]
    fn classic_text_names_counters_with_their_total() {
        let open = "# HELP a A help.\n# TYPE a counter\na_total{x=\"1\"} 1\n\
            # HELP b_seconds B.\n# TYPE b_seconds gauge\n# UNIT b_seconds seconds\nb_seconds 2\n# EOF\n";
        assert_eq!(
            classic(open),
            "# HELP a_total A help.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n\
             # HELP b_seconds B.\n# TYPE b_seconds gauge\nb_seconds 2\n"
        );
    }
}
