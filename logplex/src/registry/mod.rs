//! Apps, their ingest tokens and the API keys: what the router must remember across restarts.
//! Embedded default: one JSON file in the data directory (`file.rs`). A cluster keeps them in
//! PostgreSQL instead, through the `RegistryStore` seam (`store.rs`, the `cluster` crate).
//!
//! Every app has an immutable id, and everything else hangs on it: a token or a key belongs to
//! an app's id, not its name, so an app deleted and made again under the same name by someone
//! else inherits nothing (drains and log sessions hang on the id too, outside this module).
//! An ingest token is `t.<uuid>`, bound to one app and a source name (`app` by default, see
//! `names.rs`); an API key is the operator's (everything) or scoped to one app, and only its
//! digest is kept (`secret.rs`). Changes are made in memory under the router's lock and
//! written afterwards (`snapshot`, then `RegistryFile::write`), so no reader waits on a disk.

mod file;
mod names;
mod secret;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use file::{FILE_NAME, FORMAT_VERSION, KeyOrigin};
pub use names::{RESERVED_APP_PROCESSES, RESERVED_SOURCES, is_reserved_process, is_valid_app_name};
pub(crate) use store::diff_to;
pub use store::{KeyRecord, RegistryDiff, RegistryRecords, RegistryStore};

use crate::time::Timestamp;
use file::{Contents, StoredApp, StoredKey, StoredScope, StoredToken};
pub(crate) use file::{RegistryFile, Snapshot};
pub use secret::token_digest;
use secret::{Digest, constant_time_eq, hint, new_secret};

/// What went wrong with the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An app name Heroku would not take.
    #[error(
        "invalid app name {0:?}: use 3 to 30 lowercase letters, digits and dashes, starting with a letter"
    )]
    InvalidAppName(String),
    /// An app of that name exists.
    #[error("app {0:?} already exists")]
    AppExists(String),
    /// No app of that name.
    #[error("no app named {0:?}")]
    NoSuchApp(String),
    /// No such token (or not the app's).
    #[error("no such token")]
    NoSuchToken,
    /// No such key (or not one the caller may act on).
    #[error("no such key")]
    NoSuchKey,
    /// The operator key given at start: it changes with the next start's key, not the API.
    #[error("this key was given at start (PAAS_API_KEY): restart with another key to rotate it")]
    ConfiguredKey,
    /// A source name the registry does not take.
    #[error("invalid token name {name:?}: {why}")]
    InvalidSourceName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// An app has as many of something as it may.
    #[error("an app may have at most {limit} {what}")]
    TooMany {
        /// What: `tokens`, `keys`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The cluster's configuration store cannot be reached: nothing was changed.
    #[error("the configuration store is unavailable: {0}")]
    Unavailable(String),
    /// The file could not be read or written.
    #[error("registry file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a registry this version reads.
    #[error("registry file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One app (a channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct App {
    /// A UUID, as the Platform API gives apps: never reused, never changed.
    pub id: String,
    /// The app's name.
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An ingest token: lets a sender write lines to one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// `t.<uuid>`: what senders put in APP-NAME or the Basic-auth password.
    pub token: String,
    /// The id of the app it writes to.
    pub app_id: String,
    /// The source its lines carry (`app`, or a name of the user's choice).
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Who an API key speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyScope {
    /// Every app, and the registry itself.
    Operator,
    /// One app only (by its current name).
    App(String),
}

/// An API key as it can be shown: never the key itself, which only its maker saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id, to revoke or rotate it by.
    pub id: String,
    /// What it may do.
    pub scope: KeyScope,
    /// How it came to be.
    pub origin: KeyOrigin,
    /// Its last four characters.
    pub hint: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A key just made: the one time its secret is known.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// What can be shown of it later.
    pub key: ApiKey,
    /// The key itself.
    pub secret: String,
}

/// Who presented a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub scope: KeyScope,
}

/// How many of each an app may have.
#[derive(Clone, Copy, Debug)]
pub struct RegistryLimits {
    /// Ingest tokens per app.
    pub tokens_per_app: usize,
    /// API keys per app.
    pub keys_per_app: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            tokens_per_app: 50,
            keys_per_app: 20,
        }
    }
}

/// Apps, tokens and keys, kept in a file when given one.
#[derive(Debug)]
pub struct Registry {
    apps: BTreeMap<String, App>,
    /// App ids to names.
    names: HashMap<String, String>,
    tokens: HashMap<Digest, Token>,
    keys: HashMap<Digest, StoredKey>,
    limits: RegistryLimits,
    file: Option<Arc<RegistryFile>>,
    /// Bumped by every snapshot, so that writes land in order.
    seq: u64,
}

