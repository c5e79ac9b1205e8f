//! Warnings that may come in floods (a limit hit by every connection of an attack, an accept
//! failing in a loop) are written at most once every 10 s, each saying how many times it
//! happened since the line before; the counters in `/metrics` have every one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often one kind of warning may be written.
pub(crate) const NOTICE_EVERY: Duration = Duration::from_secs(10);

/// One kind of warning.
#[derive(Debug, Default)]
pub(crate) struct Notice {
    since: AtomicU64,
    written: Mutex<Option<Instant>>,
}

impl Notice {
    /// Counts one occurrence; when a line is due, returns how many occurred since the last.
    pub(crate) fn due(&self) -> Option<u64> {
        self.since.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.is_some_and(|at| now.duration_since(at) < NOTICE_EVERY) {
            return None;
        }
        *written = Some(now);
        Some(self.since.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_told_and_the_rest_wait_with_their_count() {
        let notice = Notice::default();
        assert_eq!(notice.due(), Some(1));
        assert!((0..99).all(|_| notice.due().is_none()));
        assert_eq!(notice.since.load(Ordering::Relaxed), 99);
    }
}
