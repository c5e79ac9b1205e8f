//! `paas logplex`: the router alone (listeners and API), in the foreground until SIGTERM or
//! Ctrl-C, then a clean stop within `--shutdown-timeout`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use logplex::{Logplex, LogplexConfig};

use crate::commands::client::{Credentials, credentials_path, default_data_dir};

/// The router's flags; `paas up` takes the same.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// Address every listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// API port (HTTP, with `POST /logs` for ingest); 0 picks a free one.
    #[arg(long, default_value_t = 8601)]
    api_port: u16,
    /// syslog TCP port (RFC 6587); 0 picks a free one.
    #[arg(long, default_value_t = 6001)]
    syslog_port: u16,
    /// syslog TLS port, when a certificate is given; 0 picks a free one.
    #[arg(long, default_value_t = 6514)]
    syslog_tls_port: u16,
    /// syslog UDP port; 0 picks a free one.
    #[arg(long, default_value_t = 6001)]
    udp_port: u16,
    /// Where apps, tokens, keys and history are kept (default: PAAS_DATA_DIR, then
    /// ~/.local/share/paas).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PEM certificate chain: the API serves HTTPS and syslog TLS listens.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Lines of history per app.
    #[arg(long, default_value_t = logplex::DEFAULT_HISTORY_LINES)]
    history_lines: usize,
    /// Milliseconds at most between a line's acceptance and its history's fsync (history is
    /// appended to disk as it comes, so a crash loses at most this much).
    #[arg(long, default_value_t = 100)]
    history_sync_ms: u64,
    /// Lines the history writer's queue holds when the disk falls behind; past it the
    /// oldest are dropped from the on-disk copy (counted as
    /// logplex_lines_dropped_total{consumer="history"}; a clean stop still saves them).
    #[arg(long, default_value_t = 65_536)]
    history_queue: usize,
    /// History files the writer keeps open at once (the least recently written is closed).
    #[arg(long, default_value_t = 256)]
    history_open_files: usize,
    /// Lines a tail session buffers for a slow reader before dropping (L11).
    #[arg(long, default_value_t = logplex::DEFAULT_TAIL_BUFFER)]
    tail_buffer: usize,
    /// Tail sessions one app may have open.
    #[arg(long, default_value_t = 20)]
    max_tails: usize,
    /// Lines per second one app may send; the excess is refused and reported (L12). 0: no limit.
    #[arg(long, default_value_t = 1_000_000)]
    app_rate: u64,
    /// Largest syslog frame, in bytes.
    #[arg(long, default_value_t = logplex::DEFAULT_MAX_FRAME)]
    max_frame: usize,
    /// syslog connections open at once (per listener); more are closed at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// syslog connections one address (IPv6: one /64) may have open at once, per listener;
    /// more are closed at once.
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Seconds a syslog connection may go without sending a frame with a valid token, from its
    /// start (after the TLS handshake); then it is closed.
    #[arg(long, default_value_t = 10.0)]
    syslog_auth_timeout: f64,
    /// Seconds a syslog connection may stall inside a frame before it is closed.
    #[arg(long, default_value_t = 30.0)]
    frame_timeout: f64,
    /// Seconds an idle syslog connection is kept.
    #[arg(long, default_value_t = 600.0)]
    idle_timeout: f64,
    /// Seconds a stop may take: connections and tails get this long to finish, then drains get
    /// as long again to deliver what they buffered.
    #[arg(long, default_value_t = 10.0)]
    shutdown_timeout: f64,
    /// Seconds between keep-alives on a quiet tail (SSE).
    #[arg(long, default_value_t = 15.0)]
    keepalive: f64,
    /// Seconds an API request's headers may take to arrive (slow clients are cut off).
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds an API request's body (`POST /logs`) may take to arrive in full; then 408.
    #[arg(long, default_value_t = 30.0)]
    body_timeout: f64,
    /// Megabytes of `POST /logs` bodies the API reads at once, over every connection; a body
    /// that does not fit gets 503 with Retry-After (one larger than all of it, 413).
    #[arg(long, default_value_t = 64)]
    inflight_body_mb: usize,
    /// Seconds an API connection with no request in progress is kept (a log-session stream
    /// is in progress, however quiet).
    #[arg(long, default_value_t = 60.0)]
    api_idle_timeout: f64,
    /// API connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 1024)]
    api_max_connections: usize,
    /// The API's URL as clients reach it (e.g. https://logs.example.com behind a proxy), which
    /// log-session URLs are built from; default: the address the client connected to.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// A PEM file of CA certificates drains trust beside the public roots (repeatable).
    #[arg(long = "drain-ca", value_name = "FILE")]
    drain_ca: Vec<PathBuf>,
    /// Allow `http://` drains to any host (otherwise only to loopback).
    #[arg(long)]
    drain_allow_http: bool,
    /// Let drains reach this range (CIDR such as 10.1.0.0/16, or one address; repeatable).
    /// Otherwise drains may not lead to loopback, private (10/8, 172.16/12, 192.168/16),
    /// CGNAT, link-local, unique-local, multicast, broadcast, unspecified or reserved
    /// addresses, however written, checked when added and on what a name resolves to at every
    /// connect. `paas up` always allows loopback (127.0.0.0/8, ::1).
    #[arg(long = "drain-allow-net", value_name = "CIDR")]
    drain_allow_net: Vec<drains::Cidr>,
    /// Lines a drain buffers while its receiver is slow or down, before dropping (L10).
    #[arg(long, default_value_t = 1024)]
    drain_buffer: usize,
    /// Megabytes a durable drain may keep on disk before dropping its oldest lines (L10).
    #[arg(long, default_value_t = 256)]
    durable_budget_mb: u64,
    /// Kilobytes in one HTTPS drain batch at most (Logplex: 100).
    #[arg(long, default_value_t = 100)]
    drain_batch_kb: usize,
    /// Milliseconds an HTTPS drain batch waits to fill once it has a line.
    #[arg(long, default_value_t = 50)]
    drain_batch_wait_ms: u64,
    /// Attempts at one HTTPS batch (429, 5xx, timeouts) before it is dropped and counted.
    #[arg(long, default_value_t = 5)]
    drain_attempts: u32,
    /// Drains one app may have.
    #[arg(long, default_value_t = 10)]
    max_drains: usize,
    /// Seconds a drain may take to connect, and to send one batch.
    #[arg(long, default_value_t = 5.0)]
    drain_timeout: f64,
    /// Seconds a log-session URL stays valid.
    #[arg(long, default_value_t = 300.0)]
    session_ttl: f64,
    /// Ingest tokens one app may have.
    #[arg(long, default_value_t = 50)]
    max_tokens_per_app: usize,
    /// API keys one app may have.
    #[arg(long, default_value_t = 20)]
    max_keys_per_app: usize,
    /// API writes (creating tokens, keys, drains, sessions, …) one app key may make a second;
    /// more are refused with 429 and Retry-After (operator keys are not limited). 0: no limit.
    #[arg(long, default_value_t = 10)]
    api_write_rate: u32,
    /// API writes one app key may make in a burst, above --api-write-rate.
    #[arg(long, default_value_t = 50)]
    api_write_burst: u32,
    /// Log sessions one app may have that have not expired; more get 429.
    #[arg(long, default_value_t = 100)]
    max_sessions_per_app: usize,
    /// Bytes a log-session filter (a logfmt predicate) may have; a longer one gets 422.
    #[arg(long, default_value_t = 4096)]
    max_filter_bytes: usize,
    /// How long an app's lines are kept for `paas query`: a duration (7d, 12h).
    #[arg(long, default_value = "7d")]
    query_retention: String,
    /// Megabytes of lines one app keeps for `paas query` at most (the oldest go first).
    #[arg(long, default_value_t = 1024)]
    query_max_mb_per_app: u64,
    /// How long lines wait at most before the indexer writes them in a block (a full block,
    /// 65,536 lines, is written at once); until then queries read them from the spool.
    #[arg(long, default_value = "30s")]
    query_index_flush: String,
    /// Dictionary values one query may test while it is planned; past it, its terms are
    /// answered from the kept lines (slower, never wrong).
    #[arg(long, default_value_t = 20_000_000)]
    query_max_value_tests: usize,
    /// Megabytes of decoded index columns cached in memory for queries, over every app.
    #[arg(long, default_value_t = 256)]
    query_cache_mb: usize,
    /// Megabytes one app's index dictionaries (each column's distinct values, kept in memory)
    /// take at most; past it, new values are read from the kept lines.
    #[arg(long, default_value_t = 128)]
    query_dict_mb: u64,
    /// In a cluster: the matching lines one node ships for a query at most; past it the
    /// answer is partial and says so (paas_query_partial_answers_total).
    #[arg(long, default_value_t = 100_000)]
    query_cluster_max_lines: usize,
    /// In a cluster: megabytes of one node's matching lines read for a query at most.
    #[arg(long, default_value_t = 64)]
    query_cluster_max_mb: usize,
    /// In a cluster: seconds another node has to answer a query's gathering; past it the
    /// answer is partial and names the node.
    #[arg(long, default_value_t = 5.0)]
    query_peer_timeout: f64,
    /// Extract metrics from the stream (router RED, l2met) for /metrics and `paas metrics`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    metrics_extract: bool,
    /// Extracted series one app may have over every metric; more are dropped and counted in
    /// paas_metrics_dropped_series_total.
    #[arg(long, default_value_t = 1000)]
    metrics_max_series_per_app: usize,
    /// Extracted series one app may have of one metric (label sets); more are dropped and
    /// counted.
    #[arg(long, default_value_t = 100)]
    metrics_max_series_per_metric: usize,
    /// Seconds a unique# metric counts distinct values over.
    #[arg(long, default_value_t = 60.0)]
    metrics_unique_interval: f64,
    /// Join a cluster: NATS JetStream's URL (`nats://127.0.0.1:4222`), the log bus. Needs the
    /// configuration database too (`--database-url` on `paas logplex`,
    /// `--cluster-database-url` on both).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The cluster's configuration database (`postgres://user@host/db`); needs `--nats`.
    #[arg(long, value_name = "URL", requires = "nats")]
    cluster_database_url: Option<String>,
    /// This node's name in `GET /cluster` (default: `node-` and 8 random hex digits, made at
    /// the first start and kept in the data directory's `node-id`).
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// The JetStream stream of the log bus.
    #[arg(long, default_value = "PAAS_LOGS")]
    nats_stream: String,
    /// The bus's subject prefix: app ID's lines go to `PREFIX.logs.ID`.
    #[arg(long, default_value = "paas")]
    nats_prefix: String,
    /// Megabytes the stream keeps at most (the oldest go first).
    #[arg(long, default_value_t = 1024)]
    bus_max_mb: i64,
    /// How long the stream keeps a line at most (`24h`, `30m`).
    #[arg(long, default_value = "24h")]
    bus_max_age: String,
    /// Seconds a publish waits for JetStream's acknowledgement before the sender is refused.
    #[arg(long, default_value_t = 5.0)]
    bus_ack_timeout: f64,
    /// Lines the stack's own output (router lines, dyno output) may have waiting for the bus
    /// at most; past it a line is refused and counted (logplex_cluster_bus_refused_lines_total).
    #[arg(long, default_value_t = logplex::OUTBOX_CAPACITY)]
    bus_outbox_lines: usize,
    /// Seconds a batch of a drain, or of the shared metrics and spool consumers, may stay
    /// unacknowledged on one node before JetStream hands it to another (a node that died
    /// mid-batch).
    #[arg(long, default_value_t = 30.0)]
    drain_ack_wait: f64,
}

