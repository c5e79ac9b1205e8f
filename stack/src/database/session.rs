//! One client connection, from its first byte to its last: TLS if asked, the startup packet,
//! authentication, then the relay between the client and a pooled server connection — held
//! for the whole session in session mode, for a transaction in transaction mode (taken at the
//! first message after an idle `ReadyForQuery`, given back at the next one that says `I` with
//! nothing else in flight).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::auth::{AuthMethod, Login, ScramError, random};
use super::lines::DatabaseLine;
use super::relay::Relay;
use super::stats::DatabaseStats;
use super::wire::{self, Frame, ReadError, Startup, WireError};
use super::{AppDatabase, Shared};

/// Parameters a client sets at startup that the adapter keeps on whichever server connection
/// it lands on (PostgreSQL reports each of them back, so the adapter sees them change).
pub const TRACKED: [&str; 6] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "standard_conforming_strings",
];

/// Why a client's session ended early; each becomes the client's `ErrorResponse`.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client's bytes were not the protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The socket failed or closed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The login failed; the code and message were sent.
    #[error("login refused: {0}")]
    Refused(&'static str),
}

impl From<ReadError> for SessionError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Wire(w) => SessionError::Wire(w),
            ReadError::Io(i) => SessionError::Io(i),
        }
    }
}

/// Serves one accepted connection.
pub async fn serve(shared: Arc<Shared>, mut tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let login_timeout = shared.config.login_timeout;
    let first = tokio::time::timeout(login_timeout, wire::read_startup(&mut tcp)).await;
    let first = match first {
        Err(_) => {
            DatabaseStats::bump(&shared.stats.login_timeouts);
            return;
        }
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return refuse_malformed(&shared, &mut tcp, e).await,
    };
    match first {
        Startup::Ssl => {
            let Some(tls) = shared.tls.clone().map(tokio_rustls::TlsAcceptor::from) else {
                if tcp.write_all(b"N").await.is_ok() {
                    plain(shared, tcp, peer).await;
                }
                return;
            };
            if tcp.write_all(b"S").await.is_err() {
                return;
            }
            match tokio::time::timeout(login_timeout, tls.accept(tcp)).await {
                Ok(Ok(stream)) => client(shared, stream, None, peer).await,
                _ => DatabaseStats::bump(&shared.stats.tls_failures),
            }
        }
        Startup::GssEnc => {
            if tcp.write_all(b"N").await.is_ok() {
                plain(shared, tcp, peer).await;
            }
        }
        other => client(shared, tcp, Some(other), peer).await,
    }
}

/// A client that asked for TLS or GSSAPI, was told no, and goes on in the clear.
async fn plain(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    client(shared, tcp, None, peer).await;
}

async fn refuse_malformed<S: AsyncWrite + Unpin>(shared: &Shared, s: &mut S, e: ReadError) {
    if let ReadError::Wire(w) = e {
        count_wire(&shared.stats, &w);
        let _ = s
            .write_all(&wire::error_response(
                "FATAL",
                "08P01",
                &format!("invalid startup packet: {w}"),
            ))
            .await;
    }
}

fn count_wire(stats: &DatabaseStats, e: &WireError) {
    match e {
        WireError::TooLong { .. } => DatabaseStats::bump(&stats.oversized),
        _ => DatabaseStats::bump(&stats.malformed),
    }
}

/// The session after any TLS: startup (unless already read), login, relay.
async fn client<S>(shared: Arc<Shared>, mut stream: S, first: Option<Startup>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let login_timeout = shared.config.login_timeout;
    let logged_in = tokio::time::timeout(login_timeout, async {
        let startup = match first {
            Some(s) => s,
            None => match wire::read_startup(&mut stream).await {
                Ok(Some(s)) => s,
                Ok(None) => return None,
                Err(e) => {
                    refuse_malformed(&shared, &mut stream, e).await;
                    return None;
                }
            },
        };
        match startup {
            Startup::Cancel { pid, secret } => {
                shared.cancel(pid, secret).await;
                None
            }
            Startup::Params(minor, params) => {
                match login(&shared, &mut stream, minor, params, peer).await {
                    Ok(v) => Some(v),
                    Err(SessionError::Wire(w)) => {
                        refuse_malformed(&shared, &mut stream, ReadError::Wire(w)).await;
                        None
                    }
                    Err(_) => None,
                }
            }
            Startup::Ssl | Startup::GssEnc => {
                count_wire(&shared.stats, &WireError::MalformedStartup);
                None
            }
        }
    })
    .await;
    let (app, params) = match logged_in {
        Ok(Some(v)) => v,
        Ok(None) => return,
        Err(_) => {
            DatabaseStats::bump(&shared.stats.login_timeouts);
            let _ = stream
                .write_all(&wire::error_response(
                    "FATAL",
                    "08006",
                    "the login did not finish within the login timeout",
                ))
                .await;
            return;
        }
    };
    let (pid, secret, backend) = shared.new_cancel_key();
    let mut relay = Relay::new(shared.clone(), app, params, backend);
    let greeting = match relay.greeting(pid, secret).await {
        Ok(g) => g,
        Err(fatal) => {
            let _ = stream.write_all(&fatal).await;
            shared.forget_cancel_key(pid);
            return;
        }
    };
    if stream.write_all(&greeting).await.is_ok() {
        relay.run(&mut stream).await;
    }
    shared.forget_cancel_key(pid);
}

