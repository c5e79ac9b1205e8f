//! A block: up to [`MAX_ROWS`] consecutive lines of one app, as columns of dictionary ids,
//! a column of times, and the lines themselves in zstd-compressed chunks of [`CHUNK_ROWS`],
//! each chunk with a token filter. Written once, read many times, never changed.
//!
//! # File (format version 1)
//!
//! ```text
//! magic      "PAASIDX1"
//! length     u32   of the header
//! header     JSON  (Header: rows, spool positions, times, and where each section is)
//! crc        u32   CRC-32 of the header
//! sections   column ids (1, 2 or 4 bytes a row, little-endian, zstd-compressed; width 0:
//!            every row absent, no bytes), times (µs after time_min, 4 or 8 bytes a row,
//!            zstd-compressed), then per chunk its compressed lines and its token filter (u64
//!            words)
//! ```
//!
//! Every section has its CRC-32 in the header, checked when it is read. A chunk's lines are
//! laid out column by column before compression (`chunk.rs`).

mod chunk;
mod ids;
mod read;
mod write;

use serde::{Deserialize, Serialize};

pub(crate) use chunk::ChunkLines;
pub(crate) use ids::{Ids, Times};
pub(crate) use read::BlockFile;
pub(crate) use write::{BlockBuilder, write_atomically};

/// The format version block files are written in.
pub(crate) const VERSION: u32 = 1;
/// Rows a block holds at most, by default.
pub(crate) const BLOCK_ROWS: usize = 65_536;
/// Rows of one compressed chunk (and one token filter), by default.
pub(crate) const CHUNK_ROWS: usize = 4096;

const MAGIC: &[u8; 8] = b"PAASIDX1";
/// The longest header read.
const MAX_HEADER: usize = 1 << 20;

/// Where a section is in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Section {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// One column of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ColumnHeader {
    pub(crate) name: String,
    /// Bytes an id takes: 0 (no row has the key), 1, 2 or 4.
    pub(crate) width: u8,
    /// Some row has the key more than once (the column holds the first value; a filter on
    /// the key reads the lines).
    pub(crate) repeated: bool,
    /// Some row's value is not in the column (the dictionary was full, or the value too
    /// long): the column cannot answer for this block.
    pub(crate) overflow: bool,
    pub(crate) section: Section,
}

/// One chunk of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkHeader {
    pub(crate) rows: u32,
    /// Its lines, zstd-compressed.
    pub(crate) lines: Section,
    /// Their uncompressed size.
    pub(crate) raw_len: u64,
    /// Its token filter.
    pub(crate) filter: Section,
}

/// What a block file's header says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) rows: u32,
    /// The spool position of the first line.
    pub(crate) first: u64,
    /// The spool position just past the last line: where the index resumes.
    pub(crate) end: u64,
    pub(crate) time_min: i64,
    pub(crate) time_max: i64,
    /// The greatest received time (retention by age).
    pub(crate) received_max: i64,
    pub(crate) columns: Vec<ColumnHeader>,
    /// 4 or 8.
    pub(crate) time_width: u8,
    pub(crate) times: Section,
    /// Rows of every chunk but the last.
    pub(crate) chunk_rows: u32,
    pub(crate) chunks: Vec<ChunkHeader>,
}

impl Header {
    /// The chunk of `row` and the row's place in it.
    pub(crate) fn chunk_of(&self, row: usize) -> (usize, usize) {
        let n = (self.chunk_rows as usize).max(1);
        (row / n, row % n)
    }
}

#[cfg(test)]
mod tests;
