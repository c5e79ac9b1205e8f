//! What can go wrong joining or running a cluster.

/// A cluster node's errors.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// PostgreSQL could not be reached or refused a statement.
    #[error("postgresql ({what}): {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: tokio_postgres::Error,
    },
    /// PostgreSQL did not answer in time.
    #[error("postgresql ({what}): no answer within {secs} s")]
    PostgresTimeout {
        /// What was being done.
        what: &'static str,
        /// The bound.
        secs: u64,
    },
    /// NATS could not be reached, or JetStream refused.
    #[error("nats ({what}): {reason}")]
    Nats {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A flag's value is not usable.
    #[error("{0}")]
    Config(String),
    /// The registry refused the records read from PostgreSQL.
    #[error(transparent)]
    Registry(#[from] logplex::RegistryError),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, ClusterError>;

pub(crate) fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ClusterError {
    move |source| ClusterError::Postgres { what, source }
}

pub(crate) fn nats<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ClusterError {
    move |e| ClusterError::Nats {
        what,
        reason: e.to_string(),
    }
}
