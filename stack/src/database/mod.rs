//! The database adapter: a pooling PostgreSQL proxy in front of a real PostgreSQL, as Heroku
//! Postgres with PgBouncer looks to a dyno. Each app gets its own user and password in its
//! `DATABASE_URL`; the adapter checks them (SCRAM-SHA-256 or MD5), pools server connections
//! per database and user (transaction or session mode), and writes `app[postgres]` lines
//! (slow statements, errors, connections) and `app[heroku-postgres]` metrics lines.
//!
//! - `wire`: framing and the messages the adapter writes; `auth`: the client side of logins;
//! - `server`: one server connection; `pool`: the bounded pool with its wait queue;
//! - `session`: a client's TLS, startup and login; `relay`: its messages to and from the pool;
//! - `prepared`: named prepared statements in transaction mode;
//! - `lines` and `metrics`: what goes into the app's stream; `stats`: the counters.

pub mod api;
pub mod auth;
pub mod lines;
pub mod metrics;
pub mod pool;
pub mod prepared;
pub mod relay;
pub mod server;
pub mod session;
pub mod stats;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use logplex::Emitter;
use tokio::net::TcpListener;
use tokio::sync::watch;

use auth::{AuthMethod, Login};
use pool::{Pool, PoolConfig};
use server::{ServerConn, ServerTarget};
use stats::DatabaseStats;

/// When a client's server connection goes back to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// At the end of each transaction (and each statement outside one): PgBouncer's
    /// `pool_mode = transaction`, Heroku's connection pooling.
    #[default]
    Transaction,
    /// When the client disconnects (then reset with `DISCARD ALL`).
    Session,
}

impl std::str::FromStr for PoolMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "transaction" => Ok(PoolMode::Transaction),
            "session" => Ok(PoolMode::Session),
            _ => Err(format!("{s:?}: use transaction or session")),
        }
    }
}

/// The adapter's settings (`paas up --database-*`).
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The real server, from `--database-url`.
    pub server: ServerTarget,
    /// Transaction or session pooling.
    pub mode: PoolMode,
    /// The pool's bounds and timeouts (per database and user).
    pub pool: PoolConfig,
    /// Client connections open at once.
    pub max_clients: usize,
    /// The largest client message.
    pub max_message: usize,
    /// How long a client has to connect, negotiate TLS and log in.
    pub login_timeout: Duration,
    /// Statements at least this slow are logged; `None`: none.
    pub slow: Option<Duration>,
    /// How clients log in.
    pub auth: AuthMethod,
    /// Named prepared statements a client may hold (transaction mode).
    pub max_prepared: usize,
    /// How often the metrics line is written; `None`: never.
    pub metrics_interval: Option<Duration>,
    /// How long a client may hold a connection in a transaction without a word; `None`: as
    /// long as it likes (PgBouncer's `idle_transaction_timeout`).
    pub idle_transaction_timeout: Option<Duration>,
}

impl DatabaseConfig {
    /// The defaults for the server at `url`.
    pub fn new(url: &str) -> Result<DatabaseConfig, String> {
        Ok(DatabaseConfig {
            server: ServerTarget::parse(url)?,
            mode: PoolMode::Transaction,
            pool: PoolConfig {
                size: 20,
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(600),
            },
            max_clients: 1000,
            max_message: 16 << 20,
            login_timeout: Duration::from_secs(10),
            slow: Some(Duration::from_secs(2)),
            auth: AuthMethod::ScramSha256,
            max_prepared: 1000,
            metrics_interval: Some(Duration::from_secs(20)),
            idle_transaction_timeout: None,
        })
    }
}

/// One app's database: its login, its pool, and where its lines go.
#[derive(Debug)]
pub struct AppDatabase {
    /// The app.
    pub app: String,
    /// Its generated user and password.
    pub login: Login,
    /// The database name in its URL (the server's).
    pub database: String,
    /// Its pool.
    pub pool: Arc<Pool>,
    /// Writes `app[postgres]` and `app[heroku-postgres]` lines.
    pub emitter: Emitter,
}

/// The backend a client is using now, if any: its own lock, so that taking and giving back a
/// server connection never contends with other clients.
pub type Backend = Arc<Mutex<Option<(SocketAddr, (u32, u32))>>>;

/// A client's cancel key and the backend it is using now, if any.
#[derive(Debug)]
struct CancelEntry {
    secret: u32,
    backend: Backend,
}

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    config: DatabaseConfig,
    apps: RwLock<HashMap<String, Arc<AppDatabase>>>,
    /// Checked when the user is unknown, so a login takes the same steps.
    nobody: Login,
    cancels: Mutex<HashMap<u32, CancelEntry>>,
    stats: Arc<DatabaseStats>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn app_for(&self, user: &str) -> Option<Arc<AppDatabase>> {
        self.apps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }

    fn new_cancel_key(&self) -> (u32, u32, Backend) {
        let mut cancels = lock(&self.cancels);
        loop {
            let pid = u32::from_be_bytes(auth::random::<4>()) >> 1;
            if pid != 0 && !cancels.contains_key(&pid) {
                let secret = u32::from_be_bytes(auth::random::<4>());
                let backend = Backend::default();
                cancels.insert(
                    pid,
                    CancelEntry {
                        secret,
                        backend: backend.clone(),
                    },
                );
                return (pid, secret, backend);
            }
        }
    }

    fn forget_cancel_key(&self, pid: u32) {
        lock(&self.cancels).remove(&pid);
    }

    async fn cancel(&self, pid: u32, secret: u32) {
        let backend = lock(&self.cancels)
            .get(&pid)
            .filter(|e| e.secret == secret)
            .map(|e| e.backend.clone());
        let backend = backend.and_then(|b| *lock(&b));
        if let Some((addr, key)) = backend {
            DatabaseStats::bump(&self.stats.cancels);
            let _ = server::cancel(addr, key).await;
        }
    }
}

