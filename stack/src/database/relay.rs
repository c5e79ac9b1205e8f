//! The relay between one logged-in client and the pool: client messages go to the server
//! connection the client holds (taken when needed), server messages back, and in transaction
//! mode the connection goes back to the pool at each idle `ReadyForQuery` with nothing else
//! in flight. Named prepared statements are renamed to a name derived from their text and
//! prepared again on whichever connection the client lands on (see `prepared.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::lines::DatabaseLine;
use super::pool::{Checkout, PoolError};
use super::prepared::{ClientStatements, Rewrite};
use super::server::ServerError;
use super::session::TRACKED;
use super::stats::DatabaseStats;
use super::wire::{self, Frame, WireError};
use super::{AppDatabase, Backend, PoolMode, Shared};

/// What a `ParseComplete` or `CloseComplete` from the server stands for.
#[derive(Debug)]
enum Expect {
    /// The client's own: passed on; if it prepares this server name and the server skips
    /// it after an error, the name is forgotten.
    Pass(Option<String>),
    /// A `Parse` the adapter added: dropped (the name was marked prepared when sent).
    DropParse(String),
    /// The `Close` sent in place of a `Parse` the connection already had: the client gets the
    /// `ParseComplete` it expects.
    AsParseComplete,
}

/// One client's relay.
#[derive(Debug)]
pub struct Relay {
    shared: Arc<Shared>,
    app: Arc<AppDatabase>,
    params: BTreeMap<String, String>,
    /// The backend a cancel request for this client reaches.
    backend: Backend,
    server: Option<Checkout>,
    /// `ReadyForQuery` messages still to come (one per `Query`, `Sync`, `FunctionCall`).
    pending: u32,
    /// Extended-protocol messages sent since the last `Sync`.
    dirty: bool,
    statements: ClientStatements,
    /// Per `Sync` sent so far: what each `ParseComplete` and `CloseComplete` stands for.
    parse_q: VecDeque<(u64, Expect)>,
    close_q: VecDeque<(u64, Expect)>,
    syncs_sent: u64,
    syncs_done: u64,
    /// When each awaited `ReadyForQuery`'s statement was sent, and its text.
    timings: VecDeque<(Instant, Bytes)>,
    last_sql: Bytes,
    /// What goes to the server next (kept for its capacity).
    out: BytesMut,
}

/// Why the relay ended.
enum End {
    /// The client said Terminate or closed between messages.
    Client,
    /// The client failed: closed mid-message, broke the protocol, or its socket failed.
    ClientFailed(Option<Bytes>),
    /// The server failed; the client is told.
    Server(Bytes),
}

