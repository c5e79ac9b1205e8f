//! `/ws`: the WebSocket handshake done by hand (it is one response head), then an echo of
//! every text and binary message until the client closes.

use std::io;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::events::{self, WebSocketClosed};
use crate::http::{Conn, Framing, Head, Request, Then, Version};
use crate::routes::Outcome;

/// Answers an upgrade to WebSocket with `101 Switching Protocols`; anything else gets a 426
/// (no upgrade asked for) or a 400 (a broken handshake).
pub(crate) async fn upgrade(conn: &mut Conn, request: &Request) -> io::Result<Outcome> {
    if !request.has_token("upgrade", "websocket") {
        let head = Head::new(426)
            .header("Upgrade", "websocket")
            .header("Content-Type", "text/plain");
        return Ok(Outcome::sent(
            426,
            conn.respond(request, &head, b"expected a WebSocket upgrade")
                .await?,
        ));
    }
    let key = request
        .header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .filter(|key| !key.is_empty());
    let version_13 = request
        .header("sec-websocket-version")
        .is_some_and(|v| v.trim_ascii() == b"13");
    let handshake = request.method == "GET"
        && request.version == Version::Http11
        && request.has_token("connection", "upgrade")
        && version_13;
    let Some(key) = key.filter(|_| handshake) else {
        let head = Head::new(400)
            .header("Content-Type", "text/plain")
            .header("Sec-WebSocket-Version", "13");
        return Ok(Outcome::sent(
            400,
            conn.respond(request, &head, b"bad WebSocket handshake")
                .await?,
        ));
    };
    let head = Head::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", derive_accept_key(key));
    conn.write_head(request, &head, Framing::None).await?;
    Ok(Outcome::sent(101, Then::WebSocket))
}

/// Echoes messages on an upgraded connection until it closes, then logs the session. Bytes
/// the client sent right after its handshake, already read into the connection's buffer, are
/// the start of the WebSocket stream, not lost.
pub(crate) async fn echo(conn: Conn) {
    let started = Instant::now();
    let (stream, read_ahead) = conn.into_parts();
    let mut ws = WebSocketStream::from_partially_read(stream, read_ahead, Role::Server, None).await;
    let mut messages = 0;
    let ended = echo_messages(&mut ws, &mut messages).await;
    let error = match ended {
        Ok(()) | Err(WsError::ConnectionClosed) => None,
        Err(error) => Some(error.to_string()),
    };
    let _ = events::emit(&WebSocketClosed {
        messages,
        duration: started.elapsed(),
        error: error.as_deref(),
    });
}

/// Sends each text and binary message back; pings and the closing handshake are answered by
/// tungstenite as it reads.
async fn echo_messages(
    ws: &mut WebSocketStream<TcpStream>,
    messages: &mut u64,
) -> Result<(), WsError> {
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            *messages += 1;
            ws.send(message).await?;
        }
    }
    Ok(())
}
