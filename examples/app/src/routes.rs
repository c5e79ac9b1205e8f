//! The endpoints: the well-behaved ones (`/`, `/healthz`, `/echo`) and the ones that misbehave
//! on purpose, each to provoke one of the router's H-codes (see the crate's README).

use std::io;
use std::time::Duration;

use crate::events::{self, Crashing};
use crate::http::{Conn, Framing, Head, Request, Then, Version, chunk, last_chunk};
use crate::server::App;
use crate::websocket;

/// `/big` writes its body in blocks of this size.
const BIG_BLOCK: usize = 64 * 1024;
const TEXT: &str = "text/plain; charset=utf-8";

/// What a route did, for the request's log line and the connection.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `None` when no response was written, on purpose.
    pub(crate) status: Option<u16>,
    pub(crate) then: Then,
    /// The route's own `sample#app.<name>` metric.
    pub(crate) sample: Option<(&'static str, u64)>,
}

impl Outcome {
    pub(crate) fn sent(status: u16, then: Then) -> Self {
        Self {
            status: Some(status),
            then,
            sample: None,
        }
    }

    /// No response: the connection closes.
    fn unanswered() -> Self {
        Self {
            status: None,
            then: Then::Close,
            sample: None,
        }
    }
}

/// The endpoints, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Root,
    Healthz,
    Echo,
    Slow,
    Drip,
    StallBody,
    Big,
    Crash,
    Close,
    Garbage,
    HugeHeader,
    Unlisten,
    StallAccept,
    WebSocket,
    HeadersMany,
    Cached,
    NotFound,
}

impl Route {
    fn of(path: &str) -> Self {
        match path {
            "/" => Self::Root,
            "/healthz" => Self::Healthz,
            "/echo" => Self::Echo,
            "/slow" => Self::Slow,
            "/drip" => Self::Drip,
            "/stall-body" => Self::StallBody,
            "/big" => Self::Big,
            "/crash" => Self::Crash,
            "/close" => Self::Close,
            "/garbage" => Self::Garbage,
            "/huge-header" => Self::HugeHeader,
            "/unlisten" => Self::Unlisten,
            "/stall-accept" => Self::StallAccept,
            "/ws" => Self::WebSocket,
            "/headers-many" => Self::HeadersMany,
            "/cached" => Self::Cached,
            _ => Self::NotFound,
        }
    }

    /// Whether the route takes any method; the others take `GET` and `HEAD`.
    fn any_method(self) -> bool {
        matches!(self, Self::Echo | Self::NotFound)
    }
}

/// Serves one request on `conn`.
pub(crate) async fn route(conn: &mut Conn, request: &Request, app: &App) -> io::Result<Outcome> {
    let route = Route::of(request.path());
    if !route.any_method() && !matches!(request.method.as_str(), "GET" | "HEAD") {
        let head = Head::new(405)
            .header("Allow", "GET, HEAD")
            .header("Content-Type", TEXT);
        return Ok(Outcome::sent(
            405,
            conn.respond(request, &head, b"method not allowed").await?,
        ));
    }
    match route {
        Route::Root => root(conn, request, app).await,
        Route::Healthz => text(conn, request, 200, "ok").await,
        Route::Echo => echo(conn, request).await,
        Route::Slow => slow(conn, request).await,
        Route::Drip => drip(conn, request).await,
        Route::StallBody => stall_body(conn, request).await,
        Route::Big => big(conn, request).await,
        Route::Crash => crash(),
        Route::Close => Ok(Outcome::unanswered()),
        Route::Garbage => {
            conn.write_all(b"this is not http\r\n\r\n").await?;
            Ok(Outcome::unanswered())
        }
        Route::HugeHeader => {
            let head = Head::new(200)
                .header("x-huge", "a".repeat(600 * 1024))
                .header("Content-Type", TEXT);
            Ok(Outcome::sent(
                200,
                conn.respond(request, &head, b"huge header").await?,
            ))
        }
        Route::Unlisten => {
            let changed = app.listener.unlisten().await;
            changed_listener(conn, request, changed, "not listening any more").await
        }
        Route::StallAccept => {
            let changed = app.listener.stall_accept().await;
            changed_listener(conn, request, changed, "not accepting any more").await
        }
        Route::WebSocket => websocket::upgrade(conn, request).await,
        Route::HeadersMany => headers_many(conn, request).await,
        // What a cache may keep for an hour (the HTTP cache's benchmark loads it).
        Route::Cached => {
            let head = Head::new(200)
                .header("Content-Type", TEXT)
                .header("Cache-Control", "public, max-age=3600");
            Ok(Outcome::sent(
                200,
                conn.respond(
                    request,
                    &head,
                    format!("cacheable, from {}\n", app.dyno).as_bytes(),
                )
                .await?,
            ))
        }
        Route::NotFound => text(conn, request, 404, "not found").await,
    }
}

/// A whole plain-text response.
async fn text(
    conn: &mut Conn,
    request: &Request,
    status: u16,
    body: impl AsRef<[u8]>,
) -> io::Result<Outcome> {
    let head = Head::new(status).header("Content-Type", TEXT);
    Ok(Outcome::sent(
        status,
        conn.respond(request, &head, body.as_ref()).await?,
    ))
}

/// A number query parameter: `default` when absent, at most `max`; a message for a 400 when
/// it is not a whole number.
fn number(request: &Request, name: &str, default: u64, max: u64) -> Result<u64, String> {
    match request.param(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u64>()
            .map(|n| n.min(max))
            .map_err(|_| format!("{name} must be a whole number")),
    }
}