/// A `--public-url`: `http://` or `https://` and a host, with no trailing `/`.
fn public_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("--public-url {url:?} must start with http:// or https://"))?;
    let ok = !rest.trim_end_matches('/').is_empty()
        && url.bytes().all(|b| b.is_ascii_graphic())
        && !url.contains(['?', '#']);
    anyhow::ensure!(
        ok,
        "--public-url {url:?} must be a URL without query or fragment"
    );
    Ok(url.trim_end_matches('/').to_owned())
}

pub fn secs(s: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("--{flag} must be a number of seconds"))
}

impl RouterArgs {
    /// The certificate and key given, if any.
    pub fn tls(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }

    /// How drains run.
    pub fn drains(&self) -> anyhow::Result<drains::DrainsConfig> {
        let mut c = drains::DrainsConfig {
            max_per_app: self.max_drains,
            allow_http: self.drain_allow_http,
            extra_ca: self.drain_ca.clone(),
            policy: drains::AddressPolicy::allowing(self.drain_allow_net.iter().copied()),
            ..Default::default()
        };
        c.delivery.buffer_lines = self.drain_buffer;
        c.delivery.batch_bytes = self.drain_batch_kb.max(1) * 1024;
        c.delivery.batch_wait = std::time::Duration::from_millis(self.drain_batch_wait_ms);
        c.delivery.attempts = self.drain_attempts.max(1);
        c.durable_budget = self.durable_budget_mb.saturating_mul(1 << 20);
        c.delivery.connect_timeout = secs(self.drain_timeout, "drain-timeout")?;
        c.delivery.send_timeout = secs(self.drain_timeout, "drain-timeout")?;
        Ok(c)
    }

