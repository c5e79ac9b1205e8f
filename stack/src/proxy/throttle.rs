//! A warning told at most once a period, however often its event happens, with a count of
//! those held back since the last telling: an accept failing every few milliseconds is one
//! line a minute, not thousands.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One kind of warning's schedule.
#[derive(Debug)]
pub struct Throttled {
    period_ms: u64,
    origin: Instant,
    /// Milliseconds since `origin` before which nothing more is told.
    next_ms: AtomicU64,
    held: AtomicU64,
}

impl Throttled {
    /// Told at once, then at most once every `period`.
    pub fn new(period: Duration) -> Self {
        Throttled {
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            next_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// Calls `tell` with the number held back since the last telling if the period is over;
    /// else holds this one back.
    pub fn tell(&self, tell: impl FnOnce(u64)) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tell(self.held.swap(0, Ordering::Relaxed));
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn told_once_a_period_with_the_count_held_back() {
        let warning = Throttled::new(Duration::from_millis(200));
        let mut told = Vec::new();
        for _ in 0..1000 {
            warning.tell(|held| told.push(held));
        }
        assert_eq!(told, [0]);
        std::thread::sleep(Duration::from_millis(250));
        warning.tell(|held| told.push(held));
        assert_eq!(told, [0, 999]);
    }
}
