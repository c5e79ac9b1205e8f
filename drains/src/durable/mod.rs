//! A durable drain's buffer: a disk-backed FIFO queue of opaque records (already formatted
//! syslog frames) with a byte budget, at-least-once delivery and crash recovery.
//!
//! # Guarantees
//!
//! - Records come out in the order they were pushed, each with a sequence number (`u64`,
//!   increasing, continued across reopen).
//! - Nothing is dropped until the budget is full; then the **oldest** records are dropped and
//!   counted (the caller reports them as an L10 line). The budget bounds the bytes the
//!   segment files take on disk (frames, headers, and records acknowledged but still in a
//!   segment not yet deleted: segments are an eighth of the budget, so that is a small part),
//!   dropping the oldest segment whole when the disk would go over, and within it the
//!   payload bytes kept. A
//!   record that alone is larger than the budget (or than 16 MiB) is dropped on its own
//!   (counted) and does not displace the others.
//! - [`DurableQueue::push`] writes to the OS at once and fsyncs when the last sync is
//!   [`SYNC_INTERVAL`] old or more; [`DurableQueue::sync`] (the caller's 100 ms timer, and a
//!   clean close; dropping the queue also syncs, best effort) fsyncs everything. A SIGKILL
//!   loses nothing the OS was given; a power loss loses at most the writes since the last sync.
//! - Acknowledgements (and drops) are persisted by the next sync. After a crash, records
//!   acknowledged since the last sync may be delivered again (duplicates, never gaps), and
//!   records dropped since the last sync are dropped, and counted, again.
//! - `open` enforces the budget it is given (it may be smaller than last time), dropping the
//!   oldest records and counting them.
//!
//! # Layout of the directory (format version 1)
//!
//! ```text
//! DIR/00000000000000000001.seg   segment files, named by their first sequence number (20 digits)
//! DIR/00000000000000004711.seg
//! DIR/ack                        the head: the first sequence number not yet acknowledged
//! DIR/lock                       empty; flock-ed while a queue is open on DIR
//! ```
//!
//! All integers are little-endian.
//!
//! A **segment** starts with a 20-byte header: the magic `LPXDQSEG`, the format version
//! (u32, [`FORMAT_VERSION`]) and its first sequence number (u64, equal to the one in its file
//! name). Then records, back to back, each
//!
//! ```text
//! length  u32   payload bytes (at most 16 MiB)
//! crc     u32   CRC-32 (IEEE 802.3, as zlib) over the 4 length bytes, then the payload
//! payload length bytes
//! ```
//!
//! The records of a segment have consecutive sequence numbers, starting at the header's. New
//! records go to the last segment; a new one is started when the last would grow past the
//! segment size (an eighth of the budget, from 4 KiB to 8 MiB),
//! or when everything in it is acknowledged and it is over 1 MiB. The sealed segments are
//! fsynced before the next one is created. A segment other than the last is deleted as soon
//! as every record in it is acknowledged or dropped; the last one is never deleted, so the
//! next sequence number can always be recovered from it.
//!
//! The **ack** file is 24 bytes: the magic `LPXDQACK`, the format version (u32), the head
//! (u64: every record with a smaller sequence number is acknowledged or dropped) and a CRC-32
//! of those 20 bytes. It is replaced atomically (written to `ack.tmp`, fsynced, renamed, the
//! directory fsynced), only by a sync and after the segments are fsynced, so it never points
//! past data that is not on disk. Without an ack file the head is the first record on disk.
//!
//! # Opening, and damage
//!
//! [`DurableQueue::open`] reads every record that is not acknowledged and checks its CRC.
//!
//! - A file of another format version (segment or ack) is [`DurableError::Version`]; a file
//!   with the wrong magic, a header that disagrees with its name, or a damaged ack file is
//!   [`DurableError::Corrupt`]. Nothing is deleted or rewritten in those cases.
//! - An incomplete last record of the last segment (a crash mid-write) is cut off: the file is
//!   truncated at the end of the last complete record. Not an error, not counted.
//! - A damaged record (CRC mismatch, or a length over 16 MiB) does not cost the intact records
//!   after it: open scans on for the next offset where a record whose length is possible and
//!   whose CRC holds starts (resynchronises), moves the records from there to a segment of
//!   their own (written and fsynced before anything is cut), and truncates the damaged one
//!   before the damage. The records lost are counted in [`DurableQueue::dropped_total`] (the
//!   caller tells them as L10): records carry no sequence number, so the split-off segment's
//!   first one is exact when the next segment's first is known and the records run clean to
//!   its end (the sequence numbers then have a gap, which [`DurableQueue::peek`] never spans),
//!   and otherwise estimated from the damaged bytes and the segment's mean record size (at
//!   least one). Damage with nothing intact after it cuts the segment there: in a segment
//!   followed by another, exactly the ones missing up to its first sequence number are
//!   counted; in the last segment, one.
//! - While the queue is open, a record read back with a bad CRC is
//!   [`DurableError::Corrupt`] from `peek`; reopening the queue cuts it off as above.

