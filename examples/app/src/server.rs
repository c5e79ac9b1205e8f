//! The web process: a listener, one task per connection, and each connection's requests
//! served in turn, each logged as one line.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::events::{self, Listening, RequestRejected, RequestServed};
use crate::http::{Conn, Then};
use crate::listener::{AcceptLoop, ListenerControl};
use crate::{routes, websocket};

/// What every connection shares: the config vars the routes read, and the accept loop's
/// control for `/unlisten` and `/stall-accept`.
#[derive(Debug)]
pub(crate) struct App {
    /// `$GREETING`, or `hello`.
    pub(crate) greeting: String,
    /// `$DYNO`, or `web.?`.
    pub(crate) dyno: String,
    pub(crate) listener: ListenerControl,
    /// Whether each request is logged (`LOG_REQUESTS=0` turns it off, for benchmarks of the
    /// proxy; failures are logged regardless).
    pub(crate) log_requests: bool,
}

/// Requests being served now, across connections.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Serves the web process on 127.0.0.1:`port` until killed, or until SIGTERM: then it stops
/// accepting, finishes the requests in flight (10 s at most, as the platform's exit timeout is
/// longer) and returns, as a Heroku app should.
pub async fn web(port: u16) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(1024)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = serve(listener) => return served,
        _ = term.recv() => {}
    }
    events::emit(&events::Stopping {
        in_flight: IN_FLIGHT.load(Ordering::Acquire),
    })?;
    // Quiet for a moment with nothing in flight: a request the router had already sent on a
    // kept-alive connection has arrived by then.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        if IN_FLIGHT.load(Ordering::Acquire) > 0 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Serves the web process on `listener` until killed: what [`web`] runs, for a listener bound
/// elsewhere (tests bind port 0). Prints `listening port=N` first. Returns only if that line
/// cannot be written; once `/unlisten` or `/stall-accept` has run it goes on without accepting.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let addr = listener.local_addr()?;
    events::emit(&Listening { port: addr.port() })?;
    let (accept_loop, control) = AcceptLoop::new(listener, addr);
    let app = Arc::new(App {
        greeting: std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned()),
        dyno: std::env::var("DYNO").unwrap_or_else(|_| "web.?".to_owned()),
        listener: control,
        log_requests: !matches!(
            std::env::var("LOG_REQUESTS").as_deref(),
            Ok("0" | "false" | "no")
        ),
    });
    accept_loop
        .run(|stream| {
            tokio::spawn(connection(stream, Arc::clone(&app)));
        })
        .await;
    Ok(())
}

/// Serves the requests of one connection in turn until either side closes it.
async fn connection(stream: TcpStream, app: Arc<App>) {
    // Heads and bodies go out in separate writes; Nagle would hold the second back.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let request = match conn.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(error) => {
                let _ = events::emit(&RequestRejected { error: &error });
                let _ = conn.reject(&error).await;
                break;
            }
        };
        let started = Instant::now();
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        let served = routes::route(&mut conn, &request, &app).await;
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        let mut line = RequestServed {
            method: &request.method,
            path: &request.target,
            status: None,
            duration: started.elapsed(),
            sample: None,
            error: None,
        };
        match &served {
            Ok(outcome) => (line.status, line.sample) = (outcome.status, outcome.sample),
            Err(error) => line.error = Some(error),
        }
        if app.log_requests || line.error.is_some() {
            let _ = events::emit(&line);
        }
        match served.map(|outcome| outcome.then) {
            Ok(Then::KeepAlive) => continue,
            Ok(Then::Close) | Err(_) => break,
            Ok(Then::WebSocket) => return websocket::echo(conn).await,
        }
    }
    conn.close().await;
}
