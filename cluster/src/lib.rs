//! Scale-out: many `paas logplex` nodes sharing NATS JetStream as the log bus and PostgreSQL
//! for configuration, with no cluster protocol of our own.
//!
//! [`Cluster::join`] makes a started router one node of a cluster:
//! - **configuration** (`config/`): apps, ingest tokens, API keys (as digests) and drains
//!   live in PostgreSQL. Versioned migrations run at start under an advisory lock; a single
//!   router's `registry.json` and `drains.json` are imported once into an empty database.
//!   Every change goes through the database first (`logplex::RegistryStore`,
//!   `drains::SharedDelivery`) and is told to every node with NOTIFY, and each node applies
//!   it in memory, where token look-ups on ingest stay.
//! - **drains** (`shared.rs`): every node runs every drain, each fed from one JetStream
//!   durable consumer per drain, so each line is delivered once across the cluster.
//! - **router-wide consumers** (`consumers.rs`): metric extraction and the query spool each
//!   read one JetStream durable consumer shared by every node, so each line is counted and
//!   written once across the cluster (`logplex::SharedConsumers`).
//! - **the log bus** (`bus/`): ingest publishes admitted lines to a JetStream stream, a
//!   subject per app, and acknowledges its sender only once JetStream has them; every node's
//!   reader (an ordered consumer over the stream) publishes them into its own channels,
//!   numbered from the stream's sequence, so tails and history on any node see every node's
//!   lines in one order.
//! - **releases** (`config/releases/`): `paas up`'s config vars and releases of its app
//!   (`stack::ReleaseLog`), rows of PostgreSQL told to the app's nodes on their own NOTIFY
//!   channel; a release made on one node restarts the dynos of every node.
//! - **status** (`status.rs`): a heartbeat row per node, `GET /cluster`, `/readyz`.
//!
//! async-nats is built without its default features, which assume NATS server 2.10 or
//! later: only `jetstream`, `ring` (TLS) and `nuid` (inboxes), so the stream and consumer
//! requests carry only fields NATS 2.9 knows.
//!
//! ```
//! use cluster::ClusterConfig;
//!
//! let config = ClusterConfig::new("nats://127.0.0.1:4222", "postgres://postgres@127.0.0.1/paas");
//! assert_eq!(config.bus.stream, "PAAS_LOGS");
//! assert!(config.node_id.starts_with("node-"));
//! ```

mod bus;
mod config;
mod consumers;
mod error;
mod metrics;
mod peers;
mod shared;
mod status;
mod work_queue;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use logplex::{ClusterStatus, Component, Router, StopFuture};
use tokio::task::JoinHandle;

pub use bus::{BusConfig, BusStats, DecodeError, JetStreamBus};
pub use config::{MIGRATIONS, PgReleases, PgStore};
pub use error::{ClusterError, Result};
pub use status::ALIVE_WITHIN;

use status::NodeView;

/// How a node joins its cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// NATS's URL (`nats://host:4222`).
    pub nats_url: String,
    /// PostgreSQL's URL (`postgres://user@host/db`).
    pub database_url: String,
    /// This node's name in `/cluster` (unique in the cluster).
    pub node_id: String,
    /// Where this node's API is, as `/cluster` shows it.
    pub api_url: String,
    /// The stream.
    pub bus: BusConfig,
    /// How often the node's heartbeat is written.
    pub heartbeat: Duration,
    /// The operator key given at start (`PAAS_API_KEY`): made to work cluster-wide.
    pub operator_key: Option<String>,
    /// The operator key this node made at its first start, when none was given: made to work
    /// cluster-wide too, since it was shown to the operator.
    pub bootstrap_key: Option<String>,
}

impl ClusterConfig {
    /// A node of the cluster at `nats_url` and `database_url`, with a random node id.
    pub fn new(nats_url: &str, database_url: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        ClusterConfig {
            nats_url: nats_url.to_owned(),
            database_url: database_url.to_owned(),
            node_id: format!("node-{}", &id[..8]),
            api_url: String::new(),
            bus: BusConfig::default(),
            heartbeat: Duration::from_secs(1),
            operator_key: None,
            bootstrap_key: None,
        }
    }
}

/// A node's membership: its tasks, its view of the cluster. A `Component` of the router
/// (stopped with it) and its `ClusterStatus` (`GET /cluster`, `/readyz`).
#[derive(Debug)]
pub struct Cluster {
    view: Arc<NodeView>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<shared::JetStreamDrains>,
    peers: Arc<peers::NodePeers>,
}

