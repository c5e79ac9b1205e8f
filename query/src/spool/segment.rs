//! One segment file as the spool keeps it in memory: where it is, how long, and the time
//! range of its lines (so that a scan with a window skips whole segments). A sealed segment
//! says so in its last record; any other is read through once at open.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use logplex::{AppName, LogLine};

use super::SpoolError;
use super::format::{
    self, FRAME_OVERHEAD, Record, SEAL_FRAME, SEAL_LEN, Seal, encode_header, io_error,
    segment_file_name,
};
use super::reader::RecordReader;

/// A segment of an app's spool.
#[derive(Clone, Debug)]
pub(super) struct SegmentMeta {
    pub(super) path: PathBuf,
    /// The position of its first byte (its name).
    pub(super) base: u64,
    /// Its length in bytes (every intact record, header and seal included).
    pub(super) len: u64,
    pub(super) lines: u64,
    pub(super) time_min: i64,
    pub(super) time_max: i64,
    pub(super) received_max: i64,
    pub(super) sealed: bool,
}

/// What opening a segment found.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) meta: SegmentMeta,
    pub(super) app: AppName,
    /// Damaged stretches skipped.
    pub(super) damaged: u64,
}

impl SegmentMeta {
    fn empty(path: PathBuf, base: u64, header_len: u64) -> SegmentMeta {
        SegmentMeta {
            path,
            base,
            len: header_len,
            lines: 0,
            time_min: i64::MAX,
            time_max: i64::MIN,
            received_max: i64::MIN,
            sealed: false,
        }
    }

    /// The position just past it: the next segment's base.
    pub(super) fn end(&self) -> u64 {
        self.base + self.len
    }

    /// Counts `line` (just written) in.
    pub(super) fn note(&mut self, line: &LogLine) {
        self.lines += 1;
        self.time_min = self.time_min.min(line.time.as_micros());
        self.time_max = self.time_max.max(line.time.as_micros());
        self.received_max = self.received_max.max(line.received.as_micros());
    }

    /// Whether it may hold lines with event time in `[since, until)`.
    pub(super) fn overlaps(&self, since: Option<i64>, until: Option<i64>) -> bool {
        self.lines > 0
            && since.is_none_or(|s| self.time_max >= s)
            && until.is_none_or(|u| self.time_min < u)
    }

    /// Its seal record.
    pub(super) fn seal(&self) -> Seal {
        Seal {
            lines: self.lines,
            time_min: self.time_min,
            time_max: self.time_max,
            received_max: self.received_max,
        }
    }

    /// Creates a new segment file (0600) at `base` in `dir`; returns it open for appending.
    pub(super) fn create(
        dir: &Path,
        base: u64,
        app: &AppName,
    ) -> Result<(SegmentMeta, File), SpoolError> {
        let path = dir.join(segment_file_name(base));
        let header = encode_header(base, app.as_str());
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        std::io::Write::write_all(&mut file, &header)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, e))?;
        Ok((SegmentMeta::empty(path, base, header.len() as u64), file))
    }

    /// Opens the segment at `path`: from its seal when `trust_seal` and it has one, else by
    /// reading every record. `Ok(None)` if it vanished.
    pub(super) fn load(
        path: &Path,
        base: u64,
        trust_seal: bool,
    ) -> Result<Option<Loaded>, SpoolError> {
        let Some(mut reader) = RecordReader::open(path, base, None)? else {
            return Ok(None);
        };
        let mut meta = SegmentMeta::empty(path.to_path_buf(), base, reader.header_len());
        if trust_seal && let Some((seal, len)) = read_seal(path)? {
            meta.apply_seal(&seal, len);
            let app = reader.app().clone();
            return Ok(Some(Loaded {
                meta,
                app,
                damaged: 0,
            }));
        }
        while let Some((record, end)) = reader.next_record()? {
            match record {
                Record::Line(line) => meta.note(&line),
                Record::Seal(_) => meta.sealed = true,
            }
            meta.len = end;
        }
        Ok(Some(Loaded {
            app: reader.app().clone(),
            damaged: reader.damaged,
            meta,
        }))
    }

    fn apply_seal(&mut self, seal: &Seal, len: u64) {
        self.len = len;
        self.lines = seal.lines;
        self.time_min = seal.time_min;
        self.time_max = seal.time_max;
        self.received_max = seal.received_max;
        self.sealed = true;
    }
}

/// The seal at the end of the file at `path`, with the file's length, if it has an intact one.
fn read_seal(path: &Path) -> Result<Option<(Seal, u64)>, SpoolError> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    if len < SEAL_FRAME as u64 {
        return Ok(None);
    }
    let mut tail = vec![0u8; SEAL_FRAME];
    file.seek(SeekFrom::Start(len - SEAL_FRAME as u64))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| io_error(path, e))?;
    if format::plausible_len(&tail) != Some(SEAL_LEN) {
        return Ok(None);
    }
    let tail = bytes::Bytes::from(tail);
    match format::decode(&tail, 0, SEAL_FRAME - FRAME_OVERHEAD, &AppName::from("")) {
        Some(Record::Seal(seal)) => Ok(Some((seal, len))),
        _ => Ok(None),
    }
}

/// Cuts the file at `path` back to `len` bytes (a torn tail), and syncs it.
pub(super) fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Deletes a segment file (already gone is fine).
pub(super) fn remove(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}
