//! The HTTP API, on one port: ingest (`POST /logs`, `application/logplex-1`), the Platform
//! API's app, log-session and (later) log-drain resources, the router's own stats, and
//! `/healthz`, `/readyz`, `/metrics`. Every call but the probes and the log-session URLs
//! (which carry their own secret) needs a key or, for ingest, a token.

mod apps;
mod auth;
mod body;
mod conn;
mod idle;
mod keys;
mod limits;
mod logs;
mod metrics;
mod response;
mod sessions;
mod write_budget;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

pub use body::read_body;
pub use response::{Body, ChannelBody, error, full, json, no_such_app};
pub use sessions::Sessions;

use crate::accept::AcceptFailures;
use crate::ingest::ListenerStats;
use crate::notice::Notice;
use crate::registry::{Caller, KeyScope};
use crate::router::Router;
use limits::{BodyBudget, Refusals};
use response::unauthorized;

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
    /// API writes (anything but GET) an app key may make a second (0: no limit).
    pub write_rate: u32,
    /// API writes a key may make at once.
    pub write_burst: u32,
    /// How long a request's body may take to arrive in full (408 past it).
    pub body_timeout: Duration,
    /// Bytes of `POST /logs` bodies read at once over every connection (503 past it).
    pub inflight_body_bytes: usize,
    /// How long a connection with no request in progress is kept.
    pub idle_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Log sessions one app may have not yet expired (429 past it).
    pub max_sessions_per_app: usize,
    /// The longest log-session filter, in bytes (422 past it).
    pub max_filter_bytes: usize,
    /// The API's URL as clients reach it (`https://logs.example.com`), for log-session URLs;
    /// `None`: the address each client connected to.
    pub public_url: Option<String>,
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
            write_rate: 10,
            write_burst: 50,
            body_timeout: Duration::from_secs(30),
            inflight_body_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_sessions_per_app: 100,
            max_filter_bytes: 4096,
            public_url: None,
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

/// A resource at `/NAME/…`, outside any app, that another crate serves: the Loki API
/// (`/loki/…`), the dashboard (`/dashboard`), the status page (`/status`). The API hands it
/// the caller the request's key names, if it names a valid one; the resource decides what
/// needs a key (the status page needs none) and what each key may see.
pub trait PathResource: Send + Sync + std::fmt::Debug + 'static {
    /// Answers a request for `/NAME/{rest…}`.
    fn handle(
        &self,
        req: Request<Incoming>,
        caller: Option<Caller>,
        rest: Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;
}

/// A cluster node's view of its cluster, which the API serves as `GET /cluster` and which
/// `/readyz` consults (the `cluster` crate's; none on a single router).
pub trait ClusterStatus: Send + Sync + std::fmt::Debug + 'static {
    /// Why this node is not ready (it cannot reach the bus or the configuration store).
    fn not_ready(&self) -> Option<String>;
    /// `GET /cluster`: the nodes, their consumers' lag, the bus's and the store's health.
    fn report(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send + '_>>;
}

/// What every request handler shares.
#[derive(Debug)]
pub struct ApiState {
    router: Router,
    config: ApiConfig,
    sessions: Sessions,
    writes: write_budget::WriteBudget,
    tls: bool,
    resources: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn AppResource>>>,
    mounts: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn PathResource>>>,
    /// Other parts' counters (the drains', the proxy's), rendered on `/metrics` after the
    /// router's own.
    collectors: std::sync::RwLock<Vec<Arc<dyn prometheus_client::collector::Collector>>>,
    limits: ApiLimits,
    cluster: std::sync::RwLock<Option<Arc<dyn ClusterStatus>>>,
}

/// The API's limits at work: refusals by reason, and the in-flight body budget.
#[derive(Debug)]
struct ApiLimits {
    refusals: Arc<Refusals>,
    body_budget: BodyBudget,
}

