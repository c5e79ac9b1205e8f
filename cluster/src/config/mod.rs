//! The cluster's configuration in PostgreSQL: apps, ingest tokens and API keys (as digests)
//! as rows, changed through `logplex::RegistryStore` (one transaction a change, which ends
//! with `pg_notify`), and read back whole by every node when told (`listen.rs`).
//!
//! Three connections a node: one for writes (a change's transaction), one for reads (the
//! whole configuration, the heartbeat, `/cluster`), one that LISTENs. Each is made again
//! when it is lost; every statement is bounded by `PG_TIMEOUT`. While PostgreSQL is away,
//! the registry in memory (and so ingest with known tokens) goes on, and a change is refused
//! with `RegistryError::Unavailable` (the API's 503).

mod listen;
mod migrate;
mod releases;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logplex::{
    App, KeyOrigin, KeyRecord, RegistryDiff, RegistryError, RegistryRecords, RegistryStore,
    Timestamp, Token,
};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::{ClusterError, Result, pg};

pub(crate) use listen::spawn_listener;
pub use migrate::MIGRATIONS;
pub use releases::PgReleases;
pub(crate) use releases::spawn_release_listener;

/// The NOTIFY channel of configuration changes.
pub(crate) const CHANNEL: &str = "paas_config";

/// The bound on any one statement (and on connecting).
pub(crate) const PG_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects, and runs the connection on its own task.
pub(crate) async fn connect(url: &str, what: &'static str) -> Result<Client> {
    let (client, connection) =
        tokio::time::timeout(PG_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| ClusterError::PostgresTimeout {
                what,
                secs: PG_TIMEOUT.as_secs(),
            })?
            .map_err(pg(what))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, connection = what, "postgresql connection ended");
        }
    });
    Ok(client)
}

/// Runs `f` within `PG_TIMEOUT`.
pub(crate) async fn bounded<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(PG_TIMEOUT, f)
        .await
        .map_err(|_| ClusterError::PostgresTimeout {
            what,
            secs: PG_TIMEOUT.as_secs(),
        })?
}

/// The configuration store of one node.
#[derive(Debug)]
pub struct PgStore {
    url: String,
    node: String,
    writer: Mutex<Option<Client>>,
    reader: Mutex<Option<Client>>,
    healthy: AtomicBool,
    /// This node's drains, kept in step with the cluster's on every reload.
    drains: std::sync::OnceLock<drains::Drains>,
    /// Changes this node committed: a whole read that overlapped one may predate it, and is
    /// read again rather than applied (it would undo the change for a moment).
    commits: std::sync::atomic::AtomicU64,
}

impl PgStore {
    /// Connects to `url`, applies the migrations this database lacks (under an advisory
    /// lock), and returns the store with the versions applied now.
    pub async fn open(url: &str, node: &str) -> Result<(Arc<PgStore>, Vec<i32>)> {
        let mut writer = connect(url, "writer").await?;
        let applied = bounded("migrate", migrate::migrate(&mut writer)).await?;
        let reader = connect(url, "reader").await?;
        Ok((
            Arc::new(PgStore {
                url: url.to_owned(),
                node: node.to_owned(),
                writer: Mutex::new(Some(writer)),
                reader: Mutex::new(Some(reader)),
                healthy: AtomicBool::new(true),
                drains: std::sync::OnceLock::new(),
                commits: std::sync::atomic::AtomicU64::new(0),
            }),
            applied,
        ))
    }

    /// Keeps `drains` in step with the cluster's from now on (once).
    pub(crate) fn attach_drains(&self, drains: drains::Drains) {
        let _ = self.drains.set(drains);
    }

