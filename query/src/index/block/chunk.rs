//! A chunk's lines as they are compressed: column by column (times as deltas, received times
//! against the event time, seqs as deltas, the small fields, then the texts), so that zstd
//! finds the repetition a row-by-row layout hides.
//!
//! ```text
//! rows × i64   time − the previous row's time (the first row: its time)
//! rows × i64   received − time
//! rows × u64   seq − the previous row's seq (wrapping; the first row: its seq)
//! rows × 10    facility u8, severity u8, source length u16, process length u16,
//!              message length u32
//! texts        each row's source, process and message, back to back
//! ```

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};

/// Bytes of a row's fixed fields.
const FIXED: usize = 8 + 8 + 8 + 10;

/// A chunk being filled.
#[derive(Debug, Default)]
pub(crate) struct ChunkWriter {
    times: Vec<u8>,
    received: Vec<u8>,
    seqs: Vec<u8>,
    fields: Vec<u8>,
    texts: Vec<u8>,
    last_time: i64,
    last_seq: u64,
    rows: usize,
}

impl ChunkWriter {
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn push(&mut self, line: &LogLine) {
        let source = line
            .source
            .get(..usize::from(u16::MAX))
            .unwrap_or(&line.source);
        let process = line
            .process
            .get(..usize::from(u16::MAX))
            .unwrap_or(&line.process);
        let message = line
            .message
            .get(..u32::MAX as usize)
            .unwrap_or(&line.message);
        let time = line.time.as_micros();
        self.times
            .extend_from_slice(&time.wrapping_sub(self.last_time).to_le_bytes());
        self.received
            .extend_from_slice(&line.received.as_micros().wrapping_sub(time).to_le_bytes());
        self.seqs
            .extend_from_slice(&line.seq.wrapping_sub(self.last_seq).to_le_bytes());
        self.fields.push(line.facility);
        self.fields.push(line.severity);
        self.fields
            .extend_from_slice(&(source.len() as u16).to_le_bytes());
        self.fields
            .extend_from_slice(&(process.len() as u16).to_le_bytes());
        self.fields
            .extend_from_slice(&(message.len() as u32).to_le_bytes());
        self.texts.extend_from_slice(source);
        self.texts.extend_from_slice(process);
        self.texts.extend_from_slice(message);
        self.last_time = time;
        self.last_seq = line.seq;
        self.rows += 1;
    }

    /// The chunk's bytes, and a fresh writer.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let w = std::mem::take(self);
        let mut out = w.times;
        out.extend_from_slice(&w.received);
        out.extend_from_slice(&w.seqs);
        out.extend_from_slice(&w.fields);
        out.extend_from_slice(&w.texts);
        out
    }
}

/// A row's place in the chunk's texts, and its fixed fields.
#[derive(Debug, Clone, Copy)]
struct Row {
    time: i64,
    received: i64,
    seq: u64,
    facility: u8,
    severity: u8,
    text: usize,
    source: usize,
    process: usize,
    message: usize,
}

/// A chunk's lines, decompressed.
#[derive(Debug)]
pub(crate) struct ChunkLines {
    raw: Bytes,
    rows: Vec<Row>,
    app: AppName,
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    let mut w = [0u8; 8];
    w.copy_from_slice(b.get(at..at + 8)?);
    Some(i64::from_le_bytes(w))
}

impl ChunkLines {
    /// Reads `rows` rows from `raw`; `None` when the bytes do not hold them exactly.
    pub(crate) fn parse(raw: Bytes, rows: usize, app: AppName) -> Option<ChunkLines> {
        let b = &raw[..];
        let fixed = rows.checked_mul(FIXED)?;
        if fixed > b.len() {
            return None;
        }
        let (times, received, seqs, fields) = (0, rows * 8, rows * 16, rows * 24);
        let mut text = fixed;
        let mut out = Vec::with_capacity(rows);
        let (mut time, mut seq) = (0i64, 0u64);
        for i in 0..rows {
            time = time.wrapping_add(i64_at(b, times + i * 8)?);
            seq = seq.wrapping_add(i64_at(b, seqs + i * 8)? as u64);
            let f = b.get(fields + i * 10..fields + i * 10 + 10)?;
            let row = Row {
                time,
                received: time.wrapping_add(i64_at(b, received + i * 8)?),
                seq,
                facility: f[0],
                severity: f[1],
                text,
                source: usize::from(u16::from_le_bytes([f[2], f[3]])),
                process: usize::from(u16::from_le_bytes([f[4], f[5]])),
                message: u32::from_le_bytes([f[6], f[7], f[8], f[9]]) as usize,
            };
            text = text
                .checked_add(row.source + row.process)?
                .checked_add(row.message)?;
            if text > b.len() {
                return None;
            }
            out.push(row);
        }
        (text == b.len()).then_some(ChunkLines {
            raw,
            rows: out,
            app,
        })
    }

    /// Row `i` of the chunk.
    pub(crate) fn line(&self, i: usize) -> Option<LogLine> {
        let r = *self.rows.get(i)?;
        let (s, p) = (r.text + r.source, r.text + r.source + r.process);
        Some(LogLine {
            time: Timestamp::from_micros(r.time),
            received: Timestamp::from_micros(r.received),
            seq: r.seq,
            facility: r.facility,
            severity: r.severity,
            app: self.app.clone(),
            source: self.raw.slice(r.text..s),
            process: self.raw.slice(s..p),
            message: self.raw.slice(p..p + r.message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::tests::line;

    #[test]
    fn lines_come_back_as_they_went_in() {
        let mut lines = [
            line(5_000_000, "heroku", "router", "at=info status=200"),
            line(4_000_000, "app", "web.1", ""),
            line(i64::MIN, "", "", "x"),
        ];
        lines[1].seq = 7;
        lines[1].received = Timestamp::from_micros(9);
        lines[2].seq = 3;
        lines[2].facility = 23;
        let mut w = ChunkWriter::default();
        lines.iter().for_each(|l| w.push(l));
        assert_eq!(w.rows(), 3);
        let raw = Bytes::from(w.take());
        assert_eq!(w.rows(), 0);
        let chunk = ChunkLines::parse(raw.clone(), 3, AppName::from("shop")).unwrap();
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(chunk.line(i).as_ref(), Some(l));
        }
        assert!(chunk.line(3).is_none());
        assert!(ChunkLines::parse(raw.clone(), 4, AppName::from("shop")).is_none());
        assert!(ChunkLines::parse(raw.slice(..raw.len() - 1), 3, AppName::from("shop")).is_none());
    }
}
