//! The spool: every line an app's channel accepted, appended to a per-app log of segment
//! files on disk, which queries scan (and the index, later, catches up from).
//!
//! # Guarantees
//!
//! - Lines of an app come back in the order they were appended (arrival order, not sorted by
//!   event time); a scan's window `[since, until)` is on the event time (`LogLine::time`),
//!   and segments whose time range misses it are not opened.
//! - [`Spool::append`] writes to the OS at once (a scan sees the lines as soon as it returns)
//!   and fsyncs when the last sync is [`SYNC_INTERVAL`] old; the [`SpoolWriter`] calls
//!   [`Spool::sync`] that often, so a power loss loses at most the last 100 ms (a SIGKILL
//!   loses nothing the OS was given).
//! - Every record has a position (a byte offset in the app's log, increasing, never reused
//!   while the app lives): [`Scan::position`] says where a reader stopped and
//!   [`Spool::scan_from`] resumes there.
//! - Retention deletes whole oldest segments: older than `max_age` (by the newest received
//!   time in them), or while the app keeps more than `max_bytes_per_app` (the segment being
//!   written is never deleted for size, so an app keeps at most that plus one segment).
//!
//! # Layout (format version 1)
//!
//! ```text
//! DIR/lock                                  flock-ed while a spool is open on DIR
//! DIR/<app-id>/00000000000000000000.seg     segment files, named by their base position
//! DIR/<app-id>/00000000000067108912.seg     (20 digits); directories 0700, files 0600
//! ```
//!
//! All integers are little-endian. A segment starts with a header: the magic `PAASSPOL`, the
//! format version (u32), the base position (u64, as in its name), the app name's length
//! (u16), two reserved bytes, the app's name (at most 255 bytes, informational) and a CRC-32
//! of everything before it. Then records, back to back, each
//!
//! ```text
//! length  u32   payload bytes (at most 16 MiB)
//! crc     u32   CRC-32 (IEEE, as zlib) over the 4 length bytes, then the payload
//! payload kind u8 = 1 (a line): facility u8, severity u8, reserved u8, source length u16,
//!         process length u16, received i64 µs, time i64 µs, seq u64, source, process, message
//!         kind u8 = 2 (the seal, last record of a full segment): 7 reserved bytes, lines u64,
//!         least and greatest event time i64 µs, greatest received time i64 µs
//! ```
//!
//! A record's position is its segment's base plus its offset in the file; the next segment's
//! base is the previous one's base plus its length. A segment is sealed and fsynced, and the
//! next one created, when a record would take it past `segment_bytes`. At open the sealed
//! segments are known from their seals; the last is read through, and a torn tail (a record
//! cut short by a crash) is cut off. A damaged record anywhere is skipped by looking for the
//! next intact one byte by byte; each damaged stretch is counted once per read that meets it
//! ([`Spool::damaged_records`], [`Scan::damaged`]). A frozen fixture of this format is in
//! `query/tests/fixtures/spool-v1/`.

mod app;
mod format;
mod reader;
mod scan;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use logplex::{LogLine, Timestamp};

use app::AppSpool;
use format::io_error;

pub use format::FORMAT_VERSION;
pub use scan::Scan;
pub use writer::{SpoolWriter, SpoolWriterConfig, SpoolWriterHandle, SpoolWriterStats};

/// Appends fsync when the last sync is this old; the writer syncs this often.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How much an app keeps, and how it is cut in files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Lines received longer ago are deleted (a whole segment at a time). Default 7 days.
    pub max_age: Duration,
    /// The bytes an app keeps at most (plus the segment being written). Default 1 GiB.
    pub max_bytes_per_app: u64,
    /// A segment is sealed and a new one started past this size. Default 64 MiB.
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes_per_app: 1 << 30,
            segment_bytes: 64 << 20,
        }
    }
}

/// A place in an app's spool: a reader resumes after it (see [`Scan::position`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