impl Cluster {
    /// Joins: migrates and loads the configuration, installs the store, the bus, the reader
    /// and the shared router-wide consumers, and starts the heartbeat. A database or NATS that cannot be reached is an
    /// error here (a node does not start half-joined).
    pub async fn join(router: &Router, config: ClusterConfig) -> Result<Cluster> {
        if !valid_token(&config.bus.stream) || !config.bus.prefix.split('.').all(valid_token) {
            return Err(ClusterError::Config(format!(
                "--nats-stream {:?} and --nats-prefix {:?} must be letters, digits, '-' and '_' (the prefix may have dots)",
                config.bus.stream, config.bus.prefix
            )));
        }
        let (store, applied) = PgStore::open(&config.database_url, &config.node_id).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "postgresql migrations applied");
        }
        if store.import_if_empty(&router.registry_records()).await? {
            tracing::info!("registry.json imported into postgresql");
        }
        router.replace_registry(&store.load().await?);
        router.set_registry_store(store.clone());
        if let Some(key) = &config.operator_key {
            router.ensure_operator_key(key, true)?;
        }
        if let Some(key) = &config.bootstrap_key {
            router.ensure_operator_key(key, false)?;
        }
        let listener = config::spawn_listener(store.clone(), router.clone());
        let nats = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            .connect(config.nats_url.as_str())
            .await
            .map_err(error::nats("connecting"))?;
        let js = bus::context(nats.clone(), &config.bus);
        bus::ensure_stream(&js, &config.bus).await?;
        let stats = Arc::new(BusStats::default());
        router.set_bus(
            Arc::new(JetStreamBus::new(js.clone(), &config.bus, stats.clone())),
            config.bus.outbox_lines,
        );
        let reader = bus::spawn_reader(
            js.clone(),
            config.bus.stream.clone(),
            router.clone(),
            store.clone(),
            stats.clone(),
        );
        let view = Arc::new(NodeView {
            id: config.node_id.clone(),
            api_url: config.api_url.clone(),
            stream: config.bus.stream.clone(),
            nats,
            js,
            store,
            bus: stats,
            stream_last: AtomicU64::new(0),
        });
        let heartbeat = status::spawn_heartbeat(view.clone(), router.clone(), config.heartbeat);
        let shared = Arc::new(shared::JetStreamDrains {
            js: view.js.clone(),
            stream: config.bus.stream.clone(),
            prefix: config.bus.prefix.clone(),
            ack_wait: config.bus.drain_ack_wait,
            store: view.store.clone(),
            router: router.clone(),
        });
        let peers = Arc::new(peers::NodePeers {
            id: config.node_id.clone(),
            store: view.store.clone(),
            secret: peers::cluster_secret(&view.store).await?,
        });
        router.set_shared_consumers(Arc::new(consumers::JetStreamConsumers {
            js: view.js.clone(),
            stream: config.bus.stream.clone(),
            prefix: config.bus.prefix.clone(),
            ack_wait: config.bus.drain_ack_wait,
            store: view.store.clone(),
            router: router.clone(),
        }));
        Ok(Cluster {
            view,
            tasks: std::sync::Mutex::new(vec![listener, reader, heartbeat]),
            shared,
            peers,
        })
    }

    /// The drains' shared delivery (`DrainsConfig::shared`): each drain's lines once across
    /// the cluster, from a JetStream durable consumer.
    pub fn shared_delivery(&self) -> Arc<dyn drains::SharedDelivery> {
        self.shared.clone()
    }

    /// The other nodes, for queries over the whole cluster (`QueryService::set_peers`).
    pub fn query_peers(&self) -> Arc<dyn query::QueryPeers> {
        self.peers.clone()
    }

    /// Keeps `drains` (started with `shared_delivery`) in step with the cluster's drains,
    /// starting now.
    pub async fn attach_drains(&self, drains: drains::Drains) -> Result<()> {
        let imported = self
            .view
            .store
            .import_drains_if_empty(&drains.all())
            .await?;
        if imported > 0 {
            tracing::info!(imported, "drains.json imported into postgresql");
        }
        self.view.store.attach_drains(drains);
        self.view.store.sync_drains().await
    }

    /// The releases (config vars) of the app whose id is `app_id`, kept in PostgreSQL for
    /// `paas up`: `local` (this node's `releases/{app}.json`) is imported when the cluster
    /// has none of the app's and none were imported before; with none at all, v1 "Initial
    /// release" with `initial` by `user` is made. A listener keeps them in step with the
    /// other nodes' (stopped with the node). Returns whether `local` was imported.
    pub async fn releases(
        &self,
        app_id: &str,
        local: &[stack::Release],
        initial: stack::ConfigVars,
        user: &str,
    ) -> Result<(Arc<PgReleases>, bool)> {
        let (releases, imported) =
            PgReleases::open(self.view.store.clone(), app_id, local, initial, user).await?;
        let listener = config::spawn_release_listener(releases.clone());
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
        Ok((releases, imported))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.view.id
    }

    /// The bus's counters on this node.
    pub fn bus_stats(&self) -> &BusStats {
        &self.view.bus
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterStatus for Cluster {
    fn not_ready(&self) -> Option<String> {
        if !self.view.nats_connected() {
            return Some("not connected to NATS".into());
        }
        if !self.view.store.healthy() {
            return Some("PostgreSQL is unreachable".into());
        }
        None
    }

    fn report(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send + '_>> {
        Box::pin(async move {
            let mut report = self.view.report().await;
            // Each app's rate budget on this node: --app-rate shared among the live nodes.
            report["app_rate_per_node"] = self.shared.router.node_rate().into();
            report
        })
    }
}

impl Component for Cluster {
    fn name(&self) -> &str {
        "cluster"
    }

    /// Publishes what the node's emitters wrote last (within half of `within`), then ends
    /// the node's tasks; its heartbeat row ages out of `alive`.
    fn stop(&self, within: Duration) -> StopFuture<'_> {
        Box::pin(async move {
            if let Some(outbox) = self.shared.router.outbox()
                && !outbox.flush(within / 2).await
            {
                tracing::warn!(
                    lines = outbox.pending(),
                    "stopping before the bus took the emitters' last lines"
                );
            }
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            for task in tasks {
                task.abort();
            }
        })
    }
}
