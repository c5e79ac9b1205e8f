//! The bytes on disk: segment headers, record frames, the `ack` file and the CRC-32 that
//! guards them (see the module documentation of `durable` for the layout).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Seek as _, SeekFrom};
use std::path::Path;

use super::{DurableError, FORMAT_VERSION};

/// The first 8 bytes of every segment file.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"LPXDQSEG";
/// The first 8 bytes of the `ack` file.
pub(super) const ACK_MAGIC: [u8; 8] = *b"LPXDQACK";
/// Magic (8) + version (u32 LE) + first sequence number (u64 LE).
pub(super) const HEADER_LEN: u64 = 20;
/// Length (u32 LE) + CRC-32 (u32 LE) before each payload.
pub(super) const FRAME_OVERHEAD: u64 = 8;
/// Magic (8) + version (u32 LE) + head sequence number (u64 LE) + CRC-32 of those 20 bytes.
pub(super) const ACK_LEN: usize = 24;
/// The largest payload a record may have; a longer length field is damage, not a record.
pub(super) const MAX_RECORD_LEN: u64 = 16 * 1024 * 1024;
/// The name of the acknowledgement file.
pub(super) const ACK_FILE: &str = "ack";
/// Where the acknowledgement file is written before it is renamed into place.
pub(super) const ACK_TMP_FILE: &str = "ack.tmp";
/// Held locked (`flock`) while a queue is open, so two queues never share a directory.
pub(super) const LOCK_FILE: &str = "lock";

const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_NAME_DIGITS: usize = 20;

/// The CRC-32 lookup table (IEEE 802.3, reflected polynomial 0xEDB88320), built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues a CRC-32 (IEEE) over `data`; start with `crc32_update(0, ..)`.
pub(super) fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32 (IEEE) of `data`; `crc32(b"123456789") == 0xCBF4_3926`.
pub(super) fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// The CRC stored in a record frame: over the 4 length bytes, then the payload (so that a
/// zero-filled region never reads as a run of valid empty records).
pub(super) fn frame_crc(len_le: [u8; 4], payload: &[u8]) -> u32 {
    crc32_update(crc32(&len_le), payload)
}