    /// Imports `local` (a single router's `drains.json`) when the cluster has no drains yet
    /// and none were imported before; drains of apps the cluster does not know are left out.
    /// Returns how many it imported.
    pub(crate) async fn import_drains_if_empty(&self, local: &[drains::Drain]) -> Result<u64> {
        if local.is_empty() {
            return Ok(0);
        }
        let mut client = self.client(&self.writer, "writer").await?;
        bounded("import drains", async {
            let tx = client
                .transaction()
                .await
                .map_err(pg("import drains: begin"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrate::LOCK_KEY])
                .await
                .map_err(pg("import drains: lock"))?;
            let row = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM drains)
                          + (SELECT count(*) FROM imports WHERE source = 'drains.json')",
                    &[],
                )
                .await
                .map_err(pg("import drains: count"))?;
            let held: i64 = row.get(0);
            if held > 0 {
                return Ok(0);
            }
            let mut imported = 0;
            for d in local {
                imported += insert_drain(&tx, d, Insert::Import).await?;
            }
            tx.execute(
                "INSERT INTO imports (source, node) VALUES ('drains.json', $1)",
                &[&self.node],
            )
            .await
            .map_err(pg("import drains: record"))?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.node])
                .await
                .map_err(pg("import drains: notify"))?;
            tx.commit().await.map_err(pg("import drains: commit"))?;
            Ok(imported)
        })
        .await
    }

    /// Makes this node's drains the cluster's (when attached).
    pub(crate) async fn sync_drains(&self) -> Result<()> {
        if let Some(drains) = self.drains.get() {
            let all = self.load_drains().await?;
            drains.sync(&all);
        }
        Ok(())
    }

    /// The URL it connects to.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Whether the last statement reached PostgreSQL.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, ok: bool) {
        self.healthy.store(ok, Ordering::Relaxed);
    }

    async fn client<'a>(
        &self,
        slot: &'a Mutex<Option<Client>>,
        what: &'static str,
    ) -> Result<MappedMutexGuard<'a, Client>> {
        let mut guard = slot.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            match connect(&self.url, what).await {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    self.set_healthy(false);
                    return Err(e);
                }
            }
        }
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| {
            ClusterError::Config("postgresql connection slot emptied while held".into())
        })
    }

    /// The reading connection (heartbeats, `/cluster`, loads).
    pub(crate) async fn reader(&self) -> Result<MappedMutexGuard<'_, Client>> {
        self.client(&self.reader, "reader").await
    }

    /// Imports `records` (a single router's `registry.json`) when the database holds no
    /// configuration yet and nothing was imported before. Returns whether it did.
    pub async fn import_if_empty(&self, records: &RegistryRecords) -> Result<bool> {
        let mut client = self.client(&self.writer, "writer").await?;
        bounded("import", async {
            let tx = client.transaction().await.map_err(pg("import: begin"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrate::LOCK_KEY])
                .await
                .map_err(pg("import: lock"))?;
            let row = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM apps) + (SELECT count(*) FROM api_keys)
                          + (SELECT count(*) FROM imports)",
                    &[],
                )
                .await
                .map_err(pg("import: count"))?;
            let held: i64 = row.get(0);
            if held > 0 || records.is_empty() {
                return Ok(false);
            }
            let diff = RegistryDiff {
                added: records.clone(),
                ..RegistryDiff::default()
            };
            write_diff(&tx, &diff).await.map_err(|e| match e {
                WriteError::Pg(e) => ClusterError::Postgres {
                    what: "import",
                    source: e,
                },
                WriteError::Registry(e) => ClusterError::Registry(e),
            })?;
            tx.execute(
                "INSERT INTO imports (source, node) VALUES ('registry.json', $1)",
                &[&self.node],
            )
            .await
            .map_err(pg("import: record"))?;
            tx.commit().await.map_err(pg("import: commit"))?;
            Ok(true)
        })
        .await
    }

    /// Reads the whole configuration and makes `router`'s registry hold it, unless this node
    /// committed a change meanwhile (the read may predate it: read again). Returns whether
    /// anything changed.
    pub async fn reload_into(&self, router: &logplex::Router) -> Result<bool> {
        loop {
            let before = self.commits.load(Ordering::Acquire);
            let records = self.load().await?;
            let current = || self.commits.load(Ordering::Acquire) == before;
            if let Some(changed) = router.replace_registry_if(&records, &current) {
                return Ok(changed);
            }
            // A change of this node's is committing: read again once it has.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The whole configuration, read in one snapshot.
    pub async fn load(&self) -> Result<RegistryRecords> {
        let mut client = self.client(&self.reader, "reader").await?;
        let out = bounded("load", load(&mut client)).await;
        if matches!(
            out,
            Err(ClusterError::Postgres { .. } | ClusterError::PostgresTimeout { .. })
        ) {
            self.set_healthy(false);
        }
        out
    }

    async fn commit_async(&self, diff: &RegistryDiff) -> std::result::Result<(), RegistryError> {
        let unavailable = |e: ClusterError| RegistryError::Unavailable(e.to_string());
        let mut client = self
            .client(&self.writer, "writer")
            .await
            .map_err(unavailable)?;
        let result = async {
            let tx = client.transaction().await?;
            write_diff(&tx, diff).await?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.node])
                .await?;
            tx.commit().await?;
            self.commits.fetch_add(1, Ordering::AcqRel);
            Ok::<(), WriteError>(())
        };
        match tokio::time::timeout(PG_TIMEOUT, result).await {
            Ok(Ok(())) => {
                self.set_healthy(true);
                Ok(())
            }
            Ok(Err(WriteError::Registry(e))) => Err(e),
            Ok(Err(WriteError::Pg(e))) => {
                if e.as_db_error().is_none() {
                    self.set_healthy(false);
                }
                Err(RegistryError::Unavailable(format!("postgresql: {e}")))
            }
            Err(_) => {
                self.set_healthy(false);
                // The connection may be mid-transaction: make a new one next time.
                drop(client);
                *self.writer.lock().await = None;
                Err(RegistryError::Unavailable(format!(
                    "postgresql did not answer within {} s",
                    PG_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

impl RegistryStore for PgStore {
    /// Blocks this worker thread (handing its other tasks to the runtime's other workers)
    /// while the change's transaction runs, at most `PG_TIMEOUT` (plus a connect).
    fn commit(&self, diff: &RegistryDiff) -> std::result::Result<(), RegistryError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| RegistryError::Unavailable(format!("no runtime: {e}")))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(RegistryError::Unavailable(
                "the configuration store needs tokio's multi-thread runtime".into(),
            ));
        }
        tokio::task::block_in_place(|| handle.block_on(self.commit_async(diff)))
    }
}

enum WriteError {
    Pg(tokio_postgres::Error),
    Registry(RegistryError),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Pg(e)
    }
}

fn origin_text(origin: KeyOrigin) -> &'static str {
    match origin {
        KeyOrigin::Bootstrap => "bootstrap",
        KeyOrigin::Configured => "configured",
        KeyOrigin::Created => "created",
    }
}

fn origin_of(text: &str) -> KeyOrigin {
    match text {
        "bootstrap" => KeyOrigin::Bootstrap,
        "configured" => KeyOrigin::Configured,
        _ => KeyOrigin::Created,
    }
}

/// Writes `diff` in `tx`: removals, then additions. A name taken meanwhile by another node is
/// `AppExists`; a token or key for an app deleted meanwhile is `NoSuchApp`.
async fn write_diff(
    tx: &tokio_postgres::Transaction<'_>,
    diff: &RegistryDiff,
) -> std::result::Result<(), WriteError> {
    for id in &diff.removed_keys {
        tx.execute("DELETE FROM api_keys WHERE id = $1", &[id])
            .await?;
    }
    for token in &diff.removed_tokens {
        tx.execute("DELETE FROM tokens WHERE token = $1", &[token])
            .await?;
    }
    for id in &diff.removed_apps {
        tx.execute("DELETE FROM apps WHERE id = $1", &[id]).await?;
    }
    for app in &diff.added.apps {
        let r = tx
            .execute(
                "INSERT INTO apps (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET name = $2, updated_at = $4",
                &[
                    &app.id,
                    &app.name,
                    &app.created_at.as_micros(),
                    &app.updated_at.as_micros(),
                ],
            )
            .await;
        if let Err(e) = r {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(WriteError::Registry(RegistryError::AppExists(
                    app.name.clone(),
                )));
            }
            return Err(e.into());
        }
    }
    let gone = |e: tokio_postgres::Error, app: &str| {
        if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
            WriteError::Registry(RegistryError::NoSuchApp(app.to_owned()))
        } else {
            WriteError::Pg(e)
        }
    };
    for t in &diff.added.tokens {
        let digest = logplex::token_digest(&t.token);
        tx.execute(
            "INSERT INTO tokens (digest, token, app_id, name, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (digest) DO NOTHING",
            &[&digest, &t.token, &t.app_id, &t.name, &t.created_at.as_micros()],
        )
        .await
        .map_err(|e| gone(e, &t.app_id))?;
    }
    for k in &diff.added.keys {
        tx.execute(
            "INSERT INTO api_keys (id, digest, app_id, origin, hint, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET digest = $2, app_id = $3, origin = $4, hint = $5",
            &[
                &k.id,
                &k.digest,
                &k.app_id,
                &origin_text(k.origin),
                &k.hint,
                &k.created_at.as_micros(),
            ],
        )
        .await
        .map_err(|e| gone(e, k.app_id.as_deref().unwrap_or("")))?;
    }
    Ok(())
}

