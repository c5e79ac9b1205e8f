//! This node in the cluster's eyes: a heartbeat row in PostgreSQL's `nodes` every second
//! (with its consumers' positions and lag), and `GET /cluster` (every node's row, the
//! stream's state, this node's view of NATS and PostgreSQL), `/readyz` failing while this node
//! cannot reach either.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::Context;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::bus::BusStats;
use crate::config::{PgStore, bounded};
use crate::error::pg;

/// Consumers `/cluster` lists at most.
const MAX_CONSUMERS_SHOWN: usize = 1000;

/// A node whose heartbeat is older than this is reported as not alive.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(5);

/// What a node's heartbeat reports and `/cluster` shows.
#[derive(Debug)]
pub(crate) struct NodeView {
    pub(crate) id: String,
    pub(crate) api_url: String,
    pub(crate) stream: String,
    pub(crate) nats: async_nats::Client,
    pub(crate) js: Context,
    pub(crate) store: Arc<PgStore>,
    pub(crate) bus: Arc<BusStats>,
    /// The stream's last sequence when last asked (for the reader's lag).
    pub(crate) stream_last: AtomicU64,
}

impl NodeView {
    pub(crate) fn nats_connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// This node's consumers and counters, as its heartbeat row holds them.
    pub(crate) fn status(&self) -> Value {
        let read = self.bus.read_sequence.load(Ordering::Relaxed);
        let last = self.stream_last.load(Ordering::Relaxed);
        json!({
            "nats_connected": self.nats_connected(),
            "postgresql_healthy": self.store.healthy(),
            "consumers": {
                "bus-reader": {
                    "read_sequence": read,
                    "lag_messages": last.saturating_sub(read),
                    "lines": self.bus.read_lines.load(Ordering::Relaxed),
                    "undecodable_messages": self.bus.undecodable.load(Ordering::Relaxed),
                    "unknown_app_messages": self.bus.unknown_app_messages.load(Ordering::Relaxed),
                }
            },
            "published_lines": self.bus.published_lines.load(Ordering::Relaxed),
            "published_messages": self.bus.published_messages.load(Ordering::Relaxed),
            "publish_failed_lines": self.bus.publish_failed_lines.load(Ordering::Relaxed),
            "duplicate_lines": self.bus.duplicate_lines.load(Ordering::Relaxed),
        })
    }

    async fn refresh_stream(&self) -> Option<Value> {
        let mut stream = self.js.get_stream(&self.stream).await.ok()?;
        let info = stream.info().await.ok()?;
        let s = &info.state;
        self.stream_last.store(s.last_sequence, Ordering::Relaxed);
        Some(json!({
            "name": self.stream,
            "messages": s.messages,
            "bytes": s.bytes,
            "first_sequence": s.first_sequence,
            "last_sequence": s.last_sequence,
            "max_bytes": info.config.max_bytes,
            "max_age_seconds": info.config.max_age.as_secs(),
        }))
    }

    /// Writes this node's row; the nodes alive now (this one included).
    async fn beat(&self) -> crate::Result<u64> {
        let status = self.status();
        let client = self.store.reader().await?;
        bounded("heartbeat", async {
            client
                .execute(
                    "INSERT INTO nodes (id, api_url, status) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET api_url = $2, status = $3, heartbeat_at = now()",
                    &[&self.id, &self.api_url, &status],
                )
                .await
                .map_err(pg("heartbeat"))?;
            let alive = client
                .query_one(
                    "SELECT count(*) FROM nodes WHERE heartbeat_at > now() - make_interval(secs => $1)",
                    &[&ALIVE_WITHIN.as_secs_f64()],
                )
                .await
                .map_err(pg("heartbeat: nodes alive"))?;
            Ok(alive.get::<_, i64>(0).max(1) as u64)
        })
        .await
    }

    /// `GET /cluster`.
    pub(crate) async fn report(&self) -> Value {
        let stream = self.refresh_stream().await;
        let nodes = match self.nodes().await {
            Ok(nodes) => Value::Array(nodes),
            Err(e) => json!({ "error": e.to_string() }),
        };
        json!({
            "node": self.id,
            "nats": { "connected": self.nats_connected(), "stream": stream },
            "postgresql": { "healthy": self.store.healthy() },
            "nodes": nodes,
            "consumers": self.consumers().await,
        })
    }

    /// The stream's durable consumers (the drains' shared queues): their lag is the
    /// cluster's, not one node's.
    async fn consumers(&self) -> Value {
        let Ok(stream) = self.js.get_stream(&self.stream).await else {
            return Value::Array(Vec::new());
        };
        let mut list = Vec::new();
        let mut infos = stream.consumers();
        while let Some(Ok(info)) = infos.next().await {
            if list.len() >= MAX_CONSUMERS_SHOWN {
                break;
            }
            list.push(json!({
                "name": info.name,
                "pending_messages": info.num_pending,
                "ack_pending_messages": info.num_ack_pending,
                "redelivered_messages": info.num_redelivered,
                "delivered_stream_sequence": info.delivered.stream_sequence,
                "acked_stream_sequence": info.ack_floor.stream_sequence,
            }));
        }
        Value::Array(list)
    }

    async fn nodes(&self) -> crate::Result<Vec<Value>> {
        let client = self.store.reader().await?;
        let rows = bounded("nodes", async {
            client
                .query(
                    "SELECT id, api_url, status,
                            extract(epoch FROM now() - heartbeat_at)::float8,
                            extract(epoch FROM now() - started_at)::float8
                     FROM nodes ORDER BY id",
                    &[],
                )
                .await
                .map_err(pg("nodes"))
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let age: f64 = r.get(3);
                json!({
                    "id": r.get::<_, String>(0),
                    "api_url": r.get::<_, String>(1),
                    "alive": age < ALIVE_WITHIN.as_secs_f64(),
                    "heartbeat_age_seconds": age,
                    "up_seconds": r.get::<_, f64>(4),
                    "status": r.get::<_, Value>(2),
                })
            })
            .collect())
    }
}

/// Starts the heartbeat: every `every`, the stream's state is read and the row written, and
/// `router`'s apps' rate budgets are shared among the nodes alive (kept as they were while
/// PostgreSQL is away).
pub(crate) fn spawn_heartbeat(
    view: Arc<NodeView>,
    router: logplex::Router,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            view.refresh_stream().await;
            match view.beat().await {
                Ok(alive) => {
                    view.store.set_healthy(true);
                    router.set_rate_share(alive);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat");
                    view.store.set_healthy(false);
                }
            }
        }
    })
}