impl Registry {
    /// An empty registry kept only in memory.
    pub fn in_memory() -> Self {
        Self::from_contents(Contents::default(), None)
    }

    /// The registry of a data directory: read from its file, or empty when there is none yet.
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        let contents = match std::fs::read(&path) {
            Ok(bytes) => file::decode(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::default(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        Ok(Self::from_contents(
            contents,
            Some(Arc::new(RegistryFile::new(path))),
        ))
    }

    fn from_contents(contents: Contents, file: Option<Arc<RegistryFile>>) -> Self {
        let apps: BTreeMap<String, App> = contents
            .apps
            .into_values()
            .map(|a| {
                let app = App {
                    id: a.id,
                    name: a.name,
                    created_at: a.created_at,
                    updated_at: a.updated_at,
                };
                (app.name.clone(), app)
            })
            .collect();
        let names = apps
            .values()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect();
        let tokens = contents
            .tokens
            .into_values()
            .map(|t| {
                let token = Token {
                    token: t.token,
                    app_id: t.app_id,
                    name: t.name,
                    created_at: t.created_at,
                };
                (Digest::of(token.token.as_bytes()), token)
            })
            .collect();
        let keys = contents
            .keys
            .into_values()
            .filter_map(|k| Some((Digest::from_hex(&k.digest)?, k)))
            .collect();
        Registry {
            apps,
            names,
            tokens,
            keys,
            limits: RegistryLimits::default(),
            file,
            seq: 0,
        }
    }

    /// Sets how many tokens and keys an app may have.
    pub fn set_limits(&mut self, limits: RegistryLimits) {
        self.limits = limits;
    }

    /// The state as the file keeps it, numbered: write it with `RegistryFile::write` once the
    /// lock is let go.
    pub(crate) fn snapshot(
        &mut self,
    ) -> Result<Option<(Snapshot, Arc<RegistryFile>)>, RegistryError> {
        let Some(file) = self.file.clone() else {
            return Ok(None);
        };
        self.seq += 1;
        let contents = Contents {
            version: FORMAT_VERSION,
            apps: self
                .apps
                .values()
                .map(|a| {
                    let stored = StoredApp {
                        id: a.id.clone(),
                        name: a.name.clone(),
                        created_at: a.created_at,
                        updated_at: a.updated_at,
                    };
                    (a.name.clone(), stored)
                })
                .collect(),
            tokens: self
                .tokens
                .values()
                .map(|t| {
                    let stored = StoredToken {
                        token: t.token.clone(),
                        app_id: t.app_id.clone(),
                        name: t.name.clone(),
                        created_at: t.created_at,
                    };
                    (t.token.clone(), stored)
                })
                .collect(),
            keys: self
                .keys
                .values()
                .map(|k| (k.id.clone(), k.clone()))
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&contents).map_err(|e| RegistryError::Io {
            path: file.path().to_owned(),
            source: std::io::Error::other(e),
        })?;
        Ok(Some((
            Snapshot {
                seq: self.seq,
                json,
            },
            file,
        )))
    }

    /// Writes the registry to its file now (nothing for an in-memory one).
    pub fn save(&mut self) -> Result<(), RegistryError> {
        match self.snapshot()? {
            Some((snapshot, file)) => file.write(&snapshot),
            None => Ok(()),
        }
    }

    fn app_id(&self, name: &str) -> Result<String, RegistryError> {
        self.apps
            .get(name)
            .map(|a| a.id.clone())
            .ok_or_else(|| RegistryError::NoSuchApp(name.to_owned()))
    }

    /// Makes an app and its first ingest token (source `app`).
    pub fn create_app(&mut self, name: &str) -> Result<(App, Token), RegistryError> {
        if !is_valid_app_name(name) {
            return Err(RegistryError::InvalidAppName(name.to_owned()));
        }
        if self.apps.contains_key(name) {
            return Err(RegistryError::AppExists(name.to_owned()));
        }
        let now = Timestamp::now();
        let app = App {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.apps.insert(name.to_owned(), app.clone());
        self.names.insert(app.id.clone(), app.name.clone());
        let token = self.insert_token(&app.id, "app", now);
        Ok((app, token))
    }

    fn insert_token(&mut self, app_id: &str, name: &str, now: Timestamp) -> Token {
        let token = Token {
            token: new_secret("t."),
            app_id: app_id.to_owned(),
            name: name.to_owned(),
            created_at: now,
        };
        self.tokens
            .insert(Digest::of(token.token.as_bytes()), token.clone());
        token
    }

    /// Every app, by name.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.get(name)
    }

    /// The app whose id is `id`.
    pub fn app_by_id(&self, id: &str) -> Option<&App> {
        self.names.get(id).and_then(|name| self.apps.get(name))
    }

    /// Removes an app with all its tokens and app-scoped keys, at once.
    pub fn delete_app(&mut self, name: &str) -> Result<App, RegistryError> {
        let app = self
            .apps
            .remove(name)
            .ok_or_else(|| RegistryError::NoSuchApp(name.to_owned()))?;
        self.names.remove(&app.id);
        self.tokens.retain(|_, t| t.app_id != app.id);
        self.keys
            .retain(|_, k| !matches!(&k.scope, StoredScope::App { app_id } if *app_id == app.id));
        Ok(app)
    }

    /// A new ingest token for `app` whose lines carry the source `name`.
    pub fn create_token(&mut self, app: &str, name: &str) -> Result<Token, RegistryError> {
        let app_id = self.app_id(app)?;
        if let Some(why) = names::source_name_problem(name) {
            return Err(RegistryError::InvalidSourceName {
                name: name.to_owned(),
                why,
            });
        }
        let limit = self.limits.tokens_per_app;
        if self.tokens.values().filter(|t| t.app_id == app_id).count() >= limit {
            return Err(RegistryError::TooMany {
                what: "tokens",
                limit,
            });
        }
        Ok(self.insert_token(&app_id, name, Timestamp::now()))
    }

    /// The tokens of `app`, oldest first.
    pub fn tokens(&self, app: &str) -> Vec<Token> {
        let Ok(app_id) = self.app_id(app) else {
            return Vec::new();
        };
        let mut list: Vec<Token> = self
            .tokens
            .values()
            .filter(|t| t.app_id == app_id)
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.token).cmp(&(b.created_at, &b.token)));
        list
    }

