//! `MetricsEngine`: the router-wide consumer that turns lines into series. It reads its own
//! feed (`Router::consumer_feed("metrics")`), so ingest never waits for it. Alone, that is its
//! own `Subscription`: when it falls behind, its queue drops the oldest lines and counts them
//! (`paas_metrics_lines_dropped_total`, and the router's `logplex_lines_dropped_total
//! {consumer="metrics"}`). In a cluster it is this node's share of the cluster's lines (the
//! shared consumer `metrics`): each line is counted on one node, so a counter summed over the
//! nodes counts each line once; a batch is acknowledged once counted, and a batch delivered
//! again (its node died before acknowledging) is counted again and told
//! (`paas_metrics_lines_redelivered_total`). Gauges (l2met `sample#`) are then on whichever
//! node counted the line: read them with `max without(instance)`.
//!
//! Each take is counted under one lock of the store, so a scrape sees whole batches. A
//! deleted app's series go at once (the engine is an `AppLifecycle`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logplex::{App, AppLifecycle, AppName, Component, ConsumerFeed, LogLine, Router, StopFuture};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::collector::{SharedStore, encode_store};
use super::registry::{MetricsLimits, Store};
use super::{l2met, router};

/// How the engine reads the router and what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether to extract at all (`--metrics-extract false` turns it off).
    pub enabled: bool,
    /// Lines its queue holds before the oldest are dropped. Default 65,536.
    pub capacity: usize,
    /// Lines counted at most under one lock of the store. Default 4,096.
    pub batch_lines: usize,
    /// The cardinality caps and the `unique#` interval.
    pub limits: MetricsLimits,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            capacity: 65_536,
            batch_lines: 4096,
            limits: MetricsLimits::default(),
        }
    }
}

/// The running engine: a `Component` to stop, a `Collector` for `/metrics`.
#[derive(Debug)]
pub struct MetricsEngine {
    store: SharedStore,
    feed: Arc<ConsumerFeed>,
    lines: Arc<AtomicU64>,
    redelivered: Arc<AtomicU64>,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl MetricsEngine {
    /// Subscribes to every app's lines and extracts from them in a task of its own (call
    /// from within a tokio runtime).
    pub fn start(router: &Router, config: MetricsConfig) -> Arc<MetricsEngine> {
        let feed = Arc::new(router.consumer_feed("metrics", config.capacity));
        let store = SharedStore(Arc::new(Mutex::new(Store::new(config.limits))));
        let lines = Arc::new(AtomicU64::new(0));
        let redelivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(Notify::new());
        let run = Run {
            feed: feed.clone(),
            store: store.clone(),
            lines: lines.clone(),
            redelivered: redelivered.clone(),
            batch: config.batch_lines.max(1),
        };
        let engine = Arc::new(MetricsEngine {
            store,
            feed,
            lines,
            redelivered,
            task: Mutex::new(Some(tokio::spawn(run.run(stop.clone())))),
            stop,
        });
        router.on_app_deleted(engine.clone());
        engine
    }

    /// One app's series, for `GET /apps/{app}/metrics` (`paas metrics`).
    pub fn snapshot(&self, app: &str) -> super::AppSnapshot {
        super::snapshot::of(&mut self.store.lock(), &AppName::from(app), Instant::now())
    }
}

impl AppLifecycle for MetricsEngine {
    fn app_deleted(&self, app: &App) {
        self.store
            .lock()
            .remove_app(&AppName::from(app.name.as_str()));
    }
}

impl Component for MetricsEngine {
    fn name(&self) -> &str {
        "metrics"
    }

    /// Counts what waits in its queue, within `within`.
    fn stop(&self, within: Duration) -> StopFuture<'_> {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.stop.notify_one();
        Box::pin(async move {
            if let Some(mut task) = task
                && tokio::time::timeout(within, &mut task).await.is_err()
            {
                task.abort();
                tracing::warn!("metrics: the extractor did not stop within {within:?}");
            }
        })
    }
}

