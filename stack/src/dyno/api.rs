//! The Platform API's formation and dyno resources, on the running dyno managers:
//! `GET /apps/{app}/formation[/{type}]`, `PATCH /apps/{app}/formation` with `{updates: [{type,
//! quantity}]}` or `PATCH /apps/{app}/formation/{type}` with `{quantity}` (how `scale` works),
//! `GET /apps/{app}/dynos[/{dyno}]`, and `DELETE /apps/{app}/dynos[/{dyno or type}]` (restart).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, api_error, api_json, read_json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dyno::manager::{DynoManager, ManagerError};

/// The most dynos of one type.
pub const MAX_QUANTITY: usize = 100;

/// Which resource.
#[derive(Clone, Copy, Debug)]
enum Resource {
    Formation,
    Dynos,
}

/// The running apps' dyno managers, served as a Platform API resource.
#[derive(Clone, Debug, Default)]
pub struct DynoApi {
    managers: Arc<RwLock<HashMap<String, DynoManager>>>,
}

impl DynoApi {
    /// Serves `manager`'s app.
    pub fn add(&self, manager: DynoManager) {
        self.managers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(manager.app().to_owned(), manager);
    }

    fn get(&self, app: &str) -> Option<DynoManager> {
        self.managers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }

    /// `/apps/{app}/formation`.
    pub fn formation(&self) -> Arc<dyn AppResource> {
        Arc::new(Served(self.clone(), Resource::Formation))
    }

    /// `/apps/{app}/dynos`.
    pub fn dynos(&self) -> Arc<dyn AppResource> {
        Arc::new(Served(self.clone(), Resource::Dynos))
    }
}

#[derive(Debug)]
struct Served(DynoApi, Resource);

#[derive(Deserialize)]
struct Update {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "quantity")]
    quantity: Option<usize>,
}

/// A quantity as a number or a string of digits (the `heroku` CLI sends `"2"`), as Heroku
/// accepts both.
fn quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom("quantity must be a whole number of dynos")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 6 => s
            .trim()
            .parse::<usize>()
            .map(Some)
            .map_err(|_| D::Error::custom("quantity must be a whole number of dynos")),
        Some(_) => Err(D::Error::custom("quantity must be a whole number of dynos")),
    }
}

#[derive(Deserialize)]
struct Updates {
    updates: Vec<Update>,
}

fn formation_json(app: &str, kind: &str, command: &str, quantity: usize) -> Value {
    json!({
        "app": { "name": app },
        "id": format!("{app}.{kind}"),
        "type": kind,
        "command": command,
        "quantity": quantity,
        "size": "standard-1X",
    })
}

fn not_found(what: &str) -> Response<Body> {
    api_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("Couldn't find that {what}."),
    )
}

fn failure(e: ManagerError) -> Response<Body> {
    match e {
        ManagerError::NoSuchType(_) => not_found("formation"),
        ManagerError::NoSuchDyno(_) => not_found("dyno"),
        ManagerError::Stopping => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &e.to_string(),
        ),
    }
}

