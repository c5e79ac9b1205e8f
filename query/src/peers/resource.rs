//! `GET /cluster-lines/{app}?q=…&since_us=…&until_us=…&limit=N`: this node's lines of `app`
//! that the query's filter matches in the window, the newest `limit` (with how many more
//! matched), for another node answering a query over the cluster. Only a request carrying
//! the cluster's secret is answered; no tenant's or operator's key is one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{Body, Caller, PathResource, Timestamp, api_error, api_full};

use super::{SECRET_HEADER, encode};
use crate::Query;
use crate::index::SearchError;
use crate::service::{QueryService, params};
use crate::window::Window;

/// The resource (mounted at `PEER_PATH`).
#[derive(Clone, Debug)]
pub struct PeerLinesResource(pub(crate) Arc<QueryService>);

impl PeerLinesResource {
    /// Serves `service`'s lines to the cluster's other nodes.
    pub fn new(service: Arc<QueryService>) -> Self {
        PeerLinesResource(service)
    }
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn bad(status: StatusCode, id: &str, message: &str) -> Response<Body> {
    api_error(status, id, message)
}

impl PeerLinesResource {
    async fn serve(self, req: Request<Incoming>, rest: Vec<String>) -> Response<Body> {
        let Some(peers) = self.0.peers() else {
            return bad(StatusCode::NOT_FOUND, "not_found", "Not a cluster node.");
        };
        let presented = req
            .headers()
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !same_secret(presented, peers.secret().as_bytes()) {
            return bad(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Only the cluster's nodes may ask.",
            );
        }
        let ([app], &Method::GET) = (rest.as_slice(), req.method()) else {
            return bad(StatusCode::NOT_FOUND, "not_found", "No such resource.");
        };
        let p = params(req.uri().query());
        let query = match Query::parse(p.get("q").map_or("", String::as_str)) {
            Ok(q) => q,
            Err(e) => {
                return bad(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    &e.to_string(),
                );
            }
        };
        let bound = |name: &str| {
            p.get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .map(Timestamp::from_micros)
        };
        let window = Window {
            since: bound("since_us"),
            until: bound("until_us"),
        };
        let limit = p
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0)
            .min(self.0.config().max_cluster_lines);
        let Some(app_id) = self.0.app_id(app) else {
            return bad(StatusCode::NOT_FOUND, "not_found", "No such app.");
        };
        let (service, app) = (self.0.clone(), app.clone());
        let found = tokio::task::spawn_blocking(move || {
            service.matching_lines(&app_id, &app, &query, window, limit)
        })
        .await;
        match found {
            Ok(Ok(found)) => api_full(
                StatusCode::OK,
                "application/json",
                encode(&found.lines, found.omitted),
            ),
            Ok(Err(SearchError::Exec(e))) => bad(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                &e.to_string(),
            ),
            Ok(Err(e)) => bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                &e.to_string(),
            ),
            Err(e) => bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                &e.to_string(),
            ),
        }
    }
}

impl PathResource for PeerLinesResource {
    fn handle(
        &self,
        req: Request<Incoming>,
        _caller: Option<Caller>,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(self.clone().serve(req, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_same_secret_is_the_secret() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"abc"));
    }
}
