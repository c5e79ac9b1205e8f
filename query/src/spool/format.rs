//! The bytes on disk: segment file names, the segment header, record frames (length, CRC-32,
//! payload) and the two payloads, a line and a seal (see the module documentation of `spool`
//! for the layout).

use std::path::Path;

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};

use super::SpoolError;

/// The version of the on-disk format written in every segment header.
pub const FORMAT_VERSION: u32 = 1;

/// The first 8 bytes of every segment file.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"PAASSPOL";
/// Magic (8) + version (u32) + base position (u64) + name length (u16) + reserved (u16).
pub(super) const HEADER_FIXED: usize = 24;
/// The longest app name a header keeps (longer ones are cut; the name is informational).
pub(super) const MAX_NAME_LEN: usize = 255;
/// Length (u32) + CRC-32 (u32) before each payload.
pub(super) const FRAME_OVERHEAD: usize = 8;
/// The largest payload a record may have; a longer length field is damage, not a record.
pub(super) const MAX_RECORD_LEN: usize = 16 * 1024 * 1024;
/// Kind (u8), facility, severity, reserved (u8 each), source and process lengths (u16 each),
/// received, time (i64 µs each), seq (u64).
pub(super) const LINE_FIXED: usize = 32;
/// Kind (u8), reserved (7), lines (u64), least and greatest event time, greatest received
/// time (i64 µs each).
pub(super) const SEAL_LEN: usize = 40;
/// A whole seal record, frame included: the last bytes of a sealed segment.
pub(super) const SEAL_FRAME: usize = FRAME_OVERHEAD + SEAL_LEN;

const KIND_LINE: u8 = 1;
const KIND_SEAL: u8 = 2;
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_NAME_DIGITS: usize = 20;

/// What a sealed segment says of itself in its last record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seal {
    pub(super) lines: u64,
    pub(super) time_min: i64,
    pub(super) time_max: i64,
    pub(super) received_max: i64,
}

/// One intact record.
#[derive(Debug)]
pub(super) enum Record {
    Line(LogLine),
    Seal(Seal),
}

