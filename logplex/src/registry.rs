//! Apps, their ingest tokens and the API keys: what the router must remember across restarts.
//! Embedded default: one JSON file in the data directory, written whole to a temporary file,
//! synced and renamed over the old one, so a crash leaves either the old state or the new.
//! (Multi-node configuration in PostgreSQL is a later issue.)
//!
//! Names follow Heroku: an app name is 3 to 30 lowercase letters, digits and dashes, starting
//! with a letter. An ingest token is `t.<uuid>`, bound to one app and a source name (the
//! name its lines carry, `app` by default); an API key is either the operator's (everything)
//! or scoped to one app.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The file's format version; a file of another version is refused, not guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "registry.json";

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
    /// No such token.
    #[error("no such token")]
    NoSuchToken,
    /// A source name that cannot stand in a syslog APP-NAME field.
    #[error("invalid source name {0:?}: use 1 to 48 printable ASCII characters without spaces")]
    InvalidSourceName(String),
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// A UUID, as the Platform API gives apps.
    pub id: String,
    /// The app's name.
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An ingest token: lets a sender write lines to one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// `t.<uuid>`: what senders put in APP-NAME or the Basic-auth password.
    pub token: String,
    /// The app it writes to.
    pub app: String,
    /// The source its lines carry (`app`, or a name of the user's choice).
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Who an API key speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "app", rename_all = "snake_case")]
pub enum KeyScope {
    /// Every app, and the registry itself.
    Operator,
    /// One app only.
    App(String),
}

/// An API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The secret itself.
    pub key: String,
    /// What it may do.
    pub scope: KeyScope,
    /// When it was made.
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Contents {
    version: u32,
    apps: BTreeMap<String, App>,
    tokens: BTreeMap<String, Token>,
    keys: BTreeMap<String, ApiKey>,
}

/// Apps, tokens and keys, kept in a file when given one.
#[derive(Debug)]
pub struct Registry {
    contents: Contents,
    path: Option<PathBuf>,
}

/// Whether Heroku would take `name` as an app name.
pub fn is_valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4())
}

impl Registry {
    /// An empty registry kept only in memory.
    pub fn in_memory() -> Self {
        Registry {
            contents: Contents {
                version: FORMAT_VERSION,
                ..Contents::default()
            },
            path: None,
        }
    }

