//! Building a block from lines, as the indexer reads them from the spool.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use logplex::LogLine;

use super::chunk::ChunkWriter;
use super::{ChunkHeader, ColumnHeader, Header, MAGIC, Section, VERSION};
use crate::index::IndexError;
use crate::index::bloom::{Bloom, hash_pair, hash_parts, hash_word, words_at};
use crate::index::columns::{COLUMNS, read_row};
use crate::index::dict::Dict;

/// zstd's level for chunks: on these lines level 1 both compresses better than 3 (0.167 of
/// the message bytes against 0.178, measured on the benchmark's corpus) and runs faster;
/// 9 gains 5 % at a thirtieth of the speed.
const ZSTD_LEVEL: i32 = 1;

/// zstd's level for columns and times: 1, the fastest to write; they decompress at GB/s and
/// a warm query reads them from the column cache.
const COLUMN_LEVEL: i32 = 1;

/// `bytes`, zstd-compressed. In-memory compression fails only when memory does: the error is
/// logged and the bytes kept as a zstd frame of level 0 rather than lost.
fn compress(bytes: &[u8], level: i32) -> Vec<u8> {
    zstd::bulk::compress(bytes, level).unwrap_or_else(|e| {
        tracing::error!(error = %e, "index: zstd failed");
        zstd::bulk::compress(bytes, 0).unwrap_or_default()
    })
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Tokens = HashSet<u64, BuildHasherDefault<Identity>>;

/// A block being built.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    max_rows: usize,
    chunk_max: usize,
    rows: usize,
    first: Option<u64>,
    end: u64,
    time_min: i64,
    time_max: i64,
    received_max: i64,
    ids: Vec<Vec<u32>>,
    repeated: Vec<bool>,
    overflow: Vec<bool>,
    /// Values a full dictionary (or its app's memory budget) refused.
    refused: u64,
    times: Vec<i64>,
    /// The chunk being filled, and its distinct tokens.
    chunk: ChunkWriter,
    tokens: Tokens,
    /// Finished chunks: compressed lines, raw length, filter, rows.
    chunks: Vec<(Vec<u8>, u64, Bloom, usize)>,
}