/// `00000000000000004711.seg` for the segment whose first record is at position 4711.
pub(super) fn segment_file_name(base: u64) -> String {
    format!(
        "{base:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The base position in a segment file's name, if it is one.
pub(super) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `base`, for the app called `name`.
pub(super) fn encode_header(base: u64, name: &str) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(MAX_NAME_LEN)];
    let mut h = Vec::with_capacity(HEADER_FIXED + name.len() + 4);
    h.extend_from_slice(&SEGMENT_MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&base.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(name);
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// The header's fixed part says how long the whole header is.
pub(super) fn header_len(path: &Path, fixed: &[u8; HEADER_FIXED]) -> Result<usize, SpoolError> {
    if fixed[..8] != SEGMENT_MAGIC {
        return Err(corrupt(path, 0, "not a spool segment (bad magic)"));
    }
    let version = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if version != FORMAT_VERSION {
        return Err(SpoolError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let name_len = usize::from(u16::from_le_bytes([fixed[20], fixed[21]]));
    if name_len > MAX_NAME_LEN {
        return Err(corrupt(path, 20, "app name in header too long"));
    }
    Ok(HEADER_FIXED + name_len + 4)
}

/// Checks a whole header (`header_len` bytes) against its CRC and the file's name; returns
/// the app name it holds.
pub(super) fn check_header(path: &Path, header: &[u8], base: u64) -> Result<AppName, SpoolError> {
    let (body, crc) = header.split_at(header.len().saturating_sub(4));
    let stored = crc.try_into().map(u32::from_le_bytes).unwrap_or(0);
    if body.len() < HEADER_FIXED || crc32fast::hash(body) != stored {
        return Err(corrupt(path, 0, "segment header CRC mismatch"));
    }
    let found = read_u64(body, 12);
    if found != base {
        return Err(corrupt(
            path,
            12,
            format!("header says base position {found}, file name says {base}"),
        ));
    }
    let name = String::from_utf8_lossy(&body[HEADER_FIXED..]);
    Ok(AppName::from(&*name))
}

/// Appends one line's record (frame and payload) to `buf`. Source and process are cut at
/// 65,535 bytes, the message so that the payload stays within [`MAX_RECORD_LEN`].
pub(super) fn encode_line(buf: &mut Vec<u8>, line: &LogLine) {
    let source = &line.source[..line.source.len().min(usize::from(u16::MAX))];
    let process = &line.process[..line.process.len().min(usize::from(u16::MAX))];
    let room = MAX_RECORD_LEN - LINE_FIXED - source.len() - process.len();
    let message = &line.message[..line.message.len().min(room)];
    let len = LINE_FIXED + source.len() + process.len() + message.len();
    let start = buf.len();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&[KIND_LINE, line.facility, line.severity, 0]);
    buf.extend_from_slice(&(source.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(process.len() as u16).to_le_bytes());
    buf.extend_from_slice(&line.received.as_micros().to_le_bytes());
    buf.extend_from_slice(&line.time.as_micros().to_le_bytes());
    buf.extend_from_slice(&line.seq.to_le_bytes());
    buf.extend_from_slice(source);
    buf.extend_from_slice(process);
    buf.extend_from_slice(message);
    seal_frame_crc(&mut buf[start..]);
}

/// Appends a seal record to `buf`.
pub(super) fn encode_seal(buf: &mut Vec<u8>, seal: &Seal) {
    let start = buf.len();
    buf.extend_from_slice(&(SEAL_LEN as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&[KIND_SEAL, 0, 0, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(&seal.lines.to_le_bytes());
    buf.extend_from_slice(&seal.time_min.to_le_bytes());
    buf.extend_from_slice(&seal.time_max.to_le_bytes());
    buf.extend_from_slice(&seal.received_max.to_le_bytes());
    seal_frame_crc(&mut buf[start..]);
}

/// Writes the CRC of a frame (length bytes, then payload) into its CRC field.
fn seal_frame_crc(frame: &mut [u8]) {
    let crc = frame_crc(&frame[..4], &frame[FRAME_OVERHEAD..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC stored in a frame: over the 4 length bytes, then the payload (so that a
/// zero-filled region never reads as a run of valid empty records).
pub(super) fn frame_crc(len_le: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_le);
    h.update(payload);
    h.finalize()
}

/// The payload length a frame header claims, if it could be a record's.
pub(super) fn plausible_len(frame: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    let kind = frame.get(FRAME_OVERHEAD).copied();
    let ok = match kind {
        Some(KIND_LINE) => (LINE_FIXED..=MAX_RECORD_LEN).contains(&len),
        Some(KIND_SEAL) => len == SEAL_LEN,
        _ => false,
    };
    ok.then_some(len)
}

/// Decodes the record whose frame is `buf[at..at + FRAME_OVERHEAD + len]` (its length read
/// by `plausible_len`): `None` if its CRC or its contents are wrong.
pub(super) fn decode(buf: &Bytes, at: usize, len: usize, app: &AppName) -> Option<Record> {
    let frame = &buf[at..at + FRAME_OVERHEAD + len];
    let stored = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let p = &frame[FRAME_OVERHEAD..];
    if frame_crc(&frame[..4], p) != stored {
        return None;
    }
    if p[0] == KIND_SEAL {
        return Some(Record::Seal(Seal {
            lines: read_u64(p, 8),
            time_min: read_u64(p, 16) as i64,
            time_max: read_u64(p, 24) as i64,
            received_max: read_u64(p, 32) as i64,
        }));
    }
    let source_len = usize::from(u16::from_le_bytes([p[4], p[5]]));
    let process_len = usize::from(u16::from_le_bytes([p[6], p[7]]));
    if LINE_FIXED + source_len + process_len > len {
        return None;
    }
    let s = at + FRAME_OVERHEAD + LINE_FIXED;
    let (p_start, m_start) = (s + source_len, s + source_len + process_len);
    Some(Record::Line(LogLine {
        received: Timestamp::from_micros(read_u64(p, 8) as i64),
        time: Timestamp::from_micros(read_u64(p, 16) as i64),
        app: app.clone(),
        source: buf.slice(s..p_start),
        process: buf.slice(p_start..m_start),
        facility: p[1],
        severity: p[2],
        message: buf.slice(m_start..at + FRAME_OVERHEAD + len),
        seq: read_u64(p, 24),
    }))
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> SpoolError {
    SpoolError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}
