//! The query engine as one component of the router: the spool under the data directory, the
//! writer that keeps every accepted line in it, the API resources that answer queries and take
//! imports, its counters on `/metrics`, and a stop that flushes within the router's bound.
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
    QueryService, ServiceConfig, Spool, SpoolConfig, SpoolError, SpoolWriter, SpoolWriterConfig,
    SpoolWriterHandle,
};

/// The running engine.
#[derive(Debug)]
pub struct QueryEngine {
    service: Arc<QueryService>,
    spool: Spool,
    writer: Mutex<Option<SpoolWriterHandle>>,
}

impl QueryEngine {
    /// Opens the spool in `dir` and starts keeping `router`'s lines in it (within a tokio
    /// runtime).
    pub fn start(
        router: &Router,
        dir: &Path,
        spool: SpoolConfig,
        service: ServiceConfig,
    ) -> Result<Arc<QueryEngine>, SpoolError> {
        let spool = Spool::open(dir, spool)?;
        let writer = SpoolWriter::start(router, spool.clone(), SpoolWriterConfig::default());
        Ok(Arc::new(QueryEngine {
            service: QueryService::new(router.clone(), spool.clone(), service),
            spool,
            writer: Mutex::new(Some(writer)),
        }))
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

    /// Appends what waits in the writer's queue and fsyncs, within `within`.
    fn stop(&self, within: Duration) -> StopFuture<'_> {
        let writer = self.writer().take();
        Box::pin(async move {
            if let Some(writer) = writer
                && let Err(e) = writer.stop(within).await
            {
                tracing::error!(error = %e, "query: the spool writer did not stop cleanly");
            }
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
                "paas_query_spool_failed",
                "Lines the spool could not write (a disk error, logged).",
                stats.failed,
            ),
            (
                "paas_query_spool_damaged_records",
                "Damaged records skipped while reading the spool.",
                self.spool.damaged_records(),
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
        )?)
    }
}
