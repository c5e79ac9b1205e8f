//! The upstream step: what a request that passed head handling is sent to, and what comes
//! back. [`Upstream`] is the seam between head handling and the routing mesh: [`Dynos`] picks a
//! dyno from the mesh and sends the request on the thread's keep-alive pool; a layer (the
//! cache) is another `Upstream` wrapping it, answering some requests itself and handing the
//! rest on, with no change to head handling or to the response step.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::errors::ProxyError;
use crate::mesh::{Lease, Mesh};
use crate::proxy::body::{ClientSide, Recorder, RequestBody};
use crate::proxy::connector::{ConnectedAt, Connector};
use crate::proxy::server::ProxyConfig;

/// A request on its way to a dyno, with Vegur's headers and `Host` set.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// Method, HTTP/1.1, headers as the dyno will see them (the URI is the client's).
    pub parts: http::request::Parts,
    /// The path and query the dyno is asked for.
    pub path: String,
    /// The client's body, streamed.
    pub body: Incoming,
    /// The dyno the client's affinity cookie names (session affinity on).
    pub affinity: Option<String>,
}

/// A response's head from a dyno, its body still to come.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The dyno's response, as hyper read it.
    pub response: Response<Incoming>,
    /// The dyno's in-flight slot, held until the body ends.
    pub lease: Lease,
}

/// Where a request goes after head handling. Implementations write where the request went
/// into its line (`Recorder::sent`) and fail with the one error that names what happened.
pub(crate) trait Upstream {
    /// Sends `request`; its line is `rec`.
    fn send(
        &self,
        request: Outbound,
        rec: &mut Recorder,
    ) -> impl Future<Output = Result<Inbound, ProxyError>> + Send;
}

/// The client side: a keep-alive pool of connections to dynos. Each proxy thread has its own,
/// so that a request, its dyno connection and their wake-ups stay on one thread.
pub(crate) type DynoClient = HttpClient<Connector, RequestBody>;

/// The dynos of the routing mesh, reached through one proxy thread's pool.
#[derive(Debug)]
pub(crate) struct Dynos {
    mesh: Arc<Mesh>,
    client: DynoClient,
    config: ProxyConfig,
}

impl Dynos {
    /// The dynos of `mesh`, with a pool of their own under `config`'s timeouts.
    pub(crate) fn new(mesh: Arc<Mesh>, config: ProxyConfig) -> Self {
        let client = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.pool_per_dyno)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // A request is sent again only when none of it was written: its pooled connection
            // was found closed before the request went out on it.
            .retry_canceled_requests(true)
            .build(Connector {
                timeout: config.connect_timeout,
            });
        Dynos {
            mesh,
            client,
            config,
        }
    }
}

impl Upstream for Dynos {
    async fn send(&self, request: Outbound, rec: &mut Recorder) -> Result<Inbound, ProxyError> {
        let Outbound {
            parts,
            path,
            body,
            affinity,
        } = request;
        let lease = self
            .mesh
            .pick_preferring(affinity.as_deref(), self.config.boot_wait)
            .await?;
        let uri = format!("http://{}{}", lease.addr, path)
            .parse::<http::Uri>()
            .map_err(|_| ProxyError::RequestError)?;
        let client_side = ClientSide::default();
        let mut dyno_req = Request::new(RequestBody::new(
            body,
            self.config.idle_timeout,
            client_side.clone(),
        ));
        *dyno_req.method_mut() = parts.method;
        *dyno_req.uri_mut() = uri;
        *dyno_req.version_mut() = Version::HTTP_11;
        *dyno_req.headers_mut() = parts.headers;
        let sent_at = Instant::now();
        // The request timeout counts from when the whole request has reached the dyno (a
        // long upload is not H12; a stalled one is H28).
        let timeout = async {
            client_side.sent().await;
            tokio::time::sleep(self.config.response_timeout).await;
        };
        // Sent once: a request a dyno may have seen is never sent again (Heroku's router never
        // replays one). Only a request none of which was written (its pooled connection found
        // closed first) is tried again, by the pool itself (`retry_canceled_requests`).
        let sent = tokio::select! {
            res = self.client.request(dyno_req) => Some(res),
            () = timeout => None,
        };
        let response = match sent {
            Some(Ok(response)) => response,
            None => {
                rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                return Err(ProxyError::RequestTimeout);
            }
            Some(Err(e)) => {
                let error = client_side.fault().unwrap_or_else(|| classify(&e));
                if matches!(
                    error,
                    ProxyError::BackendConnectTimeout | ProxyError::BackendConnectionRefused
                ) {
                    self.mesh.skip(&lease.dyno, self.config.skip_for);
                }
                rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                return Err(error);
            }
        };
        let connect = response
            .extensions()
            .get::<ConnectedAt>()
            .map_or(Duration::ZERO, |c| c.for_request(sent_at));
        rec.sent(&lease.dyno, connect, sent_at + connect);
        Ok(Inbound { response, lease })
    }
}

/// What a failed exchange with a dyno was, by the error's cause.
fn classify(e: &hyper_util::client::legacy::Error) -> ProxyError {
    use std::error::Error as _;
    if e.is_connect() {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::TimedOut => ProxyError::BackendConnectTimeout,
                    _ => ProxyError::BackendConnectionRefused,
                };
            }
            source = s.source();
        }
        return ProxyError::BackendConnectionRefused;
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return ProxyError::HttpRestriction;
            }
            if h.is_parse() || h.is_parse_status() {
                return ProxyError::BadResponse;
            }
            if h.is_body_write_aborted() || h.is_user() {
                return ProxyError::ServerRequestInterrupted;
            }
            return ProxyError::ConnectionClosedWithoutResponse;
        }
        source = s.source();
    }
    ProxyError::ConnectionClosedWithoutResponse
}
