//! Connections to dynos for the keep-alive pool: a TCP connect with its own timeout (H19 past
//! it, H21 when refused), and the time it took carried with the connection, so the router line's
//! `connect=` is that time for a new connection and 0 for a pooled one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// When a connection was made and how long connecting took.
#[derive(Clone, Copy, Debug)]
pub struct ConnectedAt {
    /// When the connect finished.
    pub at: Instant,
    /// How long it took.
    pub took: Duration,
}

impl ConnectedAt {
    /// The `connect=` of a request that started at `started`: the connect time if the
    /// connection was made for it, else 0 (a pooled connection).
    pub fn for_request(self, started: Instant) -> Duration {
        if self.at >= started {
            self.took
        } else {
            Duration::ZERO
        }
    }
}

/// Makes TCP connections to `http://host:port` URIs (dynos listen on loopback).
#[derive(Clone, Debug)]
pub struct Connector {
    /// How long a connect may take (Heroku: 5 s).
    pub timeout: Duration,
}

/// A connection to a dyno.
#[derive(Debug)]
pub struct DynoStream {
    io: TokioIo<TcpStream>,
    connected: ConnectedAt,
}

impl Connection for DynoStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.connected)
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = DynoStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<DynoStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = self.timeout;
        Box::pin(async move {
            let host = uri.host().unwrap_or("127.0.0.1").to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let start = Instant::now();
            let stream = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            let _ = stream.set_nodelay(true);
            Ok(DynoStream {
                io: TokioIo::new(stream),
                connected: ConnectedAt {
                    at: Instant::now(),
                    took: start.elapsed(),
                },
            })
        })
    }
}

impl hyper::rt::Read for DynoStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for DynoStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