mod format;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use format::{
    ACK_FILE, ACK_TMP_FILE, FRAME_OVERHEAD, HEADER_LEN, LOCK_FILE, MAX_RECORD_LEN, ScanEnd,
    corrupt, decode_ack, decode_frame_header, encode_ack, encode_frame, encode_segment_header,
    frame_crc, io_error, parse_segment_file_name, segment_file_name,
};

/// The version of the on-disk format written in every segment header and in the ack file.
pub const FORMAT_VERSION: u32 = 1;
/// Pushes fsync when the last sync is this old or more; the caller's timer calls
/// [`DurableQueue::sync`] this often.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// A new segment is started when the last one would grow past this (at most).
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The smallest segment `open` sizes to a budget.
const MIN_SEGMENT_BYTES: u64 = 4 * 1024;

/// Segments of an eighth of the budget, within [`MIN_SEGMENT_BYTES`, `SEGMENT_BYTES`].
fn segment_bytes_for(budget: u64) -> u64 {
    (budget / 8).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES)
}
/// The first sequence number of a new queue.
const FIRST_SEQ: u64 = 1;

/// Why the queue could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// Reading or writing a file of the queue.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the queue is damaged beyond what opening repairs.
    #[error("{path}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file of the queue has a format version this build does not read.
    #[error("{path}: durable queue format version {found}, this build reads {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u32,
    },
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// Records in the file.
    count: u64,
    /// Length of the file (all complete records).
    len: u64,
    path: PathBuf,
}

impl Segment {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.count
    }

    fn payload_bytes(&self) -> u64 {
        self.len - HEADER_LEN - FRAME_OVERHEAD * self.count
    }
}

/// A record read ahead by `peek`, kept until it is acknowledged or dropped.
#[derive(Debug)]
struct Cached {
    seq: u64,
    /// The first sequence number of its segment.
    segment: u64,
    /// Where it ends in its segment.
    end: u64,
    payload: Bytes,
}

/// An open segment file for reading, with where its position is.
#[derive(Debug)]
struct SegmentReader {
    first_seq: u64,
    reader: BufReader<File>,
    pos: u64,
}

/// A disk-backed FIFO queue of records for one durable drain (see the module documentation).
/// Not `Clone`; one owner (a task, or a mutex) at a time.
pub struct DurableQueue {
    dir: PathBuf,
    budget: u64,
    segment_bytes: u64,
    /// Never empty; the last one is being written.
    segments: VecDeque<Segment>,
    /// The first unacknowledged record (or `next_seq`), in `segments[0]` ...
    head_seq: u64,
    /// ... at this offset (its length if all of it is consumed).
    head_offset: u64,
    next_seq: u64,
    len: u64,
    bytes: u64,
    dropped_total: u64,
    writer: File,
    unsynced: bool,
    last_sync: Instant,
    /// What the ack file says (`None`: there is none).
    persisted_head: Option<u64>,
    /// Records from the head on, read by `peek`.
    readahead: VecDeque<Cached>,
    readahead_bytes: u64,
    reader: Option<SegmentReader>,
    /// Held for its `flock`.
    _lock: File,
    /// Tests simulate a crash by dropping the queue without its final sync.
    sync_on_drop: bool,
    /// The most bytes the segment files may take (`open`; `None` for `open_with`, whose
    /// budget is the payload's only, as the model test checks).
    disk_budget: Option<u64>,
}

impl fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableQueue")
            .field("dir", &self.dir)
            .field("budget", &self.budget)
            .field("segments", &self.segments.len())
            .field("head_seq", &self.head_seq)
            .field("next_seq", &self.next_seq)
            .field("len", &self.len)
            .field("bytes", &self.bytes)
            .field("dropped_total", &self.dropped_total)
            .finish_non_exhaustive()
    }
}

