//! `GET /apps/{app}/metrics`: one app's series as JSON ([`AppSnapshot`]), what
//! `paas metrics` polls. The API has checked the key and the app before it gets here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body};

#[cfg(doc)]
use super::AppSnapshot;
use super::MetricsEngine;

/// The resource, registered under the name `metrics`.
#[derive(Clone, Debug)]
pub struct MetricsResource(pub Arc<MetricsEngine>);

impl AppResource for MetricsResource {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let response = if req.method() != Method::GET || !rest.is_empty() {
            logplex::api_error(StatusCode::NOT_FOUND, "not_found", "No such resource.")
        } else {
            logplex::api_json(StatusCode::OK, &self.0.snapshot(&app))
        };
        Box::pin(std::future::ready(response))
    }
}
