//! A connection to a syslog receiver: TCP, TLS (verified), a connected UDP socket, or a RELP
//! session.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::delivery::Ctx;
use crate::dial::{ConnectError, TlsStream};
use crate::feed::Batch;
use crate::url::Scheme;

use super::relp;

#[derive(Debug)]
pub enum Connection {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Udp(UdpSocket),
    Relp(relp::Session),
}

impl Connection {
    /// Connects to the drain's receiver through the dialer (the address policy, checked on
    /// what the host resolves to now).
    pub async fn open(ctx: &Ctx) -> Result<Connection, ConnectError> {
        let (url, timeout) = (&ctx.url, ctx.config.connect_timeout);
        match url.scheme {
            Scheme::SyslogUdp => Ok(Connection::Udp(ctx.dialer.udp(url, timeout).await?)),
            Scheme::Relp => {
                let tcp = ctx.dialer.tcp(url, timeout).await?;
                let _ = tcp.set_nodelay(true);
                let session = relp::Session::open(tcp, ctx.config.send_timeout)
                    .await
                    .map_err(ConnectError::Protocol)?;
                Ok(Connection::Relp(session))
            }
            Scheme::SyslogTls => {
                let tls = ctx.dialer.tls(url, ctx.tls.clone(), timeout).await?;
                let _ = tls.get_ref().0.set_nodelay(true);
                Ok(Connection::Tls(Box::new(tls)))
            }
            _ => {
                let tcp = ctx.dialer.tcp(url, timeout).await?;
                let _ = tcp.set_nodelay(true);
                Ok(Connection::Tcp(tcp))
            }
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
                Connection::Relp(s) => s.send(batch).await.map_err(std::io::Error::other),
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
            Connection::Relp(s) => s.close().await,
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
