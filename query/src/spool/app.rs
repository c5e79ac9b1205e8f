//! `AppSpool`: one app's segments, the last one open for appending. Rolling, sealing,
//! syncing and retention happen here; the `Spool` holds one of these per app behind a lock.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use logplex::{AppName, LogLine, Timestamp};

use super::format::{self, io_error, parse_segment_file_name};
use super::segment::{self, SegmentMeta};
use super::{AppSpoolStats, SYNC_INTERVAL, SpoolConfig, SpoolError};

/// A file this short that fails its header check holds no records (a crash while a segment
/// was being created): it is deleted at open.
const TORN_HEADER_MAX: u64 = (format::HEADER_FIXED + format::MAX_NAME_LEN + 4) as u64;

/// One app's spool (see the module documentation).
#[derive(Debug)]
pub(super) struct AppSpool {
    dir: PathBuf,
    pub(super) name: AppName,
    /// Oldest first; the last one is written to (unless sealed, then a new one comes first).
    segments: VecDeque<SegmentMeta>,
    writer: Option<File>,
    buf: Vec<u8>,
    dirty: bool,
    last_sync: Instant,
    /// Damaged stretches found when it was opened.
    pub(super) damaged: u64,
}

impl AppSpool {
    /// Opens the app's directory (none yet: an empty spool), reading sealed segments from
    /// their seals and the last one through, whose torn tail, if any, is cut off.
    pub(super) fn open(dir: PathBuf) -> Result<AppSpool, SpoolError> {
        let mut app = AppSpool {
            dir,
            name: AppName::from(""),
            segments: VecDeque::new(),
            writer: None,
            buf: Vec::new(),
            dirty: false,
            last_sync: Instant::now(),
            damaged: 0,
        };
        let bases = list_segments(&app.dir)?;
        for (i, base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            app.load_segment(*base, last)?;
        }
        if let Some(last) = app.segments.back()
            && !last.sealed
        {
            app.writer = Some(open_append(&last.path)?);
        }
        Ok(app)
    }

