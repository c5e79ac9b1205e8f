//! A listener's accept loop, one on each proxy thread. A connection over the listener's caps
//! (connections open; connections still reading their first head) is closed at once, counted
//! and told once a minute; an accept that fails (out of file descriptors) backs off, doubling
//! from 10 ms to 1 s, rather than spinning; each connection is served under its clocks
//! (`connection.rs`) until the proxy stops, and then gets the grace period to finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::proxy::connection::{Activity, Expiry, Tracked, Watched};
use crate::proxy::h1::conn::{Conn, Served, Worker};
use crate::proxy::h1::io::Rewind;
use crate::proxy::head::{self, AmbiguousLength};
use crate::proxy::headers::Client;
use crate::proxy::server::{Proxy, ProxyConfig, until_true};
use crate::proxy::stats::{ConnectionSlot, ListenerStats};
use crate::proxy::upstream::Dynos;

/// The first pause after a failed accept; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The smallest request head allowed: Vegur's request line (8 KiB) and more.
pub const MIN_HEAD: usize = 16 << 10;

/// Binds a proxy listener at `addr` with `SO_REUSEPORT`, so that each proxy thread can bind
/// its own beside it (`Proxy::serve`) and the kernel spreads connections over them. A port
/// another process holds is refused as a plain bind refuses it (even if that process used
/// `SO_REUSEPORT` too): the port is first bound plainly, then let go and bound again.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let probe = std::net::TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The accept queue's length a listener asks for.
const LISTEN_BACKLOG: u32 = 1024;

/// One proxy thread's accept loop on `listener`, until `stop` holds `true`. Connections run as
/// tasks local to the thread: HTTP/1.x on the proxy's own path (`h1`), HTTP/2 (by ALPN or its
/// preface) and everything when `hyper_h1` is set on hyper.
pub(crate) async fn serve_thread(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let config = proxy.config().clone();
    let worker = Worker::new(proxy.clone());
    let port = listener.local_addr().map_or(0, |a| a.port());
    let stats = proxy.stats().listener(tls.is_some()).clone();
    // Told to the connections when the proxy stops; closed once they have all ended.
    let (closing, closing_rx) = watch::channel(false);
    let shared = Rc::new(HyperShared {
        proxy: proxy.clone(),
        dynos: Arc::new(proxy.dynos()),
        builder: http_builder(&config),
        stop: closing_rx.clone(),
    });
    while let Some((stream, peer)) = accept(&listener, &stats, &mut stop).await {
        // Over a cap, the connection is closed at once (dropped).
        let Ok(slot) = stats.admit(config.max_connections, config.max_pending_heads) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = Client {
            ip: peer.ip(),
            tls: tls.is_some(),
            port,
        };
        let hyper = HyperConnection {
            shared: shared.clone(),
            client,
        };
        if config.hyper_h1 {
            tokio::task::spawn_local(hyper.run(stream, tls.clone(), slot));
        } else {
            let worker = worker.clone();
            let stop = closing_rx.clone();
            tokio::task::spawn_local(serve_own(hyper, worker, stream, tls.clone(), slot, stop));
        }
    }
    drop(listener);
    closing.send_replace(true);
    drop(closing_rx);
    drop(shared);
    let _ = tokio::time::timeout(config.shutdown_grace, closing.closed()).await;
}

/// Serves a connection on the proxy's own HTTP/1.1 path, after the TLS handshake when `tls`
/// is given (which must end before the first head is due); HTTP/2 goes to `hyper`.
async fn serve_own(
    hyper: HyperConnection,
    worker: Rc<Worker>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    slot: ConnectionSlot,
    stop: watch::Receiver<bool>,
) {
    let accepted = tokio::time::Instant::now();
    let client = hyper.client;
    let Some(acceptor) = tls else {
        if let Served::Http2(read, stream, slot) = Conn::new(stream, worker, client, slot, stop)
            .serve(accepted)
            .await
        {
            hyper.serve(Rewind::new(read, stream), slot).await;
        }
        return;
    };
    let header_timeout = hyper.shared.proxy.config().header_timeout;
    let stream =
        match tokio::time::timeout_at(accepted + header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            // A failed handshake: rustls has told the client why.
            Ok(Err(_)) => return,
            Err(_) => {
                slot.listener().header_timed_out(header_timeout);
                return;
            }
        };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        return hyper.serve(stream, slot).await;
    }
    if let Served::Http2(read, stream, slot) = Conn::new(stream, worker, client, slot, stop)
        .serve(accepted)
        .await
    {
        hyper.serve(Rewind::new(read, stream), slot).await;
    }
}

/// The next connection, or `None` once `stop` holds `true`. A failed accept is counted and
/// told, and the next waits: 10 ms after the first failure in a row, doubling up to 1 s.
async fn accept(
    listener: &TcpListener,
    stats: &ListenerStats,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_true(stop) => return None,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(e) => {
                stats.accept_failed(&e);
                backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = until_true(stop) => return None,
                }
            }
        }
    }
}

