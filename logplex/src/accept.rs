//! When a listener cannot accept (out of file descriptors, out of memory): back off instead of
//! spinning (10 ms, doubling to 1 s, back to 10 ms after the next accept), count every failure,
//! and say so in the log at most once every 10 s, with how many failed since the last line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::notice::{NOTICE_EVERY, Notice};

/// The first pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// One listener's failed accepts.
#[derive(Debug)]
pub(crate) struct AcceptFailures {
    listener: &'static str,
    pause: Duration,
    notice: Notice,
}

impl AcceptFailures {
    /// The failures of `listener` (its name in the log).
    pub(crate) fn new(listener: &'static str) -> Self {
        AcceptFailures {
            listener,
            pause: FIRST_PAUSE,
            notice: Notice::default(),
        }
    }

    /// Counts a failed accept in `counter`, logs it if the last line is old enough, and
    /// returns how long to wait before accepting again.
    pub(crate) fn failed(&mut self, error: &std::io::Error, counter: &AtomicU64) -> Duration {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(failures) = self.notice.due() {
            tracing::warn!(
                error = %error,
                failures,
                pause_ms = self.pause.as_millis() as u64,
                "{} accept failed; backing off (told at most every {} s)",
                self.listener,
                NOTICE_EVERY.as_secs()
            );
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        pause
    }

    /// An accept worked: the next failure starts from the first pause again.
    pub(crate) fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_a_second_and_start_again_after_an_accept() {
        let counter = AtomicU64::new(0);
        let mut f = AcceptFailures::new("test");
        let e = std::io::Error::other("too many open files");
        let pauses: Vec<u128> = (0..9).map(|_| f.failed(&e, &counter).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        f.succeeded();
        assert_eq!(f.failed(&e, &counter), FIRST_PAUSE);
        assert_eq!(counter.load(Ordering::Relaxed), 10);
    }
}
