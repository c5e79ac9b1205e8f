//! Apps, their ingest tokens and keys, and their stats. App info follows the Platform API's
//! app resource, with the fields clients switch on (`generation.name = "cedar"`).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::response::{Body, error, json, no_such_app};
use crate::api::{ApiState, read_json};
use crate::registry::{App, KeyScope, RegistryError, Token};

/// Stable ids for the fixed parts of every app (one generation, stack and region here).
const GENERATION_ID: &str = "6c2b1e8e-4f0e-4f4e-9d6a-9c3b2f1a0001";
const STACK_ID: &str = "6c2b1e8e-4f0e-4f4e-9d6a-9c3b2f1a0002";
const REGION_ID: &str = "6c2b1e8e-4f0e-4f4e-9d6a-9c3b2f1a0003";
const OWNER_ID: &str = "6c2b1e8e-4f0e-4f4e-9d6a-9c3b2f1a0004";

/// The Platform API's app resource.
pub(crate) fn app_json(app: &App) -> Value {
    json!({
        "id": app.id,
        "name": app.name,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
        "released_at": app.updated_at,
        "generation": { "id": GENERATION_ID, "name": "cedar" },
        "stack": { "id": STACK_ID, "name": "paas-1" },
        "build_stack": { "id": STACK_ID, "name": "paas-1" },
        "region": { "id": REGION_ID, "name": "local" },
        "owner": { "id": OWNER_ID, "email": "operator@localhost" },
        "acm": false,
        "create_status": "complete",
        "archived_at": null,
        "buildpack_provided_description": null,
        "git_url": null,
        "internal_routing": null,
        "maintenance": false,
        "organization": null,
        "repo_size": null,
        "slug_size": null,
        "space": null,
        "team": null,
        "web_url": null,
    })
}

/// `GET /account`: who the key belongs to (the operator, or the app's owner), as the Platform
/// API's account resource; the `heroku` CLI reads it before most commands.
pub(crate) fn account(key_id: &str, scope: &KeyScope) -> Response<Body> {
    let (id, email) = match scope {
        KeyScope::Operator => (OWNER_ID.to_owned(), "operator@localhost".to_owned()),
        KeyScope::App(app) => (key_id.to_owned(), format!("{app}@localhost")),
    };
    json(
        StatusCode::OK,
        &json!({
            "id": id,
            "email": email,
            "name": null,
            "allow_tracking": false,
            "beta": false,
            "verified": true,
            "two_factor_authentication": false,
            "default_organization": null,
            "default_team": null,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }),
    )
}

fn token_json(t: &Token, app: &str) -> Value {
    json!({
        "token": t.token,
        "name": t.name,
        "app": { "id": t.app_id, "name": app },
        "created_at": t.created_at,
    })
}

/// The one mapping of registry errors to API answers.
pub(crate) fn registry_error(e: RegistryError) -> Response<Body> {
    match e {
        RegistryError::NoSuchApp(_) => no_such_app(),
        RegistryError::AppExists(name) => error(
            StatusCode::CONFLICT,
            "conflict",
            &format!("Name {name} is already taken."),
        ),
        RegistryError::InvalidAppName(_) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "Name must start with a letter, end with a letter or digit and can only contain lowercase letters, digits, and dashes; 3 to 30 characters.",
        ),
        e @ (RegistryError::InvalidSourceName { .. } | RegistryError::TooMany { .. }) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            &format!("{}.", capitalized(&e.to_string())),
        ),
        RegistryError::NoSuchToken => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Couldn't find that token.",
        ),
        RegistryError::NoSuchKey => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Couldn't find that key.",
        ),
        e @ RegistryError::ConfiguredKey => error(
            StatusCode::CONFLICT,
            "conflict",
            &format!("{}.", capitalized(&e.to_string())),
        ),
        e @ RegistryError::Unavailable(_) => {
            tracing::warn!(error = %e, "registry");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!(
                    "{}; nothing was changed, try again.",
                    capitalized(&e.to_string())
                ),
            )
        }
        other => {
            tracing::error!(error = %other, "registry");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "The registry could not be saved.",
            )
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `GET /apps`: every app the caller may see.
pub(crate) fn list(state: &ApiState, scope: &KeyScope) -> Response<Body> {
    let apps: Vec<Value> = state
        .router
        .apps()
        .iter()
        .filter(|a| super::may_see(scope, &a.name))
        .map(app_json)
        .collect();
    json(StatusCode::OK, &apps)
}

#[derive(Deserialize)]
struct CreateApp {
    name: Option<String>,
}

/// `POST /apps {"name"}`: the app, and its first ingest token as `ingest_token`.
pub(crate) async fn create(state: &Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let body: CreateApp = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = body.name else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "Missing name.",
        );
    };
    match state.router.create_app(&name) {
        Ok((app, token)) => {
            let mut v = app_json(&app);
            v["ingest_token"] = token_json(&token, &app.name);
            json(StatusCode::CREATED, &v)
        }
        Err(e) => registry_error(e),
    }
}

/// `GET /apps/{app}`.
pub(crate) fn info(state: &ApiState, app: &str) -> Response<Body> {
    match state.router.app(app) {
        Some(a) => json(StatusCode::OK, &app_json(&a)),
        None => no_such_app(),
    }
}

/// `DELETE /apps/{app}`: its channel closes, its tokens and keys stop working.
pub(crate) fn delete(state: &ApiState, app: &str) -> Response<Body> {
    match state.router.delete_app(app) {
        Ok(a) => json(StatusCode::OK, &app_json(&a)),
        Err(e) => registry_error(e),
    }
}

/// `GET /apps/{app}/stats`.
pub(crate) fn stats(state: &ApiState, app: &str) -> Response<Body> {
    match state.router.channel(app) {
        Some(c) => json(StatusCode::OK, &c.stats()),
        None => no_such_app(),
    }
}

/// `GET /apps/{app}/tokens`.
pub(crate) fn tokens(state: &ApiState, app: &str) -> Response<Body> {
    if state.router.app(app).is_none() {
        return no_such_app();
    }
    let list: Vec<Value> = state
        .router
        .tokens(app)
        .iter()
        .map(|t| token_json(t, app))
        .collect();
    json(StatusCode::OK, &list)
}

#[derive(Deserialize)]
struct CreateToken {
    name: Option<String>,
}

/// `POST /apps/{app}/tokens {"name"}`: a new token whose lines carry the source `name`.
pub(crate) async fn create_token(
    state: &Arc<ApiState>,
    app: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let body: CreateToken = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body.name.unwrap_or_else(|| "app".to_owned());
    match state.router.create_token(app, &name) {
        Ok(t) => json(StatusCode::CREATED, &token_json(&t, app)),
        Err(e) => registry_error(e),
    }
}

/// `POST /apps/{app}/tokens/{token}/actions/rotate`: a new token replaces it. Only the app's
/// own tokens: another app's is "not found", whoever asks.
pub(crate) fn rotate_token(state: &ApiState, app: &str, token: &str) -> Response<Body> {
    match state.router.rotate_token(app, token) {
        Ok(t) => json(StatusCode::CREATED, &token_json(&t, app)),
        Err(e) => registry_error(e),
    }
}

/// `DELETE /apps/{app}/tokens/{token}`.
pub(crate) fn revoke_token(state: &ApiState, app: &str, token: &str) -> Response<Body> {
    match state.router.revoke_token(app, token) {
        Ok(t) => json(StatusCode::OK, &token_json(&t, app)),
        Err(e) => registry_error(e),
    }
}