    /// How metric extraction runs.
    pub fn metrics(&self) -> anyhow::Result<query::MetricsConfig> {
        Ok(query::MetricsConfig {
            enabled: self.metrics_extract,
            limits: query::MetricsLimits {
                max_series_per_app: self.metrics_max_series_per_app,
                max_series_per_metric: self.metrics_max_series_per_metric,
                unique_interval: secs(self.metrics_unique_interval, "metrics-unique-interval")?,
            },
            ..query::MetricsConfig::default()
        })
    }

    /// What the query engine keeps, and in what memory.
    pub fn query_engine(&self) -> anyhow::Result<query::EngineConfig> {
        Ok(query::EngineConfig {
            spool: self.spool()?,
            index: query::IndexConfig {
                flush_after: secs(
                    logfmt::parse_duration(&self.query_index_flush)
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .with_context(|| {
                            format!(
                                "--query-index-flush {:?} is not a duration (30s, 1m)",
                                self.query_index_flush
                            )
                        })?,
                    "query-index-flush",
                )?,
                cache_bytes: self.query_cache_mb.saturating_mul(1 << 20),
                max_value_tests: self.query_max_value_tests,
                max_dict_bytes: self.query_dict_mb.saturating_mul(1 << 20),
                ..Default::default()
            },
            service: query::ServiceConfig {
                max_cluster_lines: self.query_cluster_max_lines.max(1),
                max_cluster_bytes: self.query_cluster_max_mb.max(1).saturating_mul(1 << 20),
                peer_timeout: secs(self.query_peer_timeout, "query-peer-timeout")?,
                ..query::ServiceConfig::default()
            },
        })
    }

