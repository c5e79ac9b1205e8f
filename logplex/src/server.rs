//! `Logplex`: the router with its listeners, started and stopped as one: the API (with
//! `POST /logs`), syslog over TCP, TLS and UDP, housekeeping, history restored at start and
//! saved at a clean stop. `paas logplex` runs it alone; `paas up` embeds the same.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::api::{ApiConfig, ApiState, serve_api};
use crate::component::Component;
use crate::history_log::{HistoryLog, HistoryLogConfig, HistoryLogStats};
use crate::ingest::{StreamConfig, serve_stream, serve_udp};
use crate::lock::{DataDirLock, LockError};
use crate::persist::{load_history, remove_history, save_history};
use crate::registry::App;
use crate::registry::{Registry, RegistryError, RegistryLimits};
use crate::router::{AppLifecycle, Router, RouterConfig, SeqFile, SeqFileError, seq_dir};
use crate::time::Timestamp;
use crate::tls::{TlsError, server_config};

/// Everything `Logplex::start` needs.
#[derive(Clone, Debug)]
pub struct LogplexConfig {
    /// The address every listener binds.
    pub bind: IpAddr,
    /// The API port (0: any free port).
    pub api_port: u16,
    /// The syslog TCP port; `None`: no listener.
    pub syslog_port: Option<u16>,
    /// The syslog TLS port; only with a certificate.
    pub syslog_tls_port: Option<u16>,
    /// The syslog UDP port; `None`: no listener.
    pub udp_port: Option<u16>,
    /// Where apps, tokens, keys and history are kept.
    pub data_dir: PathBuf,
    /// PEM certificate chain and key: the API serves HTTPS and syslog TLS listens.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// An operator key to accept (e.g. `PAAS_API_KEY`).
    pub operator_key: Option<String>,
    /// Tokens and keys an app may have.
    pub registry_limits: RegistryLimits,
    /// Channels.
    pub router: RouterConfig,
    /// The API.
    pub api: ApiConfig,
    /// The syslog stream listeners.
    pub stream: StreamConfig,
    /// How long a stop may take: open connections and tails get this long to finish.
    pub shutdown_timeout: Duration,
    /// The data directory's lock, when the caller took it first (`paas up` does, before it
    /// writes there); `Logplex::start` takes it otherwise.
    pub data_lock: Option<Arc<DataDirLock>>,
    /// History on disk as it happens (`history_log.rs`).
    pub history_log: HistoryLogConfig,
}

