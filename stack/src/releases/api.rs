//! The Platform API's config-var and release resources for the app `paas up` runs:
//! `GET/PATCH /apps/{app}/config-vars` (a `null` value removes a var),
//! `GET /apps/{app}/releases[/{id or version}[/config-vars]]` and `POST /apps/{app}/releases`
//! with `{"release": ID}` (a rollback). Each change makes a release, writes Heroku's `api`
//! lines into the app's stream (names only, never values) and restarts the dynos one at a
//! time with the new environment. Releases are kept by a `ReleaseLog`: the data directory's
//! file, or PostgreSQL in a cluster, where a release made on another node restarts this
//! node's dynos too (without a second release or a second set of `api` lines).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, Caller, Emitter, KeyScope, api_error, api_json, read_json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::dyno::manager::DynoManager;
use crate::releases::log::{ChangeError, ReleaseLog, make_release};
use crate::releases::store::{ConfigVars, Release, ReleaseError};

/// How long a change waits for the ones before it on this process (each bounded by its
/// store: a PostgreSQL that does not answer holds one for a few seconds); past it, 503.
const CHANGE_WAIT: Duration = Duration::from_secs(10);

/// What a tenant may store as config vars.
#[derive(Clone, Copy, Debug)]
pub struct ConfigLimits {
    /// Config vars an app may have.
    pub max_vars: usize,
    /// Bytes of names and values together (Heroku's limit is 32 KiB).
    pub max_bytes: usize,
}

impl Default for ConfigLimits {
    fn default() -> Self {
        ConfigLimits {
            max_vars: 500,
            max_bytes: 32 << 10,
        }
    }
}

/// The app's releases and config vars, served as Platform API resources.
#[derive(Clone, Debug)]
pub struct ReleasesApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Arc<dyn ReleaseLog>,
    /// One change at a time on this process (the log settles races between processes).
    changes: tokio::sync::Mutex<()>,
    /// The release whose config vars the dynos were last given.
    applied: Mutex<Option<String>>,
    manager: DynoManager,
    /// What every dyno gets before its config vars (`PATH`, `DATABASE_URL`).
    base_env: Vec<(String, String)>,
    platform: Emitter,
    limits: ConfigLimits,
    /// One rolling restart at a time (a second change waits for the first's).
    restarts: tokio::sync::Mutex<()>,
    /// How long a restart waits for each dyno to be up again.
    each: Duration,
}

/// Which resource.
#[derive(Clone, Copy, Debug)]
enum Resource {
    ConfigVars,
    Releases,
}

/// The email of who is calling, as `GET /account` names it.
pub fn caller_email(req: &Request<Incoming>) -> String {
    match req.extensions().get::<Caller>().map(|c| &c.scope) {
        Some(KeyScope::App(app)) => format!("{app}@localhost"),
        _ => "operator@localhost".to_owned(),
    }
}

