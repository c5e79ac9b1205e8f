//! One connection to the real PostgreSQL: opened with the credentials of `--database-url`
//! (trust, cleartext, MD5 or SCRAM-SHA-256, whichever the server asks for), with what the
//! server told at startup (parameters, the backend's cancel key), the prepared statements it
//! holds for the adapter, and a small simple-query runner for the adapter's own statements.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::wire::{self, Frame, ReadError};

/// The largest message the adapter accepts from the server (a row of a few large values).
pub const MAX_SERVER_MESSAGE: usize = 1 << 30;

/// Where and as whom the adapter connects: parsed from `--database-url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTarget {
    /// Host and port (resolved at each connect).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The server user.
    pub user: String,
    /// The server password, if any.
    pub password: Option<String>,
    /// The database.
    pub database: String,
}

impl ServerTarget {
    /// Parses `postgres://user:password@host:port/database` (`postgresql://` too).
    pub fn parse(url: &str) -> Result<ServerTarget, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("the URL must start with postgres://")?;
        let rest = rest.split('?').next().unwrap_or_default();
        let (auth, hostpath) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, database) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port {p:?}"))?),
            None => (hostport, 5432),
        };
        let (user, password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                None => (percent_decode(a), None),
            },
            None => (
                std::env::var("USER").unwrap_or_else(|_| "postgres".into()),
                None,
            ),
        };
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        let database = if database.is_empty() {
            user.clone()
        } else {
            percent_decode(database)
        };
        Ok(ServerTarget {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            user,
            password,
            database,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a server connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Connecting, reading or writing failed.
    #[error("the database server is unreachable: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent what is not a message.
    #[error("the database server sent a malformed message: {0}")]
    Wire(#[from] wire::WireError),
    /// The server refused (its own error's code and message).
    #[error("the database server refused: {1} ({0})")]
    Refused(String, String),
    /// The server asked for a method the adapter cannot do, or nothing it could use.
    #[error("the database server asked for an unsupported authentication ({0})")]
    Auth(String),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to the database server timed out")]
    Timeout,
}

impl From<ReadError> for ServerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Wire(w) => ServerError::Wire(w),
            ReadError::Io(i) => ServerError::Io(i),
        }
    }
}

/// An open, authenticated server connection.
#[derive(Debug)]
pub struct ServerConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet framed.
    pub buf: BytesMut,
    /// The server's address (for cancel requests).
    pub addr: SocketAddr,
    /// The backend's process id and secret.
    pub key: (u32, u32),
    /// What the server reported with `ParameterStatus`, kept current as more arrive.
    pub params: BTreeMap<String, String>,
    /// The adapter's names of the prepared statements this connection holds.
    pub prepared: HashSet<String>,
    /// When it was opened.
    pub opened: Instant,
    /// When it was last given back to its pool.
    pub idle_since: Instant,
    /// Whether the last `ReadyForQuery` said idle.
    pub idle: bool,
}

impl ServerConn {
    /// Connects and logs in within `timeout`.
    pub async fn connect(target: &ServerTarget, timeout: Duration) -> Result<Self, ServerError> {
        tokio::time::timeout(timeout, Self::connect_now(target))
            .await
            .map_err(|_| ServerError::Timeout)?
    }

