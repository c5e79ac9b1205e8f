//! An app's releases in PostgreSQL (`paas up` in a cluster): `stack::ReleaseLog` on rows of
//! `releases`, keyed by the app's id and the version. The primary key is what settles two
//! nodes releasing at once: both ask for the next version, one insert wins, the other is a
//! unique violation, which reads the newer releases and answers `ReleaseError::Conflict`
//! (`stack::make_release` then applies its change again on the newer vars). A release is
//! inserted, the oldest past `MAX_RELEASES` deleted, and every node told, in one transaction.
//!
//! Releases have their own NOTIFY channel, `paas_releases`, with the app's id as payload:
//! a config change wakes only the nodes running that app (each reads that app's releases
//! again, `listen.rs`), not every node's reload of the whole configuration on `paas_config`.
//!
//! Config vars are secrets: they are in the table's `config_vars` (jsonb) and in memory,
//! never in a log line or an error message of this module.

mod listen;

use std::sync::{Arc, Mutex};

use stack::{
    ConfigVars, MAX_RELEASES, Release, ReleaseError, ReleaseFuture, ReleaseLog, find_release,
};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;

use super::{PG_TIMEOUT, PgStore, bounded, migrate};
use crate::error::{ClusterError, Result, pg};

pub(crate) use listen::spawn_release_listener;

/// The NOTIFY channel of releases; the payload is the app's id.
pub(crate) const RELEASES_CHANNEL: &str = "paas_releases";

const COLUMNS: &str = "id, version, description, user_email, created_at, config_vars";

/// One app's releases, kept in PostgreSQL and known in memory.
#[derive(Debug)]
pub struct PgReleases {
    store: Arc<PgStore>,
    app_id: String,
    /// Oldest first, as last read or appended here.
    known: Mutex<Vec<Release>>,
    /// Bumped when a read finds a newer current release than this node knew.
    changed: watch::Sender<u64>,
}

impl PgReleases {
    /// The releases of the app whose id is `app_id`. When the database has none for it and
    /// none were imported before, `local` (this node's `releases/{app}.json`) is imported,
    /// or, with none, v1 "Initial release" with `initial` by `user` is made. Returns whether
    /// `local` was imported.
    pub(crate) async fn open(
        store: Arc<PgStore>,
        app_id: &str,
        local: &[Release],
        initial: ConfigVars,
        user: &str,
    ) -> Result<(Arc<PgReleases>, bool)> {
        let (changed, _) = watch::channel(0);
        let releases = Arc::new(PgReleases {
            store,
            app_id: app_id.to_owned(),
            known: Mutex::new(Vec::new()),
            changed,
        });
        let first = Release {
            id: uuid::Uuid::new_v4().to_string(),
            version: 1,
            description: "Initial release".to_owned(),
            user: user.to_owned(),
            created_at: logplex::Timestamp::now(),
            config_vars: initial,
        };
        let imported = releases.import_or_begin(local, &first).await?;
        releases.reload().await?;
        Ok((releases, imported))
    }

