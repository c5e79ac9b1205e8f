//! Connecting to a drain's receiver: its host resolved once per connect, every address judged
//! by the address policy, and the connection made to a vetted address itself (never resolved
//! again), so that a name that pointed outside when the drain was added and points inside
//! now (DNS rebinding) is refused at connect. TLS names the URL's host (SNI and the
//! certificate's name), whichever address was reached.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};

use crate::host::Host;
use crate::metrics::{DrainMetrics, Stage};
use crate::policy::{AddressPolicy, Refusal};
use crate::tls::is_certificate_error;
use crate::url::DrainUrl;

/// What a resolution comes to.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves host names (the system's resolver; tests give their own answers).
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// The addresses of `name`, with `port`.
    fn lookup<'a>(&'a self, name: &'a str, port: u16) -> Lookup<'a>;
}

/// The system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, name: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((name, port)).await?.collect()) })
    }
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    /// The name resolved to nothing.
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    /// Every address the host stands for is one the policy refuses.
    #[error("not connecting to {host}: {refusal}")]
    Refused { host: String, refusal: Refusal },
    /// The connection failed.
    #[error("connect {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    /// A UDP socket could not be made.
    #[error("udp socket: {0}")]
    Socket(io::Error),
    /// Resolving and connecting took longer than allowed.
    #[error("connect {authority}: timed out after {after:?}")]
    TimedOut { authority: String, after: Duration },
}

/// Why a connection (TCP, then TLS) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Resolving, the policy, or TCP.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The host is not a name TLS can check a certificate against.
    #[error("TLS name {name}: {reason}")]
    TlsName { name: String, reason: String },
    /// The handshake failed (a certificate that does not verify is Heroku's L14).
    #[error("TLS with {authority}: {source}")]
    Tls {
        authority: String,
        source: io::Error,
    },
    /// The handshake took longer than allowed.
    #[error("TLS with {authority}: timed out after {after:?}")]
    TlsTimedOut { authority: String, after: Duration },
    /// The session's opening failed (RELP's `open`).
    #[error("{0}")]
    Protocol(String),
}

impl ConnectError {
    /// A certificate verification failure (L14).
    pub fn is_certificate(&self) -> bool {
        matches!(self, ConnectError::Tls { source, .. } if is_certificate_error(source))
    }

    /// The policy's refusal, if that is why.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ConnectError::Dial(DialError::Refused { refusal, .. }) => Some(refusal),
            _ => None,
        }
    }
}

/// A TLS stream over TCP.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Makes drains' connections under the address policy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Dialer {
    policy: Arc<AddressPolicy>,
    resolver: Arc<dyn Resolver>,
    metrics: Arc<DrainMetrics>,
}

impl Dialer {
    /// A dialer judging by `policy`, resolving with `resolver`, counting refusals in `metrics`.
    pub fn new(
        policy: Arc<AddressPolicy>,
        resolver: Arc<dyn Resolver>,
        metrics: Arc<DrainMetrics>,
    ) -> Dialer {
        Dialer {
            policy,
            resolver,
            metrics,
        }
    }

    /// The addresses to try for `url`, in the resolver's order: its address, or what its name
    /// resolves to now, keeping those the policy allows. Refused if it allows none.
    pub async fn addresses(&self, url: &DrainUrl) -> Result<Vec<SocketAddr>, DialError> {
        let resolved = match url.target() {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, url.port)],
            Host::Name(name) => self
                .resolver
                .lookup(name, url.port)
                .await
                .map_err(|source| DialError::Resolve {
                    host: name.clone(),
                    source,
                })?,
        };
        let mut vetted: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
        let mut refused = None;
        for addr in resolved {
            match self.policy.check(addr.ip()) {
                Ok(()) if !vetted.contains(&addr) => vetted.push(addr),
                Ok(()) => {}
                Err(r) => refused = refused.or(Some(r)),
            }
        }
        match (vetted.is_empty(), refused) {
            (false, _) => Ok(vetted),
            (true, Some(refusal)) => {
                self.metrics
                    .destination_refused(Stage::Connect, &url.raw, &refusal);
                Err(DialError::Refused {
                    host: url.host.clone(),
                    refusal,
                })
            }
            (true, None) => Err(DialError::NoAddress {
                host: url.host.clone(),
            }),
        }
    }

    /// A TCP connection to the first vetted address that takes it, within `timeout` in all.
    pub async fn tcp(&self, url: &DrainUrl, timeout: Duration) -> Result<TcpStream, DialError> {
        let attempt = async {
            let mut last = None;
            for addr in self.addresses(url).await? {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(source) => last = Some(DialError::Connect { addr, source }),
                }
            }
            Err(last.unwrap_or_else(|| DialError::NoAddress {
                host: url.host.clone(),
            }))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DialError::TimedOut {
                authority: url.authority(),
                after: timeout,
            }),
        }
    }

    /// A UDP socket connected to the first vetted address.
    pub async fn udp(&self, url: &DrainUrl, timeout: Duration) -> Result<UdpSocket, DialError> {
        let addresses = tokio::time::timeout(timeout, self.addresses(url))
            .await
            .map_err(|_| DialError::TimedOut {
                authority: url.authority(),
                after: timeout,
            })??;
        let Some(&addr) = addresses.first() else {
            return Err(DialError::NoAddress {
                host: url.host.clone(),
            });
        };
        let local = match addr {
            SocketAddr::V4(_) => "0.0.0.0:0",
            SocketAddr::V6(_) => "[::]:0",
        };
        let socket = UdpSocket::bind(local).await.map_err(DialError::Socket)?;
        socket
            .connect(addr)
            .await
            .map_err(|source| DialError::Connect { addr, source })?;
        Ok(socket)
    }

    /// TCP, then TLS naming the URL's host, each within `timeout`.
    pub async fn tls(
        &self,
        url: &DrainUrl,
        config: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<TlsStream, ConnectError> {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
            ConnectError::TlsName {
                name: url.host.clone(),
                reason: e.to_string(),
            }
        })?;
        let tcp = self.tcp(url, timeout).await?;
        let authority = url.authority();
        let connector = tokio_rustls::TlsConnector::from(config);
        match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(ConnectError::Tls { authority, source }),
            Err(_) => Err(ConnectError::TlsTimedOut {
                authority,
                after: timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
