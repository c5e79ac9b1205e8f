//! A drain's health, as `GET /apps/{app}/log-drains/{id}` and `paas drains` show it: what was
//! sent, what the receiver acknowledged (delivered), what was dropped and is still buffered,
//! the last success and the last error, and whether it is degraded (no success for a while, or
//! failing now).
//!
//! `sent` and `delivered` say what is known and no more: syslog (TCP, TLS, UDP) has no
//! acknowledgement, so a line written to the socket is `sent` (the kernel took it; a receiver
//! that never reads still takes a socket buffer's worth), never `delivered`; an HTTPS batch
//! answered 2xx is both. For every drain: sent + dropped + buffered = accepted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use logplex::Timestamp;
use serde::Serialize;

/// No success for this long (while lines wait) makes a drain degraded.
pub const DEGRADED_AFTER_MICROS: i64 = 60_000_000;

#[derive(Debug)]
struct Last {
    /// When the drain started, so that one that never got anything through is degraded only
    /// once it has been trying for a while.
    started: Timestamp,
    success: Option<Timestamp>,
    error: Option<(Timestamp, String)>,
    failing: bool,
}

impl Default for Last {
    fn default() -> Self {
        Last {
            started: Timestamp::now(),
            success: None,
            error: None,
            failing: false,
        }
    }
}

/// Counters a drain's task keeps.
#[derive(Debug, Default)]
pub struct Health {
    sent: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
    spooled: AtomicU64,
    last: Mutex<Last>,
}

/// What the API shows.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// Lines handed to the receiver: written to its socket (syslog), or in a batch it answered
    /// 2xx (HTTPS).
    pub sent: u64,
    /// Lines the receiver acknowledged (HTTPS: a 2xx). Syslog has no acknowledgement: 0.
    pub delivered: u64,
    /// Lines dropped: buffer overflow (L10), or refused by the receiver (a 4xx other than 429).
    pub dropped: u64,
    /// Lines waiting: in the buffer, in the batch being sent, and on disk (durable drains).
    pub buffered: u64,
    /// Every line the drain was given.
    pub accepted: u64,
    /// When a batch last got through.
    pub last_success_at: Option<Timestamp>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
    /// Failing now, or nothing delivered for a minute while lines wait.
    pub degraded: bool,
}

impl Health {
    fn last(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` lines got through: written to the receiver, and `acknowledged` by it (HTTPS 2xx)
    /// or not (syslog: written to its socket).
    pub fn sent(&self, n: u64, acknowledged: bool) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        if acknowledged {
            self.delivered.fetch_add(n, Ordering::Relaxed);
        }
        let mut last = self.last();
        last.success = Some(Timestamp::now());
        last.failing = false;
    }

    /// `n` lines were dropped after leaving the buffer (refused, or lost at shutdown).
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// The batch being sent now holds `n` lines.
    pub fn in_flight(&self, n: u64) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// A durable drain's disk queue holds `n` lines.
    pub fn spooled(&self, n: u64) {
        self.spooled.store(n, Ordering::Relaxed);
    }

    /// A delivery attempt failed.
    pub fn failed(&self, error: String) {
        let mut last = self.last();
        last.error = Some((Timestamp::now(), error));
        last.failing = true;
    }

    /// Whether the last attempt failed.
    pub fn is_failing(&self) -> bool {
        self.last().failing
    }

    /// The report, given the buffer's counts (`accepted`, `dropped`, `buffered` of its queue).
    pub fn report(&self, queue: logplex::QueueCounts) -> HealthReport {
        let last = self.last();
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let buffered = queue.buffered + in_flight + self.spooled.load(Ordering::Relaxed);
        let since = last.success.unwrap_or(last.started);
        let quiet = Timestamp::now()
            .as_micros()
            .saturating_sub(since.as_micros());
        HealthReport {
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: queue.dropped + self.dropped.load(Ordering::Relaxed),
            buffered,
            accepted: queue.accepted,
            last_success_at: last.success,
            last_error: last.error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: last.error.as_ref().map(|(t, _)| *t),
            degraded: last.failing || (buffered > 0 && quiet > DEGRADED_AFTER_MICROS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(accepted: u64, dropped: u64, buffered: u64) -> logplex::QueueCounts {
        logplex::QueueCounts {
            accepted,
            taken: accepted - dropped - buffered,
            dropped,
            buffered,
        }
    }

    #[test]
    fn degraded_only_when_failing_or_quiet_for_long() {
        let h = Health::default();
        assert!(
            !h.report(counts(5, 0, 5)).degraded,
            "a new drain with lines waiting is not degraded yet"
        );
        h.failed("connect refused".into());
        let r = h.report(counts(5, 0, 5));
        assert!(r.degraded);
        assert_eq!(r.last_error.as_deref(), Some("connect refused"));
        h.sent(5, false);
        assert!(!h.report(counts(5, 0, 0)).degraded);
    }

    #[test]
    fn the_counts_add_up() {
        let h = Health::default();
        h.in_flight(3);
        h.sent(6, false);
        h.sent(4, true);
        h.dropped(2);
        let r = h.report(counts(20, 4, 1));
        // 20 accepted = 10 sent + (4 + 2) dropped + (1 + 3) buffered; 4 of them acknowledged.
        assert_eq!(r.accepted, r.sent + r.dropped + r.buffered);
        assert_eq!((r.sent, r.delivered), (10, 4));
    }
}