/// `/`: `$GREETING from $DYNO`.
async fn root(conn: &mut Conn, request: &Request, app: &App) -> io::Result<Outcome> {
    let body = format!("{} from {}\n", app.greeting, app.dyno);
    let mut outcome = text(conn, request, 200, body).await?;
    outcome.sample = Some(("greeting_length", app.greeting.len() as u64));
    Ok(outcome)
}

/// `/echo`: the request body back, or with `?headers` what arrived as JSON (what a proxy in
/// front forwarded: `X-Request-Id`, `X-Forwarded-For`, `Via`...).
async fn echo(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    if request.param("headers").is_none() {
        let content_type = request
            .header("content-type")
            .and_then(|value| std::str::from_utf8(value).ok())
            .unwrap_or("application/octet-stream");
        let head = Head::new(200).header("Content-Type", content_type.to_owned());
        return Ok(Outcome::sent(
            200,
            conn.respond(request, &head, &request.body).await?,
        ));
    }
    let mut headers = serde_json::Map::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value);
        match headers.get_mut(name) {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.clone(), value.into_owned().into());
            }
        }
    }
    let body = serde_json::json!({
        "headers": headers,
        "method": request.method,
        "path": request.path(),
        "query": request.query(),
    });
    let head = Head::new(200).header("Content-Type", "application/json");
    Ok(Outcome::sent(
        200,
        conn.respond(request, &head, body.to_string().as_bytes())
            .await?,
    ))
}

/// `/slow?ms=N`: answers after N ms (default 2000): past the router's 30 s, H12.
async fn slow(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    let ms = match number(request, "ms", 2000, 600_000) {
        Ok(ms) => ms,
        Err(message) => return text(conn, request, 400, message).await,
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    text(conn, request, 200, format!("slept {ms} ms")).await
}

/// `/drip?chunks=N&ms=M`: N chunks `chunk i\n` (default 5), M ms apart (default 200): past the
/// router's 55 s idle window, H15.
async fn drip(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    let (chunks, ms) = match (
        number(request, "chunks", 5, 100_000),
        number(request, "ms", 200, 600_000),
    ) {
        (Ok(chunks), Ok(ms)) => (chunks, ms),
        (Err(message), _) | (_, Err(message)) => return text(conn, request, 400, message).await,
    };
    let head = Head::new(200).header("Content-Type", TEXT);
    let then = conn.write_head(request, &head, Framing::Chunked).await?;
    if request.is_head() {
        return Ok(Outcome::sent(200, then));
    }
    // HTTP/1.0 has no chunks: the body is the bare text, ended by the close.
    let chunked = request.version == Version::Http11;
    for i in 0..chunks {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let line = format!("chunk {i}\n");
        conn.write_all(&if chunked {
            chunk(line.as_bytes())
        } else {
            line.into_bytes()
        })
        .await?;
    }
    if chunked {
        conn.write_all(last_chunk()).await?;
    }
    Ok(Outcome::sent(200, then))
}

/// `/stall-body`: promises 100 bytes, sends 10, then nothing until the client gives up: H15.
async fn stall_body(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    let head = Head::new(200).header("Content-Type", TEXT);
    let then = conn
        .write_head(request, &head, Framing::Length(100))
        .await?;
    if request.is_head() {
        return Ok(Outcome::sent(200, then));
    }
    conn.write_all(b"0123456789").await?;
    conn.wait_for_close().await;
    Ok(Outcome::sent(200, Then::Close))
}

/// `/big?mb=N`: N MiB (default 64), generated block by block as it is written.
async fn big(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    let mb = match number(request, "mb", 64, 4096) {
        Ok(mb) => mb,
        Err(message) => return text(conn, request, 400, message).await,
    };
    let head = Head::new(200).header("Content-Type", "application/octet-stream");
    let then = conn
        .write_head(request, &head, Framing::Length(mb * 1024 * 1024))
        .await?;
    if !request.is_head() {
        let block: Vec<u8> = (0..BIG_BLOCK).map(|i| b'a' + (i % 26) as u8).collect();
        for _ in 0..mb * (1024 * 1024 / BIG_BLOCK as u64) {
            conn.write_all(&block).await?;
        }
    }
    Ok(Outcome::sent(200, then))
}

/// `/crash`: the process exits with status 1 without answering: H13, and the platform
/// restarts the dyno.
fn crash() -> ! {
    let _ = events::emit(&Crashing);
    std::process::exit(1)
}

/// `/unlisten` and `/stall-accept`, answered once the listener has changed, so the client
/// knows the change is in effect when it reads the response.
async fn changed_listener(
    conn: &mut Conn,
    request: &Request,
    changed: io::Result<()>,
    done: &str,
) -> io::Result<Outcome> {
    let (status, body) = match changed {
        Ok(()) => (200, done.to_owned()),
        Err(error) => (500, format!("changing the listener failed: {error}")),
    };
    let head = Head::new(status).header("Content-Type", TEXT).close();
    Ok(Outcome::sent(
        status,
        conn.respond(request, &head, body.as_bytes()).await?,
    ))
}

/// `/headers-many?n=N`: N headers `x-h-i: i` (default 10).
async fn headers_many(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    let n = match number(request, "n", 10, 10_000) {
        Ok(n) => n,
        Err(message) => return text(conn, request, 400, message).await,
    };
    let head = (0..n).fold(Head::new(200).header("Content-Type", TEXT), |head, i| {
        head.header(format!("x-h-{i}"), i.to_string())
    });
    Ok(Outcome::sent(
        200,
        conn.respond(request, &head, format!("{n} headers").as_bytes())
            .await?,
    ))
}
