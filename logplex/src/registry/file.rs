//! The registry's file, `registry.json`: versioned JSON, written whole to a temporary file
//! (mode 0600: it holds tokens), synced and renamed over the old one, so a crash leaves
//! either the old state or the new.
//!
//! Version 2 hangs tokens and keys on the app's id and keeps API keys as SHA-256 digests.
//! Version 1 (app names, keys in the clear) is still read, and is written back as version 2
//! at the next change.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::RegistryError;
use crate::time::Timestamp;

/// The format this program writes.
pub const FORMAT_VERSION: u32 = 2;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "registry.json";

/// An app as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredApp {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

/// A token as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredToken {
    pub(crate) token: String,
    pub(crate) app_id: String,
    pub(crate) name: String,
    pub(crate) created_at: Timestamp,
}

/// Who a stored key speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredScope {
    Operator,
    App { app_id: String },
}

/// How a key came to be (which of them a restart with a new operator key retires).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOrigin {
    /// Made at the first start, when no operator key was given.
    Bootstrap,
    /// Given by the operator at start (`PAAS_API_KEY`).
    Configured,
    /// Made through the API.
    Created,
}

/// A key as the file keeps it: its digest, never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub(crate) id: String,
    pub(crate) digest: String,
    pub(crate) scope: StoredScope,
    pub(crate) origin: KeyOrigin,
    pub(crate) hint: String,
    pub(crate) created_at: Timestamp,
}

/// The whole file, version 2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Contents {
    pub(crate) version: u32,
    pub(crate) apps: BTreeMap<String, StoredApp>,
    pub(crate) tokens: BTreeMap<String, StoredToken>,
    pub(crate) keys: BTreeMap<String, StoredKey>,
}

/// Version 1, read only to be migrated.
mod v1 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::time::Timestamp;

    #[derive(Deserialize)]
    pub(super) struct Token {
        pub(super) app: String,
        pub(super) name: String,
        pub(super) created_at: Timestamp,
    }

    #[derive(Deserialize)]
    #[serde(tag = "kind", content = "app", rename_all = "snake_case")]
    pub(super) enum Scope {
        Operator,
        App(String),
    }

    #[derive(Deserialize)]
    pub(super) struct Key {
        pub(super) scope: Scope,
        pub(super) created_at: Timestamp,
    }

    #[derive(Deserialize)]
    pub(super) struct Contents {
        pub(super) apps: BTreeMap<String, super::StoredApp>,
        pub(super) tokens: BTreeMap<String, Token>,
        pub(super) keys: BTreeMap<String, Key>,
    }
}

/// Version 1 as version 2: tokens and keys on app ids, keys hashed. A v1 operator key is
/// taken as configured (the operator gave it), so a new `PAAS_API_KEY` retires it.
fn migrate(old: v1::Contents) -> Contents {
    use super::secret::{Digest, hint};
    let id_of = |name: &str| old.apps.get(name).map(|a| a.id.clone());
    let tokens = old
        .tokens
        .into_iter()
        .filter_map(|(token, t)| {
            let app_id = id_of(&t.app)?;
            let stored = StoredToken {
                token: token.clone(),
                app_id,
                name: t.name,
                created_at: t.created_at,
            };
            Some((token, stored))
        })
        .collect();
    let keys = old
        .keys
        .into_iter()
        .filter_map(|(secret, k)| {
            let (scope, origin) = match k.scope {
                v1::Scope::Operator => (StoredScope::Operator, KeyOrigin::Configured),
                v1::Scope::App(name) => (
                    StoredScope::App {
                        app_id: id_of(&name)?,
                    },
                    KeyOrigin::Created,
                ),
            };
            let id = uuid::Uuid::new_v4().to_string();
            let stored = StoredKey {
                id: id.clone(),
                digest: Digest::of(secret.as_bytes()).to_hex(),
                scope,
                origin,
                hint: hint(&secret),
                created_at: k.created_at,
            };
            Some((id, stored))
        })
        .collect();
    Contents {
        version: FORMAT_VERSION,
        apps: old.apps,
        tokens,
        keys,
    }
}

/// Reads a file's bytes: version 2, or version 1 migrated.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Contents, RegistryError> {
    let format = |reason: String| RegistryError::Format {
        path: path.to_owned(),
        reason,
    };
    let probe: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format(e.to_string()))?;
    match probe.get("version").and_then(serde_json::Value::as_u64) {
        Some(1) => serde_json::from_value(probe)
            .map(migrate)
            .map_err(|e| format(e.to_string())),
        Some(v) if v == u64::from(FORMAT_VERSION) => {
            serde_json::from_value(probe).map_err(|e| format(e.to_string()))
        }
        Some(v) => Err(format(format!(
            "format version {v}, this program reads 1 and {FORMAT_VERSION}"
        ))),
        None => Err(format("no format version".to_owned())),
    }
}

/// Where the registry is written, one write at a time, newest last.
#[derive(Debug)]
pub(crate) struct RegistryFile {
    path: PathBuf,
    /// The sequence number of the state last written: an older state is never written over a
    /// newer one, however the writers' threads are scheduled.
    written: Mutex<u64>,
}

/// A state to write, encoded while the registry was locked.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) json: Vec<u8>,
}

impl RegistryFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        RegistryFile {
            path,
            written: Mutex::new(0),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `snapshot` unless a newer one is written already (it holds this change too).
    pub(crate) fn write(&self, snapshot: &Snapshot) -> Result<(), RegistryError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if *written >= snapshot.seq {
            return Ok(());
        }
        let io = |source| RegistryError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut file = open_private(&tmp).map_err(io)?;
        file.write_all(&snapshot.json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable once the directory is synced.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        *written = snapshot.seq;
        Ok(())
    }
}

/// Creates (or truncates) a file only its owner may read: it holds credentials.
pub(crate) fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
