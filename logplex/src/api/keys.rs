//! API keys: list, create, revoke, rotate. `/keys` for the operator (every key, and operator
//! keys), `/apps/{app}/keys` for an app's own. A key is shown by id, scope, origin and its last
//! four characters; the key itself is shown once, when it is made, and only its digest is kept.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::api::apps::registry_error;
use crate::api::response::{Body, json};
use crate::registry::{ApiKey, KeyScope, NewKey};

fn key_json(k: &ApiKey) -> Value {
    let (kind, app) = match &k.scope {
        KeyScope::Operator => ("operator", Value::Null),
        KeyScope::App(name) => ("app", json!({ "name": name })),
    };
    json!({
        "id": k.id,
        "scope": kind,
        "app": app,
        "origin": k.origin,
        "hint": k.hint,
        "created_at": k.created_at,
    })
}

fn new_key_json(k: &NewKey) -> Value {
    let mut v = key_json(&k.key);
    v["key"] = Value::String(k.secret.clone());
    v
}

/// `GET /keys` (every key) or `GET /apps/{app}/keys` (the app's).
pub(crate) fn list(state: &ApiState, scope: &KeyScope) -> Response<Body> {
    let keys: Vec<Value> = state.router.keys(scope).iter().map(key_json).collect();
    json(StatusCode::OK, &keys)
}

/// `POST /keys` (an operator key) or `POST /apps/{app}/keys` (a key for the app).
pub(crate) fn create(state: &ApiState, scope: &KeyScope) -> Response<Body> {
    match state.router.create_key(scope) {
        Ok(k) => json(StatusCode::CREATED, &new_key_json(&k)),
        Err(e) => registry_error(e),
    }
}

/// `DELETE /keys/{id}`: the key stops working at once.
pub(crate) fn revoke(state: &ApiState, id: &str, by: &KeyScope) -> Response<Body> {
    match state.router.revoke_key(id, by) {
        Ok(k) => json(StatusCode::OK, &key_json(&k)),
        Err(e) => registry_error(e),
    }
}

/// `POST /keys/{id}/actions/rotate`: a new key of the same scope; the old one stops working.
pub(crate) fn rotate(state: &ApiState, id: &str, by: &KeyScope) -> Response<Body> {
    match state.router.rotate_key(id, by) {
        Ok(k) => json(StatusCode::CREATED, &new_key_json(&k)),
        Err(e) => registry_error(e),
    }
}
