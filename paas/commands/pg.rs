//! The database add-on: `paas up`'s `--database-*` flags and how it attaches the adapter
//! (`stack::Database`) to the app, and the clients `paas pg:info` and `paas pg:psql`, as
//! Heroku's, through the API's `/apps/{app}/database`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};
use serde_json::Value;
use stack::{AuthMethod, Database, DatabaseConfig, Login, PoolMode};

use crate::commands::apps::call;
use crate::commands::client::{ApiArgs, AppArg, AppListArgs};
use crate::commands::logplex::secs;

/// `paas up`'s database flags.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// A PostgreSQL server (`postgres://user:password@host:port/database`): the app's
    /// database. The dynos' DATABASE_URL then points at the adapter in front of it, with a
    /// user and password of the app's own.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The adapter's port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    database_port: u16,
    /// When a client's server connection goes back to the pool: `transaction` (at each
    /// transaction's end, as Heroku's connection pooling) or `session` (at disconnect).
    #[arg(long, default_value = "transaction")]
    database_pool_mode: PoolMode,
    /// Server connections per database and user.
    #[arg(long, default_value_t = 20)]
    database_pool_size: usize,
    /// Seconds a client waits for a server connection when all are busy, then gets an error.
    #[arg(long, default_value_t = 30.0)]
    database_pool_timeout: f64,
    /// Client connections the adapter keeps open at once; one more is refused (53300).
    #[arg(long, default_value_t = 1000)]
    database_max_clients: usize,
    /// The largest message either way, in KiB: a client's (a query, a bind, COPY data) or the
    /// server's (a row); past it the client is told and closed.
    #[arg(long, default_value_t = 16 * 1024)]
    database_max_message_kb: usize,
    /// Named prepared statements a client may hold in transaction mode.
    #[arg(long, default_value_t = 1000)]
    database_max_prepared: usize,
    /// Seconds a client has to connect, negotiate TLS and log in.
    #[arg(long, default_value_t = 10.0)]
    database_login_timeout: f64,
    /// Statements at least this slow (ms) are logged as `app[postgres]` lines; 0: none.
    #[arg(long, default_value_t = 2000)]
    database_slow_ms: u64,
    /// Seconds a client may hold a server connection in a transaction without sending
    /// anything; past it the client is closed (25P03) and the transaction rolled back; 0: no
    /// limit (PgBouncer's idle_transaction_timeout).
    #[arg(long, default_value_t = 0.0)]
    database_idle_transaction_timeout: f64,
    /// How clients log in: `scram-sha-256`, or `md5` for clients too old for SCRAM.
    #[arg(long, default_value = "scram-sha-256")]
    database_auth: AuthMethod,
}

impl DatabaseArgs {
    fn config(&self, url: &str, metrics: Duration) -> anyhow::Result<DatabaseConfig> {
        let mut c = DatabaseConfig::new(url).map_err(anyhow::Error::msg)?;
        c.mode = self.database_pool_mode;
        c.pool.size = self.database_pool_size.max(1);
        c.pool.timeout = secs(self.database_pool_timeout, "database-pool-timeout")?;
        c.max_clients = self.database_max_clients.max(1);
        c.max_message = self.database_max_message_kb.max(8).saturating_mul(1024);
        c.max_prepared = self.database_max_prepared;
        c.login_timeout = secs(self.database_login_timeout, "database-login-timeout")?;
        c.slow = (self.database_slow_ms > 0).then(|| Duration::from_millis(self.database_slow_ms));
        c.auth = self.database_auth;
        c.metrics_interval = (!metrics.is_zero()).then_some(metrics);
        let idle = secs(
            self.database_idle_transaction_timeout,
            "database-idle-transaction-timeout",
        )?;
        c.idle_transaction_timeout = (!idle.is_zero()).then_some(idle);
        Ok(c)
    }
}

/// The adapter, attached to one app and listening.
pub struct Attached {
    pub database: Arc<Database>,
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    /// The app's DATABASE_URL.
    pub url: String,
}

