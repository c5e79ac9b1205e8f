//! One API connection: HTTP/1.1 or HTTP/2 (TLS with ALPN, or h2c prior knowledge) through
//! hyper, with the header timeout, the idle timeout (`idle.rs`) and each request's body
//! deadline; and the answer to a connection over the listener's limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

use crate::api::body::BodyDeadline;
use crate::api::idle::{Activity, IdleIo, guarded};
use crate::api::{ApiConfig, ApiState, handle};
use crate::ingest::ListenerStats;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address the client connected to (the listener's own, never one the client names);
/// in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

/// Serves one accepted connection in its own task; it holds `permit` (its place under the
/// listener's limit) until it ends.
pub(crate) fn spawn(
    state: Arc<ApiState>,
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().ok().map(LocalAddr);
    tokio::spawn(async move {
        let _permit = permit;
        let stats = &state.router.ingest_stats().api;
        let _open = stats.open();
        let activity = Activity::new();
        let io = IdleIo::new(socket, activity.clone(), state.config.idle_timeout);
        let builder = builder(&state.config);
        let service = service(state.clone(), activity.clone(), peer, local);
        match tls {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                let _ = watcher.watch(conn.into_owned()).await;
            }
            Some(acceptor) => {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await
                else {
                    ListenerStats::bump(&stats.handshake_failed);
                    return;
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let _ = watcher.watch(conn.into_owned()).await;
            }
        }
        if activity.expired() {
            ListenerStats::bump(&stats.closed_idle);
        }
    });
}

fn builder(config: &ApiConfig) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(config.header_timeout))
        .max_buf_size(64 * 1024);
    builder
}

/// Each request: marked in progress until its response body is done, given its body deadline
/// and the connection's local address, then handled.
fn service(
    state: Arc<ApiState>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    local: Option<LocalAddr>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<crate::api::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<crate::api::Body>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let busy = activity.enter();
        let extensions = req.extensions_mut();
        extensions.insert(BodyDeadline {
            at: tokio::time::Instant::now() + state.config.body_timeout,
            after: state.config.body_timeout,
            refusals: state.limits.refusals.clone(),
        });
        if let Some(local) = local {
            extensions.insert(local);
        }
        let state = state.clone();
        let id = request_id(req.headers());
        async move {
            let mut response = handle(state, req, peer).await;
            response.headers_mut().insert("request-id", id);
            Ok::<_, Infallible>(response.map(|body| guarded(body, busy)))
        }
    })
}

/// The Platform API's `Request-Id` of every answer: the client's own (`Request-Id` or
/// `X-Request-Id`, when it is 1 to 200 visible characters), else a new UUID.
fn request_id(headers: &http::HeaderMap) -> http::HeaderValue {
    ["request-id", "x-request-id"]
        .iter()
        .filter_map(|name| headers.get(*name))
        .find(|v| {
            let b = v.as_bytes();
            (1..=200).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"))
        })
}

/// Turns away a connection over the listener's limit: a 503 saying which limit (plain HTTP
/// only, written if the socket takes it at once), then closed.
pub(crate) fn refuse(socket: TcpStream, tls: bool, limit: usize) {
    if tls {
        return;
    }
    // Read what already came, so that closing does not reset the connection under the answer.
    let mut scratch = [0u8; 4096];
    while matches!(socket.try_read(&mut scratch), Ok(n) if n > 0) {}
    let body = serde_json::json!({
        "id": "unavailable",
        "message": format!(
            "The API has as many connections open as it may ({limit}, --api-max-connections); \
             retry shortly."
        ),
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.try_write(answer.as_bytes());
}