    /// Who a token writes as, if it is one. Found by digest, confirmed in constant time.
    pub fn token(&self, token: &str) -> Option<&Token> {
        self.tokens
            .get(&Digest::of(token.as_bytes()))
            .filter(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()))
    }

    /// Takes `app`'s token `token` out, or says there is no such token of that app.
    fn take_token(&mut self, app: &str, token: &str) -> Result<Token, RegistryError> {
        let app_id = self.app_id(app).map_err(|_| RegistryError::NoSuchToken)?;
        if self.token(token).is_none_or(|t| t.app_id != app_id) {
            return Err(RegistryError::NoSuchToken);
        }
        self.tokens
            .remove(&Digest::of(token.as_bytes()))
            .ok_or(RegistryError::NoSuchToken)
    }

    /// Replaces `app`'s token with a new one for the same source; the old one stops working.
    pub fn rotate_token(&mut self, app: &str, token: &str) -> Result<Token, RegistryError> {
        let old = self.take_token(app, token)?;
        Ok(self.insert_token(&old.app_id, &old.name, Timestamp::now()))
    }

    /// Removes `app`'s token.
    pub fn revoke_token(&mut self, app: &str, token: &str) -> Result<Token, RegistryError> {
        self.take_token(app, token)
    }

    fn scope_of(&self, stored: &StoredScope) -> Option<KeyScope> {
        match stored {
            StoredScope::Operator => Some(KeyScope::Operator),
            StoredScope::App { app_id } => self.names.get(app_id).cloned().map(KeyScope::App),
        }
    }

    fn shown(&self, k: &StoredKey) -> Option<ApiKey> {
        Some(ApiKey {
            id: k.id.clone(),
            scope: self.scope_of(&k.scope)?,
            origin: k.origin,
            hint: k.hint.clone(),
            created_at: k.created_at,
        })
    }

    fn insert_key(&mut self, secret: String, scope: StoredScope, origin: KeyOrigin) -> NewKey {
        let stored = StoredKey {
            id: uuid::Uuid::new_v4().to_string(),
            digest: Digest::of(secret.as_bytes()).to_hex(),
            scope,
            origin,
            hint: hint(&secret),
            created_at: Timestamp::now(),
        };
        let key = ApiKey {
            id: stored.id.clone(),
            scope: self.scope_of(&stored.scope).unwrap_or(KeyScope::Operator),
            origin,
            hint: stored.hint.clone(),
            created_at: stored.created_at,
        };
        self.keys.insert(Digest::of(secret.as_bytes()), stored);
        NewKey { key, secret }
    }

    /// A new API key for `scope`.
    pub fn create_key(&mut self, scope: &KeyScope) -> Result<NewKey, RegistryError> {
        let (stored, origin) = match scope {
            KeyScope::Operator => (StoredScope::Operator, KeyOrigin::Created),
            KeyScope::App(app) => {
                let app_id = self.app_id(app)?;
                let limit = self.limits.keys_per_app;
                let held = self
                    .keys
                    .values()
                    .filter(|k| matches!(&k.scope, StoredScope::App { app_id: a } if *a == app_id))
                    .count();
                if held >= limit {
                    return Err(RegistryError::TooMany {
                        what: "keys",
                        limit,
                    });
                }
                (StoredScope::App { app_id }, KeyOrigin::Created)
            }
        };
        Ok(self.insert_key(new_secret("k."), stored, origin))
    }

    /// Makes the operator's first key, when it gave none.
    pub fn bootstrap_operator_key(&mut self) -> NewKey {
        self.insert_key(
            new_secret("k."),
            StoredScope::Operator,
            KeyOrigin::Bootstrap,
        )
    }

    /// Makes `secret` the operator key given at start, and retires the one given before (and
    /// the bootstrap key): a restart with a new `PAAS_API_KEY` is a rotation. Keys made
    /// through the API stay. Returns whether anything changed.
    pub fn configure_operator_key(&mut self, secret: &str) -> bool {
        let digest = Digest::of(secret.as_bytes());
        let before = self.keys.len();
        self.keys.retain(|d, k| {
            *d == digest || k.scope != StoredScope::Operator || k.origin == KeyOrigin::Created
        });
        let retired = self.keys.len() != before;
        let present = self
            .keys
            .get(&digest)
            .is_some_and(|k| k.scope == StoredScope::Operator);
        if !present {
            self.keys.remove(&digest);
            self.insert_key(
                secret.to_owned(),
                StoredScope::Operator,
                KeyOrigin::Configured,
            );
        }
        retired || !present
    }

    /// Adds operator key `secret` when it is not one already, retiring nothing.
    pub fn ensure_operator_key(&mut self, secret: &str, configured: bool) {
        let digest = Digest::of(secret.as_bytes());
        if self
            .keys
            .get(&digest)
            .is_some_and(|k| k.scope == StoredScope::Operator)
        {
            return;
        }
        self.keys.remove(&digest);
        let origin = if configured {
            KeyOrigin::Configured
        } else {
            KeyOrigin::Bootstrap
        };
        self.insert_key(secret.to_owned(), StoredScope::Operator, origin);
    }

    /// Whether any operator key exists.
    pub fn has_operator_key(&self) -> bool {
        self.keys.values().any(|k| k.scope == StoredScope::Operator)
    }

    /// Who presents `secret`, if it is a key. Found by digest, never compared in the clear.
    pub fn authenticate(&self, secret: &str) -> Option<Caller> {
        let k = self.keys.get(&Digest::of(secret.as_bytes()))?;
        Some(Caller {
            key_id: k.id.clone(),
            scope: self.scope_of(&k.scope)?,
        })
    }

    /// The keys `scope` may see: an operator sees every key, an app key its app's.
    pub fn keys(&self, scope: &KeyScope) -> Vec<ApiKey> {
        let mut list: Vec<ApiKey> = self
            .keys
            .values()
            .filter_map(|k| self.shown(k))
            .filter(|k| *scope == KeyScope::Operator || k.scope == *scope)
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    /// Takes key `id` out, if `by` may act on it.
    fn take_key(&mut self, id: &str, by: &KeyScope) -> Result<StoredKey, RegistryError> {
        let digest = self
            .keys
            .iter()
            .find(|(_, k)| k.id == id)
            .filter(|(_, k)| {
                *by == KeyScope::Operator || self.scope_of(&k.scope).as_ref() == Some(by)
            })
            .map(|(d, _)| *d)
            .ok_or(RegistryError::NoSuchKey)?;
        if self.keys.get(&digest).map(|k| k.origin) == Some(KeyOrigin::Configured) {
            return Err(RegistryError::ConfiguredKey);
        }
        self.keys.remove(&digest).ok_or(RegistryError::NoSuchKey)
    }

    /// Revokes key `id`, if `by` may: it stops working at once.
    pub fn revoke_key(&mut self, id: &str, by: &KeyScope) -> Result<ApiKey, RegistryError> {
        let old = self.take_key(id, by)?;
        self.shown(&old).ok_or(RegistryError::NoSuchKey)
    }

    /// Replaces key `id` with a new one of the same scope, if `by` may act on it.
    pub fn rotate_key(&mut self, id: &str, by: &KeyScope) -> Result<NewKey, RegistryError> {
        let old = self.take_key(id, by)?;
        Ok(self.insert_key(new_secret("k."), old.scope, KeyOrigin::Created))
    }
}

#[cfg(test)]
mod tests;
