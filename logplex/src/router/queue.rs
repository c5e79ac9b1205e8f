//! `LineQueue`: the bounded queue between the router and one reader (a tail session, a drain,
//! the index). Pushing never waits: when the queue is full the oldest line is dropped and
//! counted, and the reader is told how many it lost and since when, so it can say so in its
//! own stream (L11 for a tail, L10 for a drain). For every queue, at any moment,
//! `accepted = taken + dropped + buffered`.
//!
//! Lines wait in the batches they were published in, shared by every reader that keeps all
//! of them (`Arc<[LogLine]>`): a push costs the router one reference count per batch, not per
//! line, and the lines are cloned (and their buffers released) on the reader's side.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::filter::LineFilter;
use crate::line::LogLine;
use crate::time::Timestamp;

/// How many lines wait for a tail reader by default (as Logplex).
pub const DEFAULT_TAIL_BUFFER: usize = 1024;

/// What a queue has seen, for stats and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Lines pushed into it.
    pub accepted: u64,
    /// Lines the reader took.
    pub taken: u64,
    /// Lines dropped because the reader was behind.
    pub dropped: u64,
    /// Lines waiting now.
    pub buffered: u64,
}

/// What the reader lost since it last took lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    /// How many lines.
    pub dropped: u64,
    /// When the first of them was received.
    pub since: Timestamp,
}

/// One take: the loss to report first (if any), then the lines, oldest first.
#[derive(Debug, Default)]
pub struct Taken {
    /// Lines lost since the last take.
    pub loss: Option<Loss>,
    /// The lines.
    pub lines: Vec<LogLine>,
}

/// A published batch, shared by the readers that keep every line of it.
pub type Batch = Arc<[LogLine]>;

#[derive(Debug)]
struct State {
    /// Batches waiting, each with how many of its first lines are gone (taken or dropped).
    batches: VecDeque<(Batch, usize)>,
    /// Lines waiting, over all batches.
    waiting: usize,
    loss: Option<Loss>,
    counts: QueueCounts,
    closed: bool,
}

