//! Counters of the listeners, for `/metrics`: connections (accepted, open, refused and closed
//! by why), accept failures, frames, bytes, rejections.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::router::{Reject, RejectCounts};

/// One listener's counters.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections (or requests, for HTTP; datagrams, for UDP) accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused at the listener's connection limit.
    pub refused: AtomicU64,
    /// Connections refused because their address had as many open as one address may.
    pub refused_per_ip: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    pub handshake_failed: AtomicU64,
    /// Connections closed by the router for being idle too long.
    pub closed_idle: AtomicU64,
    /// Connections closed for sending no frame with a valid token in their first seconds.
    pub closed_unauthenticated: AtomicU64,
    /// Connections closed for stalling inside a frame.
    pub closed_stalled: AtomicU64,
    /// Accepts that failed (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
    /// Bytes read.
    pub bytes: AtomicU64,
}

impl ListenerStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened: counted now, and closed when the guard drops.
    pub fn open(&self) -> OpenGuard<'_> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self)
    }
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
pub struct OpenGuard<'a>(&'a ListenerStats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every listener's counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// syslog over TCP.
    pub tcp: ListenerStats,
    /// syslog over TLS.
    pub tls: ListenerStats,
    /// syslog over UDP.
    pub udp: ListenerStats,
    /// HTTP `POST /logs` (its requests).
    pub http: ListenerStats,
    /// The API's listener (its connections, whatever they ask).
    pub api: ListenerStats,
    rejected: RejectCounts,
    invalid_utf8: AtomicU64,
    bus_refused: AtomicU64,
}

impl IngestStats {
    /// Counts a rejected frame (every app and none).
    pub fn rejected(&self, reason: Reject) {
        self.rejected.add(reason, 1);
    }

    /// Counts `n` rejected frames.
    pub fn rejected_n(&self, reason: Reject, n: u64) {
        self.rejected.add(reason, n);
    }

    /// Rejections on every listener, by reason.
    pub fn rejections(&self) -> &RejectCounts {
        &self.rejected
    }

    /// Counts messages that are not valid UTF-8 (kept as they are).
    pub fn invalid_utf8(&self, n: u64) {
        self.invalid_utf8.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts lines admitted that a cluster's log bus did not take (never acknowledged to
    /// their sender).
    pub fn bus_refused(&self, n: u64) {
        self.bus_refused.fetch_add(n, Ordering::Relaxed);
    }

    /// Lines a cluster's log bus did not take.
    pub fn bus_refused_total(&self) -> u64 {
        self.bus_refused.load(Ordering::Relaxed)
    }

    /// Messages accepted that were not valid UTF-8.
    pub fn invalid_utf8_total(&self) -> u64 {
        self.invalid_utf8.load(Ordering::Relaxed)
    }
}
