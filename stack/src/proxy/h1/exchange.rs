//! The upstream step of the forwarding path: one request sent to a dyno and its response
//! brought back, with no task, channel or lock of its own. A dyno is picked from the mesh; the
//! request goes out on one of the thread's pooled connections (or a new one) with its head and
//! the body bytes already read in one `writev`, the rest of the body after them; the response
//! head is read into the connection's buffer, rewritten, and sent on with its body as the
//! dyno's bytes arrive. The clocks and H-codes are Heroku's: H19/H21 connecting, H18 when the
//! dyno closes while the request is sent, H12 when no response starts within the request
//! timeout of the whole request reaching the dyno, H13 when the dyno closes without one, H17
//! for one that is not HTTP, H15 when the dyno goes quiet mid-body, H27/H28 when the client
//! goes away or quiet. A request is sent again only when none of it reached the dyno (its
//! pooled connection failed the first write with nothing taken); never after. A protocol
//! switch (WebSocket) is spliced both ways once the dyno agrees (101).

use std::io::IoSlice;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::cache::Outcome;
use crate::cache::store::{Landing, Stored};
use crate::errors::{ProxyError, Side};
use crate::mesh::Lease;
use crate::proxy::body::Recorder;
use crate::proxy::h1::cached::{self, Before, Caching};
use crate::proxy::h1::chunked::ChunkedDecoder;
use crate::proxy::h1::conn::{Conn, MAX_HEADERS, Request, failure_page};
use crate::proxy::h1::framing::Remaining;
use crate::proxy::h1::io;
use crate::proxy::h1::request::BodyLength;
use crate::proxy::h1::response::{self, ClientFraming, ClientHead, Framing};
use crate::proxy::headers;

/// What the client connection does after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// It reads the next request.
    KeepAlive,
    /// It is closed (after its writes are flushed).
    Close,
    /// It is closed though the client may still be sending the request's body: what it sends
    /// is read and dropped for a while first, so that closing with it unread (a reset) does
    /// not lose the answer on its way to the client (nginx's lingering close).
    Drain,
    /// It is over already (the client went away, or a protocol switch ended).
    Done,
}

/// How many bytes a read of a head asks for at least.
const READ_SIZE: usize = 16 << 10;
/// How many bytes a read of a body asks for at least: a large body goes through in fewer,
/// larger reads and writes (the buffers are given back after the request, `conn.rs`).
pub(crate) const BODY_READ_SIZE: usize = 64 << 10;

/// One request's way to a dyno and back.
pub(crate) struct Exchange<'c, I> {
    conn: &'c mut Conn<I>,
    req: &'c Request,
    rec: Recorder,
    /// The cache's part in the request, when the cache is on and has one.
    caching: Option<Box<Caching>>,
}

/// A request sent, as far as the response step needs to know.
struct Sent {
    dyno: TcpStream,
    /// The dyno started answering before the whole body was sent: the rest is not read, and
    /// neither connection can be used again.
    early: bool,
}

impl<'c, I: AsyncRead + AsyncWrite + Unpin> Exchange<'c, I> {
    /// The exchange of `req`, whose head is in `conn`'s buffer before `conn.at` and whose
    /// rewritten head is in `conn.out`; its line is `rec`.
    pub(crate) fn new(conn: &'c mut Conn<I>, req: &'c Request, rec: Recorder) -> Self {
        Exchange {
            conn,
            req,
            rec,
            caching: None,
        }
    }

