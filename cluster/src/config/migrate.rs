//! Versioned migrations of the cluster's schema, run at every start under an advisory lock,
//! so that nodes starting at once apply each migration exactly once (the others wait for the
//! lock, then find it applied). Applied versions are rows of `schema_migrations`.

use tokio_postgres::Client;

use crate::error::{Result, pg};

/// The advisory lock key of migrations and the first import (`paas` in ASCII).
pub(crate) const LOCK_KEY: i64 = 0x7061_6173;

/// Each migration: its version and its statements. Never edit one that has shipped: add the
/// next.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE apps (
         id text PRIMARY KEY,
         name text NOT NULL UNIQUE,
         created_at bigint NOT NULL,
         updated_at bigint NOT NULL
     );
     CREATE TABLE tokens (
         digest text PRIMARY KEY,
         token text NOT NULL UNIQUE,
         app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         name text NOT NULL,
         created_at bigint NOT NULL
     );
     CREATE TABLE api_keys (
         id text PRIMARY KEY,
         digest text NOT NULL UNIQUE,
         app_id text REFERENCES apps(id) ON DELETE CASCADE,
         origin text NOT NULL,
         hint text NOT NULL,
         created_at bigint NOT NULL
     );
     CREATE TABLE nodes (
         id text PRIMARY KEY,
         api_url text NOT NULL,
         started_at timestamptz NOT NULL DEFAULT now(),
         heartbeat_at timestamptz NOT NULL DEFAULT now(),
         status jsonb NOT NULL DEFAULT '{}'
     );
     CREATE TABLE imports (
         source text PRIMARY KEY,
         node text NOT NULL,
         at timestamptz NOT NULL DEFAULT now()
     );",
    ),
    (
        2,
        "CREATE TABLE drains (
         id text PRIMARY KEY,
         app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         app_name text NOT NULL,
         url text NOT NULL,
         token text NOT NULL UNIQUE,
         durable boolean NOT NULL,
         created_at bigint NOT NULL,
         updated_at bigint NOT NULL,
         UNIQUE (app_id, url)
     );",
    ),
    (
        3,
        "CREATE TABLE releases (
         app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
         version bigint NOT NULL,
         id text NOT NULL UNIQUE,
         description text NOT NULL,
         user_email text NOT NULL,
         created_at bigint NOT NULL,
         config_vars jsonb NOT NULL,
         PRIMARY KEY (app_id, version)
     );",
    ),
    (
        4,
        "CREATE TABLE cluster_secret (
         id integer PRIMARY KEY CHECK (id = 1),
         secret text NOT NULL
     );",
    ),
];

/// Applies the migrations this database lacks; returns the versions applied now.
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<i32>> {
    let tx = client.transaction().await.map_err(pg("migrate: begin"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(pg("migrate: advisory lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg("migrate: schema_migrations"))?;
    let rows = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(pg("migrate: versions"))?;
    let have: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        if have.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(pg("migrate: apply"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg("migrate: record"))?;
        applied.push(*version);
    }
    tx.commit().await.map_err(pg("migrate: commit"))?;
    Ok(applied)
}
