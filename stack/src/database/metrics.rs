//! The Heroku Postgres metrics line, `app[heroku-postgres]`: the database's figures from the
//! pg_stat views, read on the adapter's own connection every `--metrics-interval`, with the
//! pool's own (`pool-clients`, `pool-servers`, `pool-wait-ms`).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::pool::Pool;
use super::server::{ServerConn, ServerError};

/// The process the metrics lines carry: `app[heroku-postgres]`.
pub const PROCESS: &str = "heroku-postgres";

/// One query for the database's figures, one text column each.
const SAMPLE_SQL: &str = "SELECT \
    txid_snapshot_xmax(txid_current_snapshot())::text, \
    pg_database_size(current_database())::text, \
    (SELECT count(*) FROM pg_stat_user_tables)::text, \
    (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::text, \
    (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
        AND wait_event_type = 'Lock')::text, \
    (SELECT coalesce(sum(idx_blks_hit)::float8 / nullif(sum(idx_blks_hit + idx_blks_read), 0), 1) \
        FROM pg_statio_user_indexes)::text, \
    (SELECT coalesce(sum(heap_blks_hit)::float8 / nullif(sum(heap_blks_hit + heap_blks_read), 0), 1) \
        FROM pg_statio_user_tables)::text, \
    current_setting('server_version')";

/// The figures of one sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// The next transaction id.
    pub current_transaction: u64,
    /// The database's size in bytes.
    pub db_size: u64,
    /// User tables.
    pub tables: u64,
    /// Connections to the database.
    pub active_connections: u64,
    /// Connections waiting on a lock.
    pub waiting_connections: u64,
    /// Index blocks found in the cache, of all read.
    pub index_cache_hit_rate: f64,
    /// Table blocks found in the cache, of all read.
    pub table_cache_hit_rate: f64,
    /// The server's version.
    pub server_version: String,
    /// Clients connected to the pool.
    pub pool_clients: u64,
    /// Server connections open.
    pub pool_servers: u64,
    /// Clients waiting for a server connection now.
    pub pool_waiting: u64,
    /// The pool's size.
    pub pool_size: u64,
    /// The longest wait for a server connection since the last sample.
    pub pool_wait_ms: f64,
}

impl Sample {
    /// Reads the database's figures on `conn` and the pool's from `pool` (its longest wait
    /// starts again from zero).
    pub async fn take(conn: &mut ServerConn, pool: &Pool) -> Result<Sample, ServerError> {
        let rows = conn.exec(SAMPLE_SQL).await?;
        let row = rows.into_iter().next().unwrap_or_default();
        let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let int = |i: usize| text(i).parse::<u64>().unwrap_or(0);
        let float = |i: usize| text(i).parse::<f64>().unwrap_or(0.0);
        Ok(Sample {
            current_transaction: int(0),
            db_size: int(1),
            tables: int(2),
            active_connections: int(3),
            waiting_connections: int(4),
            index_cache_hit_rate: float(5),
            table_cache_hit_rate: float(6),
            server_version: text(7),
            pool_clients: pool.clients.load(Ordering::Relaxed),
            pool_servers: pool.servers.load(Ordering::Relaxed),
            pool_waiting: pool.waiting.load(Ordering::Relaxed),
            pool_size: pool.size() as u64,
            pool_wait_ms: pool.max_wait_us.swap(0, Ordering::Relaxed) as f64 / 1000.0,
        })
    }

    /// The `app[heroku-postgres]` line for the add-on `addon`.
    pub fn line(&self, addon: &str) -> String {
        format!(
            "source=DATABASE addon={addon} sample#current_transaction={} sample#db_size={}.0bytes \
             sample#tables={} sample#active-connections={} sample#waiting-connections={} \
             sample#index-cache-hit-rate={:.5} sample#table-cache-hit-rate={:.5} \
             sample#pool-clients={} sample#pool-servers={} sample#pool-wait-ms={:.3}",
            self.current_transaction,
            self.db_size,
            self.tables,
            self.active_connections,
            self.waiting_connections,
            self.index_cache_hit_rate,
            self.table_cache_hit_rate,
            self.pool_clients,
            self.pool_servers,
            self.pool_wait_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_as_heroku_postgres_writes_it() {
        let s = Sample {
            current_transaction: 1947,
            db_size: 8_945_836,
            tables: 17,
            active_connections: 3,
            index_cache_hit_rate: 0.99396,
            table_cache_hit_rate: 0.99828,
            pool_clients: 5,
            pool_servers: 2,
            pool_wait_ms: 1.5,
            ..Sample::default()
        };
        assert_eq!(
            s.line("postgresql-shop"),
            "source=DATABASE addon=postgresql-shop sample#current_transaction=1947 \
             sample#db_size=8945836.0bytes sample#tables=17 sample#active-connections=3 \
             sample#waiting-connections=0 sample#index-cache-hit-rate=0.99396 \
             sample#table-cache-hit-rate=0.99828 sample#pool-clients=5 sample#pool-servers=2 \
             sample#pool-wait-ms=1.500"
        );
    }
}