impl Served {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        let Some(manager) = self.0.get(&app) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "This app has no running dynos here (is it started by `paas up`?).",
            );
        };
        let method = req.method().clone();
        match (self.1, method, rest.as_slice()) {
            (Resource::Formation, Method::GET, []) => {
                let list: Vec<Value> = manager
                    .formation()
                    .iter()
                    .map(|(k, c, q)| formation_json(&app, k, c, *q))
                    .collect();
                api_json(StatusCode::OK, &list)
            }
            (Resource::Formation, Method::GET, [kind]) => {
                match manager.formation().iter().find(|(k, _, _)| k == kind) {
                    Some((k, c, q)) => api_json(StatusCode::OK, &formation_json(&app, k, c, *q)),
                    None => not_found("formation"),
                }
            }
            (Resource::Formation, Method::PATCH, rest) => {
                let updates = match rest {
                    [] => match read_json::<Updates>(req).await {
                        Ok(u) => u.updates,
                        Err(r) => return r,
                    },
                    [kind] => match read_json::<Update>(req).await {
                        Ok(u) => vec![Update {
                            kind: Some(kind.clone()),
                            quantity: u.quantity,
                        }],
                        Err(r) => return r,
                    },
                    _ => return not_found("formation"),
                };
                let mut checked = Vec::with_capacity(updates.len());
                for u in updates {
                    let (Some(kind), Some(quantity)) = (u.kind, u.quantity) else {
                        return api_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_params",
                            "Each update needs a type and a quantity.",
                        );
                    };
                    if quantity > MAX_QUANTITY {
                        return api_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_params",
                            &format!("At most {MAX_QUANTITY} dynos of one type."),
                        );
                    }
                    if !manager.formation().iter().any(|(k, _, _)| *k == kind) {
                        return not_found("formation");
                    }
                    checked.push((kind, quantity));
                }
                for (kind, quantity) in &checked {
                    if let Err(e) = manager.scale(kind, *quantity) {
                        return failure(e);
                    }
                }
                let list: Vec<Value> = manager
                    .formation()
                    .iter()
                    .filter(|(k, _, _)| checked.iter().any(|(c, _)| c == k))
                    .map(|(k, c, q)| formation_json(&app, k, c, *q))
                    .collect();
                match rest {
                    [_] => api_json(StatusCode::OK, &list.first()),
                    _ => api_json(StatusCode::OK, &list),
                }
            }
            (Resource::Dynos, Method::GET, []) => {
                api_json(StatusCode::OK, &dynos_json(&app, &manager, None))
            }
            (Resource::Dynos, Method::GET, [name]) => {
                match dynos_json(&app, &manager, Some(name)).into_iter().next() {
                    Some(d) => api_json(StatusCode::OK, &d),
                    None => not_found("dyno"),
                }
            }
            // `heroku ps:restart -p web` and `ps:stop -p worker` (`ps:stop` of a formation
            // dyno restarts it: the formation still asks for it, as on Heroku).
            (Resource::Formation, Method::DELETE, [kind]) => match manager.restart(Some(kind)) {
                Ok(n) => api_json(StatusCode::ACCEPTED, &json!({ "restarted": n })),
                Err(e) => failure(e),
            },
            (Resource::Formation, Method::POST, [kind, action, verb])
                if action == "actions" && verb == "stop" =>
            {
                match manager.restart(Some(kind)) {
                    Ok(n) => api_json(StatusCode::ACCEPTED, &json!({ "restarted": n })),
                    Err(e) => failure(e),
                }
            }
            // `heroku ps:stop web.1` and `ps:kill web.1`.
            (Resource::Dynos, Method::POST, [name, action, verb])
                if action == "actions" && (verb == "stop" || verb == "kill") =>
            {
                match manager.restart(Some(name)) {
                    Ok(n) => api_json(StatusCode::ACCEPTED, &json!({ "restarted": n })),
                    Err(e) => failure(e),
                }
            }
            (Resource::Dynos, Method::DELETE, rest) => {
                let which = rest.first().map(String::as_str);
                match manager.restart(which) {
                    Ok(n) => api_json(StatusCode::ACCEPTED, &json!({ "restarted": n })),
                    Err(e) => failure(e),
                }
            }
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
        }
    }
}

fn dynos_json(app: &str, manager: &DynoManager, name: Option<&String>) -> Vec<Value> {
    manager
        .dynos()
        .into_iter()
        .filter(|d| name.is_none_or(|n| *n == d.name))
        .map(|d| {
            json!({
                "app": { "name": app },
                "id": d.id,
                "name": d.name,
                "type": d.kind,
                "command": d.command,
                "state": d.state,
                "size": "standard-1X",
                "created_at": d.created_at,
                "updated_at": d.updated_at,
                "state_seconds": d.state_seconds,
                "restarts": d.restarts,
                "pid": d.pid,
                "port": d.port,
            })
        })
        .collect()
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
