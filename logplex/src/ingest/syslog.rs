//! syslog over TCP and over TLS: RFC 6587 frames (octet-counted or newline-ended, detected
//! per frame) on long-lived connections. A bad frame is counted and skipped, and the
//! connection carries on where the framing allows; a connection that stalls inside a frame
//! (slowloris) is closed after `frame_timeout`, one idle for `idle_timeout` quietly.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::framing::FrameDecoder;
use crate::ingest::FrameSink;
use crate::ingest::listener_stats::ListenerStats;
use crate::router::{Reject, Router};
use crate::time::Timestamp;

/// Limits of a stream listener.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The largest frame accepted.
    pub max_frame: usize,
    /// Connections open at once; more are closed at once and counted as refused.
    pub max_connections: usize,
    /// A connection with nothing to say for this long is closed.
    pub idle_timeout: Duration,
    /// A frame begun must be finished within this long.
    pub frame_timeout: Duration,
    /// A TLS handshake must be done within this long.
    pub handshake_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_frame: crate::framing::DEFAULT_MAX_FRAME,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(600),
            frame_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
        }
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
    let permits = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let (socket, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let stats = listener_stats(&router, tls.is_some());
            ListenerStats::bump(&stats.refused);
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (router, tls, config, shutdown) = (
            router.clone(),
            tls.clone(),
            config.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let stats = &router.ingest_stats().tcp;
                    let _open = stats.open();
                    read_frames(socket, &router, stats, &config, shutdown).await;
                }
                Some(acceptor) => {
                    let stats = &router.ingest_stats().tls;
                    let handshake =
                        tokio::time::timeout(config.handshake_timeout, acceptor.accept(socket))
                            .await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let _open = stats.open();
                            read_frames(stream, &router, stats, &config, shutdown).await;
                        }
                        Ok(Err(_)) | Err(_) => ListenerStats::bump(&stats.refused),
                    }
                }
            }
        });
    }
}

fn listener_stats(router: &Router, tls: bool) -> &ListenerStats {
    if tls {
        &router.ingest_stats().tls
    } else {
        &router.ingest_stats().tcp
    }
}

/// Reads frames from one connection until it ends, stalls, or the router stops.
async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    router: &Router,
    stats: &ListenerStats,
    config: &StreamConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut decoder = FrameDecoder::new(config.max_frame);
    let mut sink = FrameSink::new(router.clone());
    let mut partial_since: Option<Instant> = None;
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let deadline = match partial_since {
            Some(t) => t + config.frame_timeout,
            None => Instant::now() + config.idle_timeout,
        };
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
            _ = crate::server::stopped(&mut shutdown) => break,
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => break,
            Err(_timeout) => {
                if partial_since.is_some() {
                    sink.reject(Reject::Truncated);
                }
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
        // Let the readers this read woke (tails, drains: in this worker's next-task slot, which
        // the other workers cannot take) run, and let an idle worker take this connection.
        tokio::task::yield_now().await;
        partial_since = if buf.is_empty() {
            None
        } else {
            partial_since.or(Some(Instant::now()))
        };
    }
    sink.flush();
}