    /// Runs the exchange to its end.
    pub(crate) async fn run(mut self) -> Next {
        let proxy = self.conn.worker.proxy.clone();
        let config = proxy.config();
        if let Some(cache) = proxy.cache() {
            let started = std::time::Instant::now();
            let line = self.rec.line_mut();
            let before = cached::before(
                cache,
                self.req,
                &line.host,
                &line.path,
                &mut self.conn.out,
                config.response_timeout,
            )
            .await;
            match before {
                // Answered at once; refreshed after, in the background (from a GET without a
                // body, whose head can be sent again as it is).
                Before::Answer(stored, Outcome::Stale)
                    if self.req.get && self.req.body == BodyLength::Empty =>
                {
                    let head = self.conn.out.clone();
                    let refresh = cached::refresh(
                        self.conn.worker.clone(),
                        cache.clone(),
                        format!("{}\n{}", line.host, line.path),
                        head,
                        stored.clone(),
                    );
                    tokio::task::spawn_local(refresh);
                    return self.answer(&stored, Outcome::Stale, Some(started)).await;
                }
                Before::Answer(stored, outcome) => {
                    return self.answer(&stored, outcome, Some(started)).await;
                }
                Before::Stream(landing) => return self.stream(&landing, started).await,
                Before::Forward(Some(caching)) => self.caching = Some(caching),
                // Not the cache's (an unsafe method, which made it forget the URL; OPTIONS…).
                Before::Forward(None) => {
                    cache.store().stats().count(Outcome::Pass);
                    self.rec.line_mut().cache = Some(Outcome::Pass.as_str());
                }
            }
        }
        let lease = match proxy
            .mesh()
            .pick_preferring(self.req.affinity.as_deref(), config.boot_wait)
            .await
        {
            Ok(lease) => lease,
            Err(error) => return self.fail(error).await,
        };
        let mut body = match self.req.body {
            BodyLength::Empty => Remaining::Length(0),
            BodyLength::Length(n) => Remaining::Length(n),
            BodyLength::Chunked => Remaining::Chunked(ChunkedDecoder::default()),
        };
        let sent = match self.send(&lease, &mut body).await {
            Ok(sent) => sent,
            Err(Failed::Answer(error)) => {
                if matches!(
                    error,
                    ProxyError::BackendConnectTimeout | ProxyError::BackendConnectionRefused
                ) {
                    proxy.mesh().skip(&lease.dyno, config.skip_for);
                }
                return self.fail_with(error, body.is_done()).await;
            }
            Err(Failed::Silent(error)) => {
                self.rec.fail(error, 0);
                return Next::Done;
            }
        };
        self.respond(sent, &lease, body.is_done()).await
    }

    /// Connects (or takes a pooled connection) and sends the request: its head and the body
    /// bytes already read in one write, then the rest of the body as it comes.
    async fn send(&mut self, lease: &Lease, body: &mut Remaining) -> Result<Sent, Failed> {
        let config = self.conn.worker.proxy.config().clone();
        let conn = &mut *self.conn;
        // The body's bytes already read, taken once (a chunked body's decoder moves on).
        let start = conn.at;
        let taken = body
            .take(&conn.buf[start..], |_| {})
            .map_err(|_| Failed::Answer(ProxyError::RequestError))?;
        conn.at += taken.len;
        let (mut dyno, connect) = loop {
            let (mut dyno, connect, pooled) = match conn.worker.pool.take(lease.addr) {
                Some(dyno) => (dyno, Duration::ZERO, true),
                None => match io::connect(lease.addr, config.connect_timeout).await {
                    Ok((dyno, took)) => (dyno, took, false),
                    Err(error) => {
                        self.rec
                            .sent(&lease.dyno, Duration::ZERO, std::time::Instant::now());
                        return Err(Failed::Answer(error));
                    }
                },
            };
            let mut bufs = [
                IoSlice::new(&conn.out),
                IoSlice::new(&conn.buf[start..conn.at]),
            ];
            match io::write_all(&mut dyno, &mut bufs).await {
                Ok(()) => break (dyno, connect),
                // None of it reached the dyno: another connection (a new one, once the pool
                // has none that works).
                Err((0, _)) if pooled => continue,
                Err(_) => return Err(Failed::Answer(ProxyError::ServerRequestInterrupted)),
            }
        };
        self.rec
            .sent(&lease.dyno, connect, std::time::Instant::now());
        if body.is_done() {
            return Ok(Sent { dyno, early: false });
        }
        // The rest of the body: what was read is all the body's.
        let conn = &mut *self.conn;
        conn.buf.clear();
        conn.at = 0;
        if self.req.expect_continue && taken.len == 0 {
            // Unless the dyno has answered already.
            if let Ok(n) = dyno.try_read_buf(&mut conn.dyno_buf)
                && n > 0
            {
                return Ok(Sent { dyno, early: true });
            }
            io::send(&mut conn.io, b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| Failed::Silent(ProxyError::ClientInterrupted))?;
        }
        loop {
            conn.buf.reserve(BODY_READ_SIZE);
            // The dyno is looked at first: a client that always has more to send must not
            // keep an early answer waiting (and the body then going to a dyno that left).
            let read = tokio::select! {
                biased;
                ready = dyno.readable() => {
                    if ready.is_err() {
                        return Err(Failed::Answer(ProxyError::ServerRequestInterrupted));
                    }
                    match dyno.try_read_buf(&mut conn.dyno_buf) {
                        Ok(0) => return Err(Failed::Answer(ProxyError::ServerRequestInterrupted)),
                        // The dyno answers before the body is all sent.
                        Ok(_) => return Ok(Sent { dyno, early: true }),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return Err(Failed::Answer(ProxyError::ServerRequestInterrupted)),
                    }
                }
                read = tokio::time::timeout(config.idle_timeout, conn.io.read_buf(&mut conn.buf)) => read,
            };
            match read {
                Err(_) => return Err(Failed::Silent(ProxyError::ClientIdle)),
                Ok(Ok(0) | Err(_)) => return Err(Failed::Silent(ProxyError::ClientInterrupted)),
                Ok(Ok(_)) => {}
            }
            let taken = body
                .take(&conn.buf, |_| {})
                .map_err(|_| Failed::Answer(ProxyError::RequestError))?;
            let mut bufs = [IoSlice::new(&conn.buf[..taken.len])];
            if io::write_all(&mut dyno, &mut bufs).await.is_err() {
                // The dyno stopped reading: an answer it sent first is passed on.
                return match dyno.try_read_buf(&mut conn.dyno_buf) {
                    Ok(n) if n > 0 => Ok(Sent { dyno, early: true }),
                    _ => Err(Failed::Answer(ProxyError::ServerRequestInterrupted)),
                };
            }
            if taken.done {
                // What follows is the next request's (pipelined).
                conn.at = taken.len;
                return Ok(Sent { dyno, early: false });
            }
            conn.buf.clear();
        }
    }