/// Checks the user, database and password; writes the error and counts it if they fail.
async fn login<S>(
    shared: &Shared,
    stream: &mut S,
    minor: u16,
    params: Vec<(String, String)>,
    peer: SocketAddr,
) -> Result<(Arc<AppDatabase>, BTreeMap<String, String>), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A newer 3.x client, or one asking for protocol options, is told what the adapter
    // speaks (3.0, no options), as PostgreSQL tells it.
    let options: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if minor > 0 || !options.is_empty() {
        stream
            .write_all(&wire::negotiate_protocol(&options))
            .await?;
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let user = get("user").unwrap_or_default();
    let database = get("database").unwrap_or_else(|| user.clone());
    let app = shared.app_for(&user);
    if let Some(app) = &app {
        DatabaseLine::ConnectionReceived {
            host: peer.ip().to_string(),
            port: peer.port(),
        }
        .emit(&app.emitter);
    }
    let login = app.as_ref().map_or(&shared.nobody, |a| &a.login);
    let passed = authenticate(shared.config.auth, login, stream, shared.config.max_message).await?;
    let refusal = match &app {
        _ if !passed => Some((
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        )),
        None => Some((
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        )),
        Some(a) if a.database != database => {
            Some(("3D000", format!("database \"{database}\" does not exist")))
        }
        Some(_) => None,
    };
    if let Some((code, message)) = refusal {
        DatabaseStats::bump(&shared.stats.auth_failures);
        if let Some(app) = &app {
            DatabaseLine::Error {
                code,
                severity: "FATAL",
                message: &message,
            }
            .emit(&app.emitter);
        }
        stream
            .write_all(&wire::error_response("FATAL", code, &message))
            .await?;
        return Err(SessionError::Refused(code));
    }
    let Some(app) = app else {
        return Err(SessionError::Refused("28P01"));
    };
    DatabaseLine::ConnectionAuthorized {
        user: &user,
        database: &database,
    }
    .emit(&app.emitter);
    let tracked = params
        .into_iter()
        .filter_map(|(k, v)| {
            TRACKED
                .iter()
                .find(|t| t.eq_ignore_ascii_case(&k))
                .map(|t| ((*t).to_owned(), v))
        })
        .collect();
    Ok((app, tracked))
}

/// Runs the exchange for `method`; whether the client proved the password.
async fn authenticate<S>(
    method: AuthMethod,
    login: &Login,
    stream: &mut S,
    max: usize,
) -> Result<bool, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    let max = max.min(64 * 1024);
    let next = async |stream: &mut S, buf: &mut BytesMut| -> Result<Frame, SessionError> {
        match wire::read_frame(stream, buf, max).await? {
            Some(f) if f.tag == b'p' => Ok(f),
            Some(_) => Err(WireError::MalformedStartup.into()),
            None => Err(SessionError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        }
    };
    match method {
        AuthMethod::Md5 => {
            let salt = random::<4>();
            stream.write_all(&wire::auth(5, &salt)).await?;
            let f = next(stream, &mut buf).await?;
            let body = f.body();
            let sent = body.strip_suffix(b"\0").unwrap_or(&body);
            Ok(login.check_md5(salt, sent))
        }
        AuthMethod::ScramSha256 => {
            stream
                .write_all(&wire::auth(10, b"SCRAM-SHA-256\0\0"))
                .await?;
            let f = next(stream, &mut buf).await?;
            let mut body = f.body();
            let mechanism = wire::cstr_bytes(&mut body).ok_or(WireError::MalformedStartup)?;
            if &mechanism[..] != b"SCRAM-SHA-256" || body.len() < 4 {
                return Err(WireError::MalformedStartup.into());
            }
            let len = body.get_i32();
            if len < 0 || len as usize != body.len() {
                return Err(WireError::MalformedStartup.into());
            }
            let mut scram = login.scram();
            let first = match scram.first(&body) {
                Ok(first) => first,
                Err(ScramError::BadProof) => return Ok(false),
                Err(_) => return Err(WireError::MalformedStartup.into()),
            };
            stream.write_all(&wire::auth(11, first.as_bytes())).await?;
            let f = next(stream, &mut buf).await?;
            match scram.finish(&f.body()) {
                Ok(last) => {
                    stream.write_all(&wire::auth(12, last.as_bytes())).await?;
                    Ok(true)
                }
                Err(ScramError::BadProof) => Ok(false),
                Err(_) => Err(WireError::MalformedStartup.into()),
            }
        }
    }
}
