//! One client connection on the forwarding path: its request heads read into one reused
//! buffer and parsed in place, each judged as Vegur judges it (refusals answered here with
//! their line), rewritten for the dyno and sent on by the exchange step (`exchange.rs`); the
//! connection kept alive between requests, pipelined requests answered in order. Its clocks:
//! the first head must arrive within the header timeout of the accept (a TLS handshake
//! included), a later one within the header timeout of its first byte, and a connection with
//! no request in flight is closed after the keep-alive timeout. A connection whose first bytes
//! are HTTP/2's preface is handed back to be served by hyper.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::errors::ProxyError;
use crate::proxy::body::Recorder;
use crate::proxy::h1::exchange::{Exchange, Next};
use crate::proxy::h1::forward;
use crate::proxy::h1::pool::Pool;
use crate::proxy::h1::request::{self, BodyLength, HeadError};
use crate::proxy::head;
use crate::proxy::headers::{self, Client};
use crate::proxy::line::RouterLine;
use crate::proxy::raw_head::RawHead;
use crate::proxy::server::Proxy;
use crate::proxy::stats::ConnectionSlot;
use crate::proxy::target;

/// The most headers a request may have (431 past it), as with hyper.
pub(crate) const MAX_HEADERS: usize = 100;

/// HTTP/2's connection preface: a client that knows the server speaks HTTP/2 starts with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many bytes a read asks for at least.
const READ_SIZE: usize = 16 << 10;

/// How long a connection closed with a request body unread reads what still comes first.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// How much it reads and drops at most.
const LINGER_BYTES: usize = 64 << 20;

/// What one proxy thread's connections share: the proxy, and the thread's own pool of
/// connections to dynos.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The proxy (its mesh, emitter, settings and counters).
    pub proxy: Arc<Proxy>,
    /// The thread's keep-alive connections to dynos.
    pub pool: Pool,
}

impl Worker {
    /// A worker for one thread of `proxy`.
    pub(crate) fn new(proxy: Arc<Proxy>) -> Rc<Self> {
        let config = proxy.config();
        let pool = Pool::new(config.pool_per_dyno, POOL_IDLE);
        Rc::new(Worker { proxy, pool })
    }
}

/// How long a dyno connection may wait in the pool.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(90);

/// How serving a connection ended.
pub(crate) enum Served<I> {
    /// It is done (closed, timed out, or the proxy is stopping).
    Done,
    /// Its first bytes are HTTP/2's preface: hyper is to serve it, those bytes first, under
    /// the connection's place.
    Http2(Vec<u8>, I, ConnectionSlot),
}

/// A request that passed head handling, as the exchange step needs it.
#[derive(Debug)]
pub(crate) struct Request {
    /// A HEAD request (its response has no body).
    pub head: bool,
    /// A GET request (the one whose answers the cache stores).
    pub get: bool,
    /// A method that changes what the URL holds (POST, PUT, PATCH, DELETE): the cache forgets
    /// the URL.
    pub unsafe_method: bool,
    /// The client speaks HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// How the body is delimited.
    pub body: BodyLength,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// It asks to switch protocols.
    pub upgrade: bool,
    /// It waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// The dyno named by its affinity cookie (session affinity on).
    pub affinity: Option<String>,
}

impl Request {
    /// A bodiless GET (or HEAD, `head`) as the cache sees one it makes or reads on another
    /// path (a background refresh, an HTTP/2 request).
    pub(crate) fn bodiless(head: bool) -> Self {
        Request {
            head,
            get: !head,
            unsafe_method: false,
            http11: true,
            body: BodyLength::Empty,
            keep_alive: true,
            upgrade: false,
            expect_continue: false,
            affinity: None,
        }
    }
}

/// One client connection.
pub(crate) struct Conn<I> {
    pub(crate) io: I,
    pub(crate) worker: Rc<Worker>,
    pub(crate) client: Client,
    /// Bytes read from the client; what is before `at` has been dealt with.
    pub(crate) buf: Vec<u8>,
    pub(crate) at: usize,
    /// The head being written (to the dyno, or to the client).
    pub(crate) out: Vec<u8>,
    /// Bytes read from the dyno.
    pub(crate) dyno_buf: Vec<u8>,
    slot: ConnectionSlot,
    stop: watch::Receiver<bool>,
}

/// Why waiting for a head ended without one.
enum NoHead {
    /// The client closed (or the connection failed) between requests.
    Closed,
    /// The head did not come in time.
    HeaderTimeout,
    /// No request came within the keep-alive timeout.
    KeepAliveTimeout,
    /// The proxy is stopping.
    Stopping,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    /// A connection accepted (its TLS handshake, if any, done) on a listener, holding `slot`.
    pub(crate) fn new(
        io: I,
        worker: Rc<Worker>,
        client: Client,
        slot: ConnectionSlot,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Conn {
            io,
            worker,
            client,
            buf: Vec::with_capacity(4096),
            at: 0,
            out: Vec::with_capacity(1024),
            dyno_buf: Vec::with_capacity(4096),
            slot,
            stop,
        }
    }

