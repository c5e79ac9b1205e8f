//! A connection to a syslog receiver: TCP, TLS (verified), or a connected UDP socket.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::delivery::Ctx;
use crate::feed::Batch;
use crate::tls::is_certificate_error;
use crate::url::Scheme;

/// Why a connection could not be made.
#[derive(Debug)]
pub struct ConnectError {
    pub message: String,
    /// A certificate verification failure (L14).
    pub certificate: bool,
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

#[derive(Debug)]
pub enum Connection {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Udp(UdpSocket),
}

fn plain(message: String) -> ConnectError {
    ConnectError {
        message,
        certificate: false,
    }
}

impl Connection {
    pub async fn open(ctx: &Ctx) -> Result<Connection, ConnectError> {
        let url = &ctx.url;
        let authority = url.authority();
        let timeout = ctx.config.connect_timeout;
        if url.scheme == Scheme::SyslogUdp {
            let socket = UdpSocket::bind(if url.host.contains(':') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .await
            .map_err(|e| plain(format!("udp socket: {e}")))?;
            socket
                .connect(&authority)
                .await
                .map_err(|e| plain(format!("udp {authority}: {e}")))?;
            return Ok(Connection::Udp(socket));
        }
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(plain(format!("connect {authority}: {e}"))),
            Err(_) => {
                return Err(plain(format!(
                    "connect {authority}: timed out after {timeout:?}"
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        if url.scheme != Scheme::SyslogTls {
            return Ok(Connection::Tcp(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| plain(format!("TLS name {}: {e}", url.host)))?;
        let connector = tokio_rustls::TlsConnector::from(ctx.tls.clone());
        match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(Connection::Tls(Box::new(s))),
            Ok(Err(e)) => Err(ConnectError {
                certificate: is_certificate_error(&e),
                message: format!("TLS with {authority}: {e}"),
            }),
            Err(_) => Err(plain(format!(
                "TLS with {authority}: timed out after {timeout:?}"
            ))),
        }
    }

    /// Sends every frame (octet-counted on streams, one datagram each on UDP).
    pub async fn send(&mut self, batch: &Batch, timeout: Duration) -> Result<(), String> {
        let write = async {
            match self {
                Connection::Udp(s) => {
                    for span in &batch.spans {
                        s.send(&batch.framed[span.clone()]).await?;
                    }
                    Ok(())
                }
                Connection::Tcp(s) => write_stream(s, &batch.framed).await,
                Connection::Tls(s) => write_stream(s.as_mut(), &batch.framed).await,
            }
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("send: {e}")),
            Err(_) => Err(format!("send: timed out after {timeout:?}")),
        }
    }

    pub async fn close(self) {
        match self {
            Connection::Tcp(mut s) => {
                let _ = s.shutdown().await;
            }
            Connection::Tls(mut s) => {
                let _ = s.shutdown().await;
            }
            Connection::Udp(_) => {}
        }
    }
}

async fn write_stream<S: tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    framed: &[u8],
) -> std::io::Result<()> {
    s.write_all(framed).await?;
    s.flush().await
}
