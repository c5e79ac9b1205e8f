//! The proxy: HTTP/1.1, and HTTP/2 over TLS (ALPN), in front of the routing mesh. Each request
//! goes through three steps: its head is read (`head.rs`: Vegur's headers, refusals), it is
//! sent to the upstream (`upstream.rs`: a dyno from the mesh, a pooled keep-alive connection),
//! and the response is made of what came back (`respond.rs`: bodies streamed under the idle
//! windows, WebSocket upgrades piped); each request gets one router line.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use logplex::Emitter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::cache::HttpCache;
use crate::mesh::Mesh;
use crate::proxy::body::ResponseBody;
use crate::proxy::cached::{self, Looked};
use crate::proxy::head::{self, Admitted, Head};
use crate::proxy::headers::Client;
use crate::proxy::listener;
use crate::proxy::respond;
use crate::proxy::stats::ProxyStats;
use crate::proxy::upstream::{Dynos, Upstream};

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
    /// Serve HTTP/1.x with hyper rather than the proxy's own forwarding path (`h1`): slower;
    /// kept to compare against and to fall back to.
    pub hyper_h1: bool,
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
            hyper_h1: false,
        }
    }
}

/// The proxy of one app.
#[derive(Debug)]
pub struct Proxy {
    mesh: Arc<Mesh>,
    cache: Option<Arc<HttpCache>>,
    emitter: Emitter,
    config: ProxyConfig,
    stats: Arc<ProxyStats>,
}

impl Proxy {
    /// A proxy to the dynos of `mesh`, writing its lines into `emitter` (the app's `paas`
    /// source; the process is `router`).
    pub fn new(mesh: Arc<Mesh>, emitter: Emitter, config: ProxyConfig) -> Arc<Proxy> {
        Proxy::with_cache(mesh, emitter, config, None)
    }

    /// A proxy as [`Proxy::new`], with `cache` between its head handling and the mesh (on its
    /// HTTP/1.x path).
    pub fn with_cache(
        mesh: Arc<Mesh>,
        emitter: Emitter,
        config: ProxyConfig,
        cache: Option<Arc<HttpCache>>,
    ) -> Arc<Proxy> {
        Arc::new(Proxy {
            mesh,
            cache,
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

    pub(crate) fn cache(&self) -> Option<&Arc<HttpCache>> {
        self.cache.as_ref()
    }

    pub(crate) fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    pub(crate) fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// Writes a router line the request steps did not (a head hyper refused).
    pub(crate) fn log(&self, line: crate::proxy::line::RouterLine) {
        let _ = self.emitter.try_emit("router", line.to_text());
    }

    /// The dynos of the proxy's mesh, with a keep-alive pool for one proxy thread.
    pub(crate) fn dynos(&self) -> Dynos {
        Dynos::new(self.mesh.clone(), self.config.clone())
    }

    /// Serves `listener` (TLS when `tls` is given) until `stop` holds `true`, then lets open
    /// connections finish within the grace period. The work is done by `threads` threads, each
    /// with a runtime of its own accepting on a listener of its own beside `listener` (bound
    /// with `SO_REUSEPORT` by `listener::bind`; else they share it), as nginx's workers do
    /// with `reuseport`: a connection, its requests and their dyno connections stay on one
    /// thread, and accepts stay on their core.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let listener = listener.into_std()?;
        let mut threads = Vec::with_capacity(self.config.threads.max(1));
        for i in 0..self.config.threads.max(1) {
            let own = if i == 0 {
                listener.try_clone()?
            } else {
                match crate::proxy::listener::bind(addr) {
                    Ok(own) => own.into_std()?,
                    Err(_) => listener.try_clone()?,
                }
            };
            let (proxy, tls, stop) = (self.clone(), tls.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("proxy-{i}"))
                    .spawn(move || -> std::io::Result<()> {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        let local = tokio::task::LocalSet::new();
                        local.block_on(&runtime, async move {
                            let listener = TcpListener::from_std(own)?;
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

    /// One request, start to end: its head read (`head`), sent on to `upstream`, and the
    /// response made of what came back (`respond`).
    pub(crate) async fn handle<U: Upstream>(
        &self,
        upstream: &U,
        req: Request<Incoming>,
        client: Client,
    ) -> Response<ResponseBody> {
        let Head {
            mut recorder,
            version,
            admitted,
        } = head::read(req, client, &self.emitter, self.config.affinity);
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(error) => return respond::refused(&mut recorder, error, version),
        };
        let Admitted {
            outbound,
            client_upgrade,
            affinity,
        } = admitted;
        let pending = match &self.cache {
            Some(cache) => match cached::look(cache, &outbound, &mut recorder) {
                Looked::Answer(response) => return *response,
                Looked::Go(pending) => pending,
            },
            None => None,
        };
        match upstream.send(outbound, &mut recorder).await {
            Ok(inbound) => {
                let keep = pending.and_then(|p| p.answered(&inbound.response, &mut recorder));
                respond::dyno_response(
                    inbound,
                    recorder,
                    client_upgrade,
                    &affinity,
                    self.config.idle_timeout,
                    keep,
                )
            }
            Err(error) => {
                if let Some(pending) = pending {
                    pending.failed(&mut recorder);
                }
                respond::failure(&mut recorder, error)
            }
        }
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use http::HeaderMap;
    use hyper_util::rt::TokioIo;
    use logplex::{LineFilter, Registry, Router, RouterConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::errors::ProxyError;
    use crate::proxy::body::Recorder;
    use crate::proxy::upstream::{Inbound, Outbound};

    /// A layer in front of the dynos, as the cache will be: it sees each request after head
    /// handling, and here answers none (it fails them as a full backlog would).
    #[derive(Default)]
    struct Layer {
        seen: Mutex<Vec<(String, HeaderMap)>>,
    }

    impl Upstream for Layer {
        async fn send(&self, request: Outbound, _: &mut Recorder) -> Result<Inbound, ProxyError> {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.push((request.path, request.parts.headers));
            Err(ProxyError::BacklogTooDeep)
        }
    }

    #[tokio::test]
    async fn an_upstream_layer_gets_the_handled_head_and_its_failure_one_line() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let emitter = router.emitter("shop", "paas").unwrap();
        let proxy = Proxy::new(Arc::default(), emitter, ProxyConfig::default());
        let layer = Arc::new(Layer::default());
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service = {
            let (proxy, layer) = (proxy.clone(), layer.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let (proxy, layer) = (proxy.clone(), layer.clone());
                let client = Client {
                    ip: [10, 0, 0, 7].into(),
                    tls: false,
                    port: 80,
                };
                async move { Ok::<_, Infallible>(proxy.handle(&*layer, req, client).await) }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let served = tokio::spawn(conn);
        client
            .write_all(b"GET /a?b HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        let _ = served.await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("Backlog too deep (H11)"), "{answer}");

        let seen = layer.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (path, headers) = &seen[0];
        assert_eq!(path, "/a?b");
        assert_eq!(headers["host"], "shop.test");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        assert_eq!(headers["via"], "1.1 paas");
        assert!(!headers.contains_key("connection"));
        let id = headers["x-request-id"].to_str().unwrap();

        let lines: Vec<String> = router
            .channel("shop")
            .unwrap()
            .history(10, &LineFilter::default())
            .iter()
            .map(|l| String::from_utf8_lossy(&l.message).into_owned())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("at=error code=H11 desc=\"Backlog too deep\" method=GET"),
            "{lines:?}"
        );
        assert!(lines[0].contains(&format!("request_id={id} ")), "{lines:?}");
    }
}
