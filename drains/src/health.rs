//! A drain's health, as `GET /apps/{app}/log-drains/{id}` and `paas drains` show it: what was
//! sent, what the receiver acknowledged (delivered), what was dropped and is still buffered,
//! the last success and the last error, and whether it is degraded (no success for a while, or
//! failing now).
//!
//! `sent` and `delivered` say what is known and no more: syslog (TCP, TLS, UDP) has no
//! acknowledgement, so a line written to the socket is `sent` (the kernel took it; a receiver
//! that never reads still takes a socket buffer's worth), never `delivered`; an HTTPS batch
//! answered 2xx, or a RELP batch whose every message has its `200`, is both. For every drain: sent + dropped + buffered = accepted.

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
    /// Lines a cluster's shared queue delivered again (at least once: maybe repeats).
    redelivered: AtomicU64,
    /// Its lines go through a disk queue (`spooled`); else the lines in hand are those the
    /// buffer gave out and that are not yet sent or dropped.
    durable: std::sync::atomic::AtomicBool,
    last: Mutex<Last>,
}

/// What the API shows.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// Lines handed to the receiver: written to its socket (syslog), or in a batch it answered
    /// 2xx (HTTPS).
    pub sent: u64,
    /// Lines the receiver acknowledged (HTTPS: a 2xx; RELP: a `200`). Plain syslog has no
    /// acknowledgement: 0.
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
    /// Lines handed to this drain again by a cluster's shared queue (a node died with them,
    /// or an acknowledgement was lost): at least once, so these may have reached the
    /// receiver twice. Always 0 on a single router.
    pub redelivered: u64,
}

impl Health {
    fn last(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` lines got through: written to the receiver, and `acknowledged` by it (HTTPS 2xx,
    /// RELP 200) or not (syslog: written to its socket).
    pub fn sent(&self, n: u64, acknowledged: bool) {
        self.sent.fetch_add(n, Ordering::Release);
        if acknowledged {
            self.delivered.fetch_add(n, Ordering::Relaxed);
        }
        let mut last = self.last();
        last.success = Some(Timestamp::now());
        last.failing = false;
    }

    /// `n` lines were dropped after leaving the buffer (refused, or lost at shutdown).
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Release);
    }

    /// The batch being sent now holds `n` lines.
    pub fn in_flight(&self, n: u64) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// A durable drain's disk queue holds `n` lines.
    pub fn spooled(&self, n: u64) {
        self.spooled.store(n, Ordering::Relaxed);
    }

    /// Counts lines a cluster's shared queue delivered again.
    pub fn redelivered(&self, n: u64) {
        self.redelivered.fetch_add(n, Ordering::Relaxed);
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

    /// The drain keeps its lines on disk.
    pub fn set_durable(&self) {
        self.durable.store(true, Ordering::Relaxed);
    }

    /// The report, with the buffer's counts. The drain's own counts are read first and the
    /// buffer's after, so that for a memory drain the lines in hand (taken from the buffer,
    /// neither sent nor dropped yet) are exact at any instant, and sent + dropped + buffered
    /// = accepted holds in every report, not only between batches.
    pub fn report(&self, queue: &logplex::LineQueue) -> HealthReport {
        let (sent, dropped) = (
            self.sent.load(Ordering::Acquire),
            self.dropped.load(Ordering::Acquire),
        );
        self.report_from(sent, dropped, queue.counts())
    }

    fn report_from(&self, sent: u64, dropped: u64, queue: logplex::QueueCounts) -> HealthReport {
        let last = self.last();
        let in_hand = if self.durable.load(Ordering::Relaxed) {
            self.in_flight.load(Ordering::Relaxed) + self.spooled.load(Ordering::Relaxed)
        } else {
            queue.taken.saturating_sub(sent + dropped)
        };
        let buffered = queue.buffered + in_hand;
        let since = last.success.unwrap_or(last.started);
        let quiet = Timestamp::now()
            .as_micros()
            .saturating_sub(since.as_micros());
        HealthReport {
            sent,
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: queue.dropped + dropped,
            buffered,
            accepted: queue.accepted,
            last_success_at: last.success,
            last_error: last.error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: last.error.as_ref().map(|(t, _)| *t),
            degraded: last.failing || (buffered > 0 && quiet > DEGRADED_AFTER_MICROS),
            redelivered: self.redelivered.load(Ordering::Relaxed),
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

    fn report(h: &Health, c: logplex::QueueCounts) -> HealthReport {
        h.report_from(
            h.sent.load(Ordering::Relaxed),
            h.dropped.load(Ordering::Relaxed),
            c,
        )
    }

    #[test]
    fn degraded_only_when_failing_or_quiet_for_long() {
        let h = Health::default();
        assert!(
            !report(&h, counts(5, 0, 5)).degraded,
            "a new drain with lines waiting is not degraded yet"
        );
        h.failed("connect refused".into());
        let r = report(&h, counts(5, 0, 5));
        assert!(r.degraded);
        assert_eq!(r.last_error.as_deref(), Some("connect refused"));
        h.sent(5, false);
        assert!(!report(&h, counts(5, 0, 0)).degraded);
    }

    #[test]
    fn the_counts_add_up() {
        let h = Health::default();
        h.in_flight(3);
        h.sent(6, false);
        h.sent(4, true);
        h.dropped(2);
        let r = report(&h, counts(20, 4, 1));
        // 20 accepted = 10 sent + (4 + 2) dropped + (1 + 3) buffered; 4 of them acknowledged.
        assert_eq!(r.accepted, r.sent + r.dropped + r.buffered);
        assert_eq!((r.sent, r.delivered, r.buffered), (10, 4, 4));
        // Lines taken from the buffer but not yet in a batch are still counted as buffered
        // (issue 17: a report between the take and the batch was short by the batch).
        let r = report(&h, counts(120, 4, 1));
        assert_eq!(r.accepted, r.sent + r.dropped + r.buffered);
        // A durable drain: what is in hand is its batch and its disk queue.
        let d = Health::default();
        d.set_durable();
        d.in_flight(2);
        d.spooled(7);
        assert_eq!(report(&d, counts(20, 0, 1)).buffered, 10);
    }
}