impl BlockBuilder {
    /// A block of at most `max_rows` rows, in chunks of `chunk_rows`.
    pub(crate) fn new(max_rows: usize, chunk_rows: usize) -> Self {
        BlockBuilder {
            max_rows: max_rows.max(1),
            chunk_max: chunk_rows.clamp(1, u32::MAX as usize),
            rows: 0,
            first: None,
            end: 0,
            time_min: i64::MAX,
            time_max: i64::MIN,
            received_max: i64::MIN,
            ids: vec![Vec::new(); COLUMNS.len()],
            repeated: vec![false; COLUMNS.len()],
            overflow: vec![false; COLUMNS.len()],
            refused: 0,
            times: Vec::new(),
            chunk: ChunkWriter::default(),
            tokens: Tokens::default(),
            chunks: Vec::new(),
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Values its rows could not put in a dictionary (full, or past the memory budget).
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    pub(crate) fn is_full(&self) -> bool {
        self.rows >= self.max_rows
    }

    /// The spool position of the first line, and just past the last.
    pub(crate) fn span(&self) -> Option<(u64, u64)> {
        self.first.map(|f| (f, self.end))
    }

    /// Adds `line`, which starts at spool position `at` and ends at `end`; its values get
    /// ids from `dicts` (one per column, in `COLUMNS` order), which may take `room` more
    /// bytes of memory.
    ///
    /// A value gets no id (the block's column is then marked `overflow`, and the lines answer
    /// for it) when its dictionary is full or it was written with an escape (its raw bytes,
    /// which full-text terms match, are not its value). The chunk's token filter gets the
    /// words of the message outside the values that got an id, and the pairs of every key
    /// that is no column.
    pub(crate) fn push(
        &mut self,
        line: &LogLine,
        at: u64,
        end: u64,
        dicts: &mut [Dict],
        room: &mut u64,
    ) {
        self.first.get_or_insert(at);
        self.end = end;
        let time = line.time.as_micros();
        self.time_min = self.time_min.min(time);
        self.time_max = self.time_max.max(time);
        self.received_max = self.received_max.max(line.received.as_micros());
        self.times.push(time);
        let tokens = &mut self.tokens;
        let row = read_row(line, |key, value, escaped| {
            tokens.insert(hash_parts(&[b"?", key]));
            // A value written as it is has its words in the filter already (every word
            // outside column values is); one written with an escape is kept whole.
            if escaped {
                tokens.insert(hash_pair(key, value));
            }
        });
        let mut in_columns: Vec<std::ops::Range<usize>> = Vec::new();
        for (c, value) in row.values.iter().enumerate() {
            let raw = row.raw.get(c).cloned().flatten();
            let escaped = raw.as_ref().is_some_and(|(_, e)| *e);
            let id = match (value, dicts.get_mut(c)) {
                (Some(v), Some(dict)) if !escaped => {
                    let id = dict.id_or_add(v, room);
                    self.refused += u64::from(id.is_none());
                    id
                }
                (None, _) => Some(0),
                _ => None,
            };
            let id = id.unwrap_or_else(|| {
                if let Some(o) = self.overflow.get_mut(c) {
                    *o = true;
                }
                0
            });
            if id != 0
                && let Some((range, _)) = raw
            {
                in_columns.push(range);
            }
            if let Some(ids) = self.ids.get_mut(c) {
                ids.push(id);
            }
        }
        for (c, &r) in row.repeated.iter().enumerate() {
            if r && let Some(flag) = self.repeated.get_mut(c) {
                *flag = true;
            }
        }
        in_columns.sort_by_key(|r| r.start);
        let message = &line.message[..];
        let mut next = in_columns.iter().peekable();
        for (start, word) in words_at(message) {
            while next.peek().is_some_and(|r| r.end <= start) {
                next.next();
            }
            if next
                .peek()
                .is_some_and(|r| r.start <= start && start + word.len() <= r.end)
            {
                continue;
            }
            self.tokens.insert(hash_word(word));
        }
        self.chunk.push(line);
        self.rows += 1;
        if self.chunk.rows() >= self.chunk_max {
            self.seal_chunk();
        }
    }

    fn seal_chunk(&mut self) {
        let rows = self.chunk.rows();
        if rows == 0 {
            return;
        }
        let raw = self.chunk.take();
        let compressed = compress(&raw, ZSTD_LEVEL);
        let hashes: Vec<u64> = self.tokens.drain().collect();
        self.chunks
            .push((compressed, raw.len() as u64, Bloom::build(&hashes), rows));
    }

    /// Writes the block to `path` (through a temporary file, fsynced, renamed), after the
    /// dictionaries its ids need.
    pub(crate) fn write(mut self, path: &Path, dicts: &mut [Dict]) -> Result<Header, IndexError> {
        self.seal_chunk();
        for d in dicts.iter_mut() {
            d.flush()?;
        }
        let mut body: Vec<u8> = Vec::new();
        let mut columns = Vec::with_capacity(COLUMNS.len());
        for (c, spec) in COLUMNS.iter().enumerate() {
            let ids = self.ids.get(c).map_or(&[][..], Vec::as_slice);
            let max = ids.iter().copied().max().unwrap_or(0);
            let width: u8 = match max {
                0 => 0,
                1..=0xff => 1,
                0x100..=0xffff => 2,
                _ => 4,
            };
            let mut raw = Vec::with_capacity(ids.len() * usize::from(width));
            for &id in ids {
                match width {
                    0 => {}
                    1 => raw.push(id as u8),
                    2 => raw.extend_from_slice(&(id as u16).to_le_bytes()),
                    _ => raw.extend_from_slice(&id.to_le_bytes()),
                }
            }
            let start = body.len();
            if width > 0 {
                body.extend_from_slice(&compress(&raw, COLUMN_LEVEL));
            }
            columns.push(ColumnHeader {
                name: spec.name.to_owned(),
                width,
                repeated: self.repeated.get(c).copied().unwrap_or(false),
                overflow: self.overflow.get(c).copied().unwrap_or(false),
                section: section(&body, start),
            });
        }
        let time_min = if self.rows == 0 { 0 } else { self.time_min };
        let range = self.time_max.saturating_sub(time_min);
        let time_width: u8 = if u32::try_from(range).is_ok() { 4 } else { 8 };
        // Each row's offset from time_min, less the previous row's (wrapping): lines arrive
        // near time order, so the differences are small and zstd makes little of them.
        let mut raw = Vec::with_capacity(self.times.len() * usize::from(time_width));
        let mut last = 0u64;
        for &t in &self.times {
            let offset = t.wrapping_sub(time_min) as u64;
            let delta = offset.wrapping_sub(last);
            last = offset;
            match time_width {
                4 => raw.extend_from_slice(&(delta as u32).to_le_bytes()),
                _ => raw.extend_from_slice(&delta.to_le_bytes()),
            }
        }
        let start = body.len();
        body.extend_from_slice(&compress(&raw, COLUMN_LEVEL));
        let times = section(&body, start);
        let mut chunks = Vec::with_capacity(self.chunks.len());
        for (compressed, raw_len, bloom, rows) in &self.chunks {
            let start = body.len();
            body.extend_from_slice(compressed);
            let lines = section(&body, start);
            let start = body.len();
            for w in bloom.words() {
                body.extend_from_slice(&w.to_le_bytes());
            }
            chunks.push(ChunkHeader {
                rows: *rows as u32,
                lines,
                raw_len: *raw_len,
                filter: section(&body, start),
            });
        }
        let (first, end) = self.span().unwrap_or((0, 0));
        let mut header = Header {
            version: VERSION,
            rows: self.rows as u32,
            first,
            end,
            time_min,
            time_max: if self.rows == 0 { 0 } else { self.time_max },
            received_max: if self.rows == 0 { 0 } else { self.received_max },
            columns,
            time_width,
            times,
            chunk_rows: self.chunk_max as u32,
            chunks,
        };
        // Offsets so far are within the body; the body follows the header.
        let json_len = |h: &Header| serde_json::to_vec(h).map(|j| j.len()).unwrap_or(0);
        let mut base = 0u64;
        for _ in 0..4 {
            let next = (MAGIC.len() + 4 + json_len(&header) + 4) as u64;
            if next == base {
                break;
            }
            shift(&mut header, next.wrapping_sub(base));
            base = next;
        }
        let json = serde_json::to_vec(&header)
            .map_err(|e| IndexError::corrupt(path, format!("header: {e}")))?;
        let mut file = Vec::with_capacity(MAGIC.len() + 8 + json.len() + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&(json.len() as u32).to_le_bytes());
        file.extend_from_slice(&json);
        file.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        if file.len() as u64 != base {
            return Err(IndexError::corrupt(path, "header length did not settle"));
        }
        file.extend_from_slice(&body);
        write_atomically(path, &file)?;
        Ok(header)
    }
}

fn section(body: &[u8], start: usize) -> Section {
    let bytes = body.get(start..).unwrap_or_default();
    Section {
        offset: start as u64,
        len: bytes.len() as u64,
        crc: crc32fast::hash(bytes),
    }
}

/// Moves every section by `by` bytes.
fn shift(header: &mut Header, by: u64) {
    let move_section = |s: &mut Section| s.offset = s.offset.wrapping_add(by);
    header
        .columns
        .iter_mut()
        .for_each(|c| move_section(&mut c.section));
    move_section(&mut header.times);
    for c in &mut header.chunks {
        move_section(&mut c.lines);
        move_section(&mut c.filter);
    }
}

/// Writes `bytes` to `path` through `path.tmp`: fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let tmp = path.with_extension("tmp");
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| IndexError::io(&p, e)
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}
