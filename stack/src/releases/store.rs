//! An app's releases, each with the config vars it ran with, kept in one versioned JSON file
//! under the data directory (`releases/{app}.json`, mode 0600: config vars are secrets),
//! written whole to a temporary file and renamed over the old one. The single process's
//! `ReleaseLog`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use logplex::Timestamp;
use serde::{Deserialize, Serialize};

use crate::releases::log::{ReleaseFuture, ReleaseLog, find_release};

/// The file format's version.
const FORMAT: u32 = 1;

/// Releases kept per app (the oldest are forgotten past it; versions keep counting).
pub const MAX_RELEASES: usize = 100;

/// An app's config vars: name to value.
pub type ConfigVars = BTreeMap<String, String>;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in a format this version reads.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another writer made release `version` first (another node of a cluster).
    #[error("release v{version} was made elsewhere at the same time")]
    Conflict {
        /// The version asked for.
        version: u64,
    },
    /// The store cannot be reached (PostgreSQL, in a cluster): nothing was kept.
    #[error("the release store is unavailable: {0}")]
    Unavailable(String),
}

/// One release: a numbered set of config vars.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    /// Its id (a UUID).
    pub id: String,
    /// Its number: v1, v2, …
    pub version: u64,
    /// What changed ("Set FOO config vars", "Rollback to v2").
    pub description: String,
    /// Who made it (an email).
    pub user: String,
    /// When.
    pub created_at: Timestamp,
    /// The config vars it runs with.
    pub config_vars: ConfigVars,
}

#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    version: u32,
    app: String,
    releases: Vec<Release>,
}

/// An app's releases, oldest first; the last is the current one.
#[derive(Debug)]
pub struct ReleaseStore {
    path: Option<PathBuf>,
    contents: Mutex<Contents>,
}

impl ReleaseStore {
    /// The releases of `app` kept in `data_dir`; a new app gets v1, "Initial release", with
    /// `initial` as its config vars, by `user`.
    pub fn open(
        data_dir: Option<&Path>,
        app: &str,
        initial: ConfigVars,
        user: &str,
    ) -> Result<ReleaseStore, ReleaseError> {
        let path = data_dir.map(|d| d.join("releases").join(format!("{app}.json")));
        let existing = match &path {
            Some(path) => read_file(path)?,
            None => None,
        };
        let store = ReleaseStore {
            path,
            contents: Mutex::new(Contents {
                version: FORMAT,
                app: app.to_owned(),
                releases: vec![],
            }),
        };
        match existing {
            Some(contents) if !contents.releases.is_empty() => *store.contents() = contents,
            _ => {
                store.create("Initial release", user, initial)?;
            }
        }
        Ok(store)
    }

    /// The releases of `app` kept in `data_dir` (none when it has no file), read without
    /// making one: what a cluster imports.
    pub fn read(data_dir: &Path, app: &str) -> Result<Vec<Release>, ReleaseError> {
        let path = data_dir.join("releases").join(format!("{app}.json"));
        Ok(read_file(&path)?.map(|c| c.releases).unwrap_or_default())
    }

    fn contents(&self) -> MutexGuard<'_, Contents> {
        self.contents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current config vars.
    pub fn config_vars(&self) -> ConfigVars {
        self.contents()
            .releases
            .last()
            .map(|r| r.config_vars.clone())
            .unwrap_or_default()
    }

    /// Adds a release running `config_vars` and saves; the new release.
    pub fn create(
        &self,
        description: &str,
        user: &str,
        config_vars: ConfigVars,
    ) -> Result<Release, ReleaseError> {
        let mut contents = self.contents();
        let version = contents.releases.last().map_or(1, |r| r.version + 1);
        let release = Release {
            id: uuid::Uuid::new_v4().to_string(),
            version,
            description: description.to_owned(),
            user: user.to_owned(),
            created_at: Timestamp::now(),
            config_vars,
        };
        self.keep(&mut contents, release)
    }

    /// Adds `release` to `contents` (forgetting the oldest past `MAX_RELEASES`) and saves;
    /// on a failed save `contents` is as it was.
    fn keep(&self, contents: &mut Contents, release: Release) -> Result<Release, ReleaseError> {
        let before = contents.releases.clone();
        contents.releases.push(release.clone());
        let excess = contents.releases.len().saturating_sub(MAX_RELEASES);
        contents.releases.drain(..excess);
        if let Err(e) = self.save(contents) {
            contents.releases = before;
            return Err(e);
        }
        Ok(release)
    }