impl ReleasesApi {
    /// Serves `log`'s app, whose dynos `manager` runs with `base_env` then the config vars
    /// (started with `running`'s); `platform` takes the `api` lines. When the log tells of
    /// releases made elsewhere, the dynos are restarted with each (one task, on the current
    /// runtime).
    pub fn new(
        log: Arc<dyn ReleaseLog>,
        running: Option<&Release>,
        manager: DynoManager,
        base_env: Vec<(String, String)>,
        platform: Emitter,
        limits: ConfigLimits,
    ) -> ReleasesApi {
        let changes = log.changes();
        let api = ReleasesApi {
            inner: Arc::new(Inner {
                log,
                changes: tokio::sync::Mutex::new(()),
                applied: Mutex::new(running.map(|r| r.id.clone())),
                manager,
                base_env,
                platform,
                limits,
                restarts: tokio::sync::Mutex::new(()),
                each: Duration::from_secs(30),
            }),
        };
        if let Some(mut changes) = changes {
            let this = api.clone();
            // Caught up first: a release may have come between `running` and now.
            this.restart_with_newest();
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    this.restart_with_newest();
                }
            });
        }
        api
    }

    /// The environment dynos start with for `vars`: the base, then the vars.
    pub fn env_for(base: &[(String, String)], vars: &ConfigVars) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| !vars.contains_key(k))
            .cloned()
            .collect();
        env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// `/apps/{app}/config-vars`.
    pub fn config_vars(&self) -> Arc<dyn AppResource> {
        Arc::new(Served(self.clone(), Resource::ConfigVars))
    }

    /// `/apps/{app}/releases`.
    pub fn releases(&self) -> Arc<dyn AppResource> {
        Arc::new(Served(self.clone(), Resource::Releases))
    }

    fn current_vars(&self) -> ConfigVars {
        self.inner
            .log
            .current()
            .map(|r| r.config_vars)
            .unwrap_or_default()
    }

    /// Makes a release from the current config vars with `make` (a description and the new
    /// vars; `None`: nothing to release), one change at a time, again from the newer vars
    /// when another node made a release meanwhile, so that changes at once all count; says
    /// so in the app's stream, and restarts the dynos with the new vars (in the background,
    /// one at a time). The vars after it, and the release if one was made.
    async fn release(
        &self,
        user: &str,
        make: impl FnMut(&ConfigVars) -> Result<Option<(String, ConfigVars)>, String>,
    ) -> Result<(ConfigVars, Option<Release>), ChangeError> {
        let release = {
            let Ok(_one) = tokio::time::timeout(CHANGE_WAIT, self.inner.changes.lock()).await
            else {
                return Err(ChangeError::Store(ReleaseError::Unavailable(
                    "the changes before this one are still being saved".to_owned(),
                )));
            };
            make_release(&*self.inner.log, user, make).await?
        };
        let Some(release) = release else {
            return Ok((self.current_vars(), None));
        };
        let platform = &self.inner.platform;
        let _ = platform.try_emit("api", format!("{} by {user}", release.description));
        let _ = platform.try_emit(
            "api",
            format!("Release v{} created by {user}", release.version),
        );
        self.restart_with_newest();
        Ok((release.config_vars.clone(), Some(release)))
    }

    /// Restarts the dynos one at a time with the newest release's vars (in the background,
    /// one restart at a time), unless they were given them already.
    fn restart_with_newest(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let _one = this.inner.restarts.lock().await;
            // The newest release, whichever change this task was spawned for.
            let Some(newest) = this.inner.log.current() else {
                return;
            };
            {
                let mut applied = this.inner.applied.lock().unwrap_or_else(|p| p.into_inner());
                if applied.as_deref() == Some(newest.id.as_str()) {
                    return;
                }
                *applied = Some(newest.id.clone());
            }
            let inner = &this.inner;
            inner
                .manager
                .set_env(ReleasesApi::env_for(&inner.base_env, &newest.config_vars));
            inner.manager.restart_rolling(inner.each).await;
        });
    }

    fn release_json(&self, r: &Release, current: Option<&str>) -> Value {
        let current = current == Some(r.id.as_str());
        json!({
            "id": r.id,
            "version": r.version,
            "description": r.description,
            "status": "succeeded",
            "current": current,
            "eligible_for_rollback": true,
            "user": { "id": r.user, "email": r.user },
            "created_at": r.created_at,
            "updated_at": r.created_at,
            "app": { "name": self.store_app() },
            "slug": null,
            "addon_plan_names": [],
            "output_stream_url": null,
        })
    }

    fn store_app(&self) -> String {
        self.inner.manager.app().to_owned()
    }
}

fn not_found(what: &str) -> Response<Body> {
    api_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("Couldn't find that {what}."),
    )
}

/// The answer to a change that made no release: the request asks for what may not be (422),
/// another node kept changing the app's config vars at the same time (409), the store cannot
/// be reached (503: nothing changed), or it failed (500).
fn refused(change: ChangeError) -> Response<Body> {
    match change {
        ChangeError::Invalid(message) => invalid(&message),
        ChangeError::Store(ReleaseError::Conflict { version }) => api_error(
            StatusCode::CONFLICT,
            "conflict",
            &format!(
                "Release v{version} was made elsewhere while this change was made; nothing changed. Try again."
            ),
        ),
        ChangeError::Store(ReleaseError::Unavailable(why)) => {
            tracing::warn!(reason = %why, "paas: a config change refused: the release store is unavailable");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The release store (the cluster's PostgreSQL) is unavailable; nothing changed. Try again later.",
            )
        }
        ChangeError::Store(e) => {
            tracing::error!(error = %e, "paas: could not save a release");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "The release could not be saved.",
            )
        }
    }
}