async fn load(client: &mut Client) -> Result<RegistryRecords> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg("load: begin"))?;
    let apps = tx
        .query("SELECT id, name, created_at, updated_at FROM apps", &[])
        .await
        .map_err(pg("load: apps"))?
        .iter()
        .map(|r| App {
            id: r.get(0),
            name: r.get(1),
            created_at: Timestamp::from_micros(r.get(2)),
            updated_at: Timestamp::from_micros(r.get(3)),
        })
        .collect();
    let tokens = tx
        .query("SELECT token, app_id, name, created_at FROM tokens", &[])
        .await
        .map_err(pg("load: tokens"))?
        .iter()
        .map(|r| Token {
            token: r.get(0),
            app_id: r.get(1),
            name: r.get(2),
            created_at: Timestamp::from_micros(r.get(3)),
        })
        .collect();
    let keys = tx
        .query(
            "SELECT id, digest, app_id, origin, hint, created_at FROM api_keys",
            &[],
        )
        .await
        .map_err(pg("load: keys"))?
        .iter()
        .map(|r| KeyRecord {
            id: r.get(0),
            digest: r.get(1),
            app_id: r.get(2),
            origin: origin_of(r.get(3)),
            hint: r.get(4),
            created_at: Timestamp::from_micros(r.get(5)),
        })
        .collect();
    tx.commit().await.map_err(pg("load: end"))?;
    Ok(RegistryRecords { apps, tokens, keys })
}