    /// The registry of a data directory: read from its file, or empty when there is none yet.
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        let contents = match std::fs::read(&path) {
            Ok(bytes) => Self::decode(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                version: FORMAT_VERSION,
                ..Contents::default()
            },
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        Ok(Registry {
            contents,
            path: Some(path),
        })
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Contents, RegistryError> {
        let format = |reason: String| RegistryError::Format {
            path: path.to_owned(),
            reason,
        };
        let probe: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format(e.to_string()))?;
        match probe.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format(format!(
                    "format version {v}, this program reads {FORMAT_VERSION}"
                )));
            }
            None => return Err(format("no format version".to_owned())),
        }
        serde_json::from_value(probe).map_err(|e| format(e.to_string()))
    }

    /// Writes the registry to its file (nothing for an in-memory one).
    fn save(&self) -> Result<(), RegistryError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| RegistryError::Io {
            path: path.clone(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(&self.contents).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = open_private(&tmp).map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            // The rename is durable once the directory is synced.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Makes an app and its first ingest token (source `app`).
    pub fn create_app(&mut self, name: &str) -> Result<(App, Token), RegistryError> {
        if !is_valid_app_name(name) {
            return Err(RegistryError::InvalidAppName(name.to_owned()));
        }
        if self.contents.apps.contains_key(name) {
            return Err(RegistryError::AppExists(name.to_owned()));
        }
        let now = Timestamp::now();
        let app = App {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.contents.apps.insert(name.to_owned(), app.clone());
        let token = self.insert_token(name, "app", now);
        self.save()?;
        Ok((app, token))
    }

    fn insert_token(&mut self, app: &str, name: &str, now: Timestamp) -> Token {
        let token = Token {
            token: new_secret("t."),
            app: app.to_owned(),
            name: name.to_owned(),
            created_at: now,
        };
        self.contents
            .tokens
            .insert(token.token.clone(), token.clone());
        token
    }

    /// Every app, by name.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.contents.apps.values()
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.contents.apps.get(name)
    }

    /// Removes an app with its tokens and app-scoped keys.
    pub fn delete_app(&mut self, name: &str) -> Result<App, RegistryError> {
        let app = self
            .contents
            .apps
            .remove(name)
            .ok_or_else(|| RegistryError::NoSuchApp(name.to_owned()))?;
        self.contents.tokens.retain(|_, t| t.app != name);
        let scope = KeyScope::App(name.to_owned());
        self.contents.keys.retain(|_, k| k.scope != scope);
        self.save()?;
        Ok(app)
    }

    /// A new ingest token for `app` whose lines carry the source `name`.
    pub fn create_token(&mut self, app: &str, name: &str) -> Result<Token, RegistryError> {
        if !self.contents.apps.contains_key(app) {
            return Err(RegistryError::NoSuchApp(app.to_owned()));
        }
        if name.is_empty() || name.len() > 48 || !name.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(RegistryError::InvalidSourceName(name.to_owned()));
        }
        let token = self.insert_token(app, name, Timestamp::now());
        self.save()?;
        Ok(token)
    }

    /// The tokens of `app`.
    pub fn tokens(&self, app: &str) -> impl Iterator<Item = &Token> {
        let app = app.to_owned();
        self.contents.tokens.values().filter(move |t| t.app == app)
    }

    /// Who a token writes as, if it is one.
    pub fn token(&self, token: &str) -> Option<&Token> {
        self.contents.tokens.get(token)
    }

    /// Replaces a token with a new one for the same app and source; the old one stops working.
    pub fn rotate_token(&mut self, token: &str) -> Result<Token, RegistryError> {
        let old = self
            .contents
            .tokens
            .remove(token)
            .ok_or(RegistryError::NoSuchToken)?;
        let new = self.insert_token(&old.app, &old.name, Timestamp::now());
        self.save()?;
        Ok(new)
    }

    /// Removes a token.
    pub fn revoke_token(&mut self, token: &str) -> Result<Token, RegistryError> {
        let old = self
            .contents
            .tokens
            .remove(token)
            .ok_or(RegistryError::NoSuchToken)?;
        self.save()?;
        Ok(old)
    }

    /// A new API key for `scope`.
    pub fn create_key(&mut self, scope: KeyScope) -> Result<ApiKey, RegistryError> {
        if let KeyScope::App(app) = &scope
            && !self.contents.apps.contains_key(app)
        {
            return Err(RegistryError::NoSuchApp(app.clone()));
        }
        let key = ApiKey {
            key: new_secret("k."),
            scope,
            created_at: Timestamp::now(),
        };
        self.contents.keys.insert(key.key.clone(), key.clone());
        self.save()?;
        Ok(key)
    }

    /// Keeps `key` as an operator key (one given by the operator, e.g. `PAAS_API_KEY`).
    pub fn adopt_operator_key(&mut self, key: &str) -> Result<(), RegistryError> {
        if self
            .contents
            .keys
            .get(key)
            .is_some_and(|k| k.scope == KeyScope::Operator)
        {
            return Ok(());
        }
        let adopted = ApiKey {
            key: key.to_owned(),
            scope: KeyScope::Operator,
            created_at: Timestamp::now(),
        };
        self.contents.keys.insert(key.to_owned(), adopted);
        self.save()
    }

    /// Whether any operator key exists.
    pub fn has_operator_key(&self) -> bool {
        self.contents
            .keys
            .values()
            .any(|k| k.scope == KeyScope::Operator)
    }

    /// What a presented key may do, if it is one.
    pub fn key(&self, key: &str) -> Option<&KeyScope> {
        self.contents.keys.get(key).map(|k| &k.scope)
    }
}