impl Relay {
    /// A relay for a client of `app` that set `params` at startup.
    pub fn new(
        shared: Arc<Shared>,
        app: Arc<AppDatabase>,
        params: BTreeMap<String, String>,
        backend: Backend,
    ) -> Relay {
        let max = shared.config.max_prepared;
        app.pool
            .clients
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Relay {
            shared,
            app,
            params,
            backend,
            server: None,
            pending: 0,
            dirty: false,
            statements: ClientStatements::new(max),
            parse_q: VecDeque::new(),
            close_q: VecDeque::new(),
            syncs_sent: 0,
            syncs_done: 0,
            timings: VecDeque::new(),
            last_sql: Bytes::new(),
            out: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// What a client gets after its password: `AuthenticationOk`, the server's parameters
    /// (with the client's own settings), its cancel key, `ReadyForQuery`. Or a FATAL error.
    pub async fn greeting(&mut self, pid: u32, secret: u32) -> Result<BytesMut, Bytes> {
        let mut params = match self.app.pool.params().await {
            Ok(p) => p,
            Err(e) => return Err(self.pool_error(&e)),
        };
        for (k, v) in &self.params {
            params.insert(k.clone(), v.clone());
        }
        let mut out = BytesMut::new();
        out.extend_from_slice(&wire::auth(0, &[]));
        for (k, v) in &params {
            out.extend_from_slice(&wire::parameter_status(k, v));
        }
        out.extend_from_slice(&wire::backend_key(pid, secret));
        out.extend_from_slice(&wire::ready(b'I'));
        Ok(out)
    }

    fn pool_error(&self, e: &PoolError) -> Bytes {
        let (code, message) = match e {
            PoolError::Timeout(..) => (
                "53300",
                format!("{e}; try again later, or raise --database-pool-size"),
            ),
            PoolError::Server(ServerError::Refused(code, m)) => {
                (code.as_str(), format!("the database server refused: {m}"))
            }
            PoolError::Server(_) => ("08006", e.to_string()),
        };
        DatabaseLine::Error {
            code,
            severity: "FATAL",
            message: &message,
        }
        .emit(&self.app.emitter);
        wire::error_response("FATAL", code, &message)
    }

    /// Relays until either side ends; then gives back, resets or closes the server connection.
    pub async fn run<S>(mut self, client: &mut S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let end = self.relay(client).await;
        let last = match end {
            End::Client => None,
            End::ClientFailed(e) => e,
            End::Server(e) => Some(e),
        };
        self.finish().await;
        if let Some(bytes) = last {
            let _ = client.write_all(&bytes).await;
            // Closed gracefully, and what the client still sends read away for a moment, so
            // that the close is not a reset that loses the error on its way.
            let _ = client.shutdown().await;
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    }

    async fn relay<S>(&mut self, client: &mut S) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut cbuf = BytesMut::with_capacity(8 * 1024);
        let mut to_client = BytesMut::with_capacity(16 * 1024);
        let max = self.shared.config.max_message;
        loop {
            // Whole client messages waiting: relay them (taking a server if needed).
            if let Err(end) = self.client_messages(&mut cbuf, max).await {
                return end;
            }
            // What the server sent while they were written.
            if let Err(end) = self.server_messages(&mut to_client) {
                // What came before the failure is the client's (earlier requests' answers).
                let _ = client.write_all(&to_client).await;
                return end;
            }
            if !to_client.is_empty() {
                if client.write_all(&to_client).await.is_err() {
                    return End::ClientFailed(None);
                }
                to_client.clear();
                self.maybe_release();
            }
            // A client that holds a connection in a transaction and says nothing.
            let idle_limit = self.shared.config.idle_transaction_timeout.filter(|_| {
                self.pending == 0 && self.server.as_ref().is_some_and(|s| !s.conn.idle)
            });
            let read = match &mut self.server {
                Some(server) => {
                    let conn = &mut server.conn;
                    let limit = async {
                        match idle_limit {
                            Some(d) => tokio::time::sleep(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        r = wire::fill(client, &mut cbuf) => Side::Client(r),
                        r = wire::fill(&mut conn.stream, &mut conn.buf) => Side::Server(r),
                        () = limit => Side::IdleInTransaction,
                    }
                }
                None => Side::Client(wire::fill(client, &mut cbuf).await),
            };
            match read {
                Side::Client(Ok(true)) => {}
                Side::Client(Ok(false)) => {
                    return if cbuf.is_empty() {
                        End::Client
                    } else {
                        self.malformed(&WireError::Truncated)
                    };
                }
                Side::Client(Err(_)) => return End::ClientFailed(None),
                Side::Server(Ok(true)) => {
                    if let Err(end) = self.server_messages(&mut to_client) {
                        let _ = client.write_all(&to_client).await;
                        return end;
                    }
                    if !to_client.is_empty() {
                        if client.write_all(&to_client).await.is_err() {
                            return End::ClientFailed(None);
                        }
                        to_client.clear();
                    }
                    self.maybe_release();
                }
                Side::Server(_) => return self.server_lost(),
                Side::IdleInTransaction => {
                    DatabaseStats::bump(&self.shared.stats.idle_transaction_timeouts);
                    let message = "terminating connection due to idle-in-transaction timeout \
                                   (--database-idle-transaction-timeout)";
                    DatabaseLine::Error {
                        code: "25P03",
                        severity: "FATAL",
                        message,
                    }
                    .emit(&self.app.emitter);
                    return End::Server(wire::error_response("FATAL", "25P03", message));
                }
            }
        }
    }

    fn malformed(&self, e: &WireError) -> End {
        let stats = &self.shared.stats;
        let message = match e {
            WireError::TooLong { .. } => {
                DatabaseStats::bump(&stats.oversized);
                format!("{e} (--database-max-message-kb)")
            }
            _ => {
                DatabaseStats::bump(&stats.malformed);
                format!("invalid message from the client: {e}")
            }
        };
        End::ClientFailed(Some(wire::error_response("FATAL", "08P01", &message)))
    }

    fn server_lost(&mut self) -> End {
        self.server = None;
        let message = "the database server closed the connection unexpectedly";
        DatabaseLine::Error {
            code: "08006",
            severity: "FATAL",
            message,
        }
        .emit(&self.app.emitter);
        End::Server(wire::error_response("FATAL", "08006", message))
    }

    /// Sends every whole client message waiting in `cbuf` to the server.
    async fn client_messages(&mut self, cbuf: &mut BytesMut, max: usize) -> Result<(), End> {
        let mut out = std::mem::take(&mut self.out);
        let sent = self.client_messages_into(cbuf, max, &mut out).await;
        out.clear();
        self.out = out;
        sent
    }

    async fn client_messages_into(
        &mut self,
        cbuf: &mut BytesMut,
        max: usize,
        out: &mut BytesMut,
    ) -> Result<(), End> {
        loop {
            let frame = match wire::try_frame(cbuf, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(self.malformed(&e)),
            };
            if frame.tag == b'X' {
                self.flush_to_server(out).await?;
                return Err(End::Client);
            }
            if self.server.is_none() {
                self.attach().await?;
            }
            self.client_frame(frame, out)?;
        }
        self.flush_to_server(out).await
    }

    async fn flush_to_server(&mut self, out: &mut BytesMut) -> Result<(), End> {
        if out.is_empty() {
            return Ok(());
        }
        let Some(server) = &mut self.server else {
            return Ok(());
        };
        if server.conn.send_reading(out).await.is_err() {
            return Err(self.server_lost());
        }
        out.clear();
        Ok(())
    }

    /// Takes a server connection from the pool and brings the client's settings to it.
    async fn attach(&mut self) -> Result<(), End> {
        let mut server = match self.app.pool.get().await {
            Ok(s) => s,
            Err(e) => return Err(End::Server(self.pool_error(&e))),
        };
        let sets: Vec<String> = self
            .params
            .iter()
            .filter(|(k, v)| server.conn.params.get(*k) != Some(*v))
            .map(|(k, v)| format!("SET {k} = '{}'", v.replace('\'', "''")))
            .collect();
        if !sets.is_empty() && server.conn.exec(&sets.join("; ")).await.is_err() {
            // A setting the server refuses is the client's to see on its own `SET`; the
            // connection itself is still good unless it failed.
            if !server.conn.idle {
                return Err(self.server_lost());
            }
        }
        self.set_backend(Some((server.conn.addr, server.conn.key)));
        self.server = Some(server);
        Ok(())
    }

    /// Adds one client message (rewritten if need be) to `out`.
    fn client_frame(&mut self, frame: Frame, out: &mut BytesMut) -> Result<(), End> {
        let transaction = self.shared.config.mode == PoolMode::Transaction;
        match frame.tag {
            b'Q' => {
                self.last_sql = sql_of(&frame.body());
                self.expect_ready();
            }
            b'F' => self.expect_ready(),
            b'S' => {
                self.dirty = false;
                self.expect_ready();
            }
            b'P' | b'B' | b'D' | b'C' if transaction => {
                self.dirty = true;
                return self.statement_frame(&frame, out);
            }
            b'P' => {
                self.dirty = true;
                let mut body = frame.body();
                let _ = wire::cstr_bytes(&mut body);
                self.last_sql = wire::cstr_bytes(&mut body).unwrap_or_default();
            }
            b'B' | b'D' | b'C' | b'E' | b'H' => self.dirty = true,
            b'd' | b'c' | b'f' => {}
            other => {
                DatabaseStats::bump(&self.shared.stats.malformed);
                return Err(End::ClientFailed(Some(wire::error_response(
                    "FATAL",
                    "08P01",
                    &format!("invalid frontend message type {}", other as char),
                ))));
            }
        }
        out.extend_from_slice(&frame.raw);
        Ok(())
    }

    /// A `Parse`, `Bind`, `Describe` or `Close` in transaction mode: named statements
    /// renamed, prepared first, or answered for (see `prepared.rs`).
    fn statement_frame(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), End> {
        let at = self.syncs_sent;
        let Some(server) = &mut self.server else {
            return Ok(());
        };
        let rewrite = self
            .statements
            .rewrite(frame, &mut server.conn.prepared)
            .map_err(|e| self.malformed(&e))?;
        match rewrite {
            Rewrite::Forward {
                frame,
                sql,
                prepared,
            } => {
                if let Some(sql) = sql {
                    self.last_sql = sql;
                }
                match frame.tag {
                    b'P' => self.parse_q.push_back((at, Expect::Pass(prepared))),
                    b'C' => self.close_q.push_back((at, Expect::Pass(None))),
                    _ => {}
                }
                out.extend_from_slice(&frame.raw);
            }
            Rewrite::AlreadyPrepared { close, sql } => {
                self.last_sql = sql;
                self.close_q.push_back((at, Expect::AsParseComplete));
                out.extend_from_slice(&close);
            }
            Rewrite::PrepareFirst {
                parse,
                name,
                frame,
                sql,
            } => {
                DatabaseStats::bump(&self.shared.stats.reprepared);
                self.last_sql = sql;
                self.parse_q.push_back((at, Expect::DropParse(name)));
                out.extend_from_slice(&parse);
                out.extend_from_slice(&frame.raw);
            }
            // The client is told; nothing is sent for this message.
            Rewrite::Refuse(error) => return Err(End::ClientFailed(Some(error))),
        }
        Ok(())
    }

    fn set_backend(&self, backend: Option<(std::net::SocketAddr, (u32, u32))>) {
        *self.backend.lock().unwrap_or_else(|p| p.into_inner()) = backend;
    }

    fn expect_ready(&mut self) {
        self.pending += 1;
        self.syncs_sent += 1;
        self.timings
            .push_back((Instant::now(), self.last_sql.clone()));
    }

    /// Handles every whole server message read; what the client gets goes to `to_client`.
    fn server_messages(&mut self, to_client: &mut BytesMut) -> Result<(), End> {
        loop {
            let Some(server) = &mut self.server else {
                return Ok(());
            };
            let max = self.shared.config.max_message;
            let frame = match wire::try_frame(&mut server.conn.buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(WireError::TooLong { len, .. }) => {
                    // A row (or other answer) bigger than the adapter relays: the connection
                    // is mid-message, so it is closed and the client told why.
                    DatabaseStats::bump(&self.shared.stats.oversized);
                    DatabaseStats::bump(&self.shared.stats.server_abandoned);
                    self.server = None;
                    let message = format!(
                        "the server's answer has a message of {len} bytes, over the {max}-byte \
                         limit (--database-max-message-kb)"
                    );
                    return Err(End::Server(wire::error_response(
                        "FATAL", "54000", &message,
                    )));
                }
                Err(_) => return Err(self.server_lost()),
            };
            match frame.tag {
                b'1' => {
                    if let Expect::DropParse(_) = pop(&mut self.parse_q) {
                        continue;
                    }
                }
                b'3' => {
                    if let Expect::AsParseComplete = pop(&mut self.close_q) {
                        to_client.extend_from_slice(&Frame::new(b'1', &[]).raw);
                        continue;
                    }
                }
                b'Z' => self.ready(&frame),
                b'E' => {
                    let (severity, code, message) = wire::error_fields(&frame.body());
                    DatabaseLine::Error {
                        code: &code,
                        severity: &severity,
                        message: &message,
                    }
                    .emit(&self.app.emitter);
                }
                b'S' => {
                    let body = frame.body();
                    server.conn.note_parameter(&body);
                    let mut b = &body[..];
                    if let (Some(k), Some(v)) = (wire::cstr(&mut b), wire::cstr(&mut b))
                        && TRACKED.contains(&k.as_str())
                    {
                        self.params.insert(k, v);
                    }
                }
                _ => {}
            }
            to_client.extend_from_slice(&frame.raw);
        }
    }

    /// A `ReadyForQuery`: one fewer awaited; what the queues still hold from before it was
    /// skipped by the server after an error.
    fn ready(&mut self, frame: &Frame) {
        self.pending = self.pending.saturating_sub(1);
        let status = frame.raw.get(5).copied().unwrap_or(b'E');
        let done = self.syncs_done;
        let prepared = self.server.as_mut().map(|s| &mut s.conn.prepared);
        let mut forgotten = Vec::new();
        for q in [&mut self.parse_q, &mut self.close_q] {
            while q.front().is_some_and(|(at, _)| *at <= done) {
                if let Some((_, Expect::DropParse(name) | Expect::Pass(Some(name)))) = q.pop_front()
                {
                    forgotten.push(name);
                }
            }
        }
        if let Some(prepared) = prepared {
            for name in forgotten {
                prepared.remove(&name);
            }
        }
        self.syncs_done += 1;
        if let Some(server) = &mut self.server {
            server.conn.idle = status == b'I';
        }
        if status == b'I' {
            DatabaseStats::bump(&self.shared.stats.transactions);
        }
        if let Some((sent, sql)) = self.timings.pop_front() {
            let took = sent.elapsed();
            if let Some(slow) = self.shared.config.slow
                && took >= slow
            {
                DatabaseStats::bump(&self.shared.stats.slow_statements);
                DatabaseLine::SlowStatement {
                    duration: took,
                    sql: &String::from_utf8_lossy(&sql),
                }
                .emit(&self.app.emitter);
            }
        }
    }

    /// In transaction mode, gives the server connection back when nothing is in flight.
    fn maybe_release(&mut self) {
        if self.shared.config.mode != PoolMode::Transaction || self.pending > 0 || self.dirty {
            return;
        }
        if let Some(server) = self.server.take() {
            if !server.conn.idle {
                self.server = Some(server);
                return;
            }
            self.set_backend(None);
            self.parse_q.clear();
            self.close_q.clear();
            if server.conn.prepared.len() > self.shared.config.max_prepared.saturating_mul(4) {
                // Too many statements on one connection: close it rather than keep them all.
                drop(server);
            } else {
                server.release();
            }
        }
    }

    /// The client is gone: an idle connection goes back (reset in session mode); one in the
    /// middle of anything is closed, never handed to another client.
    async fn finish(mut self) {
        self.set_backend(None);
        if let Some(mut server) = self.server.take() {
            let clean = server.conn.idle && self.pending == 0 && !self.dirty;
            if !clean {
                DatabaseStats::bump(&self.shared.stats.server_abandoned);
                drop(server);
            } else if self.shared.config.mode == PoolMode::Session {
                if server.conn.exec("DISCARD ALL").await.is_ok() {
                    server.conn.prepared.clear();
                    server.release();
                }
            } else {
                server.release();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.app
            .pool
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

enum Side {
    Client(std::io::Result<bool>),
    Server(std::io::Result<bool>),
    /// The client sat in a transaction past the idle-in-transaction timeout.
    IdleInTransaction,
}

fn pop(q: &mut VecDeque<(u64, Expect)>) -> Expect {
    q.pop_front().map_or(Expect::Pass(None), |(_, e)| e)
}

/// The statement text of a `Query` body.
fn sql_of(body: &Bytes) -> Bytes {
    let end = memchr::memchr(0, body).unwrap_or(body.len());
    body.slice(..end)
}
