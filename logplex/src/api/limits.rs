//! The API's limits at work: why requests were refused (counted for `/metrics`), and the byte
//! budget of request bodies being read, shared by every connection, so that bodies that never
//! finish cannot take the router's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::notice::Notice;

/// Why the API refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A body that did not arrive in full within the body timeout (408).
    BodyTimeout,
    /// A body that did not fit in the in-flight budget (503).
    BodyBudget,
    /// A log session over the app's limit of sessions (429).
    SessionsPerApp,
    /// A log-session filter over the length limit (422).
    FilterTooLong,
}

impl Refusal {
    /// Every reason, in the order metrics list them.
    pub(crate) const ALL: [Refusal; 4] = [
        Refusal::BodyTimeout,
        Refusal::BodyBudget,
        Refusal::SessionsPerApp,
        Refusal::FilterTooLong,
    ];

    /// The reason's name in metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BodyBudget => "body_budget",
            Refusal::SessionsPerApp => "sessions_per_app",
            Refusal::FilterTooLong => "filter_too_long",
        }
    }
}

/// Refusals by reason.
#[derive(Debug, Default)]
pub(crate) struct Refusals([AtomicU64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one.
    pub(crate) fn add(&self, why: Refusal) {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for `why`.
    pub(crate) fn get(&self, why: Refusal) -> u64 {
        self.0[why as usize].load(Ordering::Relaxed)
    }
}

/// Bytes of request bodies being read, over every connection, up to a budget.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    bytes: usize,
    permits: Arc<Semaphore>,
    refusals: Arc<Refusals>,
    full: Notice,
}

impl BodyBudget {
    /// A budget of `bytes`; a body that does not fit is counted in `refusals`.
    pub(crate) fn new(bytes: usize, refusals: Arc<Refusals>) -> Self {
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes,
            permits: Arc::new(Semaphore::new(bytes)),
            refusals,
            full: Notice::default(),
        }
    }

    /// Takes `n` bytes of the budget until the permit drops, or `None` (counted) when they
    /// do not fit now.
    pub(crate) fn try_take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let taken = u32::try_from(n)
            .ok()
            .and_then(|n| self.permits.clone().try_acquire_many_owned(n).ok());
        if taken.is_none() {
            self.refusals.add(Refusal::BodyBudget);
            if let Some(refused) = self.full.due() {
                tracing::warn!(
                    budget_bytes = self.bytes,
                    refused,
                    "request bodies in flight at the budget: bodies that do not fit are \
                     answered 503 (--inflight-body-mb)"
                );
            }
        }
        taken
    }

    /// The budget, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes taken now.
    pub(crate) fn in_flight(&self) -> usize {
        self.bytes.saturating_sub(self.permits.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_taken_and_given_back() {
        let refusals = Arc::new(Refusals::default());
        let budget = BodyBudget::new(100, refusals.clone());
        let a = budget.try_take(60).unwrap();
        assert!(budget.try_take(41).is_none());
        let mut b = budget.try_take(40).unwrap();
        assert_eq!(budget.in_flight(), 100);
        drop(a);
        b.merge(budget.try_take(10).unwrap());
        assert_eq!(budget.in_flight(), 50);
        drop(b);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(refusals.get(Refusal::BodyBudget), 1);
        assert!(
            budget.try_take(1 << 40).is_none(),
            "more than a permit can hold"
        );
    }
}
