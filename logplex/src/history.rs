//! An app's recent lines: a ring of the last N (1500 by default, as Logplex keeps) within a
//! byte budget, newest last. Lines are compacted on the way in, so history never pins the
//! buffers lines were read into.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::filter::LineFilter;
use crate::line::{AppName, LogLine};

/// How many lines an app keeps by default.
pub const DEFAULT_HISTORY_LINES: usize = 1500;

/// How many bytes of lines an app keeps at most by default (1500 lines of 10 KB).
pub const DEFAULT_HISTORY_BYTES: usize = 1500 * 10 * 1024;

/// Lines are copied into blocks of this size, many lines a block, so that keeping a line costs
/// no allocation of its own; a line over a quarter of a block gets its own buffer.
const ARENA_BLOCK: usize = 64 * 1024;

/// A kept line: its byte fields in one buffer (one reference count to keep, not three), the
/// app held once by the history.
#[derive(Clone, Debug)]
struct Kept {
    received: crate::time::Timestamp,
    time: crate::time::Timestamp,
    facility: u8,
    severity: u8,
    source_len: usize,
    process_len: usize,
    seq: u64,
    /// source, process, message.
    bytes: Bytes,
}

impl Kept {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    fn line(&self, app: &AppName) -> LogLine {
        let (s, p) = (self.source_len, self.source_len + self.process_len);
        LogLine {
            received: self.received,
            time: self.time,
            app: app.clone(),
            source: self.bytes.slice(..s),
            process: self.bytes.slice(s..p),
            facility: self.facility,
            severity: self.severity,
            message: self.bytes.slice(p..),
            seq: self.seq,
        }
    }
}

/// One app's recent lines.
#[derive(Clone, Debug)]
pub struct History {
    arena: BytesMut,
    app: Option<AppName>,
    lines: VecDeque<Kept>,
    max_lines: usize,
    max_bytes: usize,
    bytes: usize,
    evicted: u64,
    /// The highest `seq` no longer kept (pushed out, or never kept): a reader whose position
    /// is below it lost lines.
    floor: u64,
}

impl Default for History {
    fn default() -> Self {
        History::new(DEFAULT_HISTORY_LINES, DEFAULT_HISTORY_BYTES)
    }
}