/// The adapter.
#[derive(Debug)]
pub struct Database {
    shared: Arc<Shared>,
}

impl Database {
    /// An adapter with no app yet; TLS towards clients with `tls` if given.
    pub fn new(
        config: DatabaseConfig,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Arc<Database> {
        Arc::new(Database {
            shared: Arc::new(Shared {
                config,
                apps: RwLock::new(HashMap::new()),
                nobody: Login::generate(),
                cancels: Mutex::new(HashMap::new()),
                stats: Arc::new(DatabaseStats::default()),
                tls,
            }),
        })
    }

    /// Gives `app` its database with `login`; its lines go through `emitter` (source `app`).
    pub fn attach(&self, app: &str, login: Login, emitter: Emitter) -> Arc<AppDatabase> {
        let pool = Pool::new(
            self.shared.config.server.clone(),
            self.shared.config.pool.clone(),
            self.shared.stats.clone(),
        );
        let entry = Arc::new(AppDatabase {
            app: app.to_owned(),
            database: self.shared.config.server.database.clone(),
            login,
            pool,
            emitter,
        });
        self.shared
            .apps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.login.user.clone(), entry.clone());
        entry
    }

    /// The app's database, if attached.
    pub fn app(&self, app: &str) -> Option<Arc<AppDatabase>> {
        self.shared
            .apps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|a| a.app == app)
            .cloned()
    }

    /// The `DATABASE_URL` an app's dynos get for the adapter at `addr`.
    pub fn url(&self, app: &str, addr: SocketAddr) -> Option<String> {
        let a = self.app(app)?;
        Some(format!(
            "postgres://{}:{}@{}/{}",
            a.login.user,
            a.login.password(),
            addr,
            a.database
        ))
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> Arc<DatabaseStats> {
        self.shared.stats.clone()
    }

    /// The settings.
    pub fn config(&self) -> &DatabaseConfig {
        &self.shared.config
    }

    /// Accepts clients on `listener` and writes each app's metrics lines, until `stop`; then
    /// closes the idle server connections (sessions still open end with the process).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let mut sessions = tokio::task::JoinSet::new();
        let mut samplers = tokio::task::JoinSet::new();
        if let Some(every) = self.shared.config.metrics_interval {
            let apps: Vec<_> = self
                .shared
                .apps
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            for app in apps {
                samplers.spawn(sample_every(self.shared.config.server.clone(), app, every));
            }
        }
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    let Ok((tcp, peer)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    while sessions.try_join_next().is_some() {}
                    let stats = &self.shared.stats;
                    DatabaseStats::bump(&stats.accepted);
                    if sessions.len() >= self.shared.config.max_clients {
                        DatabaseStats::bump(&stats.refused_max_clients);
                        sessions.spawn(refuse(tcp, self.shared.config.max_clients));
                        continue;
                    }
                    let shared = self.shared.clone();
                    sessions.spawn(async move {
                        let open = OpenGuard::new(shared.stats.clone());
                        session::serve(shared, tcp, peer).await;
                        drop(open);
                    });
                }
            }
        }
        samplers.abort_all();
        for app in self
            .shared
            .apps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            app.pool.close_idle();
        }
    }

    /// Runs [`Database::serve`] on a thread of its own with a single-threaded runtime (as
    /// PgBouncer runs on one): a client's messages and its server's answers are then relayed
    /// without waking another thread. The thread ends after `stop`.
    pub fn serve_on_thread(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("paas-database".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => self.serve(listener, stop).await,
                        Err(e) => eprintln!("paas: the database adapter cannot listen: {e}"),
                    }
                });
            })
    }

    /// The app's figures now: the database's and the pool's.
    pub async fn sample(&self, app: &str) -> Result<metrics::Sample, String> {
        let a = self.app(app).ok_or("no database is attached")?;
        let mut conn = ServerConn::connect(&self.shared.config.server, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        metrics::Sample::take(&mut conn, &a.pool)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Counts a client connection open while it lives.
struct OpenGuard(Arc<DatabaseStats>);

impl OpenGuard {
    fn new(stats: Arc<DatabaseStats>) -> Self {
        stats
            .open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenGuard(stats)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Tells a client over `--database-max-clients` why, as PostgreSQL does, and closes.
async fn refuse(mut tcp: tokio::net::TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt as _;
    let message =
        format!("sorry, too many clients already ({max} are connected; --database-max-clients)");
    let _ = tcp
        .write_all(&wire::error_response("FATAL", "53300", &message))
        .await;
}

/// Writes `app`'s metrics line every `every`, on a connection of its own (opened again
/// after a failure).
async fn sample_every(server: ServerTarget, app: Arc<AppDatabase>, every: Duration) {
    let addon = format!("postgresql-{}", app.app);
    let mut conn: Option<ServerConn> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if conn.is_none() {
            conn = ServerConn::connect(&server, Duration::from_secs(5))
                .await
                .ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match metrics::Sample::take(c, &app.pool).await {
            Ok(sample) => {
                let _ = app.emitter.try_emit(metrics::PROCESS, sample.line(&addon));
            }
            Err(_) => conn = None,
        }
    }
}

#[cfg(test)]
mod tests;
