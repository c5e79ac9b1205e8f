//! What the cache counts: each decision of the router line's `cache=` (hits, misses, passes,
//! stale answers, revalidations, coalesced waits), evictions and purges; with the objects and
//! bytes held, they are `paas_cache_*` on `/metrics` and the `cache` section of
//! `GET /apps/{app}/cache`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What the cache decided for a request (the router line's `cache=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the cache.
    Hit,
    /// Sent to a dyno, its answer stored if it could be.
    Miss,
    /// Sent to a dyno, not storable (a method, a status, `no-store`, credentials…).
    Pass,
    /// Answered stale from the cache: while it is refreshed, or because the dyno failed.
    Stale,
    /// A stale entry the dyno confirmed (304) and that was then answered.
    Revalidated,
    /// Waited for another request's miss of the same URL and answered from its result.
    Coalesced,
}

impl Outcome {
    /// The word in the router line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Pass => "pass",
            Outcome::Stale => "stale",
            Outcome::Revalidated => "revalidated",
            Outcome::Coalesced => "coalesced",
        }
    }
}

/// The cache's counters.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub passes: AtomicU64,
    pub stale: AtomicU64,
    pub revalidated: AtomicU64,
    pub coalesced: AtomicU64,
    pub evictions: AtomicU64,
    pub purged: AtomicU64,
}

/// The counters at one moment, with what is held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
    pub passes: u64,
    pub stale: u64,
    pub revalidated: u64,
    pub coalesced: u64,
    pub evictions: u64,
    pub purged: u64,
    pub objects: u64,
    pub bytes: u64,
}

impl CacheStats {
    /// Counts one decision.
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Hit => &self.hits,
            Outcome::Miss => &self.misses,
            Outcome::Pass => &self.passes,
            Outcome::Stale => &self.stale,
            Outcome::Revalidated => &self.revalidated,
            Outcome::Coalesced => &self.coalesced,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with `objects` and `bytes` held.
    pub fn counts(&self, objects: u64, bytes: u64) -> CacheCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheCounts {
            hits: get(&self.hits),
            misses: get(&self.misses),
            passes: get(&self.passes),
            stale: get(&self.stale),
            revalidated: get(&self.revalidated),
            coalesced: get(&self.coalesced),
            evictions: get(&self.evictions),
            purged: get(&self.purged),
            objects,
            bytes,
        }
    }
}