    /// Reads the dyno's response head (H12 past the request timeout), and sends the response
    /// on. `body_read`: the request's body has been read whole (else the client connection
    /// cannot be used again).
    async fn respond(mut self, sent: Sent, lease: &Lease, body_read: bool) -> Next {
        let config = self.conn.worker.proxy.config().clone();
        let Sent { mut dyno, early } = sent;
        let due = Instant::now() + config.response_timeout;
        // The client is watched for going away while the dyno thinks (H27), once its
        // request is all read.
        let mut watch_client = body_read && !early;
        let reusable = body_read && !early;
        let cookie = match &self.req.affinity {
            _ if !config.affinity => None,
            Some(named) if *named == lease.dyno => None,
            _ => Some(headers::affinity_cookie(&lease.dyno)),
        };
        let answer = loop {
            let conn = &mut *self.conn;
            if !conn.dyno_buf.is_empty() {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match response::parse(&conn.dyno_buf, &mut slots, self.req.head) {
                    Ok(Some((head, _))) if head.status == 101 && !self.req.upgrade => {
                        return self.fail_with(ProxyError::BadResponse, body_read).await;
                    }
                    // An interim response (100 Continue, 103): not passed on.
                    Ok(Some((head, _)))
                        if (100..200).contains(&head.status) && head.status != 101 =>
                    {
                        conn.dyno_buf.drain(..head.len);
                        continue;
                    }
                    // The client's head is written as the dyno's is read.
                    Ok(Some((head, fields))) => {
                        if let Some(caching) = self.caching.as_mut() {
                            if caching.revalidating && head.status == 304 {
                                let Some(stale) = caching.stale.take() else {
                                    return self
                                        .fail_with(ProxyError::BadResponse, body_read)
                                        .await;
                                };
                                let fresh = cached::refreshed(&stale, fields);
                                let stored = caching.cache.store().insert(&caching.key, fresh);
                                let clean = head.keep_alive && conn.dyno_buf.len() == head.len;
                                conn.dyno_buf.clear();
                                if clean && reusable {
                                    conn.worker.pool.give_back(lease.addr, dyno);
                                }
                                return self.answer(&stored, Outcome::Revalidated, None).await;
                            }
                            caching.revalidating = false;
                            if caching.outcome == Outcome::Miss && !self.req.head {
                                let declared = match head.framing {
                                    Framing::Length(n) => Some(n),
                                    _ => None,
                                };
                                caching.storing = cached::storing(
                                    self.req,
                                    &conn.out,
                                    head.status,
                                    head.reason,
                                    fields,
                                    caching.cache.store().max_object(),
                                    declared,
                                );
                                match (&caching.storing, &caching.flight, declared) {
                                    // Its waiters go to the dynos themselves, at once.
                                    (None, _, _) => {
                                        caching.outcome = Outcome::Pass;
                                        if self.req.get {
                                            caching.cache.store().pass(&caching.key);
                                        }
                                        caching.flight = None;
                                    }
                                    // Its waiters stream the answer as it comes.
                                    (Some(kept), Some(flight), Some(length)) => {
                                        flight.share_head(kept.head(), length);
                                    }
                                    _ => {}
                                }
                            } else if self.req.head {
                                caching.outcome = Outcome::Pass;
                            }
                        }
                        let client = ClientHead {
                            http11: self.req.http11,
                            keep_alive: self.req.keep_alive && reusable,
                            upgrade: head.status == 101,
                            cookie: cookie.as_ref().and_then(|c| c.to_str().ok()),
                        };
                        let client_framing =
                            response::client_head(&mut conn.out, &head, fields, &client);
                        break Answer {
                            head_len: head.len,
                            status: head.status,
                            framing: head.framing,
                            keep_alive: head.keep_alive,
                            client_framing,
                        };
                    }
                    Ok(None) if conn.dyno_buf.len() > config.max_head => {
                        return self.fail_with(ProxyError::BadResponse, body_read).await;
                    }
                    Ok(None) => {}
                    Err(_) => return self.fail_with(ProxyError::BadResponse, body_read).await,
                }
            }
            conn.dyno_buf.reserve(READ_SIZE);
            let read = tokio::select! {
                biased;
                read = tokio::time::timeout_at(due, dyno.read_buf(&mut conn.dyno_buf)) => read,
                gone = conn.io.read_buf(&mut conn.buf), if watch_client => {
                    match gone {
                        Ok(n) if n > 0 => {
                            // A pipelined request: kept for later (and no longer watched
                            // past a head's worth).
                            if conn.buf.len() - conn.at > config.max_head {
                                watch_client = false;
                            }
                            continue;
                        }
                        _ => {
                            self.rec.fail(ProxyError::ClientInterrupted, 0);
                            return Next::Done;
                        }
                    }
                }
            };
            match read {
                Err(_) => return self.fail_with(ProxyError::RequestTimeout, body_read).await,
                Ok(Ok(0) | Err(_)) => {
                    let error = if self.conn.dyno_buf.is_empty() {
                        ProxyError::ConnectionClosedWithoutResponse
                    } else {
                        ProxyError::BadResponse
                    };
                    return self.fail_with(error, body_read).await;
                }
                Ok(Ok(_)) => {}
            }
        };
        self.forward(dyno, lease, answer, reusable).await
    }

