//! The drains of every app, kept in `DATA_DIR/drains.json` (versioned, mode 0600: drain
//! tokens are credentials of a sort), written atomically on every change.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use logplex::Timestamp;
use serde::{Deserialize, Serialize};

/// The file's format version.
pub const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "drains.json";

/// One drain, as the Platform API shows it (plus `durable`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// A UUID.
    pub id: String,
    /// The drain URL.
    pub url: String,
    /// `d.<uuid>`: the HOSTNAME of syslog frames and `Logplex-Drain-Token` of HTTPS batches.
    pub token: String,
    /// The name of the app it drains, when it was added (for reading the file; the app's
    /// current name is the registry's).
    pub app: String,
    /// The id of the app it drains: what the drain hangs on. A drain never outlives its app,
    /// and never drains another app that takes the name. (Empty in files written before ids
    /// were kept; filled in at start.)
    #[serde(default)]
    pub app_id: String,
    /// Whether its buffer is on disk (at-least-once, survives restarts).
    #[serde(default)]
    pub durable: bool,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    drains: BTreeMap<String, Drain>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a drains file this build reads.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Every drain, by id.
#[derive(Debug)]
pub struct DrainStore {
    contents: Contents,
    path: Option<PathBuf>,
}

impl DrainStore {
    /// A store kept only in memory.
    pub fn in_memory() -> Self {
        DrainStore {
            contents: Contents {
                version: FORMAT_VERSION,
                ..Contents::default()
            },
            path: None,
        }
    }

    /// The store in `data_dir` (empty when there is no file yet).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let contents = match std::fs::read(&path) {
            Ok(bytes) => {
                let c: Contents =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Format {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if c.version != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        path,
                        reason: format!(
                            "format version {}, this program reads {FORMAT_VERSION}",
                            c.version
                        ),
                    });
                }
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                version: FORMAT_VERSION,
                ..Contents::default()
            },
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        Ok(DrainStore {
            contents,
            path: Some(path),
        })
    }

    fn save(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.contents).map_err(|e| StoreError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Every drain.
    pub fn all(&self) -> impl Iterator<Item = &Drain> {
        self.contents.drains.values()
    }

    /// The drains of the app whose id is `app_id`, oldest first.
    pub fn of_app(&self, app_id: &str) -> Vec<Drain> {
        let mut v: Vec<Drain> = self
            .contents
            .drains
            .values()
            .filter(|d| d.app_id == app_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// The drain of the app whose id is `app_id` whose id, URL or token is `key`.
    pub fn find(&self, app_id: &str, key: &str) -> Option<Drain> {
        self.contents
            .drains
            .values()
            .find(|d| d.app_id == app_id && (d.id == key || d.url == key || d.token == key))
            .cloned()
    }

    /// Keeps only the drains `keep` says yes to (after filling in what it changes), and saves
    /// when anything changed; returns the drains taken out.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&mut Drain) -> bool,
    ) -> Result<Vec<Drain>, StoreError> {
        let before = self.contents.drains.clone();
        let mut gone = Vec::new();
        self.contents.drains.retain(|_, d| {
            let kept = keep(d);
            if !kept {
                gone.push(d.clone());
            }
            kept
        });
        if self.contents.drains != before {
            self.save()?;
        }
        Ok(gone)
    }

    /// Adds a drain.
    pub fn insert(&mut self, drain: Drain) -> Result<(), StoreError> {
        self.contents.drains.insert(drain.id.clone(), drain);
        self.save()
    }

    /// Removes a drain.
    pub fn remove(&mut self, id: &str) -> Result<Option<Drain>, StoreError> {
        let gone = self.contents.drains.remove(id);
        self.save()?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(app: &str, url: &str) -> Drain {
        Drain {
            id: uuid::Uuid::new_v4().to_string(),
            url: url.to_owned(),
            token: format!("d.{}", uuid::Uuid::new_v4()),
            app: app.to_owned(),
            app_id: format!("id-of-{app}"),
            durable: false,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    #[test]
    fn drains_persist_and_are_found_by_id_url_or_token() {
        let dir = std::env::temp_dir().join(format!("drain-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = drain("shop", "syslog://127.0.0.1:1514");
        {
            let mut s = DrainStore::open(&dir).unwrap();
            s.insert(d.clone()).unwrap();
            s.insert(drain("blog", "syslog://127.0.0.1:1514")).unwrap();
        }
        let s = DrainStore::open(&dir).unwrap();
        assert_eq!(s.of_app("id-of-shop"), vec![d.clone()]);
        for key in [&d.id, &d.url, &d.token] {
            assert_eq!(s.find("id-of-shop", key).as_ref(), Some(&d));
        }
        assert_eq!(
            s.find("id-of-blog", &d.token),
            None,
            "another app's drain is not found"
        );
        std::fs::write(dir.join(FILE_NAME), b"{\"version\": 9, \"drains\": {}}").unwrap();
        assert!(matches!(
            DrainStore::open(&dir),
            Err(StoreError::Format { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