/// `00000000000000000001.seg` for first sequence number 1.
pub(super) fn segment_file_name(first_seq: u64) -> String {
    format!(
        "{first_seq:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The first sequence number in a segment file's name, if it is one.
pub(super) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment whose first record has sequence number `first_seq`.
pub(super) fn encode_segment_header(first_seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// Checks a segment header read from `path` (whose name says `first_seq`).
pub(super) fn check_segment_header(
    path: &Path,
    header: &[u8; HEADER_LEN as usize],
    first_seq: u64,
) -> Result<(), DurableError> {
    if header[..8] != SEGMENT_MAGIC {
        return Err(corrupt(path, 0, "not a durable queue segment (bad magic)"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(DurableError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[12..20]);
    let found = u64::from_le_bytes(seq);
    if found != first_seq {
        return Err(corrupt(
            path,
            12,
            format!("header says first sequence number {found}, file name says {first_seq}"),
        ));
    }
    Ok(())
}

/// Appends one record frame (length, CRC, payload) to `buf`. The caller keeps payloads at
/// most [`MAX_RECORD_LEN`] long.
pub(super) fn encode_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len_le = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    buf.extend_from_slice(&len_le);
    buf.extend_from_slice(&frame_crc(len_le, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Splits a frame header into (payload length, stored CRC).
pub(super) fn decode_frame_header(h: [u8; FRAME_OVERHEAD as usize]) -> (u64, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (u64::from(len), crc)
}

/// The contents of the `ack` file for head sequence number `head` (every record before it
/// is acknowledged or dropped).
pub(super) fn encode_ack(head: u64) -> [u8; ACK_LEN] {
    let mut a = [0u8; ACK_LEN];
    a[..8].copy_from_slice(&ACK_MAGIC);
    a[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    a[12..20].copy_from_slice(&head.to_le_bytes());
    let crc = crc32(&a[..20]);
    a[20..24].copy_from_slice(&crc.to_le_bytes());
    a
}

/// Reads the head sequence number out of the `ack` file's contents.
pub(super) fn decode_ack(path: &Path, bytes: &[u8]) -> Result<u64, DurableError> {
    if bytes.len() < 12 || bytes[..8] != ACK_MAGIC {
        return Err(corrupt(path, 0, "not a durable queue ack file (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(DurableError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if bytes.len() != ACK_LEN {
        return Err(corrupt(
            path,
            0,
            format!("ack file is {} bytes, expected {ACK_LEN}", bytes.len()),
        ));
    }
    let stored = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32(&bytes[..20]) != stored {
        return Err(corrupt(path, 20, "ack file CRC mismatch"));
    }
    let mut head = [0u8; 8];
    head.copy_from_slice(&bytes[12..20]);
    Ok(u64::from_le_bytes(head))
}

/// How a segment scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ScanEnd {
    /// At the end of the file, on a record boundary.
    Clean,
    /// The last record is incomplete (a crash while it was being written).
    Torn,
    /// A record is damaged (CRC mismatch or an impossible length).
    Bad(String),
}

/// What a scan of a segment found.
#[derive(Debug)]
pub(super) struct Scan {
    /// Complete, intact records from the start.
    pub(super) count: u64,
    /// Where the last intact record ends (where to cut the file if `end` is not `Clean`).
    pub(super) valid_len: u64,
    /// Offset of the record with sequence number `want`, or `valid_len` if it is past them all.
    pub(super) want_offset: u64,
    /// Why the scan stopped.
    pub(super) end: ScanEnd,
}

/// Reads every record of a segment (header already checked) and checks its CRC, stopping
/// at the first incomplete or damaged one. Also notes where record `want` starts.
pub(super) fn scan_segment(
    path: &Path,
    file: &mut File,
    file_len: u64,
    first_seq: u64,
    want: u64,
) -> Result<Scan, DurableError> {
    file.seek(SeekFrom::Start(HEADER_LEN))
        .map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut offset = HEADER_LEN;
    let mut count = 0u64;
    let mut want_offset = None;
    let mut payload = Vec::new();
    let end = loop {
        if want_offset.is_none() && first_seq.saturating_add(count) >= want {
            want_offset = Some(offset);
        }
        let remaining = file_len - offset;
        if remaining == 0 {
            break ScanEnd::Clean;
        }
        if remaining < FRAME_OVERHEAD {
            break ScanEnd::Torn;
        }
        let mut h = [0u8; FRAME_OVERHEAD as usize];
        read_exact(&mut reader, &mut h, path)?;
        let (len, stored) = decode_frame_header(h);
        if len > MAX_RECORD_LEN {
            break ScanEnd::Bad(format!("record length {len} is over the maximum"));
        }
        if remaining - FRAME_OVERHEAD < len {
            break ScanEnd::Torn;
        }
        payload.resize(len as usize, 0);
        read_exact(&mut reader, &mut payload, path)?;
        if frame_crc([h[0], h[1], h[2], h[3]], &payload) != stored {
            break ScanEnd::Bad("record CRC mismatch".to_owned());
        }
        offset += FRAME_OVERHEAD + len;
        count += 1;
    };
    Ok(Scan {
        count,
        valid_len: offset,
        want_offset: want_offset.unwrap_or(offset),
        end,
    })
}

fn read_exact(
    reader: &mut impl std::io::Read,
    buf: &mut [u8],
    path: &Path,
) -> Result<(), DurableError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            io_error(
                path,
                std::io::Error::new(e.kind(), "segment file shrank while being read"),
            )
        } else {
            io_error(path, e)
        }
    })
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> DurableError {
    DurableError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> DurableError {
    DurableError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// The length of the intact record frame at `offset` of a segment's bytes, if there is one.
fn intact_frame_at(bytes: &[u8], offset: usize) -> Option<usize> {
    let h: [u8; FRAME_OVERHEAD as usize] = bytes
        .get(offset..offset + FRAME_OVERHEAD as usize)?
        .try_into()
        .ok()?;
    let (len, stored) = decode_frame_header(h);
    if len > MAX_RECORD_LEN {
        return None;
    }
    let start = offset + FRAME_OVERHEAD as usize;
    let payload = bytes.get(start..start + len as usize)?;
    (frame_crc([h[0], h[1], h[2], h[3]], payload) == stored)
        .then_some(FRAME_OVERHEAD as usize + len as usize)
}

/// Where intact records start again after damage in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resync {
    /// The first offset past the damage where an intact record starts.
    pub(super) start: u64,
    /// Intact records back to back from there.
    pub(super) count: u64,
    /// Where they end (the file's end, or more damage).
    pub(super) end: u64,
}

/// After damage at `from` in a segment's `bytes` (the whole file): the next offset where a
/// record whose length is possible and whose CRC holds starts (the CRC covers the length, so
/// a run of zeros or of garbage passes for one with odds of about 2^-32 an offset), and how
/// many intact records follow it back to back. `None`: nothing intact after the damage.
pub(super) fn resync(bytes: &[u8], from: u64) -> Option<Resync> {
    let from = usize::try_from(from).ok()?;
    let start = (from + 1..bytes.len()).find(|&at| intact_frame_at(bytes, at).is_some())?;
    let (mut end, mut count) = (start, 0u64);
    while let Some(len) = intact_frame_at(bytes, end) {
        end += len;
        count += 1;
    }
    Some(Resync {
        start: start as u64,
        count,
        end: end as u64,
    })
}