/// What one app keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppSpoolStats {
    /// Lines kept.
    pub lines: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
    /// Damaged stretches found when the app's spool was opened.
    pub damaged: u64,
    /// The least and greatest event time kept.
    pub oldest: Option<Timestamp>,
    /// See `oldest`.
    pub newest: Option<Timestamp>,
    /// The position the next line will have.
    pub end: u64,
}

/// Why the spool could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing a file of the spool.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A segment's header is damaged.
    #[error("{path}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment has a format version this build does not read.
    #[error("{path}: spool format version {found}, this build reads {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u32,
    },
    /// Another spool is open on the directory.
    #[error("{0}: another spool is open on this directory")]
    Locked(PathBuf),
    /// Not an app id (a UUID-like word).
    #[error("not an app id: {0:?}")]
    BadAppId(String),
    /// The app was removed; its lines are no longer kept.
    #[error("app {0} was removed")]
    Removed(String),
    /// The writer did not stop within its bound (what it had not written is lost).
    #[error("the spool writer did not stop within {0:?}")]
    StopTimeout(Duration),
    /// A broken invariant (a bug).
    #[error("spool: {0}")]
    Internal(&'static str),
}

/// Counters shared with scans.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    segments_opened: AtomicU64,
    damaged: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: SpoolConfig,
    apps: Mutex<HashMap<String, Arc<Mutex<AppSpool>>>>,
    /// Held while an app is opened from disk.
    opening: Mutex<()>,
    /// Ids removed while open: never written again (ids are not reused).
    removed: Mutex<HashSet<String>>,
    counters: Arc<Counters>,
    _lock: File,
}

