//! The worker process: a tick logged every `WORKER_INTERVAL_MS`, with the depth of a pretend
//! queue as a sample metric.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::{self, WorkerStarted, WorkerTick};

const DEFAULT_INTERVAL: Duration = Duration::from_millis(5000);
/// The pretend queue never holds more than this.
const MAX_QUEUE: u64 = 20;

/// The worker process: logs a logfmt line every few seconds (the interval from env
/// `WORKER_INTERVAL_MS`, default 5000) until killed. Fails on an interval that is not a
/// positive whole number, or when stdout is gone.
pub async fn worker() -> io::Result<()> {
    let interval = interval(std::env::var("WORKER_INTERVAL_MS").ok().as_deref())?;
    events::emit(&WorkerStarted { interval })?;
    let mut queue = Queue::new(seed());
    loop {
        tokio::time::sleep(interval).await;
        events::emit(&WorkerTick {
            queue: queue.next_depth(),
        })?;
    }
}

/// The tick interval from `WORKER_INTERVAL_MS`.
fn interval(var: Option<&str>) -> io::Result<Duration> {
    let Some(var) = var else {
        return Ok(DEFAULT_INTERVAL);
    };
    match var.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("WORKER_INTERVAL_MS={var:?} is not a positive whole number of milliseconds"),
        )),
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(32)
}

/// A pretend job queue whose depth wanders between 0 and [`MAX_QUEUE`], a few jobs at a time.
#[derive(Debug)]
struct Queue {
    depth: u64,
    /// xorshift64 state, never 0.
    state: u64,
}

impl Queue {
    fn new(seed: u64) -> Self {
        Self {
            depth: MAX_QUEUE / 4,
            state: seed | 1,
        }
    }

    fn next_depth(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        // A step of -2 to +2 jobs.
        let step = self.state % 5;
        self.depth = (self.depth + step).saturating_sub(2).min(MAX_QUEUE);
        self.depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_defaults_to_5_s_and_must_be_positive() {
        assert_eq!(interval(None).unwrap(), Duration::from_secs(5));
        assert_eq!(interval(Some(" 250 ")).unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "5s", ""] {
            assert_eq!(
                interval(Some(bad)).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_queue_wanders_within_its_bounds() {
        let mut queue = Queue::new(42);
        let depths: Vec<u64> = (0..1000).map(|_| queue.next_depth()).collect();
        assert!(depths.iter().all(|&d| d <= MAX_QUEUE));
        assert!(depths.windows(2).all(|w| w[0].abs_diff(w[1]) <= 2));
        assert!(
            depths.contains(&0) && depths.contains(&MAX_QUEUE),
            "it should wander end to end"
        );
    }
}