/// Why a drain's row is written.
#[derive(Clone, Copy)]
enum Insert {
    /// A single router's `drains.json` imported: only drains of apps the cluster knows, and
    /// none twice.
    Import,
    /// A drain added through the API: any failure is the change's.
    Change,
}

/// Writes drain `d`'s row in `tx`: the rows written (0 when the import skipped it).
async fn insert_drain(
    tx: &tokio_postgres::Transaction<'_>,
    d: &drains::Drain,
    why: Insert,
) -> Result<u64> {
    let (sql, what) = match why {
        Insert::Import => (
            "INSERT INTO drains (id, app_id, app_name, url, token, durable, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM apps WHERE id = $2)
             ON CONFLICT DO NOTHING",
            "import drains: insert",
        ),
        Insert::Change => (
            "INSERT INTO drains (id, app_id, app_name, url, token, durable, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            "drain: insert",
        ),
    };
    tx.execute(
        sql,
        &[
            &d.id,
            &d.app_id,
            &d.app,
            &d.url,
            &d.token,
            &d.durable,
            &d.created_at.as_micros(),
            &d.updated_at.as_micros(),
        ],
    )
    .await
    .map_err(pg(what))
}

impl PgStore {
    /// Adds or removes a drain for every node (and tells them), within `PG_TIMEOUT`.
    pub(crate) async fn commit_drain(&self, change: drains::DrainChange<'_>) -> Result<()> {
        let mut client = self.client(&self.writer, "writer").await?;
        let out = bounded("drain", async {
            let tx = client.transaction().await.map_err(pg("drain: begin"))?;
            match change {
                drains::DrainChange::Added(d) => {
                    insert_drain(&tx, d, Insert::Change).await?;
                }
                drains::DrainChange::Removed(d) => {
                    tx.execute("DELETE FROM drains WHERE id = $1", &[&d.id])
                        .await
                        .map_err(pg("drain: delete"))?;
                }
            }
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.node])
                .await
                .map_err(pg("drain: notify"))?;
            tx.commit().await.map_err(pg("drain: commit"))?;
            self.commits.fetch_add(1, Ordering::AcqRel);
            Ok(())
        })
        .await;
        self.set_healthy(out.is_ok());
        out
    }

    /// Every drain of the cluster.
    pub async fn load_drains(&self) -> Result<Vec<drains::Drain>> {
        let client = self.client(&self.reader, "reader").await?;
        let rows = bounded("drains", async {
            client
                .query(
                    "SELECT id, app_id, app_name, url, token, durable, created_at, updated_at FROM drains",
                    &[],
                )
                .await
                .map_err(pg("drains"))
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| drains::Drain {
                id: r.get(0),
                app_id: r.get(1),
                app: r.get(2),
                url: r.get(3),
                token: r.get(4),
                durable: r.get(5),
                created_at: Timestamp::from_micros(r.get(6)),
                updated_at: Timestamp::from_micros(r.get(7)),
            })
            .collect())
    }
}