impl LogplexConfig {
    /// Defaults: loopback, Logplex's ports (API 8601, syslog 6001 TCP and UDP, TLS 6514).
    pub fn new(data_dir: PathBuf) -> Self {
        LogplexConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            api_port: 8601,
            syslog_port: Some(6001),
            syslog_tls_port: Some(6514),
            udp_port: Some(6001),
            data_dir,
            tls: None,
            operator_key: None,
            registry_limits: RegistryLimits::default(),
            router: RouterConfig::default(),
            api: ApiConfig::default(),
            stream: StreamConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
            data_lock: None,
            history_log: HistoryLogConfig::default(),
        }
    }
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A history file.
    #[error("history: {0}")]
    History(String),
    /// A seq file (each app's highest `seq`).
    #[error("seq: {0}")]
    Seq(#[from] SeqFileError),
    /// Another router holds the data directory, or it could not be locked.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where each listener ended up.
#[derive(Clone, Debug)]
pub struct Addresses {
    /// The API (`http://` or `https://` this).
    pub api: SocketAddr,
    /// syslog TCP.
    pub syslog: Option<SocketAddr>,
    /// syslog TLS.
    pub syslog_tls: Option<SocketAddr>,
    /// syslog UDP.
    pub udp: Option<SocketAddr>,
    /// Whether the API speaks HTTPS.
    pub api_tls: bool,
}

impl Addresses {
    /// The API's base URL.
    pub fn api_url(&self) -> String {
        let scheme = if self.api_tls { "https" } else { "http" };
        format!("{scheme}://{}", self.api)
    }
}

/// A running router.
#[derive(Debug)]
pub struct Logplex {
    router: Router,
    addresses: Addresses,
    new_operator_key: Option<String>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    api: JoinHandle<()>,
    api_state: Arc<ApiState>,
    config: LogplexConfig,
    components: Vec<Arc<dyn Component>>,
    history_log: Option<HistoryLog>,
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

impl Logplex {
    /// Opens the data directory, restores apps and history, binds every listener and starts
    /// serving.
    pub async fn start(mut config: LogplexConfig) -> Result<Logplex, StartError> {
        private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // Before anything in the directory is read or written: one router a data directory.
        if config.data_lock.is_none() {
            config.data_lock = Some(Arc::new(DataDirLock::acquire(&config.data_dir)?));
        }
        let mut registry = Registry::open(&config.data_dir)?;
        registry.set_limits(config.registry_limits);
        let mut new_operator_key = None;
        let changed = match &config.operator_key {
            Some(key) => registry.configure_operator_key(key),
            None if !registry.has_operator_key() => {
                new_operator_key = Some(registry.bootstrap_operator_key().secret);
                true
            }
            None => false,
        };
        if changed {
            registry.save()?;
        }
        let mut router_config = config.router.clone();
        router_config
            .seq_dir
            .get_or_insert_with(|| seq_dir(&config.data_dir));
        let router = Router::new(router_config, registry);
        restore(&router, &config.data_dir)?;
        // Every line accepted from here on is on disk within the sync interval.
        let history_log =
            HistoryLog::start(&router, config.data_dir.clone(), config.history_log.clone());
        router.on_app_deleted(Arc::new(HistoryFiles(config.data_dir.clone())));
        let tls = match &config.tls {
            Some((cert, key)) => Some((
                TlsAcceptor::from(server_config(cert, key, &[b"h2", b"http/1.1"])?),
                TlsAcceptor::from(server_config(cert, key, &[])?),
            )),
            None => None,
        };
        let (shutdown, rx) = watch::channel(false);
        let mut listeners = Vec::new();
        let at = |port: u16| SocketAddr::new(config.bind, port);

        let api_listener = bind_tcp("api", at(config.api_port)).await?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                what: "api",
                addr: at(config.api_port),
                source,
            })?;
        let mut addresses = Addresses {
            api: api_addr,
            syslog: None,
            syslog_tls: None,
            udp: None,
            api_tls: tls.is_some(),
        };
        if let Some(port) = config.syslog_port {
            let l = bind_tcp("syslog", at(port)).await?;
            addresses.syslog = l.local_addr().ok();
            listeners.push(tokio::spawn(serve_stream(
                l,
                router.clone(),
                None,
                config.stream.clone(),
                rx.clone(),
            )));
        }
        if let (Some(port), Some((_, syslog_tls))) = (config.syslog_tls_port, &tls) {
            let l = bind_tcp("syslog-tls", at(port)).await?;
            addresses.syslog_tls = l.local_addr().ok();
            listeners.push(tokio::spawn(serve_stream(
                l,
                router.clone(),
                Some(syslog_tls.clone()),
                config.stream.clone(),
                rx.clone(),
            )));
        }
        if let Some(port) = config.udp_port {
            let addr = at(port);
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    what: "udp",
                    addr,
                    source,
                })?;
            addresses.udp = socket.local_addr().ok();
            listeners.push(tokio::spawn(serve_udp(
                socket,
                router.clone(),
                config.stream.max_frame,
                rx.clone(),
            )));
        }
        let state = ApiState::new(router.clone(), config.api.clone(), tls.is_some());
        listeners.push(tokio::spawn(housekeeping(
            router.clone(),
            state.clone(),
            rx.clone(),
        )));
        state.register_metrics(history_log.stats().clone());
        let api = tokio::spawn(serve_api(
            api_listener,
            state.clone(),
            tls.map(|(api, _)| api),
            rx,
            config.shutdown_timeout,
        ));
        Ok(Logplex {
            router,
            addresses,
            new_operator_key,
            shutdown,
            listeners,
            api,
            api_state: state,
            config,
            components: Vec::new(),
            history_log: Some(history_log),
        })
    }

    /// The router, for in-process emitters and consumers.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The API, to serve more resources (`ApiState::register`).
    pub fn api(&self) -> &Arc<ApiState> {
        &self.api_state
    }

    /// What the history log wrote so far (`None` once stopped).
    pub fn history_log_stats(&self) -> Option<&Arc<HistoryLogStats>> {
        self.history_log.as_ref().map(HistoryLog::stats)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// Where the listeners are.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The operator key made at this start, when none existed (to be shown once).
    pub fn new_operator_key(&self) -> Option<&str> {
        self.new_operator_key.as_deref()
    }

    /// Adds a component (drains, the index, metrics) for `stop` to stop: after the channels
    /// close, in reverse order of adding.
    pub fn add_component(&mut self, component: Arc<dyn Component>) {
        self.components.push(component);
    }

    /// Stops within the configured bound: refuses new lines (ingest answers 503), stops
    /// accepting connections, publishes what connections had read, ends tails once they have
    /// sent what waits, and saves every app's history and last `seq`. Then, within the same
    /// bound again, every component stops, the last added first.
    pub async fn stop(mut self) {
        let deadline = tokio::time::Instant::now() + self.config.shutdown_timeout;
        let _ = self.shutdown.send(true);
        for l in std::mem::take(&mut self.listeners) {
            let _ = tokio::time::timeout_at(deadline, l).await;
        }
        // Connections publish what they read as they close.
        let stats = self.router.ingest_stats();
        while [&stats.tcp, &stats.tls]
            .iter()
            .any(|l| l.open.load(std::sync::atomic::Ordering::Relaxed) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.router.stop();
        let api = std::mem::replace(&mut self.api, tokio::spawn(async {}));
        let _ = tokio::time::timeout_at(deadline, api).await;
        // The log writes what waits and ends before the whole files are written over it.
        if let Some(log) = self.history_log.take() {
            let within = deadline.saturating_duration_since(tokio::time::Instant::now());
            log.stop(within.max(Duration::from_millis(500))).await;
        }
        self.save_history();
        self.stop_components().await;
    }

    async fn stop_components(&mut self) {
        let deadline = tokio::time::Instant::now() + self.config.shutdown_timeout;
        while let Some(component) = self.components.pop() {
            let within = deadline.saturating_duration_since(tokio::time::Instant::now());
            let stopped = tokio::time::timeout_at(deadline, component.stop(within)).await;
            if stopped.is_err() {
                tracing::warn!(
                    component = component.name(),
                    ?within,
                    "did not stop in time"
                );
            }
        }
    }

    fn save_history(&self) {
        let apps = self.router.apps();
        let live: std::collections::HashSet<&str> = apps.iter().map(|a| a.id.as_str()).collect();
        for app in &apps {
            let Some(channel) = self.router.channel(&app.name) else {
                continue;
            };
            if let Err(e) = save_history(&self.config.data_dir, &app.id, &channel.all_history()) {
                tracing::error!(app = %app.name, error = %e, "saving history");
            }
            if let Err(e) = channel.save_seq() {
                tracing::error!(app = %app.name, error = %e, "saving the last seq");
            }
        }
        if let Ok(dir) = std::fs::read_dir(crate::persist::history_dir(&self.config.data_dir)) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(app) = name.strip_suffix(".log")
                    && !live.contains(app)
                {
                    remove_history(&self.config.data_dir, app);
                }
            }
        }
    }
}