fn invalid(message: &str) -> Response<Body> {
    api_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
}

/// A config var's name: a letter or `_`, then letters, digits and `_` (an environment
/// variable's name).
fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `vars` after `patch` (a value sets, `null` removes), within `limits`; with what was set
/// and what removed, by name.
fn patched(
    vars: &ConfigVars,
    patch: &Map<String, Value>,
    limits: ConfigLimits,
) -> Result<(ConfigVars, Vec<String>, Vec<String>), String> {
    let mut out = vars.clone();
    let (mut set, mut removed) = (vec![], vec![]);
    for (name, value) in patch {
        if !is_var_name(name) {
            return Err(format!(
                "{:?} is not a config var name (a letter or _, then letters, digits and _).",
                name.chars().take(64).collect::<String>()
            ));
        }
        match value {
            Value::Null => {
                if out.remove(name).is_some() {
                    removed.push(name.clone());
                }
            }
            Value::String(v) if v.contains('\0') => {
                return Err(format!("{name}: a value may not hold a NUL byte."));
            }
            Value::String(v) => {
                out.insert(name.clone(), v.clone());
                set.push(name.clone());
            }
            Value::Number(_) | Value::Bool(_) => {
                out.insert(name.clone(), value.to_string());
                set.push(name.clone());
            }
            _ => return Err(format!("{name}: a value is a string or null.")),
        }
    }
    if out.len() > limits.max_vars {
        return Err(format!(
            "An app may have at most {} config vars (--config-max-vars).",
            limits.max_vars
        ));
    }
    let bytes: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > limits.max_bytes {
        return Err(format!(
            "An app's config vars may take at most {} bytes, names and values (--config-max-bytes).",
            limits.max_bytes
        ));
    }
    Ok((out, set, removed))
}

/// Heroku's description of a config change: "Set A, B config vars", "Remove C config vars".
fn describe(set: &[String], removed: &[String]) -> String {
    match (set.is_empty(), removed.is_empty()) {
        (false, true) => format!("Set {} config vars", set.join(", ")),
        (true, false) => format!("Remove {} config vars", removed.join(", ")),
        _ => format!(
            "Set {} and remove {} config vars",
            set.join(", "),
            removed.join(", ")
        ),
    }
}

/// The Platform API's `Range: version ..; max=10, order=desc` (how the `heroku` CLI asks
/// for the newest releases): how many, and whether newest first.
fn range(headers: &http::HeaderMap) -> (usize, bool) {
    let Some(range) = headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return (usize::MAX, false);
    };
    let mut max = usize::MAX;
    let mut desc = false;
    for part in range.split([';', ',']).map(str::trim) {
        if let Some(n) = part.strip_prefix("max=") {
            max = n.parse().unwrap_or(usize::MAX);
        } else if part == "order=desc" {
            desc = true;
        }
    }
    (max, desc)
}

#[derive(Deserialize)]
struct Rollback {
    release: Option<Value>,
}

#[derive(Debug)]
struct Served(ReleasesApi, Resource);