/// Creates (or truncates) a file only its owner may read: it holds credentials.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("logplex-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn app_names_as_heroku_takes_them() {
        for ok in ["shop", "my-app-2", "abc", "a23456789012345678901234567890"] {
            assert!(is_valid_app_name(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Shop",
            "2fast",
            "my_app",
            "a234567890123456789012345678901",
            "app!",
            "-app",
            "ünï",
        ] {
            assert!(!is_valid_app_name(bad), "{bad}");
        }
    }

    #[test]
    fn apps_tokens_and_keys() {
        let mut r = Registry::in_memory();
        let (app, token) = r.create_app("shop").unwrap();
        assert_eq!(app.name, "shop");
        assert!(token.token.starts_with("t.") && token.token.len() == 38);
        assert_eq!(
            r.token(&token.token)
                .map(|t| (t.app.as_str(), t.name.as_str())),
            Some(("shop", "app"))
        );
        assert!(matches!(
            r.create_app("shop"),
            Err(RegistryError::AppExists(_))
        ));
        assert!(matches!(
            r.create_app("Shop"),
            Err(RegistryError::InvalidAppName(_))
        ));

        let worker = r.create_token("shop", "deploys").unwrap();
        assert_eq!(r.tokens("shop").count(), 2);
        assert!(matches!(
            r.create_token("shop", "has space"),
            Err(RegistryError::InvalidSourceName(_))
        ));
        assert!(matches!(
            r.create_token("nope", "app"),
            Err(RegistryError::NoSuchApp(_))
        ));

        let rotated = r.rotate_token(&worker.token).unwrap();
        assert!(
            r.token(&worker.token).is_none(),
            "the old token stops working"
        );
        assert_eq!(
            r.token(&rotated.token).map(|t| t.name.as_str()),
            Some("deploys")
        );
        r.revoke_token(&rotated.token).unwrap();
        assert!(matches!(
            r.revoke_token(&rotated.token),
            Err(RegistryError::NoSuchToken)
        ));

        let key = r.create_key(KeyScope::App("shop".into())).unwrap();
        assert_eq!(r.key(&key.key), Some(&KeyScope::App("shop".into())));
        assert!(r.key("k.not-a-key").is_none());
        r.delete_app("shop").unwrap();
        assert!(
            r.token(&token.token).is_none() && r.key(&key.key).is_none(),
            "an app's credentials go with it"
        );
    }

    #[test]
    fn survives_a_restart() {
        let dir = temp_dir("restart");
        let (token, key) = {
            let mut r = Registry::open(&dir).unwrap();
            let (_, token) = r.create_app("shop").unwrap();
            r.adopt_operator_key("operator-secret").unwrap();
            (token, r.create_key(KeyScope::App("shop".into())).unwrap())
        };
        let r = Registry::open(&dir).unwrap();
        assert_eq!(r.app("shop").map(|a| a.name.as_str()), Some("shop"));
        assert_eq!(r.token(&token.token), Some(&token));
        assert_eq!(r.key(&key.key), Some(&KeyScope::App("shop".into())));
        assert_eq!(r.key("operator-secret"), Some(&KeyScope::Operator));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "credentials are readable by their owner only"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The file format as version 1 writes it, frozen: a later change that cannot read it fails here.
    #[test]
    fn reads_the_frozen_version_1_fixture() {
        let dir = temp_dir("fixture");
        std::fs::write(
            dir.join(FILE_NAME),
            include_str!("../tests/fixtures/registry-v1.json"),
        )
        .unwrap();
        let r = Registry::open(&dir).unwrap();
        assert_eq!(
            r.app("shop").map(|a| a.id.as_str()),
            Some("6f1c1a86-3c5e-4a43-9c1e-2b7e1f0a5d11")
        );
        let t = r.token("t.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d").unwrap();
        assert_eq!((t.app.as_str(), t.name.as_str()), ("shop", "app"));
        assert_eq!(r.key("k.operator"), Some(&KeyScope::Operator));
        assert_eq!(r.key("k.scoped"), Some(&KeyScope::App("shop".into())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_or_future_files_are_refused_with_a_reason() {
        let dir = temp_dir("damaged");
        for (content, reason) in [
            ("{not json", "key must be a string"),
            (r#"{"apps": {}}"#, "no format version"),
            (
                r#"{"version": 2}"#,
                "format version 2, this program reads 1",
            ),
        ] {
            std::fs::write(dir.join(FILE_NAME), content).unwrap();
            let err = Registry::open(&dir).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