    async fn connect_now(target: &ServerTarget) -> Result<Self, ServerError> {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        let addr = stream.peer_addr()?;
        stream
            .write_all(&wire::startup_message(&[
                ("user", &target.user),
                ("database", &target.database),
                ("application_name", "paas-database"),
            ]))
            .await?;
        let mut conn = ServerConn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            addr,
            key: (0, 0),
            params: BTreeMap::new(),
            prepared: HashSet::new(),
            opened: Instant::now(),
            idle_since: Instant::now(),
            idle: true,
        };
        let mut scram: Option<ScramSha256> = None;
        let password = target.password.clone().unwrap_or_default();
        loop {
            let f = conn.read().await?;
            let mut body = f.body();
            match f.tag {
                b'R' if body.len() >= 4 => match body.get_u32() {
                    0 => {}
                    3 => {
                        let mut msg = password.as_bytes().to_vec();
                        msg.push(0);
                        conn.send(&Frame::new(b'p', &msg).raw).await?;
                    }
                    5 if body.len() >= 4 => {
                        let salt = [body[0], body[1], body[2], body[3]];
                        let hash = postgres_protocol::authentication::md5_hash(
                            target.user.as_bytes(),
                            password.as_bytes(),
                            salt,
                        );
                        let mut msg = hash.into_bytes();
                        msg.push(0);
                        conn.send(&Frame::new(b'p', &msg).raw).await?;
                    }
                    10 => {
                        if !body.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                            return Err(ServerError::Auth("SASL without SCRAM-SHA-256".into()));
                        }
                        let s =
                            ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        let mut msg = b"SCRAM-SHA-256\0".to_vec();
                        msg.extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                        msg.extend_from_slice(s.message());
                        conn.send(&Frame::new(b'p', &msg).raw).await?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram.as_mut().ok_or(ServerError::Auth("SASL".into()))?;
                        s.update(&body)
                            .map_err(|e| ServerError::Auth(format!("SCRAM: {e}")))?;
                        conn.send(&Frame::new(b'p', s.message()).raw).await?;
                    }
                    12 => {
                        let mut s = scram.take().ok_or(ServerError::Auth("SASL".into()))?;
                        s.finish(&body)
                            .map_err(|e| ServerError::Auth(format!("SCRAM: {e}")))?;
                    }
                    other => return Err(ServerError::Auth(format!("method {other}"))),
                },
                b'S' => conn.note_parameter(&body),
                b'K' if body.len() >= 8 => conn.key = (body.get_u32(), body.get_u32()),
                b'E' => {
                    let (_, code, message) = wire::error_fields(&body);
                    return Err(ServerError::Refused(code, message));
                }
                b'Z' => return Ok(conn),
                _ => {}
            }
        }
    }

    /// Records a `ParameterStatus` body.
    pub fn note_parameter(&mut self, body: &[u8]) {
        let mut b = body;
        if let (Some(k), Some(v)) = (wire::cstr(&mut b), wire::cstr(&mut b)) {
            self.params.insert(k, v);
        }
    }

    /// Reads one message.
    pub async fn read(&mut self) -> Result<Frame, ServerError> {
        match wire::read_frame(&mut self.stream, &mut self.buf, MAX_SERVER_MESSAGE).await? {
            Some(f) => Ok(f),
            None => Err(ServerError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        }
    }

    /// Writes bytes whole.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Writes bytes whole while reading what the server sends meanwhile into `buf` (a long
    /// pipeline's answers), so that neither side waits on the other's full socket buffer.
    pub async fn send_reading(&mut self, mut bytes: &[u8]) -> Result<(), ServerError> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut rd, mut wr) = self.stream.split();
        while !bytes.is_empty() {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            tokio::select! {
                n = wr.write(bytes) => match n? {
                    0 => return Err(ServerError::Io(std::io::ErrorKind::WriteZero.into())),
                    n => bytes = &bytes[n..],
                },
                n = rd.read_buf(&mut self.buf) => {
                    if n? == 0 {
                        return Err(ServerError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs simple-query `sql` and returns the text of each row's columns; the server's error
    /// as `Refused`. The connection is idle again after it.
    pub async fn exec(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ServerError> {
        self.send(&wire::query(sql)).await?;
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            let f = self.read().await?;
            let mut body = f.body();
            match f.tag {
                b'D' if body.len() >= 2 => {
                    let n = body.get_u16();
                    let mut row = Vec::with_capacity(n.into());
                    for _ in 0..n {
                        if body.len() < 4 {
                            return Err(wire::WireError::Truncated.into());
                        }
                        let len = body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else if body.len() < len as usize {
                            return Err(wire::WireError::Truncated.into());
                        } else {
                            let v = body.split_to(len as usize);
                            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
                        }
                    }
                    rows.push(row);
                }
                b'E' => {
                    let (_, code, message) = wire::error_fields(&body);
                    failed = Some(ServerError::Refused(code, message));
                }
                b'S' => self.note_parameter(&body),
                b'Z' => {
                    self.idle = body.first() == Some(&b'I');
                    return match failed {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }

    /// Whether the connection looks usable without a round trip: nothing unread waiting (a
    /// server that shut down sends a FATAL and closes) and idle.
    pub fn looks_alive(&mut self) -> bool {
        if !self.idle || !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

/// Sends a cancel request for the backend `key` at `addr` (PostgreSQL answers by closing).
pub async fn cancel(addr: SocketAddr, key: (u32, u32)) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&wire::cancel_request(key.0, key.1)).await?;
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut s, &mut sink),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = ServerTarget::parse("postgres://bob:p%40ss@db.local:6000/shop?sslmode=disable")
            .unwrap();
        assert_eq!(
            t,
            ServerTarget {
                host: "db.local".into(),
                port: 6000,
                user: "bob".into(),
                password: Some("p@ss".into()),
                database: "shop".into(),
            }
        );
        let t = ServerTarget::parse("postgresql://root@127.0.0.1/test").unwrap();
        assert_eq!(
            (t.port, t.password, t.database.as_str()),
            (5432, None, "test")
        );
        assert!(ServerTarget::parse("mysql://x").is_err());
        assert!(ServerTarget::parse("postgres://h:notaport/db").is_err());
    }

    #[tokio::test]
    async fn connects_and_runs_a_query_on_the_machines_postgres() {
        let target = ServerTarget::parse("postgres://root@127.0.0.1:5432/test").unwrap();
        let Ok(mut conn) = ServerConn::connect(&target, Duration::from_secs(5)).await else {
            eprintln!("no PostgreSQL on 127.0.0.1:5432; skipped");
            return;
        };
        assert!(conn.params.contains_key("server_version"));
        let rows = conn.exec("SELECT 1, NULL::text").await.unwrap();
        assert_eq!(rows, vec![vec![Some("1".into()), None]]);
        assert!(matches!(
            conn.exec("SELECT nope").await,
            Err(ServerError::Refused(code, _)) if code == "42703"
        ));
        assert!(conn.looks_alive());
    }
}
