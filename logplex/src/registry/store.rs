//! The registry's records as another store sees them, and the seam through which a change
//! reaches that store before it is made in memory (`RegistryStore`: the cluster's PostgreSQL).
//!
//! The embedded default has no store: a change is made in memory and written to
//! `registry.json` afterwards (`file.rs`). With a store, `Router` makes the change on a copy,
//! hands the difference (`RegistryDiff`) to the store, and applies it in memory only once the
//! store has it; changes made elsewhere (another node) arrive as whole `RegistryRecords`,
//! whose difference from the memory is applied the same way. The hot path (token look-up on
//! ingest) stays in memory either way.

use std::collections::{BTreeMap, BTreeSet};

use super::file::{KeyOrigin, StoredKey, StoredScope};
use super::secret::Digest;
use super::{App, Registry, RegistryError, Token};
use crate::time::Timestamp;

/// An API key as a store keeps it: its digest, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its id.
    pub id: String,
    /// The key's SHA-256 digest, 64 lowercase hex digits.
    pub digest: String,
    /// The app it is scoped to; `None`: the operator's.
    pub app_id: Option<String>,
    /// How it came to be.
    pub origin: KeyOrigin,
    /// Its last four characters.
    pub hint: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Everything the registry holds, as records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryRecords {
    /// Apps.
    pub apps: Vec<App>,
    /// Ingest tokens (kept whole, as `registry.json` keeps them: they are shown to the app's
    /// key holders; looked up by digest).
    pub tokens: Vec<Token>,
    /// API keys, as digests.
    pub keys: Vec<KeyRecord>,
}

impl RegistryRecords {
    /// Whether there is nothing at all.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.tokens.is_empty() && self.keys.is_empty()
    }
}

/// What one change did: records to add (or replace), and records taken out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryDiff {
    /// Apps, tokens and keys that are new or changed.
    pub added: RegistryRecords,
    /// The ids of apps taken out.
    pub removed_apps: Vec<String>,
    /// The tokens taken out.
    pub removed_tokens: Vec<String>,
    /// The ids of keys taken out.
    pub removed_keys: Vec<String>,
}

impl RegistryDiff {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed_apps.is_empty()
            && self.removed_tokens.is_empty()
            && self.removed_keys.is_empty()
    }
}

/// Where a cluster keeps its registry. `commit` runs before the change is made in memory,
/// outside the registry's lock, and must be bounded in time: an error leaves the memory as
/// it was and is the caller's answer (`RegistryError::Unavailable`: 503).
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Makes `diff` durable (and tells the other nodes).
    fn commit(&self, diff: &RegistryDiff) -> Result<(), RegistryError>;
}

fn key_record(k: &StoredKey) -> KeyRecord {
    KeyRecord {
        id: k.id.clone(),
        digest: k.digest.clone(),
        app_id: match &k.scope {
            StoredScope::Operator => None,
            StoredScope::App { app_id } => Some(app_id.clone()),
        },
        origin: k.origin,
        hint: k.hint.clone(),
        created_at: k.created_at,
    }
}

fn stored_key(k: &KeyRecord) -> StoredKey {
    StoredKey {
        id: k.id.clone(),
        digest: k.digest.clone(),
        scope: match &k.app_id {
            None => StoredScope::Operator,
            Some(app_id) => StoredScope::App {
                app_id: app_id.clone(),
            },
        },
        origin: k.origin,
        hint: k.hint.clone(),
        created_at: k.created_at,
    }
}

impl Registry {
    /// Everything it holds, as records (apps by name, tokens and keys by id).
    pub fn records(&self) -> RegistryRecords {
        let mut tokens: Vec<Token> = self.tokens.values().cloned().collect();
        tokens.sort_by(|a, b| a.token.cmp(&b.token));
        let mut keys: Vec<KeyRecord> = self.keys.values().map(key_record).collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        RegistryRecords {
            apps: self.apps.values().cloned().collect(),
            tokens,
            keys,
        }
    }

    /// What makes `self` into `after`.
    pub fn diff(&self, after: &Registry) -> RegistryDiff {
        let (before, after) = (self.records(), after.records());
        let apps_before: BTreeMap<&str, &App> =
            before.apps.iter().map(|a| (a.id.as_str(), a)).collect();
        let apps_after: BTreeMap<&str, &App> =
            after.apps.iter().map(|a| (a.id.as_str(), a)).collect();
        let tokens_before: BTreeMap<&str, &Token> = before
            .tokens
            .iter()
            .map(|t| (t.token.as_str(), t))
            .collect();
        let tokens_after: BTreeSet<&str> = after.tokens.iter().map(|t| t.token.as_str()).collect();
        let keys_before: BTreeMap<&str, &KeyRecord> =
            before.keys.iter().map(|k| (k.id.as_str(), k)).collect();
        let keys_after: BTreeSet<&str> = after.keys.iter().map(|k| k.id.as_str()).collect();
        RegistryDiff {
            added: RegistryRecords {
                apps: after
                    .apps
                    .iter()
                    .filter(|a| apps_before.get(a.id.as_str()) != Some(a))
                    .cloned()
                    .collect(),
                tokens: after
                    .tokens
                    .iter()
                    .filter(|t| tokens_before.get(t.token.as_str()) != Some(t))
                    .cloned()
                    .collect(),
                keys: after
                    .keys
                    .iter()
                    .filter(|k| keys_before.get(k.id.as_str()) != Some(k))
                    .cloned()
                    .collect(),
            },
            removed_apps: apps_before
                .keys()
                .filter(|id| !apps_after.contains_key(*id))
                .map(|id| (*id).to_owned())
                .collect(),
            removed_tokens: tokens_before
                .keys()
                .filter(|t| !tokens_after.contains(*t))
                .map(|t| (*t).to_owned())
                .collect(),
            removed_keys: keys_before
                .keys()
                .filter(|id| !keys_after.contains(*id))
                .map(|id| (*id).to_owned())
                .collect(),
        }
    }

