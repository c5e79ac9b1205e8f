//! A bus message's payload: a batch of one app's lines (at most `MAX_LINES`), version 1:
//! the byte `1`, then per line: received and event time (i64 LE µs), facility, severity, and
//! the source, process and message each as a u32 LE length and its bytes. The app is the
//! subject's (its id); `seq` is the stream's: see `seq_of`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use logplex::{AppName, LogLine, Timestamp};

/// The format this build writes and reads.
const VERSION: u8 = 1;

/// Lines a message holds at most: a line's `seq` is its message's stream sequence times
/// this, plus its place in the message.
pub(crate) const MAX_LINES: usize = 4096;

/// Bytes a message's payload aims to stay under (NATS's default max payload is 1 MiB).
pub(crate) const TARGET_BYTES: usize = 512 * 1024;

/// A line's `seq` on every node: the stream sequence of its message, times `MAX_LINES`,
/// plus its index in the message; increasing in stream order, never reused.
pub(crate) fn seq_of(stream_sequence: u64, index: usize) -> u64 {
    stream_sequence
        .saturating_mul(MAX_LINES as u64)
        .saturating_add(index as u64)
}

/// Splits `lines` into payloads of at most `MAX_LINES` lines and about `TARGET_BYTES`.
pub(crate) fn encode(lines: &[LogLine]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut count = 0;
    for line in lines {
        let size = 24 + line.source.len() + line.process.len() + line.message.len();
        if count > 0 && (count == MAX_LINES || buf.len() + size > TARGET_BYTES) {
            out.push(std::mem::take(&mut buf).freeze());
            count = 0;
        }
        if count == 0 {
            buf.reserve(size.max(4096));
            buf.put_u8(VERSION);
        }
        buf.put_i64_le(line.received.as_micros());
        buf.put_i64_le(line.time.as_micros());
        buf.put_u8(line.facility);
        buf.put_u8(line.severity);
        for field in [&line.source, &line.process, &line.message] {
            buf.put_u32_le(field.len() as u32);
            buf.put_slice(field);
        }
        count += 1;
    }
    if count > 0 {
        out.push(buf.freeze());
    }
    out
}

/// Why a payload did not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a version this build reads.
    #[error("bus message version {0}, this build reads {VERSION}")]
    Version(u8),
    /// Cut short.
    #[error("bus message cut short in line {0}")]
    Short(usize),
    /// More lines than a message may hold.
    #[error("bus message holds more than {MAX_LINES} lines")]
    TooMany,
}

fn field(payload: &mut Bytes, index: usize) -> Result<Bytes, DecodeError> {
    if payload.remaining() < 4 {
        return Err(DecodeError::Short(index));
    }
    let len = payload.get_u32_le() as usize;
    if payload.remaining() < len {
        return Err(DecodeError::Short(index));
    }
    Ok(payload.split_to(len))
}

/// Reads a payload as lines of `app`, numbered from the message's `stream_sequence`.
pub(crate) fn decode(
    mut payload: Bytes,
    app: &AppName,
    stream_sequence: u64,
) -> Result<Vec<LogLine>, DecodeError> {
    match payload.first() {
        Some(&VERSION) => payload.advance(1),
        Some(&v) => return Err(DecodeError::Version(v)),
        None => return Err(DecodeError::Short(0)),
    }
    // A message holds at least one line.
    if !payload.has_remaining() {
        return Err(DecodeError::Short(0));
    }
    let mut lines = Vec::new();
    while payload.has_remaining() {
        let index = lines.len();
        if index == MAX_LINES {
            return Err(DecodeError::TooMany);
        }
        if payload.remaining() < 18 {
            return Err(DecodeError::Short(index));
        }
        let received = Timestamp::from_micros(payload.get_i64_le());
        let time = Timestamp::from_micros(payload.get_i64_le());
        let facility = payload.get_u8();
        let severity = payload.get_u8();
        let source = field(&mut payload, index)?;
        let process = field(&mut payload, index)?;
        let message = field(&mut payload, index)?;
        lines.push(LogLine {
            received,
            time,
            app: app.clone(),
            source,
            process,
            facility,
            severity,
            message,
            seq: seq_of(stream_sequence, index),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize, message: &str) -> LogLine {
        LogLine {
            received: Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
            time: Timestamp::from_micros(1_600_000_000_000_000 - i as i64),
            app: AppName::from("shop"),
            source: Bytes::from_static(b"app"),
            process: Bytes::from(format!("web.{i}")),
            facility: (i % 24) as u8,
            severity: (i % 8) as u8,
            message: Bytes::from(message.to_owned()),
            seq: 0,
        }
    }

    #[test]
    fn lines_come_back_as_they_went_numbered_from_the_stream_sequence() {
        let lines: Vec<LogLine> = (0..10).map(|i| line(i, &format!("m{i} ✓"))).collect();
        let payloads = encode(&lines);
        assert_eq!(payloads.len(), 1);
        let got = decode(payloads[0].clone(), &AppName::from("shop"), 7).unwrap();
        let want: Vec<LogLine> = lines
            .into_iter()
            .enumerate()
            .map(|(i, mut l)| {
                l.seq = 7 * MAX_LINES as u64 + i as u64;
                l
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_large_batch_is_split_by_count_and_by_bytes_in_order() {
        let many: Vec<LogLine> = (0..MAX_LINES + 5).map(|i| line(i, "x")).collect();
        let payloads = encode(&many);
        assert_eq!(payloads.len(), 2);
        let second = decode(payloads[1].clone(), &AppName::from("shop"), 2).unwrap();
        assert_eq!(second.len(), 5);
        assert_eq!(
            &second[0].process[..],
            format!("web.{MAX_LINES}").as_bytes()
        );
        let big = "y".repeat(200 * 1024);
        let large: Vec<LogLine> = (0..5).map(|i| line(i, &big)).collect();
        let payloads = encode(&large);
        assert_eq!(
            payloads.len(),
            3,
            "two 200 KiB lines fit under 512 KiB, not three"
        );
        let total: usize = payloads
            .iter()
            .map(|p| decode(p.clone(), &AppName::from("shop"), 1).unwrap().len())
            .sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn damaged_payloads_are_refused_with_where() {
        let payload = encode(&[line(0, "hello")]).remove(0);
        for cut in 1..payload.len() {
            let r = decode(payload.slice(..cut), &AppName::from("shop"), 1);
            assert_eq!(r, Err(DecodeError::Short(0)), "cut at {cut}");
        }
        assert_eq!(
            decode(Bytes::from_static(b"\x09"), &AppName::from("shop"), 1),
            Err(DecodeError::Version(9))
        );
        assert_eq!(
            decode(Bytes::new(), &AppName::from("shop"), 1),
            Err(DecodeError::Short(0))
        );
    }
}
