//! `Drains`: every drain's task, started from the store at start-up and as drains are added,
//! each subscribed to its app's channel with its own bounded buffer, so a dead, slow or
//! black-holed drain never slows ingest, tails or the other drains. Where a drain may lead is
//! the address policy's to say: when it is added, when a stored one starts, and (through its
//! `Dialer`) at every connect.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logplex::{AppLifecycle, LineFilter, LineQueue, Router, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::delivery::{Ctx, DeliveryConfig};
use crate::dial::{Dialer, SystemResolver};
use crate::durable::DurableQueue;
use crate::feed::{Encode, Feed, Spool};
use crate::health::{Health, HealthReport};
use crate::metrics::{DrainMetrics, Stage};
use crate::policy::{AddressPolicy, Refusal};
use crate::store::{Drain, DrainStore, StoreError};
use crate::tls::{CaError, client_config};
use crate::url::{DrainUrl, Scheme, UrlError};

/// Lines a durable drain holds in memory on their way to disk, at least.
const DURABLE_STAGING_LINES: usize = 65_536;

/// How drains are run.
#[derive(Clone, Debug)]
pub struct DrainsConfig {
    /// Drains one app may have (Logplex: 6; Heroku today: 10).
    pub max_per_app: usize,
    /// Whether `http://` drains may point anywhere, not only to loopback.
    pub allow_http: bool,
    /// CA certificates to trust beside the public roots (PEM files).
    pub extra_ca: Vec<std::path::PathBuf>,
    /// Delivery limits.
    pub delivery: DeliveryConfig,
    /// Bytes a durable drain may keep on disk before dropping its oldest lines.
    pub durable_budget: u64,
    /// Where drains may lead: not to internal addresses, but for the ranges opened.
    pub policy: AddressPolicy,
    /// A cluster's shared delivery: every drain fed from a queue all nodes share, and the
    /// drains kept by the cluster (`None`: this router's own, as always).
    pub shared: Option<Arc<dyn crate::shared::SharedDelivery>>,
}

impl Default for DrainsConfig {
    fn default() -> Self {
        DrainsConfig {
            max_per_app: 10,
            allow_http: false,
            extra_ca: Vec::new(),
            delivery: DeliveryConfig::default(),
            durable_budget: 256 << 20,
            policy: AddressPolicy::default(),
            shared: None,
        }
    }
}