/// Every app's kept lines (see the module documentation). Cheap to clone: every clone is the
/// same spool. Its calls do file I/O: from async code, call them in `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl Spool {
    /// Opens (or creates, 0700) the spool in `dir`. Apps are opened when first used.
    pub fn open(dir: impl AsRef<Path>, config: SpoolConfig) -> Result<Spool, SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        make_dir(&dir)?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::Locked(dir));
        }
        Ok(Spool {
            inner: Arc::new(Inner {
                dir,
                config,
                apps: Mutex::new(HashMap::new()),
                opening: Mutex::new(()),
                removed: Mutex::new(HashSet::new()),
                counters: Arc::default(),
                _lock: lock,
            }),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SpoolConfig {
        &self.inner.config
    }

    /// Appends `lines` (all of the app whose id is `app_id`) in this order.
    pub fn append(&self, app_id: &str, lines: &[LogLine]) -> Result<(), SpoolError> {
        if self.is_removed(app_id) {
            return Err(SpoolError::Removed(app_id.to_owned()));
        }
        let app = self.app(app_id)?;
        let result = lock(&app).append(lines, &self.inner.config);
        if result.is_err() {
            // Opened again from disk next time: a half-written record is cut off then.
            self.forget(app_id);
        }
        result
    }

    /// Fsyncs every app written since its last sync.
    pub fn sync(&self) -> Result<(), SpoolError> {
        for app in self.open_apps() {
            lock(&app).sync()?;
        }
        Ok(())
    }

    /// The app's lines whose event time is in `[since, until)`, in the order they were
    /// appended (an app with nothing kept: none).
    pub fn scan(
        &self,
        app_id: &str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<Scan, SpoolError> {
        let window = (since.map(|t| t.as_micros()), until.map(|t| t.as_micros()));
        self.scan_inner(app_id, window, None)
    }

    /// The app's lines from `from` on (a [`Scan::position`]), in the order they were appended;
    /// from the oldest kept when `from` was deleted since.
    pub fn scan_from(&self, app_id: &str, from: Position) -> Result<Scan, SpoolError> {
        self.scan_inner(app_id, (None, None), Some(from.0))
    }

    fn scan_inner(
        &self,
        app_id: &str,
        window: (Option<i64>, Option<i64>),
        start: Option<u64>,
    ) -> Result<Scan, SpoolError> {
        let app = self.app(app_id)?;
        let (name, mut segments) = {
            let app = lock(&app);
            (app.name.clone(), app.snapshot())
        };
        if let Some(start) = start {
            segments.retain(|s| s.end() > start);
        }
        Ok(Scan::new(
            name,
            segments,
            window,
            start,
            self.inner.counters.clone(),
        ))
    }

    /// Deletes the app's oldest sealed segments whose every line is before `through` (a
    /// position the index has made durable): the spool is then the index's write-ahead log.
    /// The segment being written is never deleted. Returns how many were.
    pub fn release_through(&self, app_id: &str, through: Position) -> Result<usize, SpoolError> {
        let app = self.app(app_id)?;
        let mut app = lock(&app);
        app.release_through(through.0)
    }

    /// Applies retention by age (as of `now`) and by bytes to every app on disk.
    pub fn enforce_retention(&self, now: Timestamp) -> Result<(), SpoolError> {
        for id in self.app_ids()? {
            if self.is_removed(&id) {
                continue;
            }
            let app = self.app(&id)?;
            lock(&app).retain(now, &self.inner.config)?;
        }
        Ok(())
    }

    /// Deletes everything the app kept, at once; it is never written again.
    pub fn remove_app(&self, app_id: &str) -> Result<(), SpoolError> {
        check_app_id(app_id)?;
        let _opening = lock(&self.inner.opening);
        lock(&self.inner.removed).insert(app_id.to_owned());
        let open = lock(&self.inner.apps).remove(app_id);
        // Waits for a write in progress; later ones see the tombstone.
        let _held = open.as_ref().map(|a| lock(a));
        let dir = self.inner.dir.join(app_id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&dir, e)),
            _ => Ok(()),
        }
    }

    /// What the app keeps.
    pub fn app_stats(&self, app_id: &str) -> Result<AppSpoolStats, SpoolError> {
        let app = self.app(app_id)?;
        let stats = lock(&app).stats();
        Ok(stats)
    }

    /// The ids of the apps with a spool on disk.
    pub fn app_ids(&self) -> Result<Vec<String>, SpoolError> {
        let dir = &self.inner.dir;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            if let Some(id) = entry.file_name().to_str()
                && check_app_id(id).is_ok()
                && entry.path().is_dir()
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Damaged stretches skipped by every read so far (a stretch counts each time it is read
    /// past), and those found when apps were opened.
    pub fn damaged_records(&self) -> u64 {
        let at_open: u64 = self.open_apps().iter().map(|a| lock(a).damaged).sum();
        self.inner.counters.damaged.load(Ordering::Relaxed) + at_open
    }

    /// Segment files scans have opened so far.
    pub fn segments_opened(&self) -> u64 {
        self.inner.counters.segments_opened.load(Ordering::Relaxed)
    }

    fn is_removed(&self, app_id: &str) -> bool {
        lock(&self.inner.removed).contains(app_id)
    }

    fn forget(&self, app_id: &str) {
        lock(&self.inner.apps).remove(app_id);
    }

    fn open_apps(&self) -> Vec<Arc<Mutex<AppSpool>>> {
        lock(&self.inner.apps).values().cloned().collect()
    }

    /// The app's spool, opened from disk the first time.
    fn app(&self, app_id: &str) -> Result<Arc<Mutex<AppSpool>>, SpoolError> {
        check_app_id(app_id)?;
        if let Some(app) = lock(&self.inner.apps).get(app_id) {
            return Ok(app.clone());
        }
        // Opened outside the map's lock (it may read a whole segment, and cut its tail), one
        // app at a time, so that apps already open are not held up.
        let _opening = lock(&self.inner.opening);
        if let Some(app) = lock(&self.inner.apps).get(app_id) {
            return Ok(app.clone());
        }
        let app = Arc::new(Mutex::new(AppSpool::open(self.inner.dir.join(app_id))?));
        lock(&self.inner.apps).insert(app_id.to_owned(), app.clone());
        Ok(app)
    }
}

/// Locks, also after a panic elsewhere: every operation leaves its state usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// App ids name directories: letters, digits, `-` and `_` only, at most 64.
pub(crate) fn check_app_id(id: &str) -> Result<(), SpoolError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::BadAppId(id.to_owned()))
    }
}

/// Creates `dir` and its parents, 0700.
pub(crate) fn make_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error(dir, e))
}