    /// Applies `diff`: removals first, then additions (an app renamed keeps its id).
    pub fn apply(&mut self, diff: &RegistryDiff) {
        for id in &diff.removed_apps {
            if let Some(name) = self.names.remove(id) {
                self.apps.remove(&name);
            }
            self.tokens.retain(|_, t| t.app_id != *id);
            self.keys
                .retain(|_, k| !matches!(&k.scope, StoredScope::App { app_id } if app_id == id));
        }
        for token in &diff.removed_tokens {
            self.tokens.remove(&Digest::of(token.as_bytes()));
        }
        for id in &diff.removed_keys {
            self.keys.retain(|_, k| k.id != *id);
        }
        for app in &diff.added.apps {
            if let Some(old) = self.names.insert(app.id.clone(), app.name.clone()) {
                self.apps.remove(&old);
            }
            self.apps.insert(app.name.clone(), app.clone());
        }
        for token in &diff.added.tokens {
            self.tokens
                .insert(Digest::of(token.token.as_bytes()), token.clone());
        }
        for key in &diff.added.keys {
            let Some(digest) = Digest::from_hex(&key.digest) else {
                tracing::warn!(key = %key.id, "a stored key's digest is not 64 hex digits: skipped");
                continue;
            };
            self.keys.retain(|_, k| k.id != key.id);
            self.keys.insert(digest, stored_key(key));
        }
    }

    /// A copy of what it holds, with its limits, for a change to be tried on (no file).
    pub(crate) fn scratch(&self) -> Registry {
        Registry {
            apps: self.apps.clone(),
            names: self.names.clone(),
            tokens: self.tokens.clone(),
            keys: self.keys.clone(),
            limits: self.limits,
            file: None,
            seq: 0,
        }
    }
}

/// What makes `current` hold exactly `records` (another node's view, read whole).
pub(crate) fn diff_to(current: &Registry, records: &RegistryRecords) -> RegistryDiff {
    let mut target = Registry::in_memory();
    target.apply(&RegistryDiff {
        added: records.clone(),
        ..RegistryDiff::default()
    });
    current.diff(&target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::KeyScope;

    #[test]
    fn a_diff_applied_to_the_state_before_gives_the_state_after() {
        let mut before = Registry::in_memory();
        let (_, kept) = before.create_app("shop").unwrap();
        let (_, gone) = before.create_app("blog").unwrap();
        let key = before.create_key(&KeyScope::App("blog".into())).unwrap();
        let mut after = before.scratch();
        after.delete_app("blog").unwrap();
        after.create_app("cart").unwrap();
        let token = after.create_token("shop", "worker").unwrap();
        let operator = after.create_key(&KeyScope::Operator).unwrap();

        let diff = before.diff(&after);
        assert_eq!(diff.removed_apps.len(), 1);
        assert_eq!(diff.added.apps.len(), 1);
        let mut applied = before.scratch();
        applied.apply(&diff);
        assert_eq!(applied.records(), after.records());
        assert!(applied.token(&token.token).is_some());
        assert!(applied.token(&kept.token).is_some());
        assert!(
            applied.token(&gone.token).is_none(),
            "the app's tokens go with it"
        );
        assert!(applied.authenticate(&key.secret).is_none());
        assert!(applied.authenticate(&operator.secret).is_some());
        // Applying it again changes nothing: a node hears of its own changes too.
        applied.apply(&diff);
        assert_eq!(applied.records(), after.records());
        assert!(after.diff(&applied).is_empty());
    }

    #[test]
    fn records_read_back_whole_become_the_same_registry() {
        let mut r = Registry::in_memory();
        r.create_app("shop").unwrap();
        r.create_key(&KeyScope::App("shop".into())).unwrap();
        r.bootstrap_operator_key();
        let copy = diff_to(&Registry::in_memory(), &r.records());
        let mut rebuilt = Registry::in_memory();
        rebuilt.apply(&copy);
        assert_eq!(rebuilt.records(), r.records());
    }
}