impl DurableQueue {
    /// Opens (or creates) the queue in `dir` with a byte budget: the bytes its files take on
    /// disk (segments sized to an eighth of it, between 4 KiB and 8 MiB, so that what is
    /// acknowledged but not yet deleted with its segment stays a small part of it), and, within
    /// that, the payload bytes kept. Reads what is there; a torn last record (crash mid-write)
    /// is cut off, not an error.
    pub fn open(dir: &Path, budget_bytes: u64) -> Result<DurableQueue, DurableError> {
        let mut queue = Self::open_with(dir, budget_bytes, segment_bytes_for(budget_bytes))?;
        queue.disk_budget = Some(budget_bytes);
        queue.dropped_total += queue.evict_disk(0)?;
        Ok(queue)
    }

    /// Bytes of the queue's segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Drops the oldest segments, whole (their unacknowledged records counted), until the
    /// segment files and `incoming` more bytes fit the disk budget (when there is one).
    fn evict_disk(&mut self, incoming: u64) -> Result<u64, DurableError> {
        let Some(limit) = self.disk_budget else {
            return Ok(0);
        };
        let mut dropped = 0;
        while self.disk_bytes() + incoming > limit {
            if self.segments.len() > 1 {
                dropped += self.consume_head_segment()?;
            } else if self.tail().count > 0 {
                // Everything is in one segment: start the next, and this one can go.
                self.roll()?;
            } else {
                break;
            }
        }
        Ok(dropped)
    }