    /// Sends the response the dyno began (`answer`: its head, the client's written in
    /// `conn.out`) on to the client, its body as it comes; gives the dyno connection back to
    /// the pool when the exchange left it clean. `reusable`: the client's request was read
    /// whole.
    async fn forward(
        mut self,
        mut dyno: TcpStream,
        lease: &Lease,
        answer: Answer,
        reusable: bool,
    ) -> Next {
        let config = self.conn.worker.proxy.config().clone();
        let Answer {
            head_len,
            status,
            framing,
            keep_alive: dyno_keep_alive,
            client_framing,
        } = answer;
        if status == 101 {
            return self.upgrade(dyno, head_len).await;
        }
        let conn = &mut *self.conn;
        let mut body = match framing {
            Framing::Empty => Remaining::Length(0),
            Framing::Length(n) => Remaining::Length(n),
            Framing::Chunked => Remaining::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => Remaining::UntilClose,
        };
        let decode = client_framing == ClientFraming::Close && framing == Framing::Chunked;
        // The answer being kept, as long as it fits; and shared with the misses waiting on it.
        let mut keeping = self.caching.as_mut().and_then(|c| c.storing.take());
        let flight = self.caching.as_mut().and_then(|c| c.flight.take());
        let max_object = self
            .caching
            .as_ref()
            .map_or(0, |c| c.cache.store().max_object());
        let mut plain = Vec::new();
        let mut bytes = 0u64;
        let mut head_sent = false;
        let mut from = head_len;
        let mut leftover = false;
        loop {
            plain.clear();
            let piece = &conn.dyno_buf[from..];
            let Ok(taken) = body.take(piece, |d| {
                if decode {
                    plain.extend_from_slice(d);
                }
                if let Some(k) = keeping.as_mut() {
                    if k.body.len() + d.len() > max_object {
                        keeping = None;
                    } else {
                        k.body.extend_from_slice(d);
                    }
                }
                if let Some(f) = &flight {
                    f.share_body(d);
                }
            }) else {
                if head_sent {
                    self.rec.fail(ProxyError::BadResponse, bytes);
                } else {
                    let page = failure_page(
                        &mut self.rec,
                        ProxyError::BadResponse,
                        StatusCode::SERVICE_UNAVAILABLE,
                        true,
                        self.req.head,
                    );
                    let _ = io::send(&mut conn.io, &page).await;
                }
                return Next::Close;
            };
            let piece = &piece[..taken.len];
            let head: &[u8] = if head_sent { &[] } else { &conn.out };
            let size_line;
            let mut bufs = match client_framing {
                ClientFraming::Rechunked if !piece.is_empty() => {
                    size_line = format!("{:x}\r\n", piece.len());
                    [
                        IoSlice::new(head),
                        IoSlice::new(size_line.as_bytes()),
                        IoSlice::new(piece),
                        IoSlice::new(b"\r\n"),
                    ]
                }
                _ if decode => [
                    IoSlice::new(head),
                    IoSlice::new(&plain),
                    IoSlice::new(&[]),
                    IoSlice::new(&[]),
                ],
                _ => [
                    IoSlice::new(head),
                    IoSlice::new(piece),
                    IoSlice::new(&[]),
                    IoSlice::new(&[]),
                ],
            };
            if io::write_all(&mut conn.io, &mut bufs).await.is_err() {
                self.rec.fail(ProxyError::ClientInterrupted, bytes);
                return Next::Done;
            }
            head_sent = true;
            bytes += taken.data;
            if taken.done {
                leftover = from + taken.len < conn.dyno_buf.len();
                break;
            }
            conn.dyno_buf.clear();
            from = 0;
            conn.dyno_buf.reserve(BODY_READ_SIZE);
            match tokio::time::timeout(config.idle_timeout, dyno.read_buf(&mut conn.dyno_buf)).await
            {
                Err(_) => {
                    self.rec.fail(ProxyError::IdleConnection, bytes);
                    return Next::Done;
                }
                Ok(Ok(0)) if framing == Framing::UntilClose => {
                    if client_framing == ClientFraming::Rechunked
                        && io::write_all(&mut conn.io, &mut [IoSlice::new(b"0\r\n\r\n")])
                            .await
                            .is_err()
                    {
                        self.rec.fail(ProxyError::ClientInterrupted, bytes);
                        return Next::Done;
                    }
                    break;
                }
                Ok(Ok(0) | Err(_)) => {
                    // The response was cut short: the client cannot be told otherwise.
                    self.rec
                        .fail(ProxyError::ConnectionClosedWithoutResponse, bytes);
                    return Next::Done;
                }
                Ok(Ok(_)) => {}
            }
        }
        if let Some(caching) = self.caching.take() {
            let outcome = match keeping {
                Some(kept) => {
                    caching
                        .cache
                        .store()
                        .insert(&caching.key, kept.into_stored());
                    Outcome::Miss
                }
                None if caching.outcome == Outcome::Miss => {
                    // Too large to keep after all: passed for a while too.
                    caching.cache.store().pass(&caching.key);
                    Outcome::Pass
                }
                None => caching.outcome,
            };
            caching.cache.store().stats().count(outcome);
            self.rec.line_mut().cache = Some(outcome.as_str());
        }
        // Stored first, then the waiters told the lead is over.
        drop(flight);
        self.rec.finish(status, bytes);
        let conn = &mut *self.conn;
        conn.dyno_buf.clear();
        if reusable && dyno_keep_alive && body.is_done() && !leftover {
            conn.worker.pool.give_back(lease.addr, dyno);
        }
        if !reusable {
            Next::Drain
        } else if !self.req.keep_alive || client_framing == ClientFraming::Close {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// The dyno agreed to switch protocols: its head (in `conn.out`) goes to the client, and
    /// the two connections are spliced both ways, bytes already read on either side first.
    async fn upgrade(mut self, mut dyno: TcpStream, head_len: usize) -> Next {
        let conn = &mut *self.conn;
        self.rec.finish(101, 0);
        let mut to_client = [
            IoSlice::new(&conn.out),
            IoSlice::new(&conn.dyno_buf[head_len..]),
        ];
        if io::write_all(&mut conn.io, &mut to_client).await.is_err() {
            return Next::Done;
        }
        let mut to_dyno = [IoSlice::new(&conn.buf[conn.at..])];
        if io::write_all(&mut dyno, &mut to_dyno).await.is_err() {
            return Next::Done;
        }
        conn.buf.clear();
        conn.at = 0;
        conn.dyno_buf.clear();
        let _ = tokio::io::copy_bidirectional(&mut conn.io, &mut dyno).await;
        Next::Done
    }

    /// Answers `error` with the proxy's page; the connection stays open when the request was
    /// read whole and the client keeps it.
    async fn fail(self, error: ProxyError) -> Next {
        let read = self.req.body == BodyLength::Empty;
        self.fail_with(error, read).await
    }

    /// Answers `error` with the proxy's page; `body_read`: the request's body has been read
    /// whole (else the connection is closed after the answer).
    async fn fail_with(mut self, error: ProxyError, body_read: bool) -> Next {
        if let Some(caching) = self.caching.take() {
            let now = std::time::Instant::now();
            match caching.stale {
                // A stale answer the dyno's failure lets the cache give (`stale-if-error`);
                // the line still tells the failure.
                Some(stale) if stale.usable_on_error(now) && error.side() == Side::Upstream => {
                    let own_conditional = !caching.revalidating;
                    return self
                        .answer_stale_on_error(&stale, error, body_read, own_conditional)
                        .await;
                }
                _ => {
                    caching.cache.store().stats().count(caching.outcome);
                    self.rec.line_mut().cache = Some(caching.outcome.as_str());
                }
            }
        }
        let close = !body_read || !self.req.keep_alive;
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let page = failure_page(&mut self.rec, error, status, close, self.req.head);
        if io::send(&mut self.conn.io, &page).await.is_err() {
            return Next::Done;
        }
        if !body_read {
            Next::Drain
        } else if close {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Exchange<'_, I> {
    /// Answers from the cache with `stored` (`outcome`: why), its line written; `here`: the
    /// answer is the cache's alone (no dyno was asked), timed from then.
    async fn answer(
        mut self,
        stored: &Stored,
        outcome: Outcome,
        here: Option<std::time::Instant>,
    ) -> Next {
        let body_read = self.req.body == BodyLength::Empty;
        // A revalidation is only made for a client that sent no conditional of its own: the
        // conditional in the head is the cache's.
        let own_conditional = outcome != Outcome::Revalidated;
        let (bytes, status) = match self.write_stored(stored, body_read, own_conditional).await {
            Some(sent) => sent,
            None => return Next::Done,
        };
        if let Some(at) = here {
            self.rec.served_here(at);
        }
        if let Some(cache) = self.conn.worker.proxy.cache() {
            cache.store().stats().count(outcome);
        }
        self.told(stored, outcome);
        self.rec.finish(status, bytes);
        self.after_stored(body_read)
    }

    /// The line's `cache=` and `age=` for an answer of `stored`.
    fn told(&mut self, stored: &Stored, outcome: Outcome) {
        let line = self.rec.line_mut();
        line.cache = Some(outcome.as_str());
        line.age = Some(stored.age(std::time::Instant::now()));
    }

    /// What the connection does after a stored answer: `body_read`, the request's body was.
    fn after_stored(&self, body_read: bool) -> Next {
        if !body_read {
            Next::Drain
        } else if self.req.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// Answers with another request's answer as it comes from its dyno (`landing`: its head
    /// known, its body arriving), its line `cache=coalesced`.
    async fn stream(mut self, landing: &Landing, started: std::time::Instant) -> Next {
        let idle = self.conn.worker.proxy.config().idle_timeout;
        let body_read = self.req.body == BodyLength::Empty;
        let Some((head, length)) = landing.with(|s| s.head.clone().map(|h| (h, s.length))) else {
            return self.fail(ProxyError::PlatformError).await;
        };
        let conn = &mut *self.conn;
        let keep_alive = self.req.keep_alive && body_read;
        cached::answer_head(
            &mut conn.out,
            &head,
            0,
            self.req.http11,
            keep_alive,
            false,
            Some(length),
        );
        if io::write_all(&mut conn.io, &mut [IoSlice::new(&conn.out)])
            .await
            .is_err()
        {
            self.rec.fail(ProxyError::ClientInterrupted, 0);
            return Next::Done;
        }
        self.rec.served_here(started);
        self.told(&head, Outcome::Coalesced);
        if let Some(cache) = self.conn.worker.proxy.cache() {
            cache.store().stats().count(Outcome::Coalesced);
        }
        let mut sent = 0usize;
        while !self.req.head && (sent as u64) < length {
            let changed = landing.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (more, over) = landing.with(|s| (s.body.get(sent..).map(<[u8]>::to_vec), s.over));
            let more = more.unwrap_or_default();
            if !more.is_empty() {
                if io::write_all(&mut self.conn.io, &mut [IoSlice::new(&more)])
                    .await
                    .is_err()
                {
                    self.rec.fail(ProxyError::ClientInterrupted, sent as u64);
                    return Next::Done;
                }
                sent += more.len();
                continue;
            }
            if over {
                // The lead's answer was cut short: so is this one.
                self.rec
                    .fail(ProxyError::ConnectionClosedWithoutResponse, sent as u64);
                return Next::Done;
            }
            if tokio::time::timeout(idle, changed).await.is_err() {
                self.rec.fail(ProxyError::IdleConnection, sent as u64);
                return Next::Done;
            }
        }
        self.rec.finish(head.status, sent as u64);
        self.after_stored(body_read)
    }

    /// A stale answer given because the dyno failed with `error` (`stale-if-error`);
    /// `own_conditional`: the head's conditionals are the client's (not the cache's).
    async fn answer_stale_on_error(
        mut self,
        stored: &Stored,
        error: ProxyError,
        body_read: bool,
        own_conditional: bool,
    ) -> Next {
        let Some((bytes, status)) = self.write_stored(stored, body_read, own_conditional).await
        else {
            return Next::Done;
        };
        if let Some(cache) = self.conn.worker.proxy.cache() {
            cache.store().stats().count(Outcome::Stale);
        }
        self.told(stored, Outcome::Stale);
        self.rec.fail_answered(error, status, bytes);
        self.after_stored(body_read)
    }

    /// Writes `stored` to the client (a 304 when its own conditional request is met, when
    /// `own_conditional` says the head's conditionals are the client's; no body for a HEAD):
    /// the status and body bytes sent, or `None` when the client is gone (its line written).
    async fn write_stored(
        &mut self,
        stored: &Stored,
        body_read: bool,
        own_conditional: bool,
    ) -> Option<(u64, u16)> {
        let conn = &mut *self.conn;
        let not_modified = own_conditional && cached::not_modified(&conn.out, stored);
        let age = stored.age(std::time::Instant::now());
        let keep_alive = self.req.keep_alive && body_read;
        cached::answer_head(
            &mut conn.out,
            stored,
            age,
            self.req.http11,
            keep_alive,
            not_modified,
            None,
        );
        let body: &[u8] = if not_modified || self.req.head {
            &[]
        } else {
            &stored.body
        };
        let mut bufs = [IoSlice::new(&conn.out), IoSlice::new(body)];
        if io::write_all(&mut conn.io, &mut bufs).await.is_err() {
            self.rec.fail(ProxyError::ClientInterrupted, 0);
            return None;
        }
        let status = if not_modified { 304 } else { stored.status };
        Some((body.len() as u64, status))
    }
}

/// A dyno's response head, read, and the client's, written.
struct Answer {
    /// The dyno's head's length: its body starts there.
    head_len: usize,
    status: u16,
    /// How the dyno delimits the body.
    framing: Framing,
    /// The dyno keeps the connection open after it.
    keep_alive: bool,
    /// How the client's side of the body is delimited.
    client_framing: ClientFraming,
}

/// Why a request could not be sent.
enum Failed {
    /// The client gets the proxy's page for it.
    Answer(ProxyError),
    /// The client is gone or quiet: only its line tells it.
    Silent(ProxyError),
}
