//! Reconnect and retry delays: exponential with full jitter, from `base` to `cap`, so that a
//! drain comes back fast from a blip (unlike Logplex's ≥ 1 s, which lost lines on hot drains)
//! and does not hammer a receiver that is down.

use std::time::Duration;

/// The delays of one run of failures.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    seed: u64,
}

impl Backoff {
    /// Delays from `base` doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            base,
            cap,
            failures: 0,
            seed,
        }
    }

    /// The delay before the next attempt after one more failure: a random point in
    /// `[base/2, min(cap, base·2^failures)]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        // xorshift64: jitter needs no cryptography.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let floor = self.base / 2;
        let span = ceiling.saturating_sub(floor).as_micros() as u64;
        floor + Duration::from_micros(if span == 0 { 0 } else { self.seed % span })
    }

    /// A success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(later.iter().any(|d| *d > Duration::from_secs(1)));
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