    /// In one transaction under the import lock: imports `local`, or inserts `first`, when
    /// the app has no releases and none were imported for it.
    async fn import_or_begin(&self, local: &[Release], first: &Release) -> Result<bool> {
        let mut client = self.store.client(&self.store.writer, "writer").await?;
        let source = format!("releases:{}", self.app_id);
        bounded("import releases", async {
            let tx = client
                .transaction()
                .await
                .map_err(pg("import releases: begin"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrate::LOCK_KEY])
                .await
                .map_err(pg("import releases: lock"))?;
            let row = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM releases WHERE app_id = $1)
                          + (SELECT count(*) FROM imports WHERE source = $2)",
                    &[&self.app_id, &source],
                )
                .await
                .map_err(pg("import releases: count"))?;
            let held: i64 = row.get(0);
            if held > 0 {
                return Ok(false);
            }
            let import = !local.is_empty();
            let rows: &[Release] = if import {
                local
            } else {
                std::slice::from_ref(first)
            };
            let keep = rows.len().saturating_sub(MAX_RELEASES);
            for r in &rows[keep..] {
                insert(&tx, &self.app_id, r, true)
                    .await
                    .map_err(pg("import releases: insert"))?;
            }
            if import {
                tx.execute(
                    "INSERT INTO imports (source, node) VALUES ($1, $2)",
                    &[&source, &self.store.node],
                )
                .await
                .map_err(pg("import releases: record"))?;
            }
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&RELEASES_CHANNEL, &self.app_id],
            )
            .await
            .map_err(pg("import releases: notify"))?;
            tx.commit().await.map_err(pg("import releases: commit"))?;
            Ok(import)
        })
        .await
    }

    /// The app's id (the NOTIFY payload that concerns it).
    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The store it reads and writes through.
    pub(crate) fn store(&self) -> &PgStore {
        &self.store
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Vec<Release>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the app's releases again; when they hold a newer current release than this node
    /// knew, keeps them and tells `changes`. An older read (one that overlapped a release
    /// this node made) is left aside: versions only grow.
    pub(crate) async fn reload(&self) -> Result<()> {
        let read = {
            let client = self.store.reader().await?;
            let sql = format!("SELECT {COLUMNS} FROM releases WHERE app_id = $1 ORDER BY version");
            bounded("releases", async {
                client
                    .query(&sql, &[&self.app_id])
                    .await
                    .map_err(pg("releases"))
            })
            .await
        };
        let rows = match read {
            Ok(rows) => rows,
            Err(e) => {
                self.store.set_healthy(false);
                return Err(e);
            }
        };
        let list = rows.iter().map(release_of).collect::<Result<Vec<_>>>()?;
        let newer = {
            let mut known = self.known();
            let (theirs, ours) = (list.last(), known.last());
            let newer = match (theirs, ours) {
                (Some(t), Some(o)) => t.version > o.version,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if newer || (theirs.map(|r| r.version) == ours.map(|r| r.version) && list != *known) {
                *known = list;
            }
            newer
        };
        if newer {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    async fn append_async(&self, release: Release) -> std::result::Result<Release, ReleaseError> {
        let unavailable = |e: ClusterError| ReleaseError::Unavailable(e.to_string());
        let mut client = self
            .store
            .client(&self.store.writer, "writer")
            .await
            .map_err(unavailable)?;
        let oldest_kept = i64::try_from(release.version)
            .unwrap_or(i64::MAX)
            .saturating_sub(MAX_RELEASES as i64);
        let write = async {
            let tx = client.transaction().await?;
            insert(&tx, &self.app_id, &release, false).await?;
            tx.execute(
                "DELETE FROM releases WHERE app_id = $1 AND version <= $2",
                &[&self.app_id, &oldest_kept],
            )
            .await?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&RELEASES_CHANNEL, &self.app_id],
            )
            .await?;
            tx.commit().await
        };
        match tokio::time::timeout(PG_TIMEOUT, write).await {
            Ok(Ok(())) => {
                drop(client);
                self.store.set_healthy(true);
                let mut known = self.known();
                if known.last().is_none_or(|r| r.version < release.version) {
                    known.push(release.clone());
                    let excess = known.len().saturating_sub(MAX_RELEASES);
                    known.drain(..excess);
                }
                Ok(release)
            }
            Ok(Err(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(client);
                // Another node took this version: what it made is read before answering.
                self.reload().await.map_err(unavailable)?;
                Err(ReleaseError::Conflict {
                    version: release.version,
                })
            }
            Ok(Err(e)) => {
                if e.as_db_error().is_none() {
                    self.store.set_healthy(false);
                }
                Err(ReleaseError::Unavailable(format!("postgresql: {e}")))
            }
            Err(_) => {
                self.store.set_healthy(false);
                // The connection may be mid-transaction: make a new one next time.
                drop(client);
                *self.store.writer.lock().await = None;
                Err(ReleaseError::Unavailable(format!(
                    "postgresql did not answer within {} s",
                    PG_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

/// Inserts `r` as a release of `app_id` (`or_skip`: one already there is left as it is).
async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    app_id: &str,
    r: &Release,
    or_skip: bool,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let version = i64::try_from(r.version).unwrap_or(i64::MAX);
    let sql = format!(
        "INSERT INTO releases (app_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7){}",
        if or_skip {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        }
    );
    tx.execute(
        &sql,
        &[
            &app_id,
            &r.id,
            &version,
            &r.description,
            &r.user,
            &r.created_at.as_micros(),
            &Json(&r.config_vars),
        ],
    )
    .await
}

fn release_of(row: &tokio_postgres::Row) -> Result<Release> {
    let Json(config_vars): Json<ConfigVars> =
        row.try_get(5).map_err(pg("releases: config vars"))?;
    let version: i64 = row.get(1);
    Ok(Release {
        id: row.get(0),
        version: u64::try_from(version).unwrap_or(0),
        description: row.get(2),
        user: row.get(3),
        created_at: logplex::Timestamp::from_micros(row.get(4)),
        config_vars,
    })
}

impl ReleaseLog for PgReleases {
    fn current(&self) -> Option<Release> {
        self.known().last().cloned()
    }

    fn all(&self) -> Vec<Release> {
        self.known().clone()
    }

    fn find(&self, key: &str) -> Option<Release> {
        find_release(&self.known(), key).cloned()
    }

    /// Within `PG_TIMEOUT` (plus a connect).
    fn append(&self, release: Release) -> ReleaseFuture<'_, Release> {
        Box::pin(self.append_async(release))
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changed.subscribe())
    }
}

#[cfg(test)]
mod tests;
