//! What the router counts: lines accepted per app, lines rejected per app and reason, and the
//! rejections no app can be charged with (a frame with no valid token). `/apps/{app}/stats`
//! and `/metrics` read these.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::framing::FrameError;

/// Why a line (or frame) was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// A frame over the maximum size.
    TooLarge,
    /// An octet count that is not a number in range.
    BadLength,
    /// Bytes that start no frame (skipped to the next newline).
    Garbage,
    /// The connection ended, or stalled, inside a frame.
    Truncated,
    /// A frame that is not an RFC 5424 message.
    Malformed,
    /// A frame naming no known token, or a token for another app than the request's.
    UnknownToken,
    /// Over the app's rate budget.
    RateLimited,
    /// An HTTP batch whose `Logplex-Msg-Count` disagrees with its frames.
    CountMismatch,
    /// An HTTP body over the size limit.
    BodyTooLarge,
    /// Sent while the router was stopping, or to an app being deleted.
    Closed,
    /// A drain's own output (HOSTNAME `d.<uuid>`, a drain token) sent back into a router:
    /// never ingested again, so that no chain of drains can multiply lines.
    DrainLoop,
    /// A line from the app's own token as a process only the platform writes as
    /// (`app[postgres]`, `app[heroku-postgres]`: the database adapter's).
    ReservedProcess,
}

impl Reject {
    /// Every reason, in the order stats list them.
    pub const ALL: [Reject; 12] = [
        Reject::TooLarge,
        Reject::BadLength,
        Reject::Garbage,
        Reject::Truncated,
        Reject::Malformed,
        Reject::UnknownToken,
        Reject::RateLimited,
        Reject::CountMismatch,
        Reject::BodyTooLarge,
        Reject::Closed,
        Reject::DrainLoop,
        Reject::ReservedProcess,
    ];

    /// The reason's name in stats and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::BadLength => "bad_length",
            Reject::Garbage => "garbage",
            Reject::Truncated => "truncated",
            Reject::Malformed => "malformed",
            Reject::UnknownToken => "unknown_token",
            Reject::RateLimited => "rate_limited",
            Reject::CountMismatch => "count_mismatch",
            Reject::BodyTooLarge => "body_too_large",
            Reject::Closed => "closed",
            Reject::DrainLoop => "drain_loop",
            Reject::ReservedProcess => "reserved_process",
        }
    }

    fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl From<FrameError> for Reject {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { .. } => Reject::TooLarge,
            FrameError::BadLength => Reject::BadLength,
            FrameError::Garbage => Reject::Garbage,
            FrameError::Truncated { .. } => Reject::Truncated,
        }
    }
}

/// Rejections by reason.
#[derive(Debug, Default)]
pub struct RejectCounts([AtomicU64; Reject::ALL.len()]);

impl RejectCounts {
    /// Counts `n` rejections for `reason`.
    pub fn add(&self, reason: Reject, n: u64) {
        self.0[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The count for `reason`.
    pub fn get(&self, reason: Reject) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }

    /// Every reason with its count, zeros included (so dashboards see the series).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Reject::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .collect()
    }

    /// All rejections.
    pub fn total(&self) -> u64 {
        Reject::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// One consumer's queue as stats show it.
#[derive(Clone, Debug, Serialize)]
pub struct ConsumerStats {
    /// `tail` or the consumer's own name (a drain's token, `index`, `metrics`).
    pub kind: String,
    /// A name unique within the app.
    pub name: String,
    /// Lines offered to it.
    pub accepted: u64,
    /// Lines it took.
    pub delivered: u64,
    /// Lines dropped because it was behind (`overflow`).
    pub dropped: u64,
    /// Lines waiting for it.
    pub buffered: u64,
}

/// `GET /apps/{app}/stats`.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelStats {
    /// The app.
    pub app: String,
    /// Lines accepted into the channel.
    pub accepted: u64,
    /// Lines refused, by reason (zeros included).
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Lines dropped after acceptance, summed over consumers, by reason.
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    /// Lines waiting in consumers' queues.
    pub buffered: u64,
    /// The history ring.
    pub history: HistoryStats,
    /// Open tail sessions.
    pub tails: usize,
    /// Every consumer's queue.
    pub consumers: Vec<ConsumerStats>,
}

/// The history ring's state.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HistoryStats {
    /// Lines kept.
    pub lines: usize,
    /// Bytes of them.
    pub bytes: usize,
    /// Lines pushed out by newer ones.
    pub evicted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let c = RejectCounts::default();
        for (i, r) in Reject::ALL.iter().enumerate() {
            c.add(*r, i as u64 + 1);
        }
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(c.get(*r), i as u64 + 1, "{}", r.as_str());
        }
        assert_eq!(c.total(), (1..=Reject::ALL.len() as u64).sum::<u64>());
        let names: std::collections::HashSet<_> = c.snapshot().iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), Reject::ALL.len());
    }
}
