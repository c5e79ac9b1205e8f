//! `RateBudget`: a token bucket of lines per second, one per app, so that one app flooding the
//! router cannot take every other app's share of it.

use crate::time::Timestamp;

/// Lines per second an app may send, with a burst of one second's worth.
#[derive(Clone, Debug)]
pub struct RateBudget {
    /// Lines per microsecond; 0 means no limit.
    per_micro: f64,
    burst: f64,
    tokens: f64,
    last: i64,
}

impl RateBudget {
    /// A budget of `per_second` lines a second (0: unlimited), starting full.
    pub fn new(per_second: u64) -> Self {
        let burst = per_second as f64;
        RateBudget {
            per_micro: per_second as f64 / 1e6,
            burst,
            tokens: burst,
            last: i64::MIN,
        }
    }

    /// Changes the rate to `per_second` (0: unlimited) from now on; what is saved up stays,
    /// within the new burst.
    pub fn set_rate(&mut self, per_second: u64) {
        self.per_micro = per_second as f64 / 1e6;
        self.burst = per_second as f64;
        self.tokens = self.tokens.min(self.burst);
    }

    fn refill(&mut self, now: Timestamp) {
        let now = now.as_micros();
        if self.last != i64::MIN && now > self.last {
            self.tokens = (self.tokens + (now - self.last) as f64 * self.per_micro).min(self.burst);
        }
        self.last = self.last.max(now);
    }

    /// Whether all `n` lines of a batch arriving at `now` may pass (then they are spent). A
    /// batch larger than the burst passes when the budget is full, and leaves it in debt.
    pub fn admit_all(&mut self, n: usize, now: Timestamp) -> bool {
        if self.per_micro == 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= (n as f64).min(self.burst) {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// How many of `n` lines arriving at `now` fit in the budget (they are spent).
    pub fn admit(&mut self, n: usize, now: Timestamp) -> usize {
        if self.per_micro == 0.0 {
            return n;
        }
        self.refill(now);
        let admitted = (self.tokens.floor().max(0.0) as usize).min(n);
        self.tokens -= admitted as f64;
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_rate_caps_what_was_saved_up() {
        let mut b = RateBudget::new(300);
        b.set_rate(100);
        assert_eq!(b.admit(300, Timestamp::from_micros(0)), 100);
        // A second later, a second's worth of the new rate.
        assert_eq!(b.admit(300, Timestamp::from_micros(1_000_000)), 100);
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut b = RateBudget::new(0);
        assert_eq!(b.admit(1_000_000, Timestamp::from_micros(0)), 1_000_000);
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = RateBudget::new(100);
        assert_eq!(b.admit(150, Timestamp::from_micros(0)), 100);
        assert_eq!(b.admit(10, Timestamp::from_micros(0)), 0);
        // 50 ms later, 5 more lines' worth.
        assert_eq!(b.admit(10, Timestamp::from_micros(50_000)), 5);
        // A long pause refills to the burst, no further.
        assert_eq!(b.admit(500, Timestamp::from_micros(60_000_000)), 100);
    }

    #[test]
    fn batches_pass_whole_or_not_at_all() {
        let mut b = RateBudget::new(100);
        assert!(b.admit_all(60, Timestamp::from_micros(0)));
        assert!(!b.admit_all(60, Timestamp::from_micros(0)));
        // A batch over the burst passes on a full budget, then the debt is paid off.
        assert!(b.admit_all(500, Timestamp::from_micros(10_000_000)));
        assert!(!b.admit_all(1, Timestamp::from_micros(12_000_000)));
        assert!(b.admit_all(1, Timestamp::from_micros(15_100_000)));
    }

    #[test]
    fn time_going_backwards_grants_nothing() {
        let mut b = RateBudget::new(10);
        assert_eq!(b.admit(10, Timestamp::from_micros(1_000_000)), 10);
        assert_eq!(b.admit(10, Timestamp::from_micros(0)), 0);
    }
}