/// hyper's server with the proxy's head limits: heads up to `max_head` bytes reach the
/// service (which answers Vegur's limits with H25); past that hyper answers 431 itself.
/// hyper's limit of 100 headers is kept (431 past it): raising it to Vegur's 1000 costs every
/// request the parsing of 1000 slots.
fn http_builder(config: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let max_head = config.max_head.max(MIN_HEAD);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A backstop only: the connection's own clocks close it first.
        .header_read_timeout(config.header_timeout + config.keepalive_timeout)
        .max_buf_size(max_head);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX));
    builder
}

/// What serving connections with hyper needs, one for each proxy thread.
struct HyperShared {
    proxy: Arc<Proxy>,
    dynos: Arc<Dynos>,
    builder: auto::Builder<TokioExecutor>,
    stop: watch::Receiver<bool>,
}

/// A connection hyper is to serve (all of it, or from its HTTP/2 preface on).
struct HyperConnection {
    shared: Rc<HyperShared>,
    client: Client,
}

/// How serving a connection ended.
enum Ending {
    /// The client or hyper closed it (with hyper's error, if it failed).
    Closed(Option<Box<dyn std::error::Error + Send + Sync>>),
    /// Its clocks ran out.
    Expired(Expiry),
    /// The proxy is stopping.
    Stopping,
}

impl HyperConnection {
    /// Serves the connection, holding `slot`, after the TLS handshake when `tls` is given
    /// (which must end before the first head is due).
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>, slot: ConnectionSlot) {
        let Some(acceptor) = tls else {
            return self.serve(stream, slot).await;
        };
        let config = self.shared.proxy.config();
        let due = tokio::time::Instant::now() + config.header_timeout;
        match tokio::time::timeout_at(due, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(stream, slot).await,
            // A failed handshake: rustls has told the client why.
            Ok(Err(_)) => {}
            Err(_) => slot.listener().header_timed_out(config.header_timeout),
        }
    }

    async fn serve<I>(self, io: I, slot: ConnectionSlot)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let HyperConnection { shared, client } = self;
        let (proxy, dynos) = (shared.proxy.clone(), shared.dynos.clone());
        let (builder, mut stop) = (shared.builder.clone(), shared.stop.clone());
        drop(shared);
        let config = proxy.config();
        let activity = Arc::new(Activity::new(
            slot,
            config.header_timeout,
            config.keepalive_timeout,
        ));
        let requests = activity.clone();
        let proxy_for_service = proxy.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // hyper read a head with both lengths as chunked; the head as sent says so.
            if req.headers().contains_key(http::header::TRANSFER_ENCODING)
                && requests.with_head(|head| head.content_length)
            {
                requests.slot().listener().malformed_head();
                req.extensions_mut().insert(AmbiguousLength);
            }
            let in_flight = requests.request_started(req.version());
            let (proxy, dynos) = (proxy_for_service.clone(), dynos.clone());
            async move {
                let res = proxy.handle(&*dynos, req, client).await;
                Ok::<_, Infallible>(res.map(|body| Tracked::new(body, in_flight)))
            }
        });
        let io = TokioIo::new(Watched::new(io, activity.clone()));
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let ending = tokio::select! {
            served = conn.as_mut() => Ending::Closed(served.err()),
            expiry = activity.expired() => Ending::Expired(expiry),
            () = until_true(&mut stop) => Ending::Stopping,
        };
        let listener = activity.slot().listener();
        match ending {
            Ending::Closed(Some(error)) if refused_as_malformed(&*error) => {
                listener.malformed_head();
                let line = activity.with_head(|raw| {
                    head::malformed_line(raw, client, crate::errors::ProxyError::RequestError)
                });
                proxy.log(line);
            }
            Ending::Closed(_) => {}
            // Cut off: hyper's buffers go with the connection.
            Ending::Expired(Expiry::HeaderTimeout) => {
                listener.header_timed_out(activity.header_timeout());
            }
            Ending::Expired(Expiry::KeepAliveTimeout) => {
                listener.keepalive_timed_out();
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(activity.header_timeout(), conn).await;
            }
            // Requests in flight finish (the thread waits the grace period at most).
            Ending::Stopping => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// Whether hyper ended a connection over a request head it answered 400 itself: a malformed
/// head (a bad method, target, version or header: a folded line, a bare CR, differing
/// `Content-Length`s, a `Transfer-Encoding` not ending in chunked). Not a head too large (431)
/// or a target too long (414), which are not refusals of a malformed head.
fn refused_as_malformed(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<hyper::Error>().is_some_and(|e| {
        // hyper names its 414 only in its message.
        e.is_parse()
            && !e.is_parse_too_large()
            && !e.is_parse_version_h2()
            && !e.to_string().starts_with("URI too long")
    })
}