    fn save(&self, contents: &Contents) -> Result<(), ReleaseError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| ReleaseError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let bytes = serde_json::to_vec_pretty(contents).map_err(|e| ReleaseError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

impl ReleaseLog for ReleaseStore {
    fn current(&self) -> Option<Release> {
        self.contents().releases.last().cloned()
    }

    fn all(&self) -> Vec<Release> {
        self.contents().releases.clone()
    }

    fn find(&self, key: &str) -> Option<Release> {
        find_release(&self.contents().releases, key).cloned()
    }

    /// Saves at once (the file is written whole before this returns).
    fn append(&self, release: Release) -> ReleaseFuture<'_, Release> {
        let mut contents = self.contents();
        let next = contents.releases.last().map_or(1, |r| r.version + 1);
        let kept = if release.version == next {
            self.keep(&mut contents, release)
        } else {
            Err(ReleaseError::Conflict {
                version: release.version,
            })
        };
        Box::pin(std::future::ready(kept))
    }
}

/// The contents of the file at `path`; `None` when there is none.
fn read_file(path: &Path) -> Result<Option<Contents>, ReleaseError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(parse(path, &bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReleaseError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Contents, ReleaseError> {
    let format = |reason: String| ReleaseError::Format {
        path: path.to_owned(),
        reason,
    };
    let contents: Contents = serde_json::from_slice(bytes).map_err(|e| format(e.to_string()))?;
    if contents.version != FORMAT {
        return Err(format(format!(
            "format version {} (this paas reads {FORMAT})",
            contents.version
        )));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn vars(pairs: &[(&str, &str)]) -> ConfigVars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn first_open_makes_v1_and_reopen_keeps_history() {
        let dir = std::env::temp_dir().join(format!("paas-releases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store =
            ReleaseStore::open(Some(&dir), "hello", vars(&[("A", "1")]), "op@localhost").unwrap();
        assert_eq!(store.current().unwrap().version, 1);
        assert_eq!(store.current().unwrap().description, "Initial release");
        let v2 = store
            .create(
                "Set B config vars",
                "op@localhost",
                vars(&[("A", "1"), ("B", "2")]),
            )
            .unwrap();
        assert_eq!(v2.version, 2);
        let path = dir.join("releases/hello.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let store = ReleaseStore::open(Some(&dir), "hello", vars(&[]), "x").unwrap();
        assert_eq!(store.all().len(), 2);
        assert_eq!(store.config_vars(), vars(&[("A", "1"), ("B", "2")]));
        assert_eq!(store.find("v1").unwrap().version, 1);
        assert_eq!(store.find(&v2.id).unwrap().version, 2);
        assert!(store.find("v9").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn history_is_bounded_and_versions_keep_counting() {
        let store = ReleaseStore::open(None, "hello", vars(&[]), "op").unwrap();
        for _ in 0..MAX_RELEASES + 5 {
            store.create("Set A config vars", "op", vars(&[])).unwrap();
        }
        assert_eq!(store.all().len(), MAX_RELEASES);
        assert_eq!(store.current().unwrap().version, MAX_RELEASES as u64 + 6);
    }

    #[tokio::test]
    async fn append_takes_the_next_version_only() {
        let store = ReleaseStore::open(None, "hello", vars(&[("A", "1")]), "op").unwrap();
        let mut next = store.current().unwrap();
        next.id = "second".to_owned();
        next.version = 3;
        let err = store.append(next.clone()).await.unwrap_err();
        assert!(
            matches!(err, ReleaseError::Conflict { version: 3 }),
            "{err}"
        );
        assert_eq!(store.all().len(), 1);
        next.version = 2;
        assert_eq!(store.append(next).await.unwrap().version, 2);
        assert_eq!(store.current().unwrap().id, "second");
    }

    #[test]
    fn a_newer_format_is_refused() {
        let err = parse(Path::new("x"), br#"{"version":2,"app":"a","releases":[]}"#).unwrap_err();
        assert!(err.to_string().contains("format version 2"), "{err}");
    }
}