    /// Serves the connection's requests; `accepted`: when it was accepted (its first head is
    /// due a header timeout later).
    pub(crate) async fn serve(mut self, accepted: Instant) -> Served<I> {
        let config = self.worker.proxy.config().clone();
        let mut head_due = accepted + config.header_timeout;
        let mut requests = 0u64;
        let mut scanned = 0;
        let mut parsed_at = 0;
        loop {
            let first = requests == 0;
            match self
                .read_head(head_due, config.max_head, first, scanned, parsed_at)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    let read = std::mem::take(&mut self.buf);
                    return Served::Http2(read, self.io, self.slot);
                }
                Err(NoHead::HeaderTimeout) => {
                    self.slot.listener().header_timed_out(config.header_timeout);
                    return Served::Done;
                }
                Err(_) => return Served::Done,
            }
            scanned = self.buf.len();
            parsed_at = self.buf.len();
            let next = match self.request().await {
                // Leading blank lines, and no head yet.
                None => continue,
                Some(next) => next,
            };
            if requests == 0 {
                self.slot.first_head_read();
            }
            requests += 1;
            match next {
                Next::KeepAlive => {}
                Next::Close => {
                    // TLS says it is closing (close_notify); TCP's close is enough.
                    if self.client.tls {
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.io).await;
                    }
                    return Served::Done;
                }
                Next::Drain => {
                    self.drain().await;
                    return Served::Done;
                }
                Next::Done => return Served::Done,
            }
            // The next request's bytes already read (pipelined) are kept, at the start.
            self.buf.drain(..self.at);
            self.at = 0;
            scanned = 0;
            parsed_at = 0;
            // Buffers a large body grew are given back (a kept-alive connection holds
            // 16 KiB or so between requests).
            if self.buf.capacity() > 2 * READ_SIZE {
                self.buf.shrink_to(READ_SIZE);
            }
            if self.dyno_buf.capacity() > 2 * READ_SIZE {
                self.dyno_buf.shrink_to(READ_SIZE);
            }
            if self.buf.is_empty() {
                match self.wait_for_request(config.keepalive_timeout).await {
                    Ok(()) => {}
                    Err(NoHead::KeepAliveTimeout) => {
                        self.slot.listener().keepalive_timed_out();
                        return Served::Done;
                    }
                    Err(_) => return Served::Done,
                }
            }
            head_due = Instant::now() + config.header_timeout;
        }
    }

    /// Closes the connection's sending side and reads what the client still sends (a body
    /// the answer did not wait for) until it stops, at most `LINGER_TIME` and `LINGER_BYTES`,
    /// so that the answer is not lost to a reset.
    async fn drain(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.io).await;
        let until = Instant::now() + LINGER_TIME;
        let mut read = 0;
        while read < LINGER_BYTES {
            self.buf.clear();
            self.buf.reserve(READ_SIZE);
            match tokio::time::timeout_at(until, self.io.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => read += n,
                _ => return,
            }
        }
    }

    /// Waits, between requests, for the first bytes of the next (`keepalive` at most).
    async fn wait_for_request(&mut self, keepalive: std::time::Duration) -> Result<(), NoHead> {
        self.buf.reserve(READ_SIZE);
        let read = tokio::select! {
            biased;
            read = tokio::time::timeout(keepalive, self.io.read_buf(&mut self.buf)) => read,
            _ = self.stop.changed() => return Err(NoHead::Stopping),
        };
        match read {
            Ok(Ok(0) | Err(_)) => Err(NoHead::Closed),
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(NoHead::KeepAliveTimeout),
        }
    }

    /// Reads until the buffer may hold a whole head (a blank line, or a request line past
    /// its limit, is in it; `scanned`: how much of it was looked at before). `Ok(false)`:
    /// HTTP/2's preface (`first`: the connection's first request). A head past `max_head` is
    /// answered here (431), and ends the connection. `parsed_at`: how long the buffer was
    /// when a parse last found its head not whole (0: none was tried); it is not tried again
    /// before more bytes come.
    async fn read_head(
        &mut self,
        due: Instant,
        max_head: usize,
        first: bool,
        mut scanned: usize,
        parsed_at: usize,
    ) -> Result<bool, NoHead> {
        loop {
            let n = self.buf.len().min(H2_PREFACE.len());
            if parsed_at > 0 && self.buf.len() == parsed_at {
                // Nothing new since the last parse.
            } else if first && n > 0 && self.buf[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    return Ok(false);
                }
            } else if head_may_end(&self.buf[scanned.saturating_sub(2)..])
                || (self.buf.len() > headers::MAX_REQUEST_LINE
                    && memchr::memchr(b'\n', &self.buf[..=headers::MAX_REQUEST_LINE]).is_none())
            {
                return Ok(true);
            }
            scanned = self.buf.len();
            if self.buf.len() > max_head {
                self.refuse_raw(HeadError::TooManyHeaders).await;
                return Err(NoHead::Closed);
            }
            self.buf.reserve(READ_SIZE);
            let read = tokio::select! {
                biased;
                read = tokio::time::timeout_at(due, self.io.read_buf(&mut self.buf)) => read,
                _ = self.stop.changed(), if first && self.buf.is_empty() => {
                    return Err(NoHead::Stopping)
                }
            };
            match read {
                Ok(Ok(0) | Err(_)) => return Err(NoHead::Closed),
                Ok(Ok(_)) => {}
                Err(_) => return Err(NoHead::HeaderTimeout),
            }
        }
    }

    /// Answers a head that could not be read (malformed, or past a limit: 431 for too many
    /// headers or too large a head, 400 else) and writes its line from what a lenient scan
    /// finds.
    async fn refuse_raw(&mut self, error: HeadError) {
        let listener = self.slot.listener();
        let proxy_error = match error {
            HeadError::Limit(_) | HeadError::TooManyHeaders => ProxyError::HttpRestriction,
            _ => {
                listener.malformed_head();
                ProxyError::RequestError
            }
        };
        let line = head::malformed_line(&RawHead::scan(&self.buf), self.client, proxy_error);
        let status = match error {
            HeadError::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut rec = Recorder::new(line, self.worker.proxy.emitter().clone());
        let answer = failure_page(&mut rec, proxy_error, status, true, false);
        let _ = crate::proxy::h1::io::send(&mut self.io, &answer).await;
    }

    /// Handles the request whose head starts the buffer: `None` while the head is not whole.
    async fn request(&mut self) -> Option<Next> {
        let proxy = self.worker.proxy.clone();
        let config = proxy.config();
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (head, fields) = match request::parse(&self.buf, &mut slots) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return None,
            Err(error) => {
                self.refuse_raw(error).await;
                return Some(Next::Done);
            }
        };
        let len = head.len;
        let http11 = head.minor_version == 1;
        let hosts = fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("host"))
            .map(|f| f.value);
        let target = target::host_and_path(http11, head.target, hosts);
        let (host, path) = match &target {
            Ok((host, path)) => (host.clone(), path.clone()),
            Err(_) => {
                let raw = RawHead::scan(&self.buf[..len]);
                let host = raw.host.map(|h| String::from_utf8_lossy(h).into_owned());
                (host.unwrap_or_default(), head.target.to_owned())
            }
        };
        let expect = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("expect"))
            .map(|f| f.value.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
        let forwarded = forward::request_head(
            &mut self.out,
            &head,
            fields,
            &host,
            &path,
            self.client,
            start_ms,
        );
        let affinity = if config.affinity {
            headers::affinity_in(
                fields
                    .iter()
                    .filter(|f| f.name.eq_ignore_ascii_case("cookie"))
                    .map(|f| f.value),
            )
        } else {
            None
        };
        let refusal = if head.method == "CONNECT" {
            Some(ProxyError::MethodNotAllowed)
        } else if target.is_err() || expect == Some(false) {
            Some(ProxyError::RequestError)
        } else {
            None
        };
        let line = RouterLine {
            method: head.method.to_owned(),
            path,
            host,
            request_id: forwarded.request_id,
            fwd: forwarded.fwd,
            protocol: if self.client.tls { "https" } else { "http" }.to_owned(),
            ..RouterLine::default()
        };
        let request = Request {
            head: head.method == "HEAD",
            get: head.method == "GET",
            unsafe_method: matches!(head.method, "POST" | "PUT" | "PATCH" | "DELETE"),
            http11,
            body: head.body,
            keep_alive: head.keep_alive,
            upgrade: head.upgrade,
            expect_continue: expect == Some(true),
            affinity,
        };
        let mut rec = Recorder::new(line, proxy.emitter().clone());
        self.at = len;
        if let Some(error) = refusal {
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let answer = failure_page(&mut rec, error, status, true, request.head);
            let _ = crate::proxy::h1::io::send(&mut self.io, &answer).await;
            return Some(Next::Close);
        }
        Some(Exchange::new(self, &request, rec).run().await)
    }
}

