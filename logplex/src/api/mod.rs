//! The HTTP API, on one port: ingest (`POST /logs`, `application/logplex-1`), the Platform
//! API's app, log-session and (later) log-drain resources, the router's own stats, and
//! `/healthz`, `/readyz`, `/metrics`. Every call but the probes and the log-session URLs
//! (which carry their own secret) needs a key or, for ingest, a token.

mod apps;
mod auth;
mod logs;
mod metrics;
mod response;
mod sessions;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use response::{Body, ChannelBody, error, json, no_such_app};
pub use sessions::Sessions;

use crate::registry::KeyScope;
use crate::router::Router;
use response::{full, unauthorized};

/// Limits and timings of the API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The largest `POST /logs` body, as sent (compressed or not).
    pub max_body: usize,
    /// The largest `POST /logs` body once decompressed.
    pub max_decompressed: usize,
    /// The largest frame in a body.
    pub max_frame: usize,
    /// How long a log-session URL stays valid.
    pub session_ttl: Duration,
    /// How often a quiet tail stream gets a keep-alive (SSE comment).
    pub keepalive: Duration,
    /// How long one tail stream may stay open.
    pub tail_max: Duration,
    /// How long a request's headers may take to arrive.
    pub header_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body: 4 << 20,
            max_decompressed: 16 << 20,
            max_frame: crate::framing::DEFAULT_MAX_FRAME,
            session_ttl: Duration::from_secs(300),
            keepalive: Duration::from_secs(15),
            tail_max: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// A resource under `/apps/{app}/NAME` that another crate serves (the drains crate's
/// `log-drains`): the API checks the key and the app, then hands the request over.
pub trait AppResource: Send + Sync + std::fmt::Debug + 'static {
    /// Answers a request for `/apps/{app}/NAME/{rest…}`.
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;
}

/// What every request handler shares.
#[derive(Debug)]
pub struct ApiState {
    router: Router,
    config: ApiConfig,
    sessions: Sessions,
    tls: bool,
    resources: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn AppResource>>>,
    /// Other parts' counters, rendered on `/metrics` after the router's own.
    collectors: std::sync::RwLock<Vec<Arc<dyn prometheus_client::collector::Collector>>>,
}

impl ApiState {
    /// The API of `router`.
    pub fn new(router: Router, config: ApiConfig, tls: bool) -> Arc<Self> {
        Arc::new(ApiState {
            router,
            config,
            sessions: Sessions::default(),
            tls,
            resources: Default::default(),
            collectors: Default::default(),
        })
    }

    /// Adds `collector`'s metrics to `/metrics` (the stack's proxy counters, for one), read at
    /// each scrape.
    pub fn register_metrics(&self, collector: Arc<dyn prometheus_client::collector::Collector>) {
        self.collectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    /// Serves `resource` at `/apps/{app}/NAME`.
    pub fn register(&self, name: &str, resource: Arc<dyn AppResource>) {
        self.resources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), resource);
    }

    fn resource(&self, name: &str) -> Option<Arc<dyn AppResource>> {
        self.resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The router behind the API.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Forgets expired log sessions.
    pub fn expire_sessions(&self) {
        self.sessions.expire(self.config.session_ttl);
    }
}

/// Serves the API on `listener` (HTTPS when given an acceptor) until `shutdown` turns true;
/// then stops accepting and gives open requests `grace` to finish.
pub async fn serve_api(
    listener: TcpListener,
    state: Arc<ApiState>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "api accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::server::stopped(&mut shutdown) => break,
        };
        let _ = socket.set_nodelay(true);
        let header_timeout = state.config.header_timeout;
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, req, peer).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Some(header_timeout))
            .max_buf_size(64 * 1024);
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(socket), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket))
                            .await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

/// Who is calling: an operator, or a key for one app.
fn caller(state: &ApiState, req: &Request<Incoming>) -> Option<KeyScope> {
    let (_, secret) = auth::credentials(req.headers())?;
    state.router.authenticate(&secret)
}

fn may_see(scope: &KeyScope, app: &str) -> bool {
    match scope {
        KeyScope::Operator => true,
        KeyScope::App(a) => a == app,
    }
}

async fn handle(
    state: Arc<ApiState>,
    req: Request<Incoming>,
    _peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => full(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, ["readyz"]) => {
            if state.router.is_stopping() {
                full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "stopping\n")
            } else {
                full(StatusCode::OK, "text/plain", "ready\n")
            }
        }
        (&Method::POST, ["logs"]) => logs::post_logs(&state, req).await,
        (&Method::GET, ["log-sessions", id]) => sessions::stream(&state, id, req.headers()),
        _ => {
            let Some(scope) = caller(&state, &req) else {
                return unauthorized();
            };
            authorized(&state, req, &method, &segments, scope).await
        }
    }
}

async fn authorized(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    scope: KeyScope,
) -> Response<Body> {
    if let ["apps", app, ..] = segments
        && !may_see(&scope, app)
    {
        return no_such_app();
    }
    let operator = scope == KeyScope::Operator;
    match (method, segments) {
        (&Method::GET, ["metrics"]) if operator => {
            let collectors = state
                .collectors
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            metrics::render(&state.router, collectors)
        }
        (&Method::GET, ["apps"]) => apps::list(state, &scope),
        (&Method::POST, ["apps"]) if operator => apps::create(state, req).await,
        (&Method::GET, ["apps", app]) => apps::info(state, app),
        (&Method::DELETE, ["apps", app]) if operator => apps::delete(state, app),
        (&Method::GET, ["apps", app, "stats"]) => apps::stats(state, app),
        (&Method::GET, ["apps", app, "tokens"]) => apps::tokens(state, app),
        (&Method::POST, ["apps", app, "tokens"]) => apps::create_token(state, app, req).await,
        (&Method::POST, ["apps", app, "tokens", token, "actions", "rotate"]) => {
            apps::rotate_token(state, app, token)
        }
        (&Method::DELETE, ["apps", app, "tokens", token]) => apps::revoke_token(state, app, token),
        (&Method::POST, ["apps", app, "keys"]) if operator => apps::create_key(state, app),
        (&Method::POST, ["apps", app, "log-sessions"]) => sessions::create(state, app, req).await,
        (_, ["apps", app, name, rest @ ..]) if state.resource(name).is_some() => {
            let Some(resource) = state.resource(name) else {
                return no_such_app();
            };
            if state.router.app(app).is_none() {
                return no_such_app();
            }
            let rest = rest.iter().map(|s| (*s).to_owned()).collect();
            resource.handle(req, (*app).to_owned(), rest).await
        }
        (_, ["metrics"] | ["apps"] | ["apps", _] | ["apps", _, "keys"]) if !operator => error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This key may act on its own app only.",
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("The body is over the limit of {limit} bytes."),
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body could not be read.",
        )),
    }
}

/// Reads a small JSON request body (an empty body reads as `{}`).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let body = read_body(req, 64 * 1024).await?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            &format!("The request body is not the JSON expected: {e}."),
        )
    })
}
