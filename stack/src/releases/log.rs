//! The seam between the releases API and where an app's releases are kept: `ReleaseLog`,
//! implemented by the data directory's `ReleaseStore` (one process) and, in a cluster, by
//! PostgreSQL (`cluster::PgReleases`), and `make_release`, the one way a release is made on
//! either: the new vars from the current ones, the next version, and again from the newer
//! current ones when another writer took that version first.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::releases::store::{ConfigVars, Release, ReleaseError};

/// What `ReleaseLog::append` returns.
pub type ReleaseFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReleaseError>> + Send + 'a>>;

/// Times `make_release` tries again after another writer took the version it wanted.
pub const RELEASE_ATTEMPTS: usize = 8;

/// An app's releases, wherever they are kept. Reads answer from memory (what this process
/// last knew); `append` goes to the store.
pub trait ReleaseLog: Send + Sync + fmt::Debug {
    /// The current release (the newest).
    fn current(&self) -> Option<Release>;

    /// Every release kept, oldest first; the last is the current one.
    fn all(&self) -> Vec<Release>;

    /// The release whose id or version (`4` or `v4`) is `key`.
    fn find(&self, key: &str) -> Option<Release>;

    /// Keeps `release`, whose version must be the current's + 1 (1 for the first), and
    /// forgets the oldest past `MAX_RELEASES`. When another writer took that version first,
    /// `ReleaseError::Conflict`, and the log has read the newer releases (try again from
    /// `current`); when the store cannot be reached, `ReleaseError::Unavailable` and nothing
    /// was kept.
    fn append(&self, release: Release) -> ReleaseFuture<'_, Release>;

    /// Releases made elsewhere (another node of a cluster): a receiver whose value changes
    /// each time this log learned of a newer current release it did not make itself. `None`
    /// for a log only this process writes.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Why `make_release` made no release.
#[derive(Debug)]
pub enum ChangeError {
    /// `make` refused the change (the caller's message).
    Invalid(String),
    /// The log could not keep it.
    Store(ReleaseError),
}

/// Makes a release on `log` by `user`: `make` turns the current config vars into a
/// description and the new vars (`None`: nothing to release). When another writer took the
/// version first, `make` runs again on the newer current vars (at most `RELEASE_ATTEMPTS`
/// times; then `ReleaseError::Conflict`), so that two changes at once both count. Callers
/// make one change at a time per process (`ReleasesApi` holds a lock around it).
pub async fn make_release(
    log: &dyn ReleaseLog,
    user: &str,
    mut make: impl FnMut(&ConfigVars) -> Result<Option<(String, ConfigVars)>, String>,
) -> Result<Option<Release>, ChangeError> {
    let mut attempt = 0;
    loop {
        let current = log.current();
        let vars = current
            .as_ref()
            .map(|r| r.config_vars.clone())
            .unwrap_or_default();
        let Some((description, config_vars)) = make(&vars).map_err(ChangeError::Invalid)? else {
            return Ok(None);
        };
        let release = Release {
            id: uuid::Uuid::new_v4().to_string(),
            version: current.map_or(1, |r| r.version + 1),
            description,
            user: user.to_owned(),
            created_at: logplex::Timestamp::now(),
            config_vars,
        };
        match log.append(release).await {
            Ok(release) => return Ok(Some(release)),
            Err(ReleaseError::Conflict { .. }) if attempt + 1 < RELEASE_ATTEMPTS => attempt += 1,
            Err(e) => return Err(ChangeError::Store(e)),
        }
    }
}

/// The release in `releases` whose id or version (`4` or `v4`) is `key`.
pub fn find_release<'a>(releases: &'a [Release], key: &str) -> Option<&'a Release> {
    let version = key.strip_prefix('v').unwrap_or(key).parse::<u64>().ok();
    releases
        .iter()
        .find(|r| r.id == key || Some(r.version) == version)
}
