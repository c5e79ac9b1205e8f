//! The limits a tenant can run into outside the line path, each counted where it refuses, so
//! that `/metrics` shows who is pushing against what (`logplex_limit_refusals_total`).
//! Lines refused at ingest are counted by `Reject` reason instead (per app).

use std::sync::atomic::{AtomicU64, Ordering};

/// A limit that refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A key over its budget of API writes a second.
    ApiWriteRate,
    /// An app at its number of ingest tokens.
    TokensPerApp,
    /// An app at its number of API keys.
    KeysPerApp,
    /// A token name refused (shaped like a secret, or a platform name).
    TokenName,
}

impl Limit {
    /// Every limit, in the order metrics list them.
    pub const ALL: [Limit; 4] = [
        Limit::ApiWriteRate,
        Limit::TokensPerApp,
        Limit::KeysPerApp,
        Limit::TokenName,
    ];

    /// The limit's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ApiWriteRate => "api_write_rate",
            Limit::TokensPerApp => "tokens_per_app",
            Limit::KeysPerApp => "keys_per_app",
            Limit::TokenName => "token_name",
        }
    }
}

/// How often each limit refused.
#[derive(Debug, Default)]
pub struct LimitCounters([AtomicU64; Limit::ALL.len()]);

impl LimitCounters {
    /// Counts one refusal.
    pub fn hit(&self, limit: Limit) {
        self.0[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far.
    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit as usize].load(Ordering::Relaxed)
    }
}