    /// [`DurableQueue::open`] with another segment size (tests use small ones).
    pub(crate) fn open_with(
        dir: &Path,
        budget_bytes: u64,
        segment_bytes: u64,
    ) -> Result<DurableQueue, DurableError> {
        make_private(dir)?;
        let lock = lock_dir(dir)?;
        let tmp = dir.join(ACK_TMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&tmp, e)),
        }
        let persisted_head = read_ack(dir)?;
        let ack_head = persisted_head.unwrap_or(0);

        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name();
            let name = name.to_str().unwrap_or_default();
            if let Some(first_seq) = parse_segment_file_name(name) {
                found.push((first_seq, entry.path()));
            } else if name.ends_with(".seg.tmp") {
                // A split cut short by a crash; the damaged segment is still whole.
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        found.sort_unstable_by_key(|(first_seq, _)| *first_seq);

        // Check every header first: a file of another version is never touched.
        let last = found.len().saturating_sub(1);
        for (i, (first_seq, path)) in found.iter().enumerate() {
            open_segment(path, *first_seq, i == last)?;
        }

        // Damage inside a segment: the intact records after it are split off into a segment
        // of their own, so that only what the damage took is lost (and counted below).
        let mut dropped_total = 0;
        let mut i = 0;
        while i < found.len() {
            let next_first = found.get(i + 1).map(|(first, _)| *first);
            let (first_seq, path) = &found[i];
            if let Some(split) = split_at_damage(dir, path, *first_seq, next_first)? {
                // The gap's numbers, but not those acknowledged before the damage was found.
                let (cut_at, next) = (split.cut_at, split.first_seq);
                dropped_total += next - cut_at.max(ack_head.min(next));
                found.insert(i + 1, (split.first_seq, split.path));
            }
            i += 1;
        }

        let mut segments = VecDeque::with_capacity(found.len());
        let mut head_offset = HEADER_LEN;
        let next_firsts: Vec<Option<u64>> = found
            .iter()
            .skip(1)
            .map(|(first_seq, _)| Some(*first_seq))
            .chain(std::iter::once(None))
            .collect();
        for ((first_seq, path), next_first) in found.into_iter().zip(next_firsts) {
            if let Some(next_first) = next_first
                && next_first <= ack_head
            {
                // Every record in it is acknowledged (a crash came before its deletion).
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                continue;
            }
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            let file_len = file.metadata().map_err(|e| io_error(&path, e))?.len();
            let scan = format::scan_segment(&path, &mut file, file_len, first_seq, ack_head)?;
            let end_seq = first_seq + scan.count;
            if let Some(next_first) = next_first
                && end_seq > next_first
            {
                return Err(corrupt(
                    &path,
                    0,
                    format!(
                        "its records run past sequence number {next_first}, where the next segment starts"
                    ),
                ));
            }
            if scan.end != ScanEnd::Clean {
                file.set_len(scan.valid_len)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error(&path, e))?;
                let lost = match (next_first, &scan.end) {
                    (Some(next_first), _) => next_first - end_seq.max(ack_head.min(next_first)),
                    (None, ScanEnd::Bad(_)) => u64::from(end_seq >= ack_head),
                    (None, _) => 0,
                };
                dropped_total += lost;
            }
            if segments.is_empty() {
                head_offset = scan.want_offset;
            }
            segments.push_back(Segment {
                first_seq,
                count: scan.count,
                len: scan.valid_len,
                path,
            });
        }

        let mut next_seq = segments.back().map_or(0, Segment::end_seq);
        let writer = if segments.is_empty() || ack_head > next_seq {
            // A new queue, or (after damage) one whose acknowledged records are all gone.
            next_seq = next_seq.max(ack_head).max(FIRST_SEQ);
            let (segment, file) = create_segment(dir, next_seq)?;
            if segments.is_empty() {
                head_offset = HEADER_LEN;
            }
            segments.push_back(segment);
            file
        } else {
            let tail = segments.back().map_or(dir, |s| s.path.as_path());
            let mut file = OpenOptions::new()
                .write(true)
                .open(tail)
                .map_err(|e| io_error(tail, e))?;
            let end = segments.back().map_or(HEADER_LEN, |s| s.len);
            file.seek(SeekFrom::Start(end))
                .map_err(|e| io_error(tail, e))?;
            file
        };

        let head_seq = segments
            .front()
            .map_or(next_seq, |s| ack_head.clamp(s.first_seq, s.end_seq()));
        let mut queue = DurableQueue {
            dir: dir.to_path_buf(),
            budget: budget_bytes,
            segment_bytes,
            segments,
            head_seq,
            head_offset,
            next_seq,
            len: 0,
            bytes: 0,
            dropped_total,
            writer,
            unsynced: false,
            last_sync: Instant::now(),
            persisted_head,
            readahead: VecDeque::new(),
            readahead_bytes: 0,
            reader: None,
            _lock: lock,
            sync_on_drop: true,
            disk_budget: None,
        };
        queue.normalize()?;
        let mut segs = queue.segments.iter();
        if let Some(first) = segs.next() {
            queue.len = first.end_seq() - queue.head_seq;
            queue.bytes = queue.head_remaining_bytes();
        }
        for s in segs {
            queue.len += s.count;
            queue.bytes += s.payload_bytes();
        }
        // Over budget after a crash (drops since the last sync are back) or a smaller budget.
        queue.dropped_total += queue.evict(budget_bytes)?;
        Ok(queue)
    }

    /// Appends records. Never blocks on the network; writes to the OS at once, fsyncs when the
    /// last sync is twice [`SYNC_INTERVAL`] old or more (the caller's timer is late; it calls
    /// `sync()` or `begin_sync()` every interval). If the budget
    /// would be exceeded, drops the oldest unacknowledged records first and counts them.
    /// Returns how many were dropped.
    pub fn push(&mut self, records: &[&[u8]]) -> Result<u64, DurableError> {
        let limit = self.budget.min(MAX_RECORD_LEN);
        let fits = |r: &[u8]| r.len() as u64 <= limit;
        // The newest records that fit in the budget together; older ones would be dropped
        // right after being written, so they are dropped now.
        let mut start = records.len();
        let mut kept = 0u64;
        let mut kept_bytes = 0u64;
        let mut overflowed = false;
        for (i, r) in records.iter().enumerate().rev() {
            if !fits(r) {
                continue;
            }
            if kept_bytes + r.len() as u64 > self.budget {
                overflowed = true;
                break;
            }
            kept_bytes += r.len() as u64;
            kept += 1;
            start = i;
        }
        let mut dropped = records.len() as u64 - kept;
        if kept > 0 {
            dropped += if overflowed {
                self.evict_all()?
            } else {
                self.evict(self.budget - kept_bytes)?
            };
        }
        if kept > 0 {
            // On disk: each record's frame, and a segment header if they start one.
            let incoming = kept * FRAME_OVERHEAD + kept_bytes + HEADER_LEN;
            dropped += self.evict_disk(incoming)?;
        }
        self.dropped_total += dropped;
        if kept > 0 {
            self.append(records[start..].iter().copied().filter(|r| fits(r)))?;
        }
        // The caller's timer syncs every `SYNC_INTERVAL`; a push syncs itself only when that
        // timer is late, so that the fsync stays off the path records take.
        if self.last_sync.elapsed() >= 2 * SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(dropped)
    }

    /// Forces an fsync of everything pushed so far, and persists the acknowledged position
    /// (the caller's 100 ms timer and a clean close call it).
    pub fn sync(&mut self) -> Result<(), DurableError> {
        if self.unsynced {
            let path = self.tail().path.clone();
            self.writer.sync_data().map_err(|e| io_error(&path, e))?;
            self.unsynced = false;
        }
        if self.persisted_head != Some(self.head_seq) {
            write_ack(&self.dir, self.head_seq)?;
            self.persisted_head = Some(self.head_seq);
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The fsync half of [`DurableQueue::sync`], taken out so that it runs while the queue
    /// goes on taking records: the last segment's data written so far, on a second handle
    /// to its file. `None` when nothing waits for an fsync. Records written meanwhile wait for
    /// the next one; [`DurableQueue::finish_sync`] completes it (the acknowledged position).
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>, DurableError> {
        self.last_sync = Instant::now();
        if !self.unsynced {
            return Ok(None);
        }
        let path = self.tail().path.clone();
        let file = self.writer.try_clone().map_err(|e| io_error(&path, e))?;
        self.unsynced = false;
        Ok(Some(PendingSync { file, path }))
    }

    /// Completes a sync begun with [`DurableQueue::begin_sync`]: a failed fsync leaves the
    /// data to the next sync; then the acknowledged position is persisted, as `sync` does.
    pub fn finish_sync(&mut self, fsynced: Result<(), DurableError>) -> Result<(), DurableError> {
        if let Err(e) = fsynced {
            self.unsynced = true;
            return Err(e);
        }
        if self.persisted_head != Some(self.head_seq) {
            write_ack(&self.dir, self.head_seq)?;
            self.persisted_head = Some(self.head_seq);
        }
        Ok(())
    }

    /// Up to `max_records` / `max_bytes` (at least one record if any) of the oldest
    /// unacknowledged records, without removing them (a delivery attempt). Returns
    /// (first sequence number, records); the sequence numbers are consecutive, so acknowledging
    /// them all is `ack(first + records.len())`. Empty, with the next sequence number, if the
    /// queue is.
    pub fn peek(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(u64, Vec<Bytes>), DurableError> {
        let max_records = max_records.max(1);
        let max_bytes = max_bytes as u64;
        while self.readahead.len() < max_records
            && (self.readahead.is_empty() || self.readahead_bytes <= max_bytes)
        {
            if !self.read_ahead_one()? {
                break;
            }
        }
        let Some(first) = self.readahead.front().map(|c| c.seq) else {
            return Ok((self.head_seq, Vec::new()));
        };
        let mut out = Vec::new();
        let mut total = 0u64;
        for (c, seq) in self.readahead.iter().zip(first..) {
            let len = c.payload.len() as u64;
            if out.len() >= max_records
                || c.seq != seq
                || (!out.is_empty() && total + len > max_bytes)
            {
                break;
            }
            total += len;
            out.push(c.payload.clone());
        }
        Ok((first, out))
    }

    /// Marks every record with sequence number < `upto` as delivered; space is reclaimed
    /// (whole segment files deleted when fully acknowledged). The position is persisted by the
    /// next sync.
    pub fn ack(&mut self, upto: u64) -> Result<(), DurableError> {
        while self.len > 0 && self.head_seq < upto {
            if self.segments.len() > 1 && self.segments[0].end_seq() <= upto {
                self.consume_head_segment()?;
            } else {
                self.consume_one()?;
            }
        }
        Ok(())
    }

    /// Unacknowledged records.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is no unacknowledged record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unacknowledged payload bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records dropped since open: for the budget, and damaged ones found by `open`.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    fn tail(&self) -> &Segment {
        // `segments` is never empty.
        &self.segments[self.segments.len() - 1]
    }

    /// Payload bytes of `segments[0]` from the head on.
    fn head_remaining_bytes(&self) -> u64 {
        let s = &self.segments[0];
        let consumed_records = self.head_seq - s.first_seq;
        let consumed_bytes = self.head_offset - HEADER_LEN - FRAME_OVERHEAD * consumed_records;
        s.payload_bytes() - consumed_bytes
    }

    /// Moves the head off fully consumed segments, deleting them (never the last).
    fn normalize(&mut self) -> Result<(), DurableError> {
        while self.segments.len() > 1 && self.head_offset >= self.segments[0].len {
            if let Some(old) = self.segments.pop_front() {
                if self
                    .reader
                    .as_ref()
                    .is_some_and(|r| r.first_seq == old.first_seq)
                {
                    self.reader = None;
                }
                match fs::remove_file(&old.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&old.path, e)),
                }
            }
            self.head_seq = self.segments[0].first_seq;
            self.head_offset = HEADER_LEN;
        }
        Ok(())
    }

    /// Consumes (acknowledges or drops) every remaining record of `segments[0]`, which is not
    /// the last segment. Returns how many.
    fn consume_head_segment(&mut self) -> Result<u64, DurableError> {
        let s = &self.segments[0];
        let (first_seq, end_seq, len) = (s.first_seq, s.end_seq(), s.len);
        let count = end_seq - self.head_seq;
        self.len -= count;
        self.bytes -= self.head_remaining_bytes();
        while self
            .readahead
            .front()
            .is_some_and(|c| c.segment == first_seq)
        {
            if let Some(c) = self.readahead.pop_front() {
                self.readahead_bytes -= c.payload.len() as u64;
            }
        }
        self.head_seq = end_seq;
        self.head_offset = len;
        self.normalize()?;
        Ok(count)
    }

    /// Consumes (acknowledges or drops) the head record; the queue is not empty.
    fn consume_one(&mut self) -> Result<(), DurableError> {
        let payload_len = if let Some(c) = self.readahead.pop_front() {
            let len = c.payload.len() as u64;
            self.readahead_bytes -= len;
            self.head_offset = c.end;
            len
        } else {
            let (len, _) = self.read_record(0, self.head_offset, false)?;
            self.head_offset += FRAME_OVERHEAD + len;
            len
        };
        self.head_seq += 1;
        self.len -= 1;
        self.bytes -= payload_len;
        self.normalize()
    }

    /// Drops the oldest records until at most `target` payload bytes are kept.
    fn evict(&mut self, target: u64) -> Result<u64, DurableError> {
        let mut dropped = 0;
        while self.len > 0 && self.bytes > target {
            if self.segments.len() > 1 && self.bytes - self.head_remaining_bytes() > target {
                dropped += self.consume_head_segment()?;
            } else {
                self.consume_one()?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Drops every record.
    fn evict_all(&mut self) -> Result<u64, DurableError> {
        let dropped = self.len;
        self.ack(self.next_seq)?;
        Ok(dropped)
    }

    /// Writes records (each fitting the limits) to the last segment, starting new ones as needed.
    fn append<'a>(&mut self, records: impl Iterator<Item = &'a [u8]>) -> Result<(), DurableError> {
        {
            let tail = self.tail();
            if self.len == 0 && tail.count > 0 && tail.len >= self.segment_bytes / 8 {
                self.roll()?;
            }
        }
        let mut buf = Vec::new();
        let mut count = 0;
        let mut payload = 0;
        for r in records {
            let frame = FRAME_OVERHEAD + r.len() as u64;
            let used = self.tail().len + buf.len() as u64;
            if used > HEADER_LEN && used + frame > self.segment_bytes {
                self.write_out(&mut buf, &mut count, &mut payload)?;
                self.roll()?;
            }
            encode_frame(&mut buf, r);
            count += 1;
            payload += r.len() as u64;
        }
        self.write_out(&mut buf, &mut count, &mut payload)
    }

    /// Writes `buf` (`count` frames, `payload` payload bytes) at the end of the last segment.
    fn write_out(
        &mut self,
        buf: &mut Vec<u8>,
        count: &mut u64,
        payload: &mut u64,
    ) -> Result<(), DurableError> {
        if buf.is_empty() {
            return Ok(());
        }
        let last = self.segments.len() - 1;
        if let Err(e) = self.writer.write_all(buf) {
            // Cut off what part of it was written, so the next write starts on a boundary.
            let tail = &self.segments[last];
            let _ = self.writer.set_len(tail.len);
            let _ = self.writer.seek(SeekFrom::Start(tail.len));
            self.reader = None;
            return Err(io_error(&tail.path, e));
        }
        let tail = &mut self.segments[last];
        tail.len += buf.len() as u64;
        tail.count += *count;
        self.next_seq += *count;
        self.len += *count;
        self.bytes += *payload;
        self.unsynced = true;
        buf.clear();
        *count = 0;
        *payload = 0;
        Ok(())
    }

    /// Seals the last segment (fsync) and starts a new one at `next_seq`.
    fn roll(&mut self) -> Result<(), DurableError> {
        if self.unsynced {
            let path = self.tail().path.clone();
            self.writer.sync_data().map_err(|e| io_error(&path, e))?;
            self.unsynced = false;
        }
        let (segment, file) = create_segment(&self.dir, self.next_seq)?;
        self.segments.push_back(segment);
        self.writer = file;
        self.normalize()
    }

    /// Reads the next record after the read-ahead (or the head) into the read-ahead. Returns
    /// false if there is none.
    fn read_ahead_one(&mut self) -> Result<bool, DurableError> {
        if self.len == self.readahead.len() as u64 {
            return Ok(false);
        }
        let (mut index, mut offset, mut seq) = match self.readahead.back() {
            Some(c) => {
                let index = self
                    .segments
                    .iter()
                    .position(|s| s.first_seq == c.segment)
                    .unwrap_or(0);
                (index, c.end, c.seq + 1)
            }
            None => (0, self.head_offset, self.head_seq),
        };
        while offset >= self.segments[index].len {
            index += 1;
            if index == self.segments.len() {
                return Ok(false);
            }
            offset = HEADER_LEN;
            seq = self.segments[index].first_seq;
        }
        let (len, payload) = self.read_record(index, offset, true)?;
        let payload = payload.unwrap_or_default();
        self.readahead_bytes += len;
        self.readahead.push_back(Cached {
            seq,
            segment: self.segments[index].first_seq,
            end: offset + FRAME_OVERHEAD + len,
            payload,
        });
        Ok(true)
    }

    /// Reads the record at `offset` of `segments[index]`: its payload length, and its payload
    /// (CRC checked) if `with_payload`.
    fn read_record(
        &mut self,
        index: usize,
        offset: u64,
        with_payload: bool,
    ) -> Result<(u64, Option<Bytes>), DurableError> {
        let segment = &self.segments[index];
        let path = segment.path.as_path();
        let segment_len = segment.len;
        let reader = match &mut self.reader {
            Some(r) if r.first_seq == segment.first_seq => r,
            slot => {
                let file = File::open(path).map_err(|e| io_error(path, e))?;
                slot.insert(SegmentReader {
                    first_seq: segment.first_seq,
                    reader: BufReader::with_capacity(64 * 1024, file),
                    pos: 0,
                })
            }
        };
        if reader.pos != offset {
            let result = reader
                .reader
                .seek_relative(offset.wrapping_sub(reader.pos) as i64);
            if let Err(e) = result {
                self.reader = None;
                return Err(io_error(path, e));
            }
            reader.pos = offset;
        }
        let mut h = [0u8; FRAME_OVERHEAD as usize];
        let result = reader.reader.read_exact(&mut h);
        if let Err(e) = result {
            self.reader = None;
            return Err(io_error(path, e));
        }
        reader.pos += FRAME_OVERHEAD;
        let (len, stored) = decode_frame_header(h);
        if len > MAX_RECORD_LEN || offset + FRAME_OVERHEAD + len > segment_len {
            self.reader = None;
            return Err(corrupt(
                path,
                offset,
                format!("record length {len} is impossible"),
            ));
        }
        if !with_payload {
            return Ok((len, None));
        }
        let mut payload = vec![0u8; len as usize];
        if let Err(e) = reader.reader.read_exact(&mut payload) {
            self.reader = None;
            return Err(io_error(path, e));
        }
        reader.pos += len;
        if frame_crc([h[0], h[1], h[2], h[3]], &payload) != stored {
            return Err(corrupt(path, offset, "record CRC mismatch"));
        }
        Ok((len, Some(Bytes::from(payload))))
    }

    /// Drops the queue as a crash would: without the final sync.
    #[cfg(test)]
    fn crash(mut self) {
        self.sync_on_drop = false;
    }
}

/// An fsync begun by [`DurableQueue::begin_sync`], to run on a thread of its own.
#[derive(Debug)]
pub struct PendingSync {
    file: File,
    path: PathBuf,
}

impl PendingSync {
    /// The fsync (blocking).
    pub fn run(self) -> Result<(), DurableError> {
        self.file.sync_data().map_err(|e| io_error(&self.path, e))
    }
}

impl Drop for DurableQueue {
    fn drop(&mut self) {
        if self.sync_on_drop {
            // Best effort: a clean close calls `sync` itself and sees its errors.
            let _ = self.sync();
        }
    }
}

/// Looks for damage in the segment at `path` (header checked) and, when intact records follow
/// it, moves them to a new segment and cuts this one before the damage. Records carry no
/// sequence number, so the new segment's first is found from what follows: exactly, when the
/// next segment's first sequence number `next_first` is known and the records run clean to the
/// file's end; otherwise it is estimated from the damaged bytes and the segment's mean record
/// size (at least one record lost), within `next_first`. Returns the new segment.
fn split_at_damage(
    dir: &Path,
    path: &Path,
    first_seq: u64,
    next_first: Option<u64>,
) -> Result<Option<Split>, DurableError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let scan = format::scan_segment(path, &mut file, file_len, first_seq, 0)?;
    if !matches!(scan.end, ScanEnd::Bad(_)) {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(file_len).unwrap_or(0));
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| io_error(path, e))?;
    let Some(found) = format::resync(&bytes, scan.valid_len) else {
        return Ok(None);
    };
    let (kept, after) = (scan.count, found.count);
    let damaged = found.start - scan.valid_len;
    let intact_bytes = (scan.valid_len - HEADER_LEN) + (found.end - found.start);
    let mean = (intact_bytes / (kept + after).max(1)).max(FRAME_OVERHEAD);
    let estimate = ((damaged + mean / 2) / mean).max(1);
    let lost = match next_first {
        Some(next) => {
            let room = next.saturating_sub(first_seq + kept + after);
            if found.end == file_len {
                room
            } else {
                estimate.min(room.saturating_sub(1))
            }
        }
        None => estimate,
    };
    if lost == 0 {
        // The numbers leave no room for the records found: leave it to the cut.
        return Ok(None);
    }
    let split_first = first_seq + kept + lost;
    let split_path = dir.join(segment_file_name(split_first));
    let tmp = dir.join(format!("{}.tmp", segment_file_name(split_first)));
    let mut out = Vec::with_capacity((HEADER_LEN + file_len - found.start) as usize);
    out.extend_from_slice(&encode_segment_header(split_first));
    out.extend_from_slice(&bytes[found.start as usize..]);
    let mut split = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    split
        .write_all(&out)
        .and_then(|()| split.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    fs::rename(&tmp, &split_path).map_err(|e| io_error(&split_path, e))?;
    sync_dir(dir)?;
    // Cut only once the records after the damage are safe in their own file.
    file.set_len(scan.valid_len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))?;
    tracing::warn!(
        segment = %path.display(),
        offset = scan.valid_len,
        damaged_bytes = damaged,
        records_lost = lost,
        records_kept_after = after,
        "durable queue: damaged records skipped; the intact ones after them are kept"
    );
    Ok(Some(Split {
        cut_at: first_seq + kept,
        first_seq: split_first,
        path: split_path,
    }))
}