    /// What the query engine's spool keeps.
    fn spool(&self) -> anyhow::Result<query::SpoolConfig> {
        let retention = match self.query_retention.strip_suffix('d') {
            Some(days) => days.parse::<f64>().ok().map(|d| d * 86_400.0),
            None => logfmt::parse_duration(&self.query_retention),
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .with_context(|| {
            format!(
                "--query-retention {:?} is not a duration (7d, 12h)",
                self.query_retention
            )
        })?;
        Ok(query::SpoolConfig {
            max_age: secs(retention, "query-retention")?,
            max_bytes_per_app: self.query_max_mb_per_app.saturating_mul(1 << 20),
            ..Default::default()
        })
    }

    /// The cluster to join, when `--nats` (and its database) are given.
    pub fn cluster(&self) -> anyhow::Result<Option<cluster::ClusterConfig>> {
        let (nats, db) = match (&self.nats, &self.cluster_database_url) {
            (Some(nats), Some(db)) => (nats, db),
            (None, _) => return Ok(None),
            (Some(_), None) => anyhow::bail!(
                "--nats needs the cluster's configuration database: --database-url (paas logplex) or --cluster-database-url"
            ),
        };
        let mut c = cluster::ClusterConfig::new(nats, db);
        // Without --node-id, the data directory's own (`start`): a node restarted on its
        // data directory is the same node, whose share of the spool is still there.
        c.node_id = self.node_id.clone().unwrap_or_default();
        c.bus.stream = self.nats_stream.clone();
        c.bus.prefix = self.nats_prefix.clone();
        anyhow::ensure!(self.bus_max_mb > 0, "--bus-max-mb must be at least 1");
        c.bus.max_bytes = self.bus_max_mb.saturating_mul(1 << 20);
        c.bus.max_age = secs(
            logfmt::parse_duration(&self.bus_max_age)
                .filter(|s| s.is_finite() && *s > 0.0)
                .with_context(|| {
                    format!(
                        "--bus-max-age {:?} is not a duration (24h, 30m)",
                        self.bus_max_age
                    )
                })?,
            "bus-max-age",
        )?;
        c.bus.ack_timeout = secs(self.bus_ack_timeout, "bus-ack-timeout")?;
        c.bus.outbox_lines = self.bus_outbox_lines.max(1);
        c.bus.drain_ack_wait = secs(self.drain_ack_wait, "drain-ack-wait")?;
        c.operator_key = std::env::var("PAAS_API_KEY").ok().filter(|k| !k.is_empty());
        Ok(Some(c))
    }

    /// `paas logplex --database-url`: the cluster's configuration database.
    fn set_cluster_database(&mut self, url: Option<String>) {
        if url.is_some() {
            self.cluster_database_url = url;
        }
    }

    pub fn config(&self) -> anyhow::Result<LogplexConfig> {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        let mut c = LogplexConfig::new(data_dir);
        c.bind = self.bind;
        c.api_port = self.api_port;
        c.syslog_port = Some(self.syslog_port);
        c.syslog_tls_port = Some(self.syslog_tls_port);
        c.udp_port = Some(self.udp_port);
        c.tls = self.tls_cert.clone().zip(self.tls_key.clone());
        c.operator_key = std::env::var("PAAS_API_KEY").ok().filter(|k| !k.is_empty());
        c.router.history_lines = self.history_lines;
        c.history_log.sync_interval = Duration::from_millis(self.history_sync_ms.max(1));
        c.history_log.capacity = self.history_queue.max(1);
        c.history_log.max_open_files = self.history_open_files.max(1);
        c.router.tail_buffer = self.tail_buffer;
        c.router.max_tails_per_app = self.max_tails;
        c.router.app_rate = self.app_rate;
        c.stream.max_frame = self.max_frame;
        c.api.max_frame = self.max_frame;
        c.stream.max_connections = self.max_connections;
        c.stream.max_connections_per_ip = self.max_connections_per_ip;
        c.stream.auth_timeout = secs(self.syslog_auth_timeout, "syslog-auth-timeout")?;
        c.stream.frame_timeout = secs(self.frame_timeout, "frame-timeout")?;
        c.stream.idle_timeout = secs(self.idle_timeout, "idle-timeout")?;
        c.shutdown_timeout = secs(self.shutdown_timeout, "shutdown-timeout")?;
        c.api.keepalive = secs(self.keepalive, "keepalive")?;
        c.api.session_ttl = secs(self.session_ttl, "session-ttl")?;
        c.api.header_timeout = secs(self.header_timeout, "header-timeout")?;
        c.api.write_rate = self.api_write_rate;
        c.api.write_burst = self.api_write_burst;
        c.registry_limits = logplex::RegistryLimits {
            tokens_per_app: self.max_tokens_per_app,
            keys_per_app: self.max_keys_per_app,
        };
        c.api.body_timeout = secs(self.body_timeout, "body-timeout")?;
        c.api.inflight_body_bytes = self.inflight_body_mb.saturating_mul(1 << 20);
        c.api.idle_timeout = secs(self.api_idle_timeout, "api-idle-timeout")?;
        c.api.max_connections = self.api_max_connections;
        c.api.max_sessions_per_app = self.max_sessions_per_app;
        c.api.max_filter_bytes = self.max_filter_bytes;
        c.api.public_url = self.public_url.as_deref().map(public_url).transpose()?;
        Ok(c)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    router: RouterArgs,
    /// The cluster's configuration database (same as `--cluster-database-url`); needs `--nats`.
    #[arg(
        long,
        value_name = "URL",
        requires = "nats",
        conflicts_with = "cluster_database_url"
    )]
    database_url: Option<String>,
}