/// A bounded, drop-oldest queue of lines for one reader.
#[derive(Debug)]
pub struct LineQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl LineQueue {
    /// A queue holding at most `capacity` lines (at least 1).
    pub fn new(capacity: usize) -> Self {
        LineQueue {
            state: Mutex::new(State {
                batches: VecDeque::new(),
                waiting: 0,
                loss: None,
                counts: QueueCounts::default(),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent (every operation below
        // finishes its bookkeeping before it can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one line. Never waits; returns whether older lines had to be dropped.
    pub fn push(&self, line: LogLine) -> bool {
        let batch: Batch = Arc::from(vec![line]);
        self.push_batch(&batch, &LineFilter::default()).1
    }

    /// Adds the lines of `batch` that `filter` keeps, under one lock; a filter that keeps
    /// everything shares the batch itself. Never waits. Returns how many were added and
    /// whether older lines had to be dropped.
    pub fn push_batch(&self, batch: &Batch, filter: &LineFilter) -> (usize, bool) {
        let batch = if filter.keeps_everything() {
            batch.clone()
        } else {
            let kept: Vec<LogLine> = batch
                .iter()
                .filter(|l| filter.matches(l))
                .cloned()
                .collect();
            if kept.is_empty() {
                return (0, false);
            }
            Arc::from(kept)
        };
        let n = batch.len();
        if n == 0 {
            return (0, false);
        }
        let (dropped, wake) = {
            let mut st = self.lock();
            if st.closed {
                return (0, false);
            }
            // The reader is woken when lines start waiting; while some wait it has yet to
            // take them, and will find these too (a wake a line cost a reader that keeps up
            // a thread switch for every line).
            let wake = st.waiting == 0;
            st.counts.accepted += n as u64;
            st.waiting += n;
            st.batches.push_back((batch, 0));
            let dropped = drop_oldest(&mut st, self.capacity);
            st.counts.buffered = st.waiting as u64;
            (dropped, wake)
        };
        if wake {
            self.ready.notify_one();
        }
        (n, dropped)
    }

    /// Adds the lines `filter` keeps (a convenience over `push_batch`).
    pub fn push_matching(&self, lines: &[LogLine], filter: &LineFilter) -> usize {
        let batch: Batch = Arc::from(lines.to_vec());
        self.push_batch(&batch, filter).0
    }

    /// Takes up to `max` waiting lines, with the loss since the last take. Never waits.
    pub fn try_take(&self, max: usize) -> Taken {
        self.try_take_bounded(max, usize::MAX)
    }

    /// Takes up to `max` waiting lines of at most `max_bytes` in all (but at least one line
    /// when any waits), with the loss since the last take. Never waits.
    pub fn try_take_bounded(&self, max: usize, max_bytes: usize) -> Taken {
        // Batches emptied here are released after the lock, on the reader's side.
        let mut done = Vec::new();
        let taken = {
            let mut st = self.lock();
            let mut lines: Vec<LogLine> = Vec::with_capacity(st.waiting.min(max));
            let mut bytes = 0usize;
            while lines.len() < max && bytes < max_bytes {
                let Some((batch, gone)) = st.batches.front_mut() else {
                    break;
                };
                let mut k = 0;
                for line in &batch[*gone..] {
                    if lines.len() == max || (bytes >= max_bytes && !lines.is_empty()) {
                        break;
                    }
                    bytes += line.size();
                    lines.push(line.clone());
                    k += 1;
                }
                *gone += k;
                if *gone == batch.len()
                    && let Some((b, _)) = st.batches.pop_front()
                {
                    done.push(b);
                }
            }
            st.waiting -= lines.len();
            st.counts.taken += lines.len() as u64;
            st.counts.buffered = st.waiting as u64;
            Taken {
                loss: st.loss.take(),
                lines,
            }
        };
        drop(done);
        taken
    }

    /// Waits for lines (or a loss to report) and takes up to `max`. `None` once the queue is
    /// closed and empty.
    pub async fn take(&self, max: usize) -> Option<Taken> {
        self.take_bounded(max, usize::MAX).await
    }

    /// `take`, with at most `max_bytes` of lines (but at least one).
    pub async fn take_bounded(&self, max: usize, max_bytes: usize) -> Option<Taken> {
        self.take_lingering(max, max_bytes, Duration::ZERO).await
    }

    /// `take_bounded`, but once lines wait, fewer than `max`, it lingers for `linger` first so
    /// that more can gather: a reader that is not in a hurry (the spool, metric extraction)
    /// then takes lines in batches, and lines arriving one at a time do not wake it one at a
    /// time.
    pub async fn take_lingering(
        &self,
        max: usize,
        max_bytes: usize,
        linger: Duration,
    ) -> Option<Taken> {
        loop {
            let ready = self.ready.notified();
            // `Some(short)`: lines wait, fewer than `max` when `short`.
            let waiting = {
                let st = self.lock();
                if st.waiting > 0 || st.loss.is_some() {
                    Some(st.waiting < max && !st.closed)
                } else if st.closed {
                    return None;
                } else {
                    None
                }
            };
            match waiting {
                Some(short) => {
                    if short && !linger.is_zero() {
                        tokio::time::sleep(linger).await;
                    }
                    return Some(self.try_take_bounded(max, max_bytes));
                }
                None => ready.await,
            }
        }
    }

    /// Stops accepting lines; the reader still gets what waits, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The counts so far.
    pub fn counts(&self) -> QueueCounts {
        self.lock().counts
    }
}

/// Drops the oldest waiting lines while more than `capacity` wait, counting them as lost.
fn drop_oldest(st: &mut State, capacity: usize) -> bool {
    let mut dropped = false;
    while st.waiting > capacity {
        let excess = st.waiting - capacity;
        let Some((batch, gone)) = st.batches.front_mut() else {
            break;
        };
        let since = batch[*gone].received;
        let k = (batch.len() - *gone).min(excess);
        *gone += k;
        if *gone == batch.len() {
            st.batches.pop_front();
        }
        st.waiting -= k;
        st.counts.dropped += k as u64;
        match &mut st.loss {
            Some(loss) => loss.dropped += k as u64,
            None => {
                st.loss = Some(Loss {
                    dropped: k as u64,
                    since,
                })
            }
        }
        dropped = true;
    }
    dropped
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
        let q = LineQueue::new(4);
        for i in 0..3 {
            q.push(line("a", "app", "web.1", &format!("n={i}"), i));
        }
        let t = q.try_take(100);
        assert_eq!(messages(&t.lines), ["n=0", "n=1", "n=2"]);
        assert_eq!(t.loss, None);
        assert!(q.try_take(100).lines.is_empty());
        assert_eq!(
            q.counts(),
            QueueCounts {
                accepted: 3,
                taken: 3,
                dropped: 0,
                buffered: 0
            }
        );
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_and_is_told_once() {
        let q = LineQueue::new(3);
        for i in 0..8 {
            q.push(line("a", "app", "web.1", &format!("n={i}"), i * 1_000_000));
        }
        let t = q.try_take(100);
        assert_eq!(
            t.loss,
            Some(Loss {
                dropped: 5,
                since: Timestamp::from_micros(0)
            })
        );
        assert_eq!(messages(&t.lines), ["n=5", "n=6", "n=7"]);
        q.push(line("a", "app", "web.1", "n=8", 10));
        let t = q.try_take(100);
        assert_eq!((t.loss, messages(&t.lines)), (None, vec!["n=8".to_owned()]));
        assert_eq!(q.counts().dropped, 5);
    }

    #[test]
    fn takes_are_bounded_in_bytes_but_never_empty() {
        let q = LineQueue::new(10);
        for i in 0..4 {
            q.push(line("a", "app", "web.1", &"x".repeat(100), i));
        }
        // 3 + 5 + 100 bytes a line.
        assert_eq!(q.try_take_bounded(10, 200).lines.len(), 2);
        assert_eq!(q.try_take_bounded(10, 1).lines.len(), 1);
        assert_eq!(q.try_take_bounded(10, usize::MAX).lines.len(), 1);
    }

    #[test]
    fn push_matching_applies_the_filter() {
        let q = LineQueue::new(10);
        let lines = [
            line("a", "paas", "router", "status=500", 0),
            line("a", "app", "web.1", "hi", 0),
        ];
        assert_eq!(
            q.push_matching(&lines, &LineFilter::default().source("router")),
            1
        );
        assert_eq!(messages(&q.try_take(10).lines), ["status=500"]);
    }

    #[tokio::test]
    async fn take_waits_for_lines_and_ends_when_closed() {
        let q = std::sync::Arc::new(LineQueue::new(10));
        let reader = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(t) = q.take(10).await {
                    got.extend(messages(&t.lines));
                }
                got
            })
        };
        tokio::task::yield_now().await;
        q.push(line("a", "app", "web.1", "one", 0));
        tokio::task::yield_now().await;
        q.push(line("a", "app", "web.1", "two", 0));
        q.close();
        assert!(!q.push(line("a", "app", "web.1", "after close", 0)));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, ["one", "two"]);
    }

    proptest! {
        /// Nothing is lost silently: every line pushed is taken or reported as a loss, and
        /// the counts always add up.
        #[test]
        fn every_line_is_taken_or_reported(ops in proptest::collection::vec(prop_oneof![3 => Just(true), 1 => Just(false)], 0..300), cap in 1usize..20) {
            let q = LineQueue::new(cap);
            let (mut pushed, mut taken, mut reported) = (0u64, 0u64, 0u64);
            for push in ops.into_iter().chain([false]) {
                if push {
                    q.push(line("a", "app", "web.1", "x", pushed as i64));
                    pushed += 1;
                } else {
                    let t = q.try_take(7);
                    taken += t.lines.len() as u64;
                    reported += t.loss.map_or(0, |l| l.dropped);
                }
                let c = q.counts();
                prop_assert_eq!(c.accepted, c.taken + c.dropped + c.buffered);
            }
            let rest = q.try_take(usize::MAX);
            taken += rest.lines.len() as u64;
            reported += rest.loss.map_or(0, |l| l.dropped);
            prop_assert_eq!(taken + reported, pushed);
            prop_assert_eq!(reported, q.counts().dropped);
        }

        /// The same with batches of any size, some through a filter, and takes of any size.
        #[test]
        fn batches_are_taken_or_reported_line_by_line(
            ops in proptest::collection::vec((0usize..30, 0usize..12, any::<bool>()), 0..200),
            cap in 1usize..40,
        ) {
            let q = LineQueue::new(cap);
            let only_web = LineFilter::default().dyno("web");
            let (mut kept, mut taken, mut reported, mut next) = (0u64, 0u64, 0u64, 0i64);
            let mut last_taken = -1i64;
            for (push, take, filtered) in ops {
                let batch: Batch = (0..push)
                    .map(|i| {
                        next += 1;
                        line("a", "app", if i % 3 == 0 { "worker.1" } else { "web.1" }, "x", next)
                    })
                    .collect::<Vec<_>>()
                    .into();
                let filter = if filtered { only_web.clone() } else { LineFilter::default() };
                kept += batch.iter().filter(|l| filter.matches(l)).count() as u64;
                q.push_batch(&batch, &filter);
                let t = q.try_take(take);
                for l in &t.lines {
                    // Lines come out in the order they went in.
                    prop_assert!(l.received.as_micros() > last_taken);
                    last_taken = l.received.as_micros();
                }
                taken += t.lines.len() as u64;
                reported += t.loss.map_or(0, |l| l.dropped);
                let c = q.counts();
                prop_assert_eq!(c.accepted, c.taken + c.dropped + c.buffered);
                prop_assert!(c.buffered <= cap as u64);
            }
            let rest = q.try_take(usize::MAX);
            taken += rest.lines.len() as u64;
            reported += rest.loss.map_or(0, |l| l.dropped);
            prop_assert_eq!(taken + reported, kept);
        }
    }
}
