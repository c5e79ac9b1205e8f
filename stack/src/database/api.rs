//! `GET /apps/{app}/database`: the app's database as `paas pg:info` shows it (the pool's and
//! the database's figures) with the URL `paas pg:psql` connects to.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, api_error, api_json};
use serde_json::json;

use super::{Database, PoolMode};

/// The resource, for the router's API (`register("database", …)`).
#[derive(Debug, Clone)]
pub struct DatabaseApi {
    database: Arc<Database>,
    addr: SocketAddr,
}

impl DatabaseApi {
    /// The resource for `database` listening at `addr`.
    pub fn new(database: Arc<Database>, addr: SocketAddr) -> Arc<Self> {
        Arc::new(DatabaseApi { database, addr })
    }

    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        if req.method() != Method::GET || !rest.is_empty() {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "Couldn't find that resource.",
            );
        }
        let Some(url) = self.database.url(&app, self.addr) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "Couldn't find that add-on: the app has no database (paas up --database-url).",
            );
        };
        let config = self.database.config();
        let sample = self.database.sample(&app).await;
        let (figures, error) = match sample {
            Ok(s) => (serde_json::to_value(s).unwrap_or_default(), None),
            Err(e) => (serde_json::Value::Null, Some(e)),
        };
        api_json(
            StatusCode::OK,
            &json!({
                "addon": format!("postgresql-{app}"),
                "url": url,
                "pool_mode": match config.mode {
                    PoolMode::Transaction => "transaction",
                    PoolMode::Session => "session",
                },
                "pool_size": config.pool.size,
                "server": format!("{}:{}/{}", config.server.host, config.server.port, config.server.database),
                "figures": figures,
                "error": error,
            }),
        )
    }
}

impl AppResource for DatabaseApi {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(self.clone().serve(req, app, rest))
    }
}
