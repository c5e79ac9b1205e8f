//! A tail session's buffer: the lines waiting for a reader, at most 1024 (as Logplex). A slow
//! reader loses the oldest lines, never slows the router, and is told in its own stream:
//! Heroku's L11 line comes before the lines it reads next.

use std::collections::VecDeque;

use crate::line::{AppName, LogLine};
use crate::platform;
use crate::time::Timestamp;

/// How many lines wait for a tail reader by default.
pub const DEFAULT_TAIL_BUFFER: usize = 1024;

/// The lines waiting for one tail reader, and what it lost.
#[derive(Clone, Debug)]
pub struct TailBuffer {
    app: AppName,
    lines: VecDeque<LogLine>,
    capacity: usize,
    /// Lines dropped since the reader last took its lines, and when the first was dropped.
    dropped: u64,
    dropped_since: Option<Timestamp>,
    /// Every line ever dropped from this session.
    dropped_total: u64,
}

impl TailBuffer {
    /// A buffer for a tail of `app` holding at most `capacity` lines (at least 1).
    pub fn new(app: AppName, capacity: usize) -> Self {
        TailBuffer {
            app,
            lines: VecDeque::with_capacity(capacity.clamp(1, 4096)),
            capacity: capacity.max(1),
            dropped: 0,
            dropped_since: None,
            dropped_total: 0,
        }
    }

    /// Adds a line; when full, the oldest waiting line is dropped and counted. Never waits.
    pub fn push(&mut self, line: LogLine) {
        if self.lines.len() == self.capacity
            && let Some(old) = self.lines.pop_front()
        {
            self.dropped += 1;
            self.dropped_total += 1;
            self.dropped_since.get_or_insert(old.received);
        }
        self.lines.push_back(line);
    }

    /// Everything waiting, oldest first: first an L11 line when lines were dropped since the
    /// last take, then the lines.
    pub fn take(&mut self, now: Timestamp) -> Vec<LogLine> {
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        if let Some(since) = self.dropped_since.take() {
            out.push(platform::tail_overflow(&self.app, self.dropped, since, now));
            self.dropped = 0;
        }
        out.extend(self.lines.drain(..));
        out
    }

    /// How many lines wait.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line waits (an L11 may still be owed).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Every line this session has dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::tests::line;
    use proptest::prelude::*;

    fn messages(lines: &[LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.message).into_owned())
            .collect()
    }

    #[test]
    fn a_reader_that_keeps_up_loses_nothing() {
        let mut t = TailBuffer::new(AppName::from("a"), 4);
        for i in 0..3 {
            t.push(line("a", "app", "web.1", &format!("n={i}"), i));
        }
        assert_eq!(
            messages(&t.take(Timestamp::from_micros(10))),
            ["n=0", "n=1", "n=2"]
        );
        assert!(t.take(Timestamp::from_micros(11)).is_empty());
        assert_eq!(t.dropped_total(), 0);
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_and_is_told_once() {
        let mut t = TailBuffer::new(AppName::from("a"), 3);
        for i in 0..8 {
            t.push(line("a", "app", "web.1", &format!("n={i}"), i * 1_000_000));
        }
        let got = t.take(Timestamp::from_micros(9_000_000));
        assert_eq!(
            messages(&got),
            [
                "Error L11 (Tail buffer overflow) -> This tail session dropped 5 messages since 1970-01-01T00:00:00.000000+00:00.",
                "n=5",
                "n=6",
                "n=7",
            ]
        );
        assert_eq!(&got[0].source[..], b"paas");
        t.push(line("a", "app", "web.1", "n=8", 10));
        assert_eq!(
            messages(&t.take(Timestamp::from_micros(11))),
            ["n=8"],
            "the count starts again"
        );
        assert_eq!(t.dropped_total(), 5);
    }

    proptest! {
        /// Nothing is lost silently: every line pushed is either taken or counted in an L11.
        #[test]
        fn every_line_is_delivered_or_counted(ops in proptest::collection::vec(prop_oneof![3 => Just(true), 1 => Just(false)], 0..300), cap in 1usize..20) {
            let mut t = TailBuffer::new(AppName::from("a"), cap);
            let (mut pushed, mut delivered, mut reported) = (0u64, 0u64, 0u64);
            for push in ops.into_iter().chain([false]) {
                if push {
                    t.push(line("a", "app", "web.1", "x", pushed as i64));
                    pushed += 1;
                } else {
                    for l in t.take(Timestamp::from_micros(0)) {
                        if &l.source[..] == b"paas" {
                            let text = String::from_utf8_lossy(&l.message).into_owned();
                            let n: u64 = text.split("dropped ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
                            reported += n;
                        } else {
                            delivered += 1;
                        }
                    }
                }
            }
            prop_assert_eq!(delivered + reported, pushed);
            prop_assert_eq!(reported, t.dropped_total());
        }
    }
}
