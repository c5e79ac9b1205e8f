//! The proxy: HTTP/1.1, and HTTP/2 over TLS (ALPN), in front of the routing mesh. Each request
//! gets Vegur's headers, a dyno from the mesh, a pooled keep-alive connection to it, its bodies
//! streamed both ways under the idle windows, WebSocket upgrades piped, and one router line.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use logplex::Emitter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::mesh::Mesh;
use crate::proxy::body::{ClientSide, Recorder, RequestBody, ResponseBody};
use crate::proxy::connector::{ConnectedAt, Connector};
use crate::proxy::errors::ProxyError;
use crate::proxy::headers::{self, Client};
use crate::proxy::line::RouterLine;
use crate::proxy::listener;
use crate::proxy::stats::ProxyStats;
use crate::proxy::target;

/// The proxy's timeouts and limits (Heroku's by default; tests set short ones).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Connecting to a dyno (H19 past it).
    pub connect_timeout: Duration,
    /// From the request reaching the dyno to the response's first byte (H12).
    pub response_timeout: Duration,
    /// The rolling window either side may stay quiet in (H15 for the dyno, H28 for the client).
    pub idle_timeout: Duration,
    /// How long requests wait for booting dynos (H20).
    pub boot_wait: Duration,
    /// How long a dyno that refused or timed out a connection is skipped.
    pub skip_for: Duration,
    /// Idle keep-alive connections kept per dyno.
    pub pool_per_dyno: usize,
    /// How long open connections get to finish when the proxy stops.
    pub shutdown_grace: Duration,
    /// Threads serving requests (default: one a core).
    pub threads: usize,
    /// Session affinity: a client's requests go to the dyno named in its
    /// `paas-session-affinity` cookie while that dyno can take them (Heroku's
    /// `http-session-affinity` feature).
    pub affinity: bool,
    /// How long a request head may take to arrive, from its first byte (the first one: from
    /// the accept, a TLS handshake included).
    pub header_timeout: Duration,
    /// How long a client connection with no request in flight is kept.
    pub keepalive_timeout: Duration,
    /// The largest request head, in bytes (431 past it); at least 16 KiB.
    pub max_head: usize,
    /// Connections open at once, per listener; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Connections still reading their first request head, per listener; more are closed as
    /// soon as accepted. With `max_head`, this bounds the memory slow heads can pin.
    pub max_pending_heads: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(55),
            boot_wait: Duration::from_secs(75),
            skip_for: Duration::from_secs(5),
            pool_per_dyno: 64,
            shutdown_grace: Duration::from_secs(10),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            affinity: false,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(90),
            max_head: 64 << 10,
            max_connections: 10_000,
            max_pending_heads: 1024,
        }
    }
}

/// The proxy of one app.
#[derive(Debug)]
pub struct Proxy {
    mesh: Arc<Mesh>,
    emitter: Emitter,
    config: ProxyConfig,
    stats: Arc<ProxyStats>,
}

/// The client side: a keep-alive pool of connections to dynos. Each proxy thread has its own,
/// so that a request, its dyno connection and their wake-ups stay on one thread.
pub(crate) type DynoClient = HttpClient<Connector, RequestBody>;

impl Proxy {
    /// A proxy to the dynos of `mesh`, writing its lines into `emitter` (the app's `paas`
    /// source; the process is `router`).
    pub fn new(mesh: Arc<Mesh>, emitter: Emitter, config: ProxyConfig) -> Arc<Proxy> {
        Arc::new(Proxy {
            mesh,
            emitter,
            config,
            stats: Arc::default(),
        })
    }

    /// The proxy's counters (a Prometheus collector: `paas up` registers it on `/metrics`).
    pub fn stats(&self) -> &Arc<ProxyStats> {
        &self.stats
    }

    pub(crate) fn config(&self) -> &ProxyConfig {
        &self.config
    }

