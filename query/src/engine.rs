//! The query engine as one component of the router: the spool under the data directory, the
//! writer that keeps every accepted line in it, the index and the indexer that cuts the spool
//! into blocks, the API resources that answer queries and take imports, its counters on
//! `/metrics`, and a stop that flushes within the router's bound.
//! `paas logplex` and `paas up` start it with [`QueryEngine::start`] and hand it to `Logplex`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logplex::{Component, Router, StopFuture};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::{
    Index, IndexConfig, IndexError, Indexer, IndexerHandle, QueryService, ServiceConfig, Spool,
    SpoolConfig, SpoolWriter, SpoolWriterConfig, SpoolWriterHandle,
};

/// How the engine keeps lines and answers.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// The spool (the index keeps lines as long as it says: its `max_age` and
    /// `max_bytes_per_app` apply to the index's blocks too).
    pub spool: SpoolConfig,
    /// The index (its retention is the spool's).
    pub index: IndexConfig,
    /// The API's limits.
    pub service: ServiceConfig,
}

/// The running engine.
#[derive(Debug)]
pub struct QueryEngine {
    service: Arc<QueryService>,
    spool: Spool,
    index: Index,
    writer: Mutex<Option<SpoolWriterHandle>>,
    indexer: Arc<IndexerHandle>,
}

/// Lets go of a deleted app's index.
#[derive(Debug)]
struct ForgetIndex(Index);

impl logplex::AppLifecycle for ForgetIndex {
    fn app_deleted(&self, app: &logplex::App) {
        if let Err(e) = self.0.remove_app(&app.id) {
            tracing::warn!(app = %app.id, error = %e, "index: could not remove a deleted app's index");
        }
    }
}

impl QueryEngine {
    /// Opens the spool (`dir/spool`) and the index (`dir/index`), starts keeping `router`'s
    /// lines in the spool and indexing them (within a tokio runtime). The index keeps lines
    /// as long as `spool` says.
    pub fn start(
        router: &Router,
        dir: &Path,
        config: EngineConfig,
    ) -> Result<Arc<QueryEngine>, IndexError> {
        let EngineConfig {
            spool,
            index,
            service,
        } = config;
        let index = Index::open(
            dir.join("index"),
            IndexConfig {
                max_age: spool.max_age,
                max_bytes_per_app: spool.max_bytes_per_app,
                ..index
            },
        )?;
        let spool = Spool::open(dir.join("spool"), spool)?;
        let writer = SpoolWriter::start(router, spool.clone(), SpoolWriterConfig::default());
        router.on_app_deleted(Arc::new(ForgetIndex(index.clone())));
        let indexer = Arc::new(Indexer::start(index.clone(), spool.clone()));
        Ok(Arc::new(QueryEngine {
            service: QueryService::new(
                router.clone(),
                spool.clone(),
                index.clone(),
                indexer.clone(),
                service,
            ),
            spool,
            index,
            writer: Mutex::new(Some(writer)),
            indexer,
        }))
    }

    /// The index queries read.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The API resources to register (`query`, `import`).
    pub fn service(&self) -> &Arc<QueryService> {
        &self.service
    }

    /// The spool queries read.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Option<SpoolWriterHandle>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Component for QueryEngine {
    fn name(&self) -> &str {
        "query"
    }

    /// Appends what waits in the writer's queue and fsyncs, then lets the indexer write the
    /// block it fills, within `within`.
    fn stop(&self, within: Duration) -> StopFuture<'_> {
        let writer = self.writer().take();
        let indexer = self.indexer.clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + within;
            if let Some(writer) = writer
                && let Err(e) = writer.stop(within).await
            {
                tracing::error!(error = %e, "query: the spool writer did not stop cleanly");
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _ = tokio::task::spawn_blocking(move || indexer.stop(left)).await;
        })
    }
}

/// The engine's counters on `/metrics`.
impl Collector for QueryEngine {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.writer().as_ref().map(SpoolWriterHandle::stats) else {
            return Ok(());
        };
        let counters = [
            (
                "paas_query_spool_appended",
                "Lines kept in the spool for queries.",
                stats.appended,
            ),
            (
                "paas_query_spool_dropped",
                "Lines the spool's writer dropped because it was behind (its queue was full).",
                stats.dropped,
            ),
            (
                "paas_query_spool_redelivered",
                "Lines the cluster delivered to the spool's writer again (a node died before \
                 acknowledging them), appended again.",
                stats.redelivered,
            ),
            (
                "paas_query_spool_failed",
                "Lines the spool could not write (a disk error, logged).",
                stats.failed,
            ),
            (
                "paas_query_spool_damaged_records",
                "Damaged records skipped while reading the spool.",
                self.spool.damaged_records(),
            ),
            (
                "paas_query_index_lines",
                "Lines written into index blocks.",
                self.indexer.lines(),
            ),
            (
                "paas_query_index_blocks",
                "Index blocks written.",
                self.indexer.blocks(),
            ),
            (
                "paas_query_index_dict_refusals",
                "Values an app's index dictionaries refused (full, or past --query-dict-mb): those rows read them from their lines.",
                self.index.dict_refusals(),
            ),
            (
                "paas_query_plans_over_budget",
                "Queries whose planning passed --query-max-value-tests: their terms were answered from the lines.",
                self.index.plans_over_budget(),
            ),
            (
                "paas_query_partial_answers",
                "In a cluster: query answers that lacked some node's lines (a node not alive, not \
                 answering within --query-peer-timeout, or past --query-cluster-max-lines or \
                 --query-cluster-max-mb), each saying which.",
                self.service.partial_answers(),
            ),
            (
                "paas_query_index_errors",
                "Indexer turns that failed (logged; the app is retried after 10 s).",
                self.indexer.errors(),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let lag = ConstGauge::new(i64::try_from(stats.buffered).unwrap_or(i64::MAX));
        lag.encode(encoder.encode_descriptor(
            "paas_query_spool_lag_lines",
            "Lines accepted and not yet in the spool.",
            None,
            MetricType::Gauge,
        )?)?;
        let index_lag =
            ConstGauge::new(i64::try_from(self.indexer.lag_bytes()).unwrap_or(i64::MAX));
        index_lag.encode(encoder.encode_descriptor(
            "paas_query_index_lag_bytes",
            "Spool bytes not yet in an index block, over every app (queries scan them).",
            None,
            MetricType::Gauge,
        )?)
    }
}
