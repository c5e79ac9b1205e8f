//! What the adapter counts, and its Prometheus form (`paas_database_*`), which `paas up`
//! registers on the router's `/metrics`. Every limit a client can reach has its counter here.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The adapter's counters.
#[derive(Debug, Default)]
pub struct DatabaseStats {
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections open now.
    pub open: AtomicU64,
    /// Client connections closed at once: the adapter had its most open.
    pub refused_max_clients: AtomicU64,
    /// Logins refused: wrong password or unknown user.
    pub auth_failures: AtomicU64,
    /// Clients that did not log in within the login timeout.
    pub login_timeouts: AtomicU64,
    /// Malformed messages from clients (bad lengths, bad startup packets, truncation).
    pub malformed: AtomicU64,
    /// Client messages over the message size limit.
    pub oversized: AtomicU64,
    /// Clients that waited the whole pool timeout for a server connection.
    pub pool_timeouts: AtomicU64,
    /// Server connections opened.
    pub server_opened: AtomicU64,
    /// Server connections closed.
    pub server_closed: AtomicU64,
    /// Server connections that could not be opened.
    pub server_connect_errors: AtomicU64,
    /// Server connections closed because their client left mid-transaction or mid-query.
    pub server_abandoned: AtomicU64,
    /// Cancel requests forwarded to a backend.
    pub cancels: AtomicU64,
    /// Statements slower than the slow-statement threshold.
    pub slow_statements: AtomicU64,
    /// Named prepared statements prepared again on another server connection.
    pub reprepared: AtomicU64,
    /// TLS handshakes with clients that failed.
    pub tls_failures: AtomicU64,
    /// Clients closed for sitting in a transaction past the idle-in-transaction timeout.
    pub idle_transaction_timeouts: AtomicU64,
    /// Transactions (and statements outside one) completed through the pool.
    pub transactions: AtomicU64,
}

impl DatabaseStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for DatabaseStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        let all: [(&str, &str, MetricType, &AtomicU64); 18] = [
            (
                "paas_database_clients_accepted",
                "Client connections the database adapter accepted.",
                counter,
                &self.accepted,
            ),
            (
                "paas_database_clients_open",
                "Client connections open.",
                gauge,
                &self.open,
            ),
            (
                "paas_database_clients_refused",
                "Client connections closed at once: --database-max-clients were open.",
                counter,
                &self.refused_max_clients,
            ),
            (
                "paas_database_auth_failures",
                "Logins refused (wrong password, unknown user or database).",
                counter,
                &self.auth_failures,
            ),
            (
                "paas_database_login_timeouts",
                "Clients that did not log in within --database-login-timeout.",
                counter,
                &self.login_timeouts,
            ),
            (
                "paas_database_malformed_messages",
                "Malformed client messages (bad length, bad startup packet, truncated); the \
                 client gets an ErrorResponse and is closed.",
                counter,
                &self.malformed,
            ),
            (
                "paas_database_oversized_messages",
                "Client messages over --database-max-message-kb.",
                counter,
                &self.oversized,
            ),
            (
                "paas_database_pool_timeouts",
                "Clients that waited --database-pool-timeout for a server connection.",
                counter,
                &self.pool_timeouts,
            ),
            (
                "paas_database_server_connections_opened",
                "Server connections opened.",
                counter,
                &self.server_opened,
            ),
            (
                "paas_database_server_connections_closed",
                "Server connections closed.",
                counter,
                &self.server_closed,
            ),
            (
                "paas_database_server_connect_errors",
                "Server connections that could not be opened.",
                counter,
                &self.server_connect_errors,
            ),
            (
                "paas_database_server_connections_abandoned",
                "Server connections closed because their client left or failed mid-query or \
                 mid-transaction (never handed to another client).",
                counter,
                &self.server_abandoned,
            ),
            (
                "paas_database_cancels_forwarded",
                "Cancel requests forwarded to a server backend.",
                counter,
                &self.cancels,
            ),
            (
                "paas_database_slow_statements",
                "Statements slower than --database-slow-ms.",
                counter,
                &self.slow_statements,
            ),
            (
                "paas_database_statements_reprepared",
                "Named prepared statements prepared again on another server connection \
                 (transaction mode).",
                counter,
                &self.reprepared,
            ),
            (
                "paas_database_tls_failures",
                "TLS handshakes with clients that failed.",
                counter,
                &self.tls_failures,
            ),
            (
                "paas_database_idle_transaction_timeouts",
                "Clients closed for sitting in a transaction past \
                 --database-idle-transaction-timeout.",
                counter,
                &self.idle_transaction_timeouts,
            ),
            (
                "paas_database_transactions",
                "Transactions (and statements outside one) completed.",
                counter,
                &self.transactions,
            ),
        ];
        for (name, help, kind, value) in all {
            let v = value.load(Ordering::Relaxed);
            let at = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Gauge => ConstGauge::new(v as i64).encode(at)?,
                _ => ConstCounter::new(v).encode(at)?,
            }
        }
        Ok(())
    }
}
