//! A budget of API writes per key: a token bucket each, so that one key creating thousands of
//! tokens (each a registry write) cannot slow the router for everyone. Reads are not charged.
//! Buckets are kept for keys seen in the last minutes only, so the map stays as small as the
//! set of keys in use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an unused bucket is kept.
const FORGET_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Writes per second per key, with a burst.
#[derive(Debug)]
pub struct WriteBudget {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl WriteBudget {
    /// `rate` writes a second per key (0: no limit), `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        WriteBudget {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Charges one write to `key`; `Err(seconds)` says when to try again.
    pub fn try_charge(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 1024 {
            buckets.retain(|_, b| now.duration_since(b.last) < FORGET_AFTER);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_key() {
        let budget = WriteBudget::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.try_charge("k1", t0), Ok(()));
        }
        assert_eq!(budget.try_charge("k1", t0), Err(1));
        assert_eq!(
            budget.try_charge("k2", t0),
            Ok(()),
            "another key has its own"
        );
        assert_eq!(
            budget.try_charge("k1", t0 + Duration::from_millis(500)),
            Ok(())
        );
        let unlimited = WriteBudget::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(unlimited.try_charge("k", t0), Ok(()));
        }
    }
}