    fn load_segment(&mut self, base: u64, last: bool) -> Result<(), SpoolError> {
        let path = self.dir.join(format::segment_file_name(base));
        let loaded = match segment::SegmentMeta::load(&path, base, !last) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(SpoolError::Corrupt { .. }) if last && file_len(&path)? <= TORN_HEADER_MAX => {
                tracing::warn!(path = %path.display(), "spool: a torn segment header, removed");
                return segment::remove(&path);
            }
            Err(e) => return Err(e),
        };
        self.damaged += loaded.damaged;
        if last && file_len(&path)? > loaded.meta.len {
            tracing::warn!(path = %path.display(), at = loaded.meta.len, "spool: torn tail cut off");
            segment::truncate(&path, loaded.meta.len)?;
        }
        self.name = loaded.app;
        self.segments.push_back(loaded.meta);
        Ok(())
    }

    /// Appends `lines` (in this order), rolling to a new segment past the configured size.
    /// Written to the OS at once; fsynced if the last sync is [`SYNC_INTERVAL`] old.
    pub(super) fn append(
        &mut self,
        lines: &[LogLine],
        config: &SpoolConfig,
    ) -> Result<(), SpoolError> {
        let Some(first) = lines.first() else {
            return Ok(());
        };
        if self.name.as_str().is_empty() {
            self.name = first.app.clone();
        }
        if self.writer.is_none() {
            self.start_segment()?;
        }
        self.buf.clear();
        for line in lines {
            let mark = self.buf.len();
            format::encode_line(&mut self.buf, line);
            let Some(active) = self.segments.back() else {
                return Err(SpoolError::Internal("no active segment"));
            };
            let grown = active.len + self.buf.len() as u64;
            if active.lines > 0 && grown > config.segment_bytes {
                self.write_out(mark)?;
                self.start_segment()?;
                self.retain_bytes(config)?;
            }
            if let Some(active) = self.segments.back_mut() {
                active.note(line);
            }
        }
        self.write_out(self.buf.len())?;
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::new();
        }
        self.sync_if_due()
    }

    /// Writes the first `n` bytes of the buffer to the active segment.
    fn write_out(&mut self, n: usize) -> Result<(), SpoolError> {
        let (Some(writer), Some(active)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(SpoolError::Internal("no active segment"));
        };
        writer
            .write_all(&self.buf[..n])
            .map_err(|e| io_error(&active.path, e))?;
        active.len += n as u64;
        self.buf.drain(..n);
        self.dirty = true;
        Ok(())
    }

    /// Seals the active segment (if any, and not yet sealed) and starts a new one after it.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        if let (Some(mut writer), Some(active)) = (self.writer.take(), self.segments.back_mut()) {
            let mut seal = Vec::with_capacity(format::SEAL_FRAME);
            format::encode_seal(&mut seal, &active.seal());
            writer
                .write_all(&seal)
                .and_then(|()| writer.sync_data())
                .map_err(|e| io_error(&active.path, e))?;
            active.len += seal.len() as u64;
            active.sealed = true;
        }
        let base = self.segments.back().map_or(0, SegmentMeta::end);
        super::make_dir(&self.dir)?;
        let (meta, file) = SegmentMeta::create(&self.dir, base, &self.name)?;
        sync_dir(&self.dir)?;
        self.segments.push_back(meta);
        self.writer = Some(file);
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Fsyncs the active segment if anything was written since the last sync.
    pub(super) fn sync(&mut self) -> Result<(), SpoolError> {
        if !self.dirty {
            return Ok(());
        }
        if let (Some(writer), Some(active)) = (self.writer.as_ref(), self.segments.back()) {
            writer.sync_data().map_err(|e| io_error(&active.path, e))?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// `sync`, when the last one is [`SYNC_INTERVAL`] old or more.
    pub(super) fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        if self.dirty && self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(())
    }

    /// Deletes whole oldest segments older than `max_age` (by the newest received time in
    /// them) and past `max_bytes_per_app`. The active segment, if expired, is rolled first
    /// (the new one, empty, keeps the position going).
    pub(super) fn retain(
        &mut self,
        now: Timestamp,
        config: &SpoolConfig,
    ) -> Result<(), SpoolError> {
        let max_age = i64::try_from(config.max_age.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now.as_micros().saturating_sub(max_age);
        while let Some(first) = self.segments.front() {
            if first.received_max >= cutoff || (first.lines == 0 && self.segments.len() == 1) {
                break;
            }
            if self.segments.len() == 1 {
                self.start_segment()?;
            }
            self.remove_oldest()?;
        }
        self.retain_bytes(config)
    }

    fn retain_bytes(&mut self, config: &SpoolConfig) -> Result<(), SpoolError> {
        let mut total: u64 = self.segments.iter().map(|s| s.len).sum();
        while total > config.max_bytes_per_app && self.segments.len() > 1 {
            total -= self.segments.front().map_or(0, |s| s.len);
            self.remove_oldest()?;
        }
        Ok(())
    }

    /// Deletes the oldest sealed segments that end at or before `through` (what a consumer
    /// has made durable elsewhere, as the index has); returns how many.
    pub(super) fn release_through(&mut self, through: u64) -> Result<usize, SpoolError> {
        // The segment being written, when a consumer has every line of it and it has grown
        // past ROLL_COVERED: sealed and replaced by an empty one, so that it can go too (else
        // it would stay until the next segment starts, up to a whole segment of kept lines).
        let mut limit = through;
        let covered = self.segments.back().is_some_and(|a| {
            !a.sealed && a.lines > 0 && a.len >= ROLL_COVERED && a.end() <= through
        });
        if covered {
            self.start_segment()?;
            let rolled = self
                .segments
                .len()
                .checked_sub(2)
                .and_then(|i| self.segments.get(i));
            // Past its lines there is only its seal.
            limit = limit.max(rolled.map_or(0, SegmentMeta::end));
        }
        let mut n = 0;
        while let Some(first) = self.segments.front() {
            if !first.sealed || first.end() > limit || self.segments.len() == 1 {
                break;
            }
            self.remove_oldest()?;
            n += 1;
        }
        Ok(n)
    }

    fn remove_oldest(&mut self) -> Result<(), SpoolError> {
        if let Some(oldest) = self.segments.pop_front() {
            segment::remove(&oldest.path)?;
        }
        Ok(())
    }

    /// The segments as they are now, for a scan.
    pub(super) fn snapshot(&self) -> Vec<SegmentMeta> {
        self.segments.iter().cloned().collect()
    }

    /// What it keeps.
    pub(super) fn stats(&self) -> AppSpoolStats {
        let with_lines = || self.segments.iter().filter(|s| s.lines > 0);
        AppSpoolStats {
            lines: self.segments.iter().map(|s| s.lines).sum(),
            bytes: self.segments.iter().map(|s| s.len).sum(),
            segments: self.segments.len(),
            damaged: self.damaged,
            oldest: with_lines()
                .map(|s| s.time_min)
                .min()
                .map(Timestamp::from_micros),
            newest: with_lines()
                .map(|s| s.time_max)
                .max()
                .map(Timestamp::from_micros),
            end: self.segments.back().map_or(0, SegmentMeta::end),
        }
    }
}

impl Drop for AppSpool {
    /// Syncs what was written, best effort (a clean close calls `Spool::sync` first).
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// The base positions of the segment files in `dir`, in order (none if it does not exist).
/// The size past which a segment whose every line a consumer has is rolled to be released.
const ROLL_COVERED: u64 = 1 << 20;

fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn open_append(path: &Path) -> Result<File, SpoolError> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))
}

fn file_len(path: &Path) -> Result<u64, SpoolError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| io_error(path, e))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}
