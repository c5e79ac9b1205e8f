//! The Platform API's log-drain resource: `GET/POST /apps/{app}/log-drains`,
//! `GET/DELETE /apps/{app}/log-drains/{id_or_url_or_token}` (URL-encoded), each drain shaped
//! as the Platform API has it (`id, url, token, addon, app, created_at, updated_at`), plus
//! `durable` and its delivery health.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, api_error, api_json, read_json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::health::HealthReport;
use crate::manager::{DrainError, Drains};
use crate::store::Drain;

fn drain_json(d: &Drain, health: Option<HealthReport>, app: &str) -> Value {
    json!({
        "id": d.id,
        "url": d.url,
        "token": d.token,
        "addon": null,
        "app": { "id": d.app_id, "name": app },
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "durable": d.durable,
        "delivery": health,
    })
}

fn failure(e: DrainError) -> Response<Body> {
    let (status, id) = match &e {
        DrainError::Url(_)
        | DrainError::Refused { .. }
        | DrainError::TooMany(_)
        | DrainError::DurableUnavailable => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params"),
        DrainError::Duplicate(_) => (StatusCode::CONFLICT, "conflict"),
        DrainError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        DrainError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        DrainError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    api_error(status, id, &e.to_string())
}

#[derive(Deserialize)]
struct AddDrain {
    url: Option<String>,
    #[serde(default)]
    durable: bool,
}

/// Decodes `%XX` escapes (a drain URL in a path segment).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drains {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        let method = req.method().clone();
        match (method, rest.as_slice()) {
            (Method::GET, []) => {
                let list: Vec<Value> = self
                    .list(&app)
                    .into_iter()
                    .map(|(d, h)| drain_json(&d, h, &app))
                    .collect();
                api_json(StatusCode::OK, &list)
            }
            (Method::POST, []) => {
                let body: AddDrain = match read_json(req).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                let Some(url) = body.url else {
                    return api_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_params",
                        "Missing url.",
                    );
                };
                match self.add(&app, &url, body.durable) {
                    Ok(d) => api_json(StatusCode::CREATED, &drain_json(&d, None, &app)),
                    Err(e) => failure(e),
                }
            }
            (Method::GET, [key]) => match self.get(&app, &percent_decode(key)) {
                Some((d, h)) => api_json(StatusCode::OK, &drain_json(&d, h, &app)),
                None => failure(DrainError::NotFound("drain")),
            },
            (Method::DELETE, [key]) => match self.remove(&app, &percent_decode(key)) {
                Ok(d) => api_json(StatusCode::OK, &drain_json(&d, None, &app)),
                Err(e) => failure(e),
            },
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
        }
    }
}

impl AppResource for Drains {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(self.clone().serve(req, app, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_urls_in_paths_are_decoded() {
        assert_eq!(percent_decode("syslog%3A%2F%2Fh%3A1514"), "syslog://h:1514");
        assert_eq!(percent_decode("d.abc"), "d.abc");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
