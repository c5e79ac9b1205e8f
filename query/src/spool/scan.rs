//! `Scan`: an app's kept lines, read segment by segment in the order they were appended,
//! skipping the segments whose time range misses the window, and damage in the others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use logplex::{AppName, LogLine};

use super::format::Record;
use super::reader::RecordReader;
use super::segment::SegmentMeta;
use super::{Counters, Position, SpoolError};

/// An iterator over an app's kept lines, in the order they were appended (arrival order),
/// those whose event time (`LogLine::time`) is in the window. Lines are slices of 4 MiB read
/// buffers: a caller that keeps lines long should keep `LogLine::compacted` copies.
#[derive(Debug)]
pub struct Scan {
    app: AppName,
    segments: VecDeque<SegmentMeta>,
    since: Option<i64>,
    until: Option<i64>,
    /// Where to start in the first segment (a resume position).
    start: Option<u64>,
    current: Option<(RecordReader, u64)>,
    position: u64,
    damaged: u64,
    counters: Arc<Counters>,
    failed: bool,
}

impl Scan {
    pub(super) fn new(
        app: AppName,
        segments: Vec<SegmentMeta>,
        window: (Option<i64>, Option<i64>),
        start: Option<u64>,
        counters: Arc<Counters>,
    ) -> Scan {
        let position = segments
            .first()
            .map_or(0, |s| s.base)
            .max(start.unwrap_or(0));
        Scan {
            app,
            segments: segments.into(),
            since: window.0,
            until: window.1,
            start,
            current: None,
            position,
            damaged: 0,
            counters,
            failed: false,
        }
    }

    /// The position just past the last line returned (or where the scan starts): where a
    /// reader that stops here resumes (`Spool::scan_from`).
    pub fn position(&self) -> Position {
        Position(self.position)
    }

    /// Damaged stretches this scan skipped.
    pub fn damaged(&self) -> u64 {
        self.damaged
    }

    /// Opens the next segment that may hold lines in the window; `false` when none is left.
    fn open_next(&mut self) -> Result<bool, SpoolError> {
        while let Some(seg) = self.segments.pop_front() {
            if !seg.overlaps(self.since, self.until) {
                self.position = self.position.max(seg.end());
                continue;
            }
            let Some(mut reader) = RecordReader::open(&seg.path, seg.base, Some(seg.len))? else {
                continue;
            };
            self.counters
                .segments_opened
                .fetch_add(1, Ordering::Relaxed);
            if !self.app.as_str().is_empty() {
                reader.set_app(self.app.clone());
            }
            if let Some(start) = self.start.take()
                && start > seg.base
            {
                reader.seek(start - seg.base)?;
            }
            self.position = self.position.max(seg.base + reader.offset());
            self.current = Some((reader, seg.base));
            return Ok(true);
        }
        Ok(false)
    }

    fn finish_segment(&mut self) {
        if let Some((reader, base)) = self.current.take() {
            self.damaged += reader.damaged;
            self.counters
                .damaged
                .fetch_add(reader.damaged, Ordering::Relaxed);
            self.position = self.position.max(base + reader.offset());
        }
    }

    fn in_window(&self, line: &LogLine) -> bool {
        let t = line.time.as_micros();
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    fn next_line(&mut self) -> Result<Option<LogLine>, SpoolError> {
        loop {
            let Some((reader, base)) = self.current.as_mut() else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            match reader.next_record()? {
                Some((Record::Line(line), end)) => {
                    self.position = *base + end;
                    if self.in_window(&line) {
                        return Ok(Some(line));
                    }
                }
                Some((Record::Seal(_), end)) => self.position = *base + end,
                None => self.finish_segment(),
            }
        }
    }
}

impl Iterator for Scan {
    type Item = Result<LogLine, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_line() {
            Ok(line) => line.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