/// Starts the adapter for `app` if `--database-url` was given: its login (kept in the data
/// directory, so DATABASE_URL stays the same across restarts), its TLS certificate (the
/// proxy's), its lines through `emitter`.
pub async fn attach(
    args: &DatabaseArgs,
    metrics: Duration,
    bind: IpAddr,
    data_dir: &Path,
    app: &str,
    tls: Arc<rustls::ServerConfig>,
    emitter: logplex::Emitter,
) -> anyhow::Result<Option<Attached>> {
    let Some(url) = &args.database_url else {
        return Ok(None);
    };
    let config = args.config(url, metrics)?;
    let login = login(data_dir, app)?;
    let listener = tokio::net::TcpListener::bind((bind, args.database_port))
        .await
        .with_context(|| format!("binding the database adapter's port {}", args.database_port))?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let database = Database::new(config, Some(tls));
    database.attach(app, login, emitter);
    let url = database
        .url(app, addr)
        .context("the adapter has no database for the app")?;
    Ok(Some(Attached {
        database,
        listener,
        addr,
        url,
    }))
}

/// The app's database login: read from `DATA/database/APP.json`, else made and written there
/// (0600).
fn login(data_dir: &Path, app: &str) -> anyhow::Result<Login> {
    let dir = data_dir.join("database");
    let path = dir.join(format!("{app}.json"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        if let (Some(user), Some(password)) = (v["user"].as_str(), v["password"].as_str()) {
            return Ok(Login::new(user, password));
        }
        bail!("{} has no user and password", path.display());
    }
    let login = Login::generate();
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::json!({"version": 1, "user": login.user, "password": login.password()});
    crate::commands::up::write_private(&path, text.to_string().as_bytes())?;
    Ok(login)
}

/// `paas pg:info`: the database's and the pool's figures.
pub fn info(args: AppListArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let v = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/database"),
        None,
        StatusCode::OK,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let f = &v["figures"];
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    };
    println!("=== DATABASE_URL ({})", s(&v["addon"]));
    let rows = [
        (
            "Plan",
            "paas (adapter in front of your PostgreSQL)".to_owned(),
        ),
        (
            "Status",
            if v["error"].is_null() {
                "Available".to_owned()
            } else {
                format!("Unavailable: {}", s(&v["error"]))
            },
        ),
        ("PG Version", s(&f["server_version"])),
        ("Data Size", bytes(f["db_size"].as_u64())),
        ("Tables", s(&f["tables"])),
        (
            "Connections",
            format!(
                "{} (waiting on a lock: {})",
                s(&f["active_connections"]),
                s(&f["waiting_connections"])
            ),
        ),
        (
            "Pool",
            format!(
                "{} mode, {} server connections at most, {} open",
                s(&v["pool_mode"]),
                s(&v["pool_size"]),
                s(&f["pool_servers"])
            ),
        ),
        (
            "Pool Clients",
            format!(
                "{} connected, {} waiting",
                s(&f["pool_clients"]),
                s(&f["pool_waiting"])
            ),
        ),
        (
            "Cache Hit Rate",
            format!(
                "index {}, table {}",
                s(&f["index_cache_hit_rate"]),
                s(&f["table_cache_hit_rate"])
            ),
        ),
        ("Server", s(&v["server"])),
    ];
    for (k, val) in rows {
        println!("{:<15} {val}", format!("{k}:"));
    }
    Ok(ExitCode::SUCCESS)
}

fn bytes(n: Option<u64>) -> String {
    match n {
        None => "?".to_owned(),
        Some(n) if n >= 1 << 30 => format!("{:.1} GB", n as f64 / f64::from(1u32 << 30)),
        Some(n) if n >= 1 << 20 => format!("{:.1} MB", n as f64 / f64::from(1u32 << 20)),
        Some(n) => format!("{:.1} kB", n as f64 / 1024.0),
    }
}

/// `paas pg:psql` flags.
#[derive(Debug, clap::Args)]
pub struct PsqlArgs {
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
    /// A command to run (psql's -c), instead of an interactive session.
    #[arg(short = 'c', long = "command")]
    command: Option<String>,
    /// A file of commands to run (psql's -f).
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
}

/// `paas pg:psql`: psql through the adapter, as the app's user.
pub fn psql(args: PsqlArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let v = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/database"),
        None,
        StatusCode::OK,
    )?;
    let url = v["url"].as_str().context("the API gave no database URL")?;
    let mut cmd = std::process::Command::new("psql");
    cmd.arg(url);
    if let Some(c) = &args.command {
        cmd.args(["-c", c]);
    }
    if let Some(f) = &args.file {
        cmd.args(["-f", f]);
    }
    let status = cmd
        .status()
        .context("running psql (Debian: apt-get install postgresql-client)")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(n) => ExitCode::from(u8::try_from(n).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