/// Whether `bytes` hold a blank line (`\n\n` or `\n\r\n`): a head may have ended in them.
fn head_may_end(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).any(|i| match bytes.get(i + 1) {
        Some(b'\n') => true,
        Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
        _ => false,
    })
}

/// The proxy's own answer to a failed request, its line written: the status, a page naming
/// the H-code and the request id, and `Connection: close` when `close`. `head`: a HEAD
/// request (the page's length is sent, not the page).
pub(crate) fn failure_page(
    rec: &mut Recorder,
    error: ProxyError,
    status: StatusCode,
    close: bool,
    head: bool,
) -> Vec<u8> {
    use std::io::Write as _;
    rec.fail(error, 0);
    let body = format!(
        "Application error: {} ({})\nrequest id {}\n",
        error.desc(),
        error.code(),
        rec.line_mut().request_id
    );
    let mut out = Vec::with_capacity(256 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\nvia: {}\r\n\
         cache-control: no-cache, no-store\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        headers::VIA,
        body.len()
    );
    if error == ProxyError::MethodNotAllowed {
        out.extend_from_slice(b"allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_may_end_only_at_a_blank_line() {
        assert!(!head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_may_end(b"\n\r\n"));
        assert!(head_may_end(b"GET / HTTP/1.1\n\n"));
        assert!(!head_may_end(b"\r\n\r"));
    }
}