/// A segment split at damage: the damaged one now ends before `cut_at`; the records after the
/// damage are in `path`, from `first_seq` on (the numbers between were lost).
#[derive(Debug)]
struct Split {
    cut_at: u64,
    first_seq: u64,
    path: PathBuf,
}

/// Lines of an app are its own: the queue's directories are 0700 and its files 0600, those
/// made now and those an older version left readable.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and the directories above it that are missing) for the owner alone, and
/// takes back what an older version left open to others.
fn make_private(dir: &Path) -> Result<(), DurableError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)))
        .map_err(|e| io_error(dir, e))?;
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| io_error(&path, e))?;
        if meta.is_file() && meta.permissions().mode() & 0o777 != FILE_MODE {
            fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE))
                .map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// Takes the directory's lock file, or fails if another queue holds it.
fn lock_dir(dir: &Path) -> Result<File, DurableError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io_error(
            &path,
            std::io::Error::new(
                ErrorKind::WouldBlock,
                "the durable queue is open elsewhere (its lock file is locked)",
            ),
        )),
        Err(fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
    }
}

/// The head in the ack file, if there is one.
fn read_ack(dir: &Path) -> Result<Option<u64>, DurableError> {
    let path = dir.join(ACK_FILE);
    match fs::read(&path) {
        Ok(bytes) => decode_ack(&path, &bytes).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// Replaces the ack file atomically.
fn write_ack(dir: &Path, head: u64) -> Result<(), DurableError> {
    let tmp = dir.join(ACK_TMP_FILE);
    let path = dir.join(ACK_FILE);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    file.write_all(&encode_ack(head))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
    sync_dir(dir)
}

/// Checks a segment file's header. A last segment cut short inside its header
/// (a crash while it was created) gets its header rewritten.
fn open_segment(path: &Path, first_seq: u64, last: bool) -> Result<(), DurableError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let expected = encode_segment_header(first_seq);
    if len < HEADER_LEN {
        let mut start = Vec::new();
        file.read_to_end(&mut start)
            .map_err(|e| io_error(path, e))?;
        let unfinished = expected.starts_with(&start) || start.iter().all(|&b| b == 0);
        if !last || !unfinished {
            return Err(corrupt(
                path,
                0,
                format!("{len} bytes: shorter than a segment header"),
            ));
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&expected))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, e))?;
        return Ok(());
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut header)
        .map_err(|e| io_error(path, e))?;
    format::check_segment_header(path, &header, first_seq)
}

/// Creates an empty segment starting at `first_seq`, durably (header and directory entry).
fn create_segment(dir: &Path, first_seq: u64) -> Result<(Segment, File), DurableError> {
    let path = dir.join(segment_file_name(first_seq));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.write_all(&encode_segment_header(first_seq))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    let segment = Segment {
        first_seq,
        count: 0,
        len: HEADER_LEN,
        path,
    };
    Ok((segment, file))
}

/// Makes a directory's entries (creations, renames) durable.
fn sync_dir(dir: &Path) -> Result<(), DurableError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