impl History {
    /// A history of at most `max_lines` lines and `max_bytes` bytes of them.
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        History {
            arena: BytesMut::new(),
            app: None,
            lines: VecDeque::with_capacity(max_lines.min(4096)),
            max_lines,
            max_bytes,
            bytes: 0,
            evicted: 0,
            floor: 0,
        }
    }

    /// Adds a line, evicting the oldest while over either bound. A line larger than the whole
    /// byte budget is not kept (and counts as evicted). A history holds one app's lines: the
    /// app of the first line pushed is every line's.
    pub fn push(&mut self, line: &LogLine) {
        if self.max_lines == 0 || line.size() > self.max_bytes {
            self.evicted += 1;
            self.floor = self.floor.max(line.seq);
            return;
        }
        if self.app.is_none() {
            self.app = Some(line.app.clone());
        }
        let kept = self.keep(line);
        self.bytes += kept.size();
        self.lines.push_back(kept);
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.size();
                self.evicted += 1;
                self.floor = self.floor.max(old.seq);
            }
        }
    }

    /// The line with its bytes copied into the arena: it no longer pins the buffer it was read
    /// into, and the copy costs no allocation (but for one block every ~64 KiB).
    fn keep(&mut self, line: &LogLine) -> Kept {
        let size = line.size();
        let bytes = if size > ARENA_BLOCK / 4 {
            let mut own = Vec::with_capacity(size);
            own.extend_from_slice(&line.source);
            own.extend_from_slice(&line.process);
            own.extend_from_slice(&line.message);
            Bytes::from(own)
        } else {
            if self.arena.capacity() - self.arena.len() < size {
                self.arena = BytesMut::with_capacity(ARENA_BLOCK);
            }
            self.arena.extend_from_slice(&line.source);
            self.arena.extend_from_slice(&line.process);
            self.arena.extend_from_slice(&line.message);
            self.arena.split().freeze()
        };
        Kept {
            received: line.received,
            time: line.time,
            facility: line.facility,
            severity: line.severity,
            source_len: line.source.len(),
            process_len: line.process.len(),
            seq: line.seq,
            bytes,
        }
    }

    /// The last `n` lines that `filter` keeps, oldest first.
    pub fn last(&self, n: usize, filter: &LineFilter) -> Vec<LogLine> {
        let Some(app) = &self.app else {
            return Vec::new();
        };
        let mut found: Vec<LogLine> = self
            .lines
            .iter()
            .rev()
            .map(|k| k.line(app))
            .filter(|l| filter.matches(l))
            .take(n)
            .collect();
        found.reverse();
        found
    }

    /// The lines after `seq` (their `LogLine::seq`) that `filter` keeps, oldest first: what a
    /// reader that last saw `seq` missed, as far back as history goes.
    pub fn after(&self, seq: u64, filter: &LineFilter) -> Vec<LogLine> {
        let Some(app) = &self.app else {
            return Vec::new();
        };
        let start = self.lines.partition_point(|k| k.seq <= seq);
        self.lines
            .range(start..)
            .map(|k| k.line(app))
            .filter(|l| filter.matches(l))
            .collect()
    }

    /// The highest `seq` that is no longer kept (0: nothing was ever let go): a reader
    /// whose position is below it missed lines history cannot give back.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Records that every line up to `seq` is gone (history restored at start, whose lines
    /// before the first kept one were let go in an earlier run).
    pub fn raise_floor(&mut self, seq: u64) {
        self.floor = self.floor.max(seq);
    }

    /// When the oldest kept line was received.
    pub fn oldest_received(&self) -> Option<crate::time::Timestamp> {
        self.lines.front().map(|k| k.received)
    }

    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// How many bytes of lines it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many lines have been pushed out (by age or by the byte budget) since it was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::tests::line;

    #[test]
    fn after_gives_what_a_reader_missed() {
        let mut h = History::new(3, 1 << 20);
        for seq in 1..=5 {
            h.push(&LogLine {
                seq,
                ..line(
                    "a",
                    "app",
                    if seq % 2 == 0 { "web.1" } else { "worker.1" },
                    "",
                    0,
                )
            });
        }
        let seqs = |lines: Vec<LogLine>| lines.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(h.after(3, &LineFilter::default())), [4, 5]);
        assert_eq!(
            seqs(h.after(0, &LineFilter::default())),
            [3, 4, 5],
            "as far back as kept"
        );
        assert_eq!(seqs(h.after(2, &LineFilter::default().dyno("web"))), [4]);
        assert!(h.after(5, &LineFilter::default()).is_empty());
        assert_eq!(h.floor(), 2, "lines 1 and 2 were pushed out");
    }

    #[test]
    fn kept_lines_do_not_pin_the_read_buffer() {
        let big = Bytes::from(vec![b'x'; 1 << 16]);
        let mut h = History::default();
        let l = LogLine {
            message: big.slice(10..20),
            ..line("a", "app", "web.1", "", 5)
        };
        h.push(&l);
        drop(l);
        assert!(big.is_unique());
        assert_eq!(
            &h.last(1, &LineFilter::default())[0].message[..],
            &[b'x'; 10]
        );
    }
    use proptest::prelude::*;

    #[test]
    fn keeps_the_last_lines_newest_last() {
        let mut h = History::new(3, 1 << 20);
        for i in 0..5 {
            h.push(&line("a", "app", "web.1", &format!("n={i}"), i));
        }
        let got: Vec<String> = h
            .last(10, &LineFilter::default())
            .iter()
            .map(|l| String::from_utf8_lossy(&l.message).into_owned())
            .collect();
        assert_eq!(got, ["n=2", "n=3", "n=4"]);
        assert_eq!(h.evicted(), 2);
        let two: Vec<i64> = h
            .last(2, &LineFilter::default())
            .iter()
            .map(|l| l.time.as_micros())
            .collect();
        assert_eq!(two, [3, 4]);
    }

    #[test]
    fn filters_before_counting() {
        let mut h = History::default();
        for i in 0..10 {
            let process = if i % 2 == 0 { "web.1" } else { "worker.1" };
            h.push(&line("a", "app", process, &format!("n={i}"), i));
        }
        let web: Vec<i64> = h
            .last(3, &LineFilter::default().dyno("web"))
            .iter()
            .map(|l| l.time.as_micros())
            .collect();
        assert_eq!(web, [4, 6, 8]);
    }

    #[test]
    fn the_byte_budget_evicts_too() {
        let mut h = History::new(100, 50);
        h.push(&line("a", "app", "web.1", &"x".repeat(30), 0));
        h.push(&line("a", "app", "web.1", &"y".repeat(30), 1));
        assert_eq!((h.len(), h.evicted()), (1, 1));
        h.push(&line("a", "app", "web.1", &"z".repeat(500), 2));
        assert_eq!(
            (h.len(), h.evicted()),
            (1, 2),
            "a line over the whole budget is not kept"
        );
    }

    proptest! {
        /// A model: the history is always the longest suffix of what was pushed that fits both
        /// bounds (lines over the byte budget never enter), and the counts add up.
        #[test]
        fn history_is_the_suffix_that_fits(sizes in proptest::collection::vec(0usize..40, 0..60), max_lines in 0usize..10, max_bytes in 0usize..120) {
            let mut h = History::new(max_lines, max_bytes);
            let mut model: Vec<(i64, usize)> = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                let l = line("a", "app", "", &"m".repeat(n), i as i64);
                h.push(&l);
                let size = 3 + n;
                if max_lines > 0 && size <= max_bytes {
                    model.push((i as i64, size));
                    while model.len() > max_lines || model.iter().map(|m| m.1).sum::<usize>() > max_bytes {
                        model.remove(0);
                    }
                }
            }
            let got: Vec<i64> = h.last(usize::MAX, &LineFilter::default()).iter().map(|l| l.time.as_micros()).collect();
            let want: Vec<i64> = model.iter().map(|m| m.0).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(h.bytes(), model.iter().map(|m| m.1).sum::<usize>());
            prop_assert_eq!(h.evicted() as usize + h.len(), sizes.len());
        }
    }
}