/// Makes the data directory, or keeps the one there, readable by its owner only (0700): it
/// holds tenants' lines and credentials.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Deletes an app's saved history and seq file with the app.
#[derive(Debug)]
struct HistoryFiles(PathBuf);

impl AppLifecycle for HistoryFiles {
    fn app_deleted(&self, app: &App) {
        remove_history(&self.0, &app.id);
        remove_history(&self.0, &app.name);
        SeqFile::new(&seq_dir(&self.0), &app.id).remove();
    }
}

/// Restores every app's history and highest `seq` from the data directory, so that numbering
/// goes on where it stopped (or, after a crash, past every number it may have used).
pub(crate) fn restore(router: &Router, data_dir: &std::path::Path) -> Result<(), StartError> {
    for app in router.apps() {
        let Some(channel) = router.channel(&app.name) else {
            continue;
        };
        let loaded = load_history(data_dir, channel.app(), &app.id).map_err(StartError::History)?;
        let used = SeqFile::new(&seq_dir(data_dir), &app.id).read()?;
        // The log may hold more than history between compactions: the newest are kept.
        let keep = router.config().history_lines;
        channel.restore(
            &loaded.lines[loaded.lines.len().saturating_sub(keep)..],
            used,
        );
        if let Some(damaged) = loaded.damaged {
            // The router starts with what read; the app's stream and the log say what did not.
            tracing::error!(
                app = %app.name,
                kept = loaded.lines.len(),
                moved_to = %damaged.moved_to.display(),
                error = %damaged.error,
                "history file damaged; kept the lines before the damage and moved the file aside"
            );
            let moved_to = damaged
                .moved_to
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            channel.emit(crate::platform::PlatformEvent::HistoryDamaged {
                kept: loaded.lines.len() as u64,
                moved_to,
                error: damaged.error,
            });
        }
    }
    Ok(())
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

async fn housekeeping(router: Router, api: Arc<ApiState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::server::stopped(&mut shutdown) => return,
        }
        router.tick(Timestamp::now());
        api.expire_sessions();
    }
}
