//! The proxy: HTTP/1.1, and HTTP/2 over TLS (ALPN), in front of the routing mesh. Each request
//! gets Vegur's headers, a dyno from the mesh, a pooled keep-alive connection to it, its bodies
//! streamed both ways under the idle windows, WebSocket upgrades piped, and one router line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
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
        }
    }
}

/// The proxy of one app.
#[derive(Debug)]
pub struct Proxy {
    mesh: Arc<Mesh>,
    emitter: Emitter,
    config: ProxyConfig,
}

/// The client side: a keep-alive pool of connections to dynos. Each proxy thread has its own,
/// so that a request, its dyno connection and their wake-ups stay on one thread.
type DynoClient = HttpClient<Connector, RequestBody>;

impl Proxy {
    /// A proxy to the dynos of `mesh`, writing its lines into `emitter` (the app's `paas`
    /// source; the process is `router`).
    pub fn new(mesh: Arc<Mesh>, emitter: Emitter, config: ProxyConfig) -> Arc<Proxy> {
        Arc::new(Proxy {
            mesh,
            emitter,
            config,
        })
    }

    fn client(&self) -> DynoClient {
        HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.config.pool_per_dyno)
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
                            proxy.serve_thread(listener, tls, stop).await;
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

    /// One proxy thread's accept loop.
    async fn serve_thread(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        mut stop: watch::Receiver<bool>,
    ) {
        let dyno_client = self.client();
        let port = listener.local_addr().map_or(0, |a| a.port());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.idle_timeout)
            // Heads up to 1 MiB reach the service, which answers Vegur's limits with H25;
            // past that hyper answers 431 itself. hyper's limit of 100 headers is kept (431 past
            // it): raising it to Vegur's 1000 costs every request the parsing of 1000 slots.
            .max_buf_size(1 << 20);
        builder.http2().timer(TokioTimer::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("proxy accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = until_true(&mut stop) => break,
            };
            let _ = stream.set_nodelay(true);
            let client = Client {
                ip: peer.ip(),
                tls: tls.is_some(),
                port,
            };
            let proxy = self.clone();
            let dyno_client = dyno_client.clone();
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                let dyno_client = dyno_client.clone();
                async move { Ok::<_, Infallible>(proxy.handle(&dyno_client, req, client).await) }
            });
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            let handshake_timeout = self.config.idle_timeout;
            tokio::spawn(async move {
                match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(self.config.shutdown_grace, graceful.shutdown()).await;
    }

    /// One request, start to end.
    async fn handle(
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
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let limit = headers::check_limits(&path, parts.method.as_str(), &parts.headers);
        let expect = parts
            .headers
            .get(header::EXPECT)
            .map(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
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
        if limit.is_some() {
            return failure(&mut rec, ProxyError::HttpRestriction);
        }
        if expect == Some(false) {
            return failure(&mut rec, ProxyError::RequestError);
        }
        if parts.headers.get(header::HOST).is_none()
            && let Ok(v) = HeaderValue::from_str(&host)
        {
            parts.headers.insert(header::HOST, v);
        }
        parts.version = Version::HTTP_11;
        let client_side = ClientSide::default();
        let mut body = Some(body);
        // A safe request without a body that fails on a pooled connection the dyno had just
        // closed is sent once more (as nginx retries idempotent requests); only then are its
        // headers kept for a second copy.
        let replayable = matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ) && body.as_ref().is_some_and(http_body::Body::is_end_stream)
            && !upgrade;
        let affinity = self
            .config
            .affinity
            .then(|| headers::affinity(&parts.headers))
            .flatten();
        let mut attempt = 0;
        let (lease, res, sent_at) = loop {
            attempt += 1;
            let prefer = affinity.as_deref().filter(|_| attempt == 1);
            let lease = match self
                .mesh
                .pick_preferring(prefer, self.config.boot_wait)
                .await
            {
                Ok(lease) => lease,
                Err(e) => return failure(&mut rec, e),
            };
            let Ok(uri) = format!("http://{}{}", lease.addr, path).parse::<http::Uri>() else {
                return failure(&mut rec, ProxyError::RequestError);
            };
            let mut dyno_req = Request::new(match body.take() {
                Some(b) => RequestBody::new(b, self.config.idle_timeout, client_side.clone()),
                None => RequestBody::empty(client_side.clone()),
            });
            *dyno_req.method_mut() = parts.method.clone();
            *dyno_req.uri_mut() = uri;
            *dyno_req.version_mut() = Version::HTTP_11;
            *dyno_req.headers_mut() = if replayable && attempt == 1 {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            let sent_at = Instant::now();
            // The request timeout counts from when the whole request has reached the dyno (a
            // long upload is not H12; a stalled one is H28).
            let timeout = async {
                client_side.sent().await;
                tokio::time::sleep(self.config.response_timeout).await;
            };
            let sent = tokio::select! {
                res = dyno_client.request(dyno_req) => Ok(res),
                () = timeout => Err(()),
            };
            match sent {
                Ok(Ok(res)) => break (lease, res, sent_at),
                Err(_) => {
                    rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                    return failure(&mut rec, ProxyError::RequestTimeout);
                }
                Ok(Err(e)) => {
                    let reused = e
                        .connect_info()
                        .and_then(|c| {
                            let mut ext = http::Extensions::new();
                            c.get_extras(&mut ext);
                            ext.get::<ConnectedAt>().copied()
                        })
                        .is_some_and(|c| c.at < sent_at);
                    let error = client_side.fault().unwrap_or_else(|| classify(&e));
                    if matches!(
                        error,
                        ProxyError::BackendConnectTimeout | ProxyError::BackendConnectionRefused
                    ) {
                        self.mesh.skip(&lease.dyno, self.config.skip_for);
                    }
                    if replayable
                        && reused
                        && attempt == 1
                        && error == ProxyError::ConnectionClosedWithoutResponse
                    {
                        continue;
                    }
                    rec.sent(&lease.dyno, Duration::ZERO, sent_at);
                    return failure(&mut rec, error);
                }
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