    pub(crate) fn client(&self) -> DynoClient {
        HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.config.pool_per_dyno)
            // A request is sent again only when none of it was written: its pooled connection
            // was found closed before the request went out on it.
            .retry_canceled_requests(true)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(Connector {
                timeout: self.config.connect_timeout,
            })
    }

    /// Serves `listener` (TLS when `tls` is given) until `stop` holds `true`, then lets open
    /// connections finish within the grace period. The work is done by `threads` threads, each
    /// with a runtime of its own accepting from the listener (as nginx's workers do): a
    /// connection, its requests and their dyno connections stay on one thread.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let listener = listener.into_std()?;
        let mut threads = Vec::with_capacity(self.config.threads.max(1));
        for i in 0..self.config.threads.max(1) {
            let listener = listener.try_clone()?;
            let (proxy, tls, stop) = (self.clone(), tls.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("proxy-{i}"))
                    .spawn(move || -> std::io::Result<()> {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        runtime.block_on(async move {
                            let listener = TcpListener::from_std(listener)?;
                            listener::serve_thread(proxy, listener, tls, stop).await;
                            Ok(())
                        })
                    })?,
            );
        }
        drop(listener);
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("a proxy thread panicked")))
                })
                .collect::<std::io::Result<Vec<()>>>()
        })
        .await;
        joined.map_err(std::io::Error::other)?.map(|_| ())
    }

    /// One request, start to end.
    pub(crate) async fn handle(
        &self,
        dyno_client: &DynoClient,
        mut req: Request<Incoming>,
        client: Client,
    ) -> Response<ResponseBody> {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let upgrade = headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // CONNECT's target is an authority, with no path.
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
        let target = target::request_host(parts.version, &parts.uri, &parts.headers);
        let host = match &target {
            Ok(host) => host.clone(),
            Err(_) => target::raw_host(&parts.uri, &parts.headers),
        };
        let refusal = refusal(&parts, &path, target.is_ok());
        let (request_id, fwd) =
            headers::forward_request(&mut parts.headers, client, start_ms, upgrade);
        let mut rec = Recorder::new(
            RouterLine {
                method: parts.method.as_str().to_owned(),
                path: path.clone(),
                host: host.clone(),
                request_id,
                fwd,
                protocol: if client.tls { "https" } else { "http" }.to_owned(),
                ..RouterLine::default()
            },
            self.emitter.clone(),
        );
        if let Some(error) = refusal {
            return refused(&mut rec, error, parts.version);
        }
        // The dyno sees the host the request is for (the target's authority, when it has one).
        if !host.is_empty()
            && let Ok(v) = HeaderValue::from_str(&host)
        {
            parts.headers.insert(header::HOST, v);
        }
        parts.version = Version::HTTP_11;
        let client_side = ClientSide::default();
        let affinity = self
            .config
            .affinity
            .then(|| headers::affinity(&parts.headers))
            .flatten();
        let lease = match self
            .mesh
            .pick_preferring(affinity.as_deref(), self.config.boot_wait)
            .await
        {
            Ok(lease) => lease,
            Err(e) => return failure(&mut rec, e),
        };
        let Ok(uri) = format!("http://{}{}", lease.addr, path).parse::<http::Uri>() else {
            return failure(&mut rec, ProxyError::RequestError);
        };
        let mut dyno_req = Request::new(RequestBody::new(
            body,
            self.config.idle_timeout,
            client_side.clone(),
        ));
        *dyno_req.method_mut() = parts.method.clone();
        *dyno_req.uri_mut() = uri;
        *dyno_req.version_mut() = Version::HTTP_11;
        *dyno_req.headers_mut() = std::mem::take(&mut parts.headers);
        let sent_at = Instant::now();
        // The request timeout counts from when the whole request has reached the dyno (a
        // long upload is not H12; a stalled one is H28).
        let timeout = async {
            client_side.sent().await;
            tokio::time::sleep(self.config.response_timeout).await;
        };
        // Sent once: a request a dyno may have seen is never sent again (Heroku's router never
        // replays one). Only a request none of which was written (its pooled connection found
        // closed first) is tried again, by the client pool itself (`retry_canceled_requests`).
        let sent = tokio::select! {
            res = dyno_client.request(dyno_req) => Ok(res),
            () = timeout => Err(()),
        };
        let res = match sent {
            Ok(Ok(res)) => res,
            Err(()) => {
                rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                return failure(&mut rec, ProxyError::RequestTimeout);
            }
            Ok(Err(e)) => {
                let error = client_side.fault().unwrap_or_else(|| classify(&e));
                if matches!(
                    error,
                    ProxyError::BackendConnectTimeout | ProxyError::BackendConnectionRefused
                ) {
                    self.mesh.skip(&lease.dyno, self.config.skip_for);
                }
                rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                return failure(&mut rec, error);
            }
        };
        let connect = res
            .extensions()
            .get::<ConnectedAt>()
            .map_or(Duration::ZERO, |c| c.for_request(sent_at));
        rec.sent(&lease.dyno, connect, sent_at + connect);
        let mut res = res;
        let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching && let Some(client_upgrade) = client_upgrade {
            let dyno_upgrade = hyper::upgrade::on(&mut res);
            let (mut parts, _) = res.into_parts();
            headers::forward_response(&mut parts.headers, true);
            rec.finish(101, 0);
            drop(lease);
            tokio::spawn(async move {
                if let (Ok(client), Ok(dyno)) = tokio::join!(client_upgrade, dyno_upgrade) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(dyno),
                    )
                    .await;
                }
            });
            return Response::from_parts(parts, ResponseBody::full(bytes::Bytes::new()));
        }
        let (mut parts, body) = res.into_parts();
        headers::forward_response(&mut parts.headers, false);
        if self.config.affinity && affinity.as_deref() != Some(lease.dyno.as_str()) {
            parts
                .headers
                .append(header::SET_COOKIE, headers::affinity_cookie(&lease.dyno));
        }
        let status = parts.status.as_u16();
        Response::from_parts(
            parts,
            ResponseBody::dyno(body, self.config.idle_timeout, status, rec, lease),
        )
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
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

