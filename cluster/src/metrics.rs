//! The node's part in the cluster on `/metrics`: the log bus's counters (published,
//! repeated, refused, read back), the reader's lag, the emitters' outbox, and whether NATS
//! and PostgreSQL answer. Summed over nodes, the publish counters count each line once (a
//! line is published by the node that accepted it); the read counters count it once per
//! node (every node reads the whole stream).

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::Cluster;

impl Collector for Cluster {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bus = &self.view.bus;
        let counters = [
            (
                "logplex_cluster_bus_published_lines",
                "Lines this node published to the log bus and JetStream acknowledged.",
                &bus.published_lines,
            ),
            (
                "logplex_cluster_bus_duplicate_lines",
                "Lines of batches JetStream had already under the same Logplex-Frame-Id (a \
                 sender's retry): acknowledged, not stored again.",
                &bus.duplicate_lines,
            ),
            (
                "logplex_cluster_bus_publish_failed_lines",
                "Lines the log bus did not take (never acknowledged to their sender).",
                &bus.publish_failed_lines,
            ),
            (
                "logplex_cluster_bus_read_lines",
                "Lines this node's bus reader published into its channels (every node reads \
                 every line).",
                &bus.read_lines,
            ),
            (
                "logplex_cluster_bus_undecodable_messages",
                "Bus messages this node could not read (skipped).",
                &bus.undecodable,
            ),
            (
                "logplex_cluster_bus_unknown_app_messages",
                "Bus messages of apps this node does not know (deleted), skipped.",
                &bus.unknown_app_messages,
            ),
        ];
        let refused = [(
            "logplex_cluster_bus_refused_lines",
            "Lines admitted on this node that the bus did not take: a POST /logs answered 503, a \
             syslog read not acknowledged, or the node's in-process lines (the stack's, the \
             router's own L-lines) refused past --bus-outbox-lines.",
            self.shared.router.ingest_stats().bus_refused_total()
                + self.shared.router.outbox().map_or(0, |o| o.refused()),
        )];
        let counters = counters
            .into_iter()
            .map(|(name, help, value)| (name, help, value.load(Ordering::Relaxed)))
            .chain(refused);
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        let read = bus.read_sequence.load(Ordering::Relaxed);
        let last = self.view.stream_last.load(Ordering::Relaxed);
        let pending = self
            .shared
            .router
            .outbox()
            .map_or(0, |outbox| outbox.pending());
        let up = |ok: bool| i64::from(ok);
        let gauges = [
            (
                "logplex_cluster_bus_reader_lag_messages",
                "Stream messages this node's reader has yet to read (as of the last heartbeat).",
                last.saturating_sub(read) as i64,
            ),
            (
                "logplex_cluster_outbox_pending_lines",
                "Lines the stack's emitters wrote that wait for the log bus.",
                pending as i64,
            ),
            (
                "logplex_cluster_nats_up",
                "1 while this node is connected to NATS.",
                up(self.view.nats_connected()),
            ),
            (
                "logplex_cluster_postgresql_up",
                "1 while this node reaches PostgreSQL.",
                up(self.view.store.healthy()),
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}