impl ApiState {
    /// The API of `router`.
    pub fn new(router: Router, config: ApiConfig, tls: bool) -> Arc<Self> {
        let refusals = Arc::new(Refusals::default());
        let body_budget = BodyBudget::new(config.inflight_body_bytes, refusals.clone());
        Arc::new(ApiState {
            router,
            writes: write_budget::WriteBudget::new(config.write_rate, config.write_burst),
            config,
            sessions: Sessions::default(),
            tls,
            resources: Default::default(),
            mounts: Default::default(),
            collectors: Default::default(),
            limits: ApiLimits {
                refusals,
                body_budget,
            },
            cluster: Default::default(),
        })
    }

    /// Adds `collector`'s metrics to `/metrics` (the drains' and the proxy's counters), read
    /// at each scrape.
    pub fn register_metrics(&self, collector: Arc<dyn prometheus_client::collector::Collector>) {
        self.collectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    fn collectors(&self) -> Vec<Arc<dyn prometheus_client::collector::Collector>> {
        self.collectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes this node a cluster's: `GET /cluster` reports `status`, and `/readyz` fails
    /// while it says the node is not ready.
    pub fn set_cluster(&self, status: Arc<dyn ClusterStatus>) {
        *self.cluster.write().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    fn cluster(&self) -> Option<Arc<dyn ClusterStatus>> {
        self.cluster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

    /// Serves `resource` at `/NAME` and everything under it. The API's own paths come first:
    /// a name it serves itself (`apps`, `logs`, `metrics`, …) is never handed over.
    pub fn mount(&self, name: &str, resource: Arc<dyn PathResource>) {
        self.mounts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), resource);
    }

    fn mounted(&self, name: &str) -> Option<Arc<dyn PathResource>> {
        if OWN_PATHS.contains(&name) {
            return None;
        }
        self.mounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The caller a request's key names, if any: for the resources that decide for
    /// themselves what needs a key.
    pub fn caller(&self, headers: &http::HeaderMap) -> Option<Caller> {
        let (_, secret) = auth::credentials(headers)?;
        self.router.authenticate(&secret)
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
/// then stops accepting and gives open requests `grace` to finish. At most
/// `max_connections` are open at once (more are answered 503 and closed); a failing accept
/// backs off and is logged at most every 10 s.
pub async fn serve_api(
    listener: TcpListener,
    state: Arc<ApiState>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    let mut failures = AcceptFailures::new("api");
    let full = Notice::default();
    loop {
        let stats = &state.router.ingest_stats().api;
        let (socket, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    let pause = failures.failed(&e, &stats.accept_errors);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = crate::server::stopped(&mut shutdown) => break,
                    }
                }
            },
            _ = crate::server::stopped(&mut shutdown) => break,
        };
        failures.succeeded();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ListenerStats::bump(&stats.refused);
            let limit = state.config.max_connections;
            if let Some(refused) = full.due() {
                tracing::warn!(
                    limit,
                    refused,
                    "api connection limit reached: new connections are answered 503 \
                     (--api-max-connections)"
                );
            }
            conn::refuse(socket, tls.is_some(), limit);
            continue;
        };
        conn::spawn(
            state.clone(),
            socket,
            peer,
            tls.clone(),
            graceful.watcher(),
            permit,
        );
    }
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

/// The first path segments the API serves itself, never a mounted resource's.
const OWN_PATHS: [&str; 10] = [
    "healthz",
    "readyz",
    "logs",
    "log-sessions",
    "metrics",
    "apps",
    "users",
    "account",
    "keys",
    "",
];

/// Who is calling: an operator, or a key for one app.
fn caller(state: &ApiState, req: &Request<Incoming>) -> Option<Caller> {
    state.caller(req.headers())
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
            let not_ready = state.cluster().and_then(|c| c.not_ready());
            if state.router.is_stopping() {
                full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "stopping\n")
            } else if state.router.awaiting_bus() {
                full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "joining the cluster\n",
                )
            } else if let Some(why) = not_ready {
                full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n"),
                )
            } else {
                full(StatusCode::OK, "text/plain", "ready\n")
            }
        }
        (&Method::POST, ["logs"]) => logs::post_logs(&state, req).await,
        (&Method::GET, ["log-sessions", id]) => sessions::stream(&state, id, req.headers()),
        (_, [name, rest @ ..]) if state.mounted(name).is_some() => {
            let Some(resource) = state.mounted(name) else {
                return error(StatusCode::NOT_FOUND, "not_found", "No such resource.");
            };
            let rest = rest.iter().map(|s| (*s).to_owned()).collect();
            let caller = caller(&state, &req);
            resource.handle(req, caller, rest).await
        }
        _ => {
            let Some(caller) = caller(&state, &req) else {
                return unauthorized();
            };
            // A tenant's writes are budgeted so that one key cannot churn the registry for
            // everyone; the operator's (provisioning scripts) are not.
            let tenant_write =
                caller.scope != KeyScope::Operator && !matches!(method, Method::GET | Method::HEAD);
            if tenant_write
                && let Err(retry) = state
                    .writes
                    .try_charge(&caller.key_id, std::time::Instant::now())
            {
                state
                    .router
                    .limits()
                    .hit(crate::router::Limit::ApiWriteRate);
                return response::too_many(
                    &format!(
                        "This key is over its budget of {} API writes a second; retry in {retry} s.",
                        state.config.write_rate
                    ),
                    retry,
                );
            }
            authorized(&state, req, &method, &segments, caller).await
        }
    }
}

