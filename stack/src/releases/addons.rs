//! `GET /apps/{app}/addons`: the add-ons `paas up` attached to its app (the database adapter
//! as `heroku-postgresql`), in the Platform API's add-on shape (`heroku apps:info` lists their
//! plans). Without one, the list is empty.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, api_error, api_json};
use serde_json::{Value, json};

/// One attached add-on.
#[derive(Clone, Debug)]
pub struct Addon {
    /// The service (`heroku-postgresql`).
    pub service: String,
    /// The plan (`heroku-postgresql:paas`).
    pub plan: String,
    /// The config vars it sets (`DATABASE_URL`).
    pub config_vars: Vec<String>,
}

/// The add-ons of the app `paas up` runs.
#[derive(Clone, Debug)]
pub struct AddonsApi {
    app: String,
    addons: Arc<Vec<Addon>>,
}

impl AddonsApi {
    /// `addons`, attached to `app`.
    pub fn resource(app: &str, addons: Vec<Addon>) -> Arc<dyn AppResource> {
        Arc::new(AddonsApi {
            app: app.to_owned(),
            addons: Arc::new(addons),
        })
    }

    fn list(&self) -> Vec<Value> {
        self.addons
            .iter()
            .enumerate()
            .map(|(i, a)| {
                // Stable ids: one add-on of each kind here.
                let id = format!("6c2b1e8e-4f0e-4f4e-9d6a-{:012x}", 0x100 + i);
                json!({
                    "id": id,
                    "name": format!("{}-{}", a.service, self.app),
                    "addon_service": { "id": id, "name": a.service },
                    "plan": { "id": id, "name": a.plan },
                    "app": { "name": self.app },
                    "config_vars": a.config_vars,
                    "state": "provisioned",
                    "web_url": null,
                })
            })
            .collect()
    }
}

impl AppResource for AddonsApi {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let answer = match (req.method(), rest.as_slice()) {
            (&Method::GET, []) if app == self.app => api_json(StatusCode::OK, &self.list()),
            (&Method::GET, []) => api_json(StatusCode::OK, &json!([])),
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
        };
        Box::pin(async move { answer })
    }
}
