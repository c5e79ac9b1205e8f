//! syslog over TCP and over TLS: RFC 6587 frames (octet-counted or newline-ended, detected
//! per frame) on long-lived connections. A bad frame is counted and skipped, and the
//! connection carries on where the framing allows. A connection is closed, and counted by
//! why, when it stalls inside a frame (slowloris) past `frame_timeout`, has sent no frame with
//! a valid token within `auth_timeout` of its start (so idle strangers cannot hold every
//! slot), or is idle for `idle_timeout`. A listener holds at most `max_connections`, and one
//! peer address at most `max_connections_per_ip` of them.

mod peers;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::accept::AcceptFailures;
use crate::framing::FrameDecoder;
use crate::ingest::FrameSink;
use crate::ingest::listener_stats::ListenerStats;
use crate::notice::Notice;
use crate::router::{Reject, Router};
use crate::time::Timestamp;
use peers::{PeerLimit, PeerSlot};

/// Limits of a stream listener.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The largest frame accepted.
    pub max_frame: usize,
    /// Connections open at once; more are closed at once and counted as refused.
    pub max_connections: usize,
    /// Connections one peer address (IPv6: one /64) may have open at once; more are closed at
    /// once and counted as refused.
    pub max_connections_per_ip: usize,
    /// A connection with nothing to say for this long is closed.
    pub idle_timeout: Duration,
    /// A frame begun must be finished within this long.
    pub frame_timeout: Duration,
    /// A connection must send a frame with a valid token within this long of its start (after
    /// its TLS handshake), or it is closed.
    pub auth_timeout: Duration,
    /// A TLS handshake must be done within this long.
    pub handshake_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_frame: crate::framing::DEFAULT_MAX_FRAME,
            max_connections: 4096,
            max_connections_per_ip: 256,
            idle_timeout: Duration::from_secs(600),
            frame_timeout: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What a connection holds while it is open: its place under the listener's limit and under
/// its peer's.
#[derive(Debug)]
struct Slots {
    _listener: OwnedSemaphorePermit,
    _peer: PeerSlot,
}

/// A listener's warnings, each written at most every 10 s.
#[derive(Debug, Default)]
struct Notices {
    full: Notice,
    per_ip: Notice,
    unauthenticated: Notice,
}

/// Who gets in: at most `max_connections` on the listener, `max_connections_per_ip` a peer.
#[derive(Debug)]
struct Gate {
    name: &'static str,
    permits: Arc<Semaphore>,
    peers: Arc<PeerLimit>,
    notices: Arc<Notices>,
}

impl Gate {
    fn new(name: &'static str, config: &StreamConfig) -> Self {
        Gate {
            name,
            permits: Arc::new(Semaphore::new(config.max_connections)),
            peers: PeerLimit::new(config.max_connections_per_ip),
            notices: Arc::default(),
        }
    }

    /// The slots of a connection from `peer`, or `None` (counted, told) when it may not in.
    fn admit(&self, peer: IpAddr, config: &StreamConfig, stats: &ListenerStats) -> Option<Slots> {
        let name = self.name;
        let Some(peer_slot) = self.peers.try_enter(peer) else {
            ListenerStats::bump(&stats.refused_per_ip);
            if let Some(refused) = self.notices.per_ip.due() {
                let limit = config.max_connections_per_ip;
                tracing::warn!(
                    %peer,
                    limit,
                    refused,
                    "{name}: an address has as many connections open as one may; refusing \
                     more (--max-connections-per-ip)"
                );
            }
            return None;
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            ListenerStats::bump(&stats.refused);
            if let Some(refused) = self.notices.full.due() {
                let limit = config.max_connections;
                tracing::warn!(
                    limit,
                    refused,
                    "{name}: connection limit reached; refusing connections (--max-connections)"
                );
            }
            return None;
        };
        Some(Slots {
            _listener: permit,
            _peer: peer_slot,
        })
    }
}

/// Serves syslog on `listener` (over TLS when given an acceptor) until `shutdown` turns true.
pub async fn serve_stream(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    config: StreamConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = if tls.is_some() {
        "syslog-tls"
    } else {
        "syslog"
    };
    let gate = Gate::new(name, &config);
    let mut failures = AcceptFailures::new(name);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let stats = listener_stats(&router, tls.is_some());
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let pause = failures.failed(&e, &stats.accept_errors);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = crate::server::stopped(&mut shutdown) => return,
                }
            }
        };
        failures.succeeded();
        let Some(slots) = gate.admit(peer.ip(), &config, stats) else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            config: config.clone(),
            notices: gate.notices.clone(),
            shutdown: shutdown.clone(),
            _slots: slots,
        };
        tokio::spawn(connection.serve(socket, tls.clone()));
    }
}

fn listener_stats(router: &Router, tls: bool) -> &ListenerStats {
    if tls {
        &router.ingest_stats().tls
    } else {
        &router.ingest_stats().tcp
    }
}

/// One accepted connection.
#[derive(Debug)]
struct Connection {
    router: Router,
    config: StreamConfig,
    notices: Arc<Notices>,
    shutdown: watch::Receiver<bool>,
    _slots: Slots,
}