/// The status page's components the router itself has: ingest (up while it accepts lines),
/// the API (up while it answers, which serving the page shows), and the drains as a whole
/// (degraded when any app's drain is).
fn status_page(
    logplex: &Logplex,
    drains: &drains::Drains,
) -> std::sync::Arc<dashboard::StatusPage> {
    use dashboard::Health;
    let status = dashboard::StatusPage::new();
    let router = logplex.router().clone();
    status.add("router ingest", move || {
        if router.is_stopping() {
            Health::Degraded
        } else {
            Health::Up
        }
    });
    status.add("api", || Health::Up);
    let (router, drains) = (logplex.router().clone(), drains.clone());
    status.add("drains", move || {
        let degraded = router.apps().iter().any(|app| {
            drains
                .list(&app.name)
                .iter()
                .any(|(_, health)| health.as_ref().is_some_and(|h| h.degraded))
        });
        if degraded {
            Health::Degraded
        } else {
            Health::Up
        }
    });
    status
}

/// Starts the router with its drains (a component it stops after its channels close), the
/// query engine, metrics, the Loki API, the dashboard and the status page (returned, so that
/// `paas up` adds its parts' components), prints where it listens (once everything serves,
/// each line starting with `who`), and writes the credentials file (with `app`, the app local
/// commands act on by default). With `cluster`, the node it joined is returned too.
pub async fn start(
    config: LogplexConfig,
    drains: drains::DrainsConfig,
    query: query::EngineConfig,
    metrics: query::MetricsConfig,
    cluster: Option<cluster::ClusterConfig>,
    who: &str,
    app: Option<&str>,
) -> anyhow::Result<Started> {
    let data_dir = config.data_dir.clone();
    let mut config = config;
    // A node's listeners open before it joins: until then it accepts no line.
    config.router.awaits_bus = cluster.is_some();
    let mut logplex = Logplex::start(config).await?;
    let mut drains = drains;
    let node = match cluster {
        Some(mut c) => {
            if c.node_id.is_empty() {
                c.node_id = stable_node_id(&data_dir)?;
            }
            c.api_url = logplex.addresses().api_url();
            c.bootstrap_key = logplex.new_operator_key().map(str::to_owned);
            let node = std::sync::Arc::new(
                cluster::Cluster::join(logplex.router(), c)
                    .await
                    .context("joining the cluster")?,
            );
            drains.shared = Some(node.shared_delivery());
            logplex.api().set_cluster(node.clone());
            logplex.api().register_metrics(node.clone());
            logplex.add_component(node.clone());
            Some(node)
        }
        None => None,
    };
    let drains = drains::Drains::start(logplex.router().clone(), Some(logplex.data_dir()), drains)?;
    let node_peers = node.as_ref().map(|n| n.query_peers());
    if let Some(node) = &node {
        node.attach_drains(drains.clone())
            .await
            .context("reading the cluster's drains")?;
        println!("{who}: cluster node {} joined", node.node_id());
    }
    logplex
        .api()
        .register("log-drains", std::sync::Arc::new(drains.clone()));
    logplex.api().register_metrics(drains.metrics());
    let status = status_page(&logplex, &drains);
    logplex.add_component(std::sync::Arc::new(drains));
    let engine = query::QueryEngine::start(logplex.router(), &data_dir, query)?;
    for (name, resource) in engine.service().resources() {
        logplex.api().register(name, resource);
    }
    if let Some(node) = &node_peers {
        // Each node's spool holds its share of the lines: queries ask every node.
        engine.service().set_peers(node.clone());
        logplex.api().mount(
            query::PEER_PATH,
            std::sync::Arc::new(query::PeerLinesResource::new(engine.service().clone())),
        );
    }
    logplex.api().register_metrics(engine.clone());
    logplex.api().mount(
        "loki",
        std::sync::Arc::new(query::LokiApi::new(engine.service().clone())),
    );
    logplex.add_component(engine);
    logplex
        .api()
        .mount("dashboard", std::sync::Arc::new(dashboard::Dashboard));
    logplex.api().mount("status", status.clone());
    logplex.api().mount("status.json", status.clone());
    if metrics.enabled {
        let metrics = query::MetricsEngine::start(logplex.router(), metrics);
        let resource = std::sync::Arc::new(query::MetricsResource(metrics.clone()));
        logplex.api().register("metrics", resource);
        logplex.api().register_metrics(metrics.clone());
        logplex.add_component(metrics);
    }
    let a = logplex.addresses();
    // The credentials are on disk before the router says it is up: whoever reads them on
    // that line (a script, a test) finds them.
    let key = match logplex.new_operator_key() {
        Some(k) => Some(k.to_owned()),
        None => std::env::var("PAAS_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .or_else(|| {
                std::fs::read(credentials_path(&data_dir))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Credentials>(&b).ok())
                    .map(|c| c.api_key)
            }),
    };
    if let Some(api_key) = key {
        write_credentials(
            &data_dir,
            &Credentials {
                api_url: a.api_url(),
                api_key,
                app: app.map(str::to_owned),
            },
        )?;
    }
    println!("{who}: api on {} (POST /logs for ingest)", a.api_url());
    if let Some(s) = a.syslog {
        println!("{who}: syslog tcp on {s}");
    }
    if let Some(s) = a.syslog_tls {
        println!("{who}: syslog tls on {s}");
    }
    if let Some(s) = a.udp {
        println!("{who}: syslog udp on {s}");
    }
    println!("{who}: data in {}", data_dir.display());
    if let Some(key) = logplex.new_operator_key() {
        println!(
            "{who}: operator API key (shown once, also in {}): {key}",
            credentials_path(&data_dir).display()
        );
    }
    Ok(Started {
        logplex,
        status,
        node,
    })
}