/// Why a drain could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The URL is not a drain URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The address policy refuses where the URL leads.
    #[error("{url:?} is not an allowed drain destination: {refusal}.")]
    Refused {
        /// The URL.
        url: String,
        /// Why.
        refusal: Refusal,
    },
    /// This app already drains to this URL.
    #[error("This app already has a drain to {0}.")]
    Duplicate(String),
    /// The app has as many drains as allowed.
    #[error("You have already added the maximum number of drains allowed ({0}).")]
    TooMany(usize),
    /// No such app, or no such drain.
    #[error("Couldn't find that {0}.")]
    NotFound(&'static str),
    /// The cluster's store of drains cannot be reached: nothing changed.
    #[error(
        "The cluster's configuration store is unavailable ({0}); nothing was changed, try again."
    )]
    Unavailable(String),
    /// Durable drains need a data directory.
    #[error("Durable drains need the router to have a data directory.")]
    DurableUnavailable,
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why drains could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--drain-ca` file.
    #[error(transparent)]
    Ca(#[from] CaError),
}

#[derive(Debug)]
struct Running {
    health: Arc<Health>,
    queue: Arc<LineQueue>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    router: Router,
    config: DrainsConfig,
    tls: Arc<rustls::ClientConfig>,
    http_tls: Arc<rustls::ClientConfig>,
    store: Mutex<DrainStore>,
    data_dir: Option<std::path::PathBuf>,
    running: Mutex<HashMap<String, Running>>,
    stopping: watch::Sender<bool>,
    dialer: Dialer,
    metrics: Arc<DrainMetrics>,
}

/// Every drain of every app. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Drains {
    inner: Arc<Inner>,
}

impl Drains {
    /// Opens the store (in `data_dir`, or in memory) and starts every drain of a live app.
    pub fn start(
        router: Router,
        data_dir: Option<&Path>,
        config: DrainsConfig,
    ) -> Result<Drains, StartError> {
        let store = match data_dir {
            Some(dir) => DrainStore::open(dir)?,
            None => DrainStore::in_memory(),
        };
        let cas: Vec<&Path> = config.extra_ca.iter().map(|p| p.as_path()).collect();
        let tls = client_config(&cas, &[])?;
        let http_tls = client_config(&cas, &[b"http/1.1"])?;
        let metrics = Arc::new(DrainMetrics::default());
        let dialer = Dialer::new(
            Arc::new(config.policy.clone()),
            Arc::new(SystemResolver),
            metrics.clone(),
        );
        let drains = Drains {
            inner: Arc::new(Inner {
                router,
                config,
                tls,
                http_tls,
                store: Mutex::new(store),
                data_dir: data_dir.map(Path::to_owned),
                running: Mutex::new(HashMap::new()),
                stopping: watch::channel(false).0,
                dialer,
                metrics,
            }),
        };
        let existing = drains.adopt_stored()?;
        for drain in existing {
            drains.launch(drain);
        }
        let hook: Arc<dyn AppLifecycle> = Arc::new(drains.clone());
        drains.inner.router.on_app_deleted(hook);
        Ok(drains)
    }

    /// The stored drains of live apps. A drain from before apps had ids in the file takes its
    /// app's id by name; one whose app is gone is removed with its disk queue, so that an app
    /// made later under the same name never inherits it.
    fn adopt_stored(&self) -> Result<Vec<Drain>, StoreError> {
        let router = &self.inner.router;
        let gone = self.store().retain(|d| {
            if d.app_id.is_empty()
                && let Some(app) = router.app(&d.app)
            {
                d.app_id = app.id;
            }
            router.app_by_id(&d.app_id).is_some()
        })?;
        for drain in gone {
            tracing::info!(drain = %drain.id, app = %drain.app, "drain of a deleted app removed");
            self.forget_disk(&drain);
        }
        Ok(self.store().all().cloned().collect())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, DrainStore> {
        self.inner.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> Arc<DrainMetrics> {
        self.inner.metrics.clone()
    }

    /// Whether the address policy lets a drain lead to `url` (as far as can be told before
    /// resolving it); a refusal is counted at `at`.
    fn check_destination(&self, url: &DrainUrl, at: Stage) -> Result<(), DrainError> {
        self.inner
            .config
            .policy
            .check_host(url.target())
            .map_err(|refusal| {
                self.inner
                    .metrics
                    .destination_refused(at, &url.raw, &refusal);
                DrainError::Refused {
                    url: url.raw.clone(),
                    refusal,
                }
            })
    }

    /// Starts a drain's task, if its app is live; a stored drain whose URL no longer reads or
    /// leads where the policy refuses is kept but not delivered to, and says why.
    fn launch(&self, drain: Drain) {
        let Some(channel) = self.inner.router.channel_by_id(&drain.app_id) else {
            return;
        };
        let url = DrainUrl::parse(&drain.url, true)
            .map_err(DrainError::from)
            .and_then(|url| self.check_destination(&url, Stage::Start).map(|()| url));
        let url = match url {
            Ok(url) => url,
            Err(e) => return self.hold(drain, &channel, e),
        };
        // A durable drain's buffer is only the way to its disk queue, emptied as fast as the
        // disk takes lines; it is larger so that a burst does not outrun the spooler.
        let capacity = match drain.durable {
            true => self
                .inner
                .config
                .delivery
                .buffer_lines
                .max(DURABLE_STAGING_LINES),
            false => self.inner.config.delivery.buffer_lines,
        };
        let health = Arc::new(Health::default());
        let (subscription, queue) = match &self.inner.config.shared {
            // Fed from the cluster's shared queue: no buffer on this node.
            Some(_) => (None, Arc::new(LineQueue::new(1))),
            None => {
                let s = channel.subscribe("drain", &drain.token, LineFilter::default(), capacity);
                let queue = s.queue().clone();
                (Some(s), queue)
            }
        };
        let tls = match url.scheme {
            Scheme::Https => self.inner.http_tls.clone(),
            _ => self.inner.tls.clone(),
        };
        let encode: Encode = match url.scheme {
            Scheme::Https | Scheme::Http => crate::https::encode_line,
            Scheme::Syslog | Scheme::SyslogTls | Scheme::SyslogUdp | Scheme::Relp => {
                crate::syslog::encode_line
            }
        };
        let linger = match url.scheme {
            Scheme::Https | Scheme::Http => self.inner.config.delivery.batch_wait,
            _ => std::time::Duration::ZERO,
        };
        let feed = match (
            drain.durable,
            &self.inner.data_dir,
            &self.inner.config.shared,
        ) {
            (_, _, Some(shared)) => Feed::Shared(encode, shared.feed(&drain)),
            (true, Some(dir), None) => {
                let path = dir.join("drains").join(&drain.id);
                match DurableQueue::open(&path, self.inner.config.durable_budget) {
                    Ok(q) => {
                        health.set_durable();
                        health.spooled(q.len());
                        // Records open found damaged (or over a smaller budget) are lost: in
                        // the drain's health, in the app's stream and to the drain as L10.
                        let lost = q.dropped_total();
                        let spool = Arc::new(Spool {
                            queue: Mutex::new(q),
                            ready: tokio::sync::Notify::new(),
                            finished: std::sync::atomic::AtomicBool::new(false),
                            owed: Mutex::new(Vec::new()),
                        });
                        if lost > 0 {
                            tracing::warn!(drain = %drain.id, lost, "durable queue: records lost on disk");
                            health.dropped(lost);
                            let event = logplex::PlatformEvent::DrainOverflow {
                                drain: drain.token.clone(),
                                dropped: lost,
                                since: logplex::Timestamp::now(),
                            };
                            spool.owe(channel.emit_for_drain(event, &drain.token));
                        }
                        tokio::spawn(crate::feed::spool(
                            queue.clone(),
                            spool.clone(),
                            encode,
                            drain.token.clone(),
                            channel.clone(),
                            health.clone(),
                            self.inner.config.delivery.batch_lines,
                        ));
                        Feed::Durable(encode, spool)
                    }
                    Err(e) => {
                        // Delivery goes on from memory, and says why it is not durable.
                        tracing::error!(drain = %drain.id, error = %e, "durable queue");
                        health.failed(format!(
                            "durable queue unavailable, buffering in memory: {e}"
                        ));
                        Feed::Memory(encode, linger)
                    }
                }
            }
            _ => Feed::Memory(encode, linger),
        };
        let ctx = Ctx {
            drain: drain.clone(),
            url: url.clone(),
            subscription,
            channel,
            health: health.clone(),
            config: self.inner.config.delivery.clone(),
            tls,
            dialer: self.inner.dialer.clone(),
            stopping: self.inner.stopping.subscribe(),
        };
        let task = match url.scheme {
            Scheme::Https | Scheme::Http => tokio::spawn(crate::https::run(ctx, feed)),
            Scheme::Syslog | Scheme::SyslogTls | Scheme::SyslogUdp | Scheme::Relp => {
                tokio::spawn(crate::syslog::run(ctx, feed))
            }
        };
        self.running().insert(
            drain.id,
            Running {
                health,
                queue,
                task,
            },
        );
    }

    /// Keeps a stored drain that cannot run: nothing is delivered to it (its buffer takes no
    /// line), its health says why, and so does one line in the app's stream.
    fn hold(&self, drain: Drain, channel: &logplex::Channel, why: DrainError) {
        let why = why.to_string();
        tracing::warn!(drain = %drain.id, url = %drain.url, error = %why, "drain not started");
        channel.emit(logplex::PlatformEvent::DrainRefused {
            drain: drain.token.clone(),
            error: why.clone(),
            uri: drain.url.clone(),
        });
        let health = Arc::new(Health::default());
        health.failed(format!("not delivering: {why}"));
        let queue = Arc::new(LineQueue::new(1));
        queue.close();
        let task = tokio::spawn(async {});
        self.running().insert(
            drain.id,
            Running {
                health,
                queue,
                task,
            },
        );
    }

    /// The id of the app called `app`.
    fn app_id(&self, app: &str) -> Result<String, DrainError> {
        self.inner
            .router
            .app(app)
            .map(|a| a.id)
            .ok_or(DrainError::NotFound("app"))
    }

    /// Adds a drain to `app`.
    pub fn add(&self, app: &str, url: &str, durable: bool) -> Result<Drain, DrainError> {
        let app_id = self.app_id(app)?;
        if durable && self.inner.data_dir.is_none() {
            return Err(DrainError::DurableUnavailable);
        }
        let parsed = DrainUrl::parse(url.trim(), self.inner.config.allow_http)?;
        self.check_destination(&parsed, Stage::Create)?;
        let drain = {
            let mut store = self.store();
            let existing = store.of_app(&app_id);
            if existing.iter().any(|d| d.url == parsed.raw) {
                return Err(DrainError::Duplicate(parsed.raw));
            }
            if existing.len() >= self.inner.config.max_per_app {
                return Err(DrainError::TooMany(self.inner.config.max_per_app));
            }
            let now = Timestamp::now();
            let drain = Drain {
                id: uuid::Uuid::new_v4().to_string(),
                url: parsed.raw.clone(),
                token: format!("d.{}", uuid::Uuid::new_v4()),
                app: app.to_owned(),
                app_id,
                durable,
                created_at: now,
                updated_at: now,
            };
            if self.inner.config.shared.is_none() {
                store.insert(drain.clone())?;
            }
            drain
        };
        if let Some(shared) = &self.inner.config.shared {
            // A cluster's: committed for every node first, outside the store's lock (the
            // commit waits on the network; readers of the store must not wait on it). Two
            // adds racing here are told apart by the database (one app, one URL).
            shared
                .commit(crate::shared::DrainChange::Added(&drain))
                .map_err(DrainError::Unavailable)?;
            self.store().insert(drain.clone())?;
        }
        self.launch(drain.clone());
        Ok(drain)
    }

    /// Removes the drain of `app` whose id, URL or token is `key`; what waits for it is dropped.
    pub fn remove(&self, app: &str, key: &str) -> Result<Drain, DrainError> {
        let app_id = self
            .app_id(app)
            .map_err(|_| DrainError::NotFound("drain"))?;
        let drain = self
            .store()
            .find(&app_id, key)
            .ok_or(DrainError::NotFound("drain"))?;
        if let Some(shared) = &self.inner.config.shared {
            shared
                .commit(crate::shared::DrainChange::Removed(&drain))
                .map_err(DrainError::Unavailable)?;
        }
        self.store().remove(&drain.id)?;
        self.stop_one(&drain);
        Ok(drain)
    }

    /// Every drain this router keeps (of every app).
    pub fn all(&self) -> Vec<Drain> {
        self.store().all().cloned().collect()
    }

    /// A cluster node: makes this node's drains exactly `all` (the cluster's, read after
    /// another node's change): new ones start, gone ones stop. Drains of apps this node does
    /// not know (yet) wait for the next sync.
    pub fn sync(&self, all: &[Drain]) {
        let ids: std::collections::HashSet<&str> = all.iter().map(|d| d.id.as_str()).collect();
        let gone: Vec<Drain> = self
            .store()
            .all()
            .filter(|d| !ids.contains(d.id.as_str()))
            .cloned()
            .collect();
        for drain in gone {
            if let Err(e) = self.store().remove(&drain.id) {
                tracing::warn!(drain = %drain.id, error = %e, "drain store");
            }
            self.stop_one(&drain);
        }
        for drain in all {
            if self.running().contains_key(&drain.id)
                || self.inner.router.app_by_id(&drain.app_id).is_none()
            {
                continue;
            }
            let known = self.store().all().any(|d| d.id == drain.id);
            if !known && let Err(e) = self.store().insert(drain.clone()) {
                tracing::warn!(drain = %drain.id, error = %e, "drain store");
            }
            self.launch(drain.clone());
        }
    }

    /// Stops a removed drain's task and deletes its disk queue (and, in a cluster, its shared
    /// queue: every node asks, the first one does it).
    fn stop_one(&self, drain: &Drain) {
        if let Some(shared) = &self.inner.config.shared {
            shared.forget(drain);
        }
        if let Some(running) = self.running().remove(&drain.id) {
            running.queue.close();
            running.task.abort();
        }
        self.forget_disk(drain);
    }

    /// A removed drain's disk queue goes with it.
    fn forget_disk(&self, drain: &Drain) {
        if let Some(dir) = &self.inner.data_dir {
            let _ = std::fs::remove_dir_all(dir.join("drains").join(&drain.id));
        }
    }

    /// The drains of `app`, with their health.
    pub fn list(&self, app: &str) -> Vec<(Drain, Option<HealthReport>)> {
        let Ok(app_id) = self.app_id(app) else {
            return Vec::new();
        };
        let drains = self.store().of_app(&app_id);
        let running = self.running();
        drains
            .into_iter()
            .map(|d| {
                let report = running.get(&d.id).map(|r| r.health.report(&r.queue));
                (d, report)
            })
            .collect()
    }

    /// One drain of `app` with its health.
    pub fn get(&self, app: &str, key: &str) -> Option<(Drain, Option<HealthReport>)> {
        let drain = self.store().find(&self.app_id(app).ok()?, key)?;
        let report = self
            .running()
            .get(&drain.id)
            .map(|r| r.health.report(&r.queue));
        Some((drain, report))
    }

    /// Stops within `within`: once the router has closed its channels, each drain sends what
    /// waits in its buffer; a drain that cannot deliver gives up when told the router stops.
    pub async fn stop(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let tasks: Vec<(String, JoinHandle<()>)> = {
            let mut running = self.running();
            running.drain().map(|(id, r)| (id, r.task)).collect()
        };
        // Give drains most of the bound to deliver, then tell them to give up.
        let give_up = deadline - within / 4;
        let stopping = self.inner.stopping.clone();
        let signal = tokio::spawn(async move {
            tokio::time::sleep_until(give_up).await;
            let _ = stopping.send(true);
        });
        for (id, mut task) in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(drain = %id, "drain did not stop in time");
                task.abort();
            }
        }
        signal.abort();
    }
}

/// `Logplex` stops the drains once its channels have closed (`Logplex::add_component`).
impl logplex::Component for Drains {
    fn name(&self) -> &str {
        "drains"
    }

    fn stop(&self, within: Duration) -> logplex::StopFuture<'_> {
        Box::pin(Drains::stop(self, within))
    }
}

/// A deleted app's drains go with it, at once: their tasks stop, their disk queues are
/// deleted, and the store forgets them.
impl AppLifecycle for Drains {
    fn app_deleted(&self, app: &logplex::App) {
        let gone = self.store().retain(|d| d.app_id != app.id);
        match gone {
            Ok(gone) => {
                for drain in gone {
                    self.stop_one(&drain);
                }
            }
            Err(e) => {
                tracing::error!(app = %app.name, error = %e, "removing a deleted app's drains")
            }
        }
    }
}