/// Why a request is answered here without a dyno, if it is: `CONNECT` (405), a head past
/// Vegur's limits (H25), a bad host or an `Expect` other than `100-continue` (H26).
fn refusal(parts: &http::request::Parts, path: &str, host_ok: bool) -> Option<ProxyError> {
    let expect = parts
        .headers
        .get(header::EXPECT)
        .map(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if parts.method == Method::CONNECT {
        Some(ProxyError::MethodNotAllowed)
    } else if headers::check_limits(path, parts.method.as_str(), &parts.headers).is_some() {
        Some(ProxyError::HttpRestriction)
    } else if !host_ok || expect == Some(false) {
        Some(ProxyError::RequestError)
    } else {
        None
    }
}

/// The answer to a request refused before any dyno saw it: over HTTP/1 the connection is
/// closed after it (what follows a bad head, or a CONNECT's tunnel bytes, is not read as a
/// request); a 405 says which methods the router forwards.
fn refused(rec: &mut Recorder, error: ProxyError, version: Version) -> Response<ResponseBody> {
    let mut res = failure(rec, error);
    let h = res.headers_mut();
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if error == ProxyError::MethodNotAllowed {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
        );
    }
    res
}

/// The client's answer to a failed request, with its line written.
fn failure(rec: &mut Recorder, error: ProxyError) -> Response<ResponseBody> {
    rec.fail(error, 0);
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = format!(
        "Application error: {} ({})\nrequest id {}\n",
        error.desc(),
        error.code(),
        rec.line_mut().request_id
    );
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::VIA, HeaderValue::from_static(headers::VIA));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    res
}