/// What `start` started.
pub struct Started {
    /// The router.
    pub logplex: Logplex,
    /// The status page, to which `paas up` adds its parts.
    pub status: std::sync::Arc<dashboard::StatusPage>,
    /// The cluster node, when it joined one.
    pub node: Option<std::sync::Arc<cluster::Cluster>>,
}

/// The node id kept in `data_dir/node-id`, made (random) at the first start in a cluster.
fn stable_node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let id = cluster::ClusterConfig::new("", "").node_id;
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

fn write_credentials(data_dir: &std::path::Path, c: &Credentials) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = credentials_path(data_dir);
    let tmp = data_dir.join(".credentials.json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(&serde_json::to_vec_pretty(c)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT), listened for from start.
pub struct Termination {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Termination {
    /// Listens for SIGTERM and SIGINT from now on (call within the runtime, before the
    /// router says it is up: listening takes a file descriptor, which a process short of
    /// them later could not get).
    pub fn listen() -> anyhow::Result<Termination> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Termination {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either: which came.
    pub async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "interrupt",
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut router = args.router;
    router.set_cluster_database(args.database_url);
    crate::commands::runtime()?.block_on(async {
        let mut termination = Termination::listen()?;
        let config = router.config()?;
        let Started { logplex, .. } = start(
            config,
            router.drains()?,
            router.query_engine()?,
            router.metrics()?,
            router.cluster()?,
            "paas logplex",
            None,
        )
        .await?;
        let why = termination.wait().await;
        println!("paas logplex: {why}, stopping");
        // The router closes its channels; then its components (the drains send what waits),
        // within the bound again.
        logplex.stop().await;
        println!("paas logplex: stopped");
        Ok(ExitCode::SUCCESS)
    })
}
