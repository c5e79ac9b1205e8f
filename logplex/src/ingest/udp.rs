//! syslog over UDP: one datagram, one message (RFC 5426). Datagrams waiting together are read
//! in one go and published as one batch.

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::ingest::FrameSink;
use crate::ingest::listener_stats::ListenerStats;
use crate::router::{Reject, Router};
use crate::time::Timestamp;

/// Datagrams read before a batch is published.
const BATCH: usize = 256;

/// Serves syslog datagrams on `socket` until `shutdown` turns true.
pub async fn serve_udp(
    socket: UdpSocket,
    router: Router,
    max_frame: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let stats: &ListenerStats = &router.ingest_stats().udp;
    let mut sink = FrameSink::new(router.clone());
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = socket.readable() => if r.is_err() { return },
            _ = crate::server::stopped(&mut shutdown) => return,
        }
        let received = Timestamp::now();
        for _ in 0..BATCH {
            let n = match socket.try_recv_from(&mut buf) {
                Ok((n, _peer)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            };
            ListenerStats::bump(&stats.accepted);
            stats
                .bytes
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            if n > max_frame {
                sink.reject(Reject::TooLarge);
                continue;
            }
            if n == 0 {
                sink.reject(Reject::Malformed);
                continue;
            }
            sink.frame(Bytes::copy_from_slice(&buf[..n]), received);
        }
        sink.flush();
        if let Err(e) = sink.settle().await {
            tracing::warn!(error = %e, "udp datagrams lost: the log bus refused them");
        }
    }
}