/// The extracted series, then the engine's own counters.
impl Collector for MetricsEngine {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_store(&mut self.store.lock(), Instant::now(), &mut e)?;
        let q = self.feed.counts();
        let counters = [
            (
                "paas_metrics_lines",
                "Lines the metrics extractor read.",
                self.lines.load(Ordering::Relaxed),
            ),
            (
                "paas_metrics_lines_dropped",
                "Lines the metrics extractor dropped because it was behind (its queue was full).",
                q.dropped,
            ),
            (
                "paas_metrics_lines_redelivered",
                "Lines the cluster delivered to the metrics extractor again (a node died before \
                 acknowledging them): counted again, possibly twice in all.",
                self.redelivered.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let lag = ConstGauge::new(i64::try_from(q.buffered).unwrap_or(i64::MAX));
        lag.encode(e.encode_descriptor(
            "paas_metrics_lag_lines",
            "Lines accepted and not yet read by the metrics extractor.",
            None,
            MetricType::Gauge,
        )?)
    }
}

/// How long extraction lets lines gather once some wait (fewer than a batch), so that lines
/// coming one at a time are counted a batch at a time (figures are read a scrape apart).
const LINGER: Duration = Duration::from_millis(20);

struct Run {
    feed: Arc<ConsumerFeed>,
    store: SharedStore,
    lines: Arc<AtomicU64>,
    redelivered: Arc<AtomicU64>,
    batch: usize,
}

impl Run {
    async fn run(self, stop: Arc<Notify>) {
        let mut name = String::new();
        loop {
            tokio::select! {
                biased;
                () = stop.notified() => break,
                taken = self.feed.next(self.batch, usize::MAX, LINGER) => match taken {
                    Some(taken) => {
                        self.count(&taken.lines, &mut name);
                        if taken.redelivered > 0 {
                            self.redelivered.fetch_add(taken.redelivered, Ordering::Relaxed);
                            tracing::warn!(
                                lines = taken.redelivered,
                                "metrics: lines delivered again by the cluster (a node died \
                                 before acknowledging them) counted again"
                            );
                        }
                        self.feed.done(&taken).await;
                    }
                    None => break,
                },
            }
        }
        while let Some(taken) = self.feed.try_next(self.batch, usize::MAX) {
            self.count(&taken.lines, &mut name);
        }
    }

    fn count(&self, lines: &[LogLine], name: &mut String) {
        let now = Instant::now();
        let mut store = self.store.lock();
        for line in lines {
            extract_line(&mut store, line, name, now);
        }
        self.lines.fetch_add(lines.len() as u64, Ordering::Relaxed);
    }
}

/// The engine's work on lines, without its queue or task: what the benches measure, and a
/// way to extract from lines read elsewhere (a file, a test).
#[derive(Debug, Default)]
pub struct Extractor {
    store: Store,
    name: String,
}

impl Extractor {
    /// An extractor with these caps.
    pub fn new(limits: MetricsLimits) -> Extractor {
        Extractor {
            store: Store::new(limits),
            name: String::new(),
        }
    }

    /// Counts a batch of lines (a router line's RED, else its l2met pairs), as the engine
    /// counts each take from its queue.
    pub fn extract(&mut self, lines: &[LogLine]) {
        let now = Instant::now();
        for line in lines {
            extract_line(&mut self.store, line, &mut self.name, now);
        }
    }

    /// Series kept so far, over every app.
    pub fn series(&self) -> usize {
        self.store.apps.values().map(|a| a.series).sum()
    }
}

/// Counts one line in `store`: a router line's RED, else its l2met pairs.
pub(crate) fn extract_line(store: &mut Store, line: &LogLine, name: &mut String, now: Instant) {
    if router::is_router_line(line) {
        store.observe_router(&line.app, &router::parse(&line.message));
    } else if l2met::may_have_metrics(&line.message) {
        l2met::extract(line, name, |r| match r {
            Ok(o) => store.observe(&line.app, o, now),
            Err(why) => store.refuse(&line.app, why),
        });
    }
}