impl Served {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        let api = self.0;
        if app != api.store_app() {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "This app has no releases here (is it started by `paas up`?).",
            );
        }
        let user = caller_email(&req);
        let method = req.method().clone();
        match (self.1, method, rest.as_slice()) {
            (Resource::ConfigVars, Method::GET, []) => {
                api_json(StatusCode::OK, &api.current_vars())
            }
            (Resource::ConfigVars, Method::PATCH, []) => {
                let patch = match read_json::<Value>(req).await {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => return invalid("The body is a JSON object of config vars."),
                    Err(r) => return r,
                };
                let limits = api.inner.limits;
                let changed = api
                    .release(&user, |current| {
                        let (vars, set, removed) = patched(current, &patch, limits)?;
                        let changed = vars != *current || !set.is_empty();
                        Ok(changed.then(|| (describe(&set, &removed), vars)))
                    })
                    .await;
                match changed {
                    Ok((vars, _)) => api_json(StatusCode::OK, &vars),
                    Err(change) => refused(change),
                }
            }
            (Resource::Releases, Method::GET, []) => {
                let (max, desc) = range(req.headers());
                let mut all = api.inner.log.all();
                let current = all.last().map(|r| r.id.clone());
                if desc {
                    all.reverse();
                }
                all.truncate(max);
                let list: Vec<Value> = all
                    .iter()
                    .map(|r| api.release_json(r, current.as_deref()))
                    .collect();
                api_json(StatusCode::OK, &list)
            }
            (Resource::Releases, Method::GET, [key]) => {
                let found = api.inner.log.find(key);
                let current = api.inner.log.current().map(|r| r.id);
                match found {
                    Some(r) => api_json(StatusCode::OK, &api.release_json(&r, current.as_deref())),
                    None => not_found("release"),
                }
            }
            (Resource::Releases, Method::GET, [key, vars]) if vars == "config-vars" => {
                match api.inner.log.find(key) {
                    Some(r) => api_json(StatusCode::OK, &r.config_vars),
                    None => not_found("release"),
                }
            }
            (Resource::Releases, Method::POST, []) => {
                let key = match read_json::<Rollback>(req).await {
                    Ok(Rollback {
                        release: Some(Value::String(s)),
                    }) => s,
                    Ok(Rollback {
                        release: Some(Value::Number(n)),
                    }) => n.to_string(),
                    Ok(_) => return invalid("A rollback names a release: {\"release\": ID}."),
                    Err(r) => return r,
                };
                let Some(to) = api.inner.log.find(&key) else {
                    return not_found("release");
                };
                let description = format!("Rollback to v{}", to.version);
                let made = api
                    .release(&user, |_| {
                        Ok(Some((description.clone(), to.config_vars.clone())))
                    })
                    .await;
                match made {
                    Ok((_, Some(r))) => {
                        api_json(StatusCode::CREATED, &api.release_json(&r, Some(&r.id)))
                    }
                    Ok((_, None)) => not_found("release"),
                    Err(change) => refused(change),
                }
            }
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
        }
    }
}

impl AppResource for Served {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(Served(self.0.clone(), self.1).serve(req, app, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_patch_sets_removes_and_is_bounded() {
        let limits = ConfigLimits {
            max_vars: 3,
            max_bytes: 20,
        };
        let vars: ConfigVars = [("A".to_owned(), "1".to_owned())].into();
        let (out, set, removed) =
            patched(&vars, &map(json!({"B": "2", "A": null})), limits).unwrap();
        assert_eq!(out, [("B".to_owned(), "2".to_owned())].into());
        assert_eq!(
            (set.as_slice(), removed.as_slice()),
            (&["B".to_owned()][..], &["A".to_owned()][..])
        );
        assert_eq!(describe(&set, &removed), "Set B and remove A config vars");
        for bad in [
            json!({"1A": "x"}),
            json!({"A-B": "x"}),
            json!({"": "x"}),
            json!({"A": ["x"]}),
            json!({"A": "a\u{0}b"}),
            json!({"A": "x".repeat(30)}),
            json!({"A": "", "B": "", "C": "", "D": ""}),
        ] {
            assert!(patched(&vars, &map(bad.clone()), limits).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_range_asks_for_the_newest() {
        let mut h = http::HeaderMap::new();
        assert_eq!(range(&h), (usize::MAX, false));
        h.insert(
            http::header::RANGE,
            http::HeaderValue::from_static("version ..; max=10, order=desc"),
        );
        assert_eq!(range(&h), (10, true));
    }

    #[test]
    fn config_vars_override_the_base_environment() {
        let base = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("X".to_owned(), "base".to_owned()),
        ];
        let vars: ConfigVars = [("X".to_owned(), "var".to_owned())].into();
        let env = ReleasesApi::env_for(&base, &vars);
        assert_eq!(
            env,
            vec![
                ("PATH".to_owned(), "/bin".to_owned()),
                ("X".to_owned(), "var".to_owned())
            ]
        );
    }
}
