//! `RecordReader`: one segment file read front to back in large sequential reads (4 MiB),
//! each read one `Bytes` that the lines it holds are slices of (no allocation per line).
//! Damage (a bad CRC, an impossible length, a record cut short) is skipped by looking for the
//! next intact record one byte further on; each damaged stretch counts once.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use logplex::AppName;

use super::SpoolError;
use super::format::{
    self, FRAME_OVERHEAD, HEADER_FIXED, Record, check_header, header_len, io_error,
};

/// How much one read takes (more when a record is longer).
const CHUNK: usize = 4 * 1024 * 1024;

/// Reads the records of one segment file up to a length (what was written when the read
/// began).
#[derive(Debug)]
pub(super) struct RecordReader {
    file: File,
    path: PathBuf,
    app: AppName,
    /// The bytes read and not yet passed over: `buf[pos..]` is at file offset `file_pos`.
    buf: Bytes,
    pos: usize,
    file_pos: u64,
    /// Where the file's next read starts.
    read_to: u64,
    limit: u64,
    header_len: u64,
    in_damage: bool,
    /// Damaged stretches skipped so far.
    pub(super) damaged: u64,
}

impl RecordReader {
    /// Opens `path` (a segment starting at position `base`), checks its header and reads
    /// records up to file offset `limit` (`None`: to the end of the file). `Ok(None)` if the
    /// file is gone (a segment retired since the caller looked).
    pub(super) fn open(
        path: &Path,
        base: u64,
        limit: Option<u64>,
    ) -> Result<Option<RecordReader>, SpoolError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
        let mut fixed = [0u8; HEADER_FIXED];
        read_exact(&mut file, &mut fixed, path)?;
        let hlen = header_len(path, &fixed)?;
        let mut header = fixed.to_vec();
        header.resize(hlen, 0);
        read_exact(&mut file, &mut header[HEADER_FIXED..], path)?;
        let app = check_header(path, &header, base)?;
        Ok(Some(RecordReader {
            file,
            path: path.to_path_buf(),
            app,
            buf: Bytes::new(),
            pos: 0,
            file_pos: hlen as u64,
            read_to: hlen as u64,
            limit: limit.unwrap_or(file_len).min(file_len),
            header_len: hlen as u64,
            in_damage: false,
            damaged: 0,
        }))
    }

    /// The app name the segment's header holds.
    pub(super) fn app(&self) -> &AppName {
        &self.app
    }

    /// Gives its lines this app name instead of the header's.
    pub(super) fn set_app(&mut self, app: AppName) {
        self.app = app;
    }

    /// Where the records start.
    pub(super) fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Starts reading at file offset `offset` (a record boundary the caller knows) instead.
    pub(super) fn seek(&mut self, offset: u64) -> Result<(), SpoolError> {
        let offset = offset.max(self.header_len).min(self.limit);
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(&self.path, e))?;
        self.buf = Bytes::new();
        self.pos = 0;
        self.file_pos = offset;
        self.read_to = offset;
        Ok(())
    }

    /// The file offset just past the last record returned (or the start).
    pub(super) fn offset(&self) -> u64 {
        self.file_pos
    }

    /// The next intact record with the file offset just past it; `None` at the limit.
    pub(super) fn next_record(&mut self) -> Result<Option<(Record, u64)>, SpoolError> {
        loop {
            if !self.ensure(FRAME_OVERHEAD + 1)? {
                self.end_damage(self.avail() > 0);
                return Ok(None);
            }
            let at = self.pos;
            let decoded = match format::plausible_len(&self.buf[at..]) {
                Some(len) if self.ensure(FRAME_OVERHEAD + len)? => {
                    format::decode(&self.buf, self.pos, len, &self.app).map(|r| (r, len))
                }
                _ => None,
            };
            match decoded {
                Some((record, len)) => {
                    self.end_damage(false);
                    self.advance(FRAME_OVERHEAD + len);
                    return Ok(Some((record, self.file_pos)));
                }
                None => {
                    self.in_damage = true;
                    self.advance(1);
                }
            }
        }
    }

    /// Closes a damaged stretch (counted once), or counts a damaged end (`tail`).
    fn end_damage(&mut self, tail: bool) {
        if self.in_damage || tail {
            self.damaged += 1;
        }
        self.in_damage = false;
    }

    fn avail(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.file_pos += n as u64;
    }

    /// Makes at least `n` bytes available at `pos`; `false` if the limit comes first.
    fn ensure(&mut self, n: usize) -> Result<bool, SpoolError> {
        let avail = self.avail();
        if avail >= n {
            return Ok(true);
        }
        let left_in_file = self.limit.saturating_sub(self.read_to);
        if (avail as u64) + left_in_file < n as u64 {
            return Ok(false);
        }
        let want = n.max(CHUNK).min(avail + left_in_file as usize);
        let mut next = BytesMut::with_capacity(want);
        next.extend_from_slice(&self.buf[self.pos..]);
        next.resize(want, 0);
        read_exact(&mut self.file, &mut next[avail..], &self.path)?;
        self.read_to += (want - avail) as u64;
        self.buf = next.freeze();
        self.pos = 0;
        Ok(true)
    }
}

fn read_exact(file: &mut File, buf: &mut [u8], path: &Path) -> Result<(), SpoolError> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            format::corrupt(path, 0, "segment file shorter than expected")
        } else {
            io_error(path, e)
        }
    })
}