impl Connection {
    /// From its TLS handshake (if any) to its end.
    async fn serve(self, socket: TcpStream, tls: Option<TlsAcceptor>) {
        let router = self.router.clone();
        match tls {
            None => {
                let stats = &router.ingest_stats().tcp;
                let _open = stats.open();
                self.read_frames(socket, stats).await;
            }
            Some(acceptor) => {
                let stats = &router.ingest_stats().tls;
                let timeout = self.config.handshake_timeout;
                match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        let _open = stats.open();
                        self.read_frames(stream, stats).await;
                    }
                    Ok(Err(_)) | Err(_) => ListenerStats::bump(&stats.handshake_failed),
                }
            }
        }
    }

    /// Reads frames until the connection ends, waits too long, or the router stops.
    async fn read_frames<S: AsyncRead + Unpin>(mut self, mut stream: S, stats: &ListenerStats) {
        let config = &self.config;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut decoder = FrameDecoder::new(config.max_frame);
        let mut sink = FrameSink::new(self.router.clone());
        let opened = Instant::now();
        let mut partial_since: Option<Instant> = None;
        loop {
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            let (deadline, wait) =
                next_deadline(config, opened, partial_since, sink.has_valid_frame());
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
                _ = crate::server::stopped(&mut self.shutdown) => break,
            };
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => break,
                Err(_timeout) => {
                    closed_for(wait, &sink, stats, config, &self.notices);
                    break;
                }
            };
            if n == 0 {
                while let Some(frame) = decoder.decode_eof(&mut buf) {
                    match frame {
                        Ok(f) => sink.frame(f, Timestamp::now()),
                        Err(e) => sink.frame_error(e),
                    }
                }
                break;
            }
            stats
                .bytes
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            let received = Timestamp::now();
            while let Some(frame) = decoder.decode(&mut buf) {
                match frame {
                    Ok(f) => sink.frame(f, received),
                    Err(e) => sink.frame_error(e),
                }
            }
            sink.flush();
            // A cluster node reads on only once the bus has this read's lines: the sender's
            // next write is acknowledged by nothing else. A bus that refused them ends the
            // connection, so that the sender knows to send again.
            if let Err(e) = sink.settle().await {
                tracing::warn!(error = %e, "syslog connection closed: the log bus refused its lines");
                break;
            }
            // Let the readers this read woke (tails, drains: in this worker's next-task slot,
            // which the other workers cannot take) run, and let an idle worker take this
            // connection.
            tokio::task::yield_now().await;
            partial_since = if buf.is_empty() {
                None
            } else {
                partial_since.or(Some(Instant::now()))
            };
        }
        sink.flush();
        if let Err(e) = sink.settle().await {
            tracing::warn!(error = %e, "syslog connection's last lines: the log bus refused them");
        }
    }
}

/// Why a connection would be closed if its next bytes do not come in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Between frames.
    Idle,
    /// Inside a frame.
    Frame,
    /// For its first frame with a valid token.
    Auth,
}

/// When the next bytes must come by, and why.
fn next_deadline(
    config: &StreamConfig,
    opened: Instant,
    partial_since: Option<Instant>,
    authenticated: bool,
) -> (Instant, Wait) {
    let (at, wait) = match partial_since {
        Some(t) => (t + config.frame_timeout, Wait::Frame),
        None => (Instant::now() + config.idle_timeout, Wait::Idle),
    };
    let auth = opened + config.auth_timeout;
    if !authenticated && auth < at {
        (auth, Wait::Auth)
    } else {
        (at, wait)
    }
}

/// Counts a connection closed for waiting too long.
fn closed_for(
    wait: Wait,
    sink: &FrameSink,
    stats: &ListenerStats,
    config: &StreamConfig,
    notices: &Notices,
) {
    match wait {
        Wait::Frame => {
            sink.reject(Reject::Truncated);
            ListenerStats::bump(&stats.closed_stalled);
        }
        Wait::Auth => {
            ListenerStats::bump(&stats.closed_unauthenticated);
            if let Some(closed) = notices.unauthenticated.due() {
                let window_s = config.auth_timeout.as_secs_f64();
                tracing::warn!(
                    window_s,
                    closed,
                    "syslog connections closed for sending no frame with a valid token in \
                     time (--syslog-auth-timeout)"
                );
            }
        }
        Wait::Idle => ListenerStats::bump(&stats.closed_idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_waits_for_the_auth_window_and_a_sender_does_not() {
        let config = StreamConfig::default();
        let opened = Instant::now();
        let (at, wait) = next_deadline(&config, opened, None, false);
        assert_eq!((at, wait), (opened + config.auth_timeout, Wait::Auth));
        assert_eq!(next_deadline(&config, opened, None, true).1, Wait::Idle);
        // A frame begun by a stranger still ends at the auth window, if that comes first.
        let (_, wait) = next_deadline(&config, opened, Some(opened), false);
        assert_eq!(wait, Wait::Auth);
        let short = StreamConfig {
            frame_timeout: Duration::from_secs(1),
            ..config
        };
        assert_eq!(
            next_deadline(&short, opened, Some(opened), false).1,
            Wait::Frame
        );
    }
}