async fn authorized(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    method: &Method,
    segments: &[&str],
    caller: Caller,
) -> Response<Body> {
    let Caller {
        scope,
        key_id: caller_id,
    } = caller;
    if let ["apps", app, ..] = segments
        && !may_see(&scope, app)
    {
        return no_such_app();
    }
    let operator = scope == KeyScope::Operator;
    match (method, segments) {
        (&Method::GET, ["metrics"]) => metrics::render(state, &scope, req.headers()),
        (&Method::GET, ["apps"] | ["users", "~", "apps"]) => apps::list(state, &scope),
        (&Method::GET, ["account"]) => apps::account(&caller_id, &scope),
        (&Method::GET, ["cluster"]) if operator => match state.cluster() {
            Some(cluster) => json(StatusCode::OK, &cluster.report().await),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "This router is not a cluster node (start it with --nats and --database-url).",
            ),
        },
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
        (&Method::GET, ["keys"]) if operator => keys::list(state, &scope),
        (&Method::POST, ["keys"]) if operator => keys::create(state, &scope),
        (&Method::DELETE, ["keys", id]) => keys::revoke(state, id, &scope),
        (&Method::POST, ["keys", id, "actions", "rotate"]) => keys::rotate(state, id, &scope),
        (&Method::GET, ["apps", app, "keys"]) => {
            keys::list(state, &KeyScope::App((*app).to_owned()))
        }
        (&Method::POST, ["apps", app, "keys"]) if operator => {
            keys::create(state, &KeyScope::App((*app).to_owned()))
        }
        (&Method::DELETE, ["apps", app, "keys", id]) => {
            keys::revoke(state, id, &KeyScope::App((*app).to_owned()))
        }
        (&Method::POST, ["apps", app, "keys", id, "actions", "rotate"]) => {
            keys::rotate(state, id, &KeyScope::App((*app).to_owned()))
        }
        (&Method::POST, ["apps", app, "log-sessions"]) => sessions::create(state, app, req).await,
        (_, ["apps", app, name, rest @ ..]) if state.resource(name).is_some() => {
            let Some(resource) = state.resource(name) else {
                return no_such_app();
            };
            if state.router.app(app).is_none() {
                return no_such_app();
            }
            let rest = rest.iter().map(|s| (*s).to_owned()).collect();
            // Who is calling, for the resources that record it (a release's user).
            let mut req = req;
            req.extensions_mut().insert(Caller {
                key_id: caller_id.clone(),
                scope: scope.clone(),
            });
            resource.handle(req, (*app).to_owned(), rest).await
        }
        // What the `heroku` CLI reads besides (`apps:info`): empty unless a part serves it
        // (`pipeline-couplings` is one object or 404, as on Heroku: no pipelines here).
        (&Method::GET, ["apps", app, "addons" | "collaborators"]) => {
            if state.router.app(app).is_none() {
                return no_such_app();
            }
            json(StatusCode::OK, &serde_json::json!([]))
        }
        (_, ["apps"] | ["apps", _] | ["apps", _, "keys"] | ["keys"]) if !operator => error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This key may act on its own app only.",
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
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
