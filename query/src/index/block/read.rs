//! Reading a block file: its header at open, then only the sections a query needs.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use logplex::AppName;

use super::{ChunkLines, Header, Ids, MAGIC, MAX_HEADER, Section, Times, VERSION};
use crate::index::IndexError;
use crate::index::bloom::Bloom;

/// A block file, its header read. Its file descriptor is not held: reads take one from a
/// process-wide set of at most [`MAX_OPEN_BLOCKS`] open block files (the most recently read
/// kept), so that a router of many apps and many blocks holds a bounded number of descriptors.
#[derive(Debug)]
pub(crate) struct BlockFile {
    id: u64,
    path: PathBuf,
    header: Header,
    len: u64,
}

/// The most block files open at once, over every app.
pub(crate) const MAX_OPEN_BLOCKS: usize = 128;

/// The block files open now, the most recently read last.
static OPEN: std::sync::Mutex<std::collections::VecDeque<(u64, std::sync::Arc<File>)>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// An open descriptor of the block `id` at `path`, from the open set or opened now (the least
/// recently read one closed past the bound, once no read holds it).
fn descriptor(id: u64, path: &Path) -> std::io::Result<std::sync::Arc<File>> {
    {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = open.iter().position(|(o, _)| *o == id)
            && let Some(entry) = open.remove(i)
        {
            let file = entry.1.clone();
            open.push_back(entry);
            return Ok(file);
        }
    }
    let file = std::sync::Arc::new(File::open(path)?);
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    while open.len() >= MAX_OPEN_BLOCKS {
        open.pop_front();
    }
    open.push_back((id, file.clone()));
    Ok(file)
}

impl BlockFile {
    /// Opens `path` and reads its header.
    pub(crate) fn open(path: &Path) -> Result<BlockFile, IndexError> {
        let io = |e| IndexError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; 12];
        file.read_exact_at(&mut head, 0)
            .map_err(|_| IndexError::corrupt(path, "shorter than a block header"))?;
        if &head[..8] != MAGIC {
            return Err(IndexError::corrupt(path, "not a block file (bad magic)"));
        }
        let json_len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if json_len > MAX_HEADER || 12 + json_len as u64 + 4 > len {
            return Err(IndexError::corrupt(path, "header length out of bounds"));
        }
        let mut json = vec![0u8; json_len + 4];
        file.read_exact_at(&mut json, 12).map_err(io)?;
        let crc_bytes = json.split_off(json_len);
        let crc = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
        if crc32fast::hash(&json) != crc {
            return Err(IndexError::corrupt(path, "header checksum mismatch"));
        }
        let header: Header = serde_json::from_slice(&json)
            .map_err(|e| IndexError::corrupt(path, format!("header: {e}")))?;
        if header.version != VERSION {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "format version {} (this build reads {VERSION})",
                    header.version
                ),
            ));
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        drop(file);
        let block = BlockFile {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            header,
            len,
        };
        block.check_layout()?;
        Ok(block)
    }

    /// Every section lies in the file and has the size its rows need.
    fn check_layout(&self) -> Result<(), IndexError> {
        let h = &self.header;
        let rows = u64::from(h.rows);
        let fits = |s: &Section| s.offset.checked_add(s.len).is_some_and(|e| e <= self.len);
        let columns_ok = h
            .columns
            .iter()
            .all(|c| matches!(c.width, 0 | 1 | 2 | 4) && fits(&c.section));
        let times_ok = matches!(h.time_width, 4 | 8) && fits(&h.times);
        let chunk_rows: u64 = h.chunks.iter().map(|c| u64::from(c.rows)).sum();
        let n = h.chunks.len();
        let chunks_ok = chunk_rows == rows
            && h.chunk_rows > 0
            && h.chunks
                .iter()
                .enumerate()
                .all(|(i, c)| c.rows == h.chunk_rows || i + 1 == n)
            && h.chunks.iter().all(|c| {
                fits(&c.lines)
                    && fits(&c.filter)
                    && c.filter.len % 8 == 0
                    && (c.filter.len / 8).is_power_of_two()
                    && c.raw_len <= 1 << 30
            });
        if columns_ok && times_ok && chunks_ok {
            Ok(())
        } else {
            Err(IndexError::corrupt(
                &self.path,
                "sections do not match the header",
            ))
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.len
    }

    fn read(&self, s: &Section, what: &str) -> Result<Vec<u8>, IndexError> {
        let len = usize::try_from(s.len)
            .map_err(|_| IndexError::corrupt(&self.path, format!("{what}: too long")))?;
        let mut buf = vec![0u8; len];
        descriptor(self.id, &self.path)
            .and_then(|file| file.read_exact_at(&mut buf, s.offset))
            .map_err(|e| IndexError::io(&self.path, e))?;
        if crc32fast::hash(&buf) != s.crc {
            return Err(IndexError::corrupt(
                &self.path,
                format!("{what}: checksum mismatch at offset {}", s.offset),
            ));
        }
        Ok(buf)
    }

    /// A unique number of this open block (the column cache's key).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Reads and decompresses `section`, which holds `len` bytes.
    fn read_zstd(&self, section: &Section, len: usize, what: &str) -> Result<Vec<u8>, IndexError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let compressed = self.read(section, what)?;
        zstd::bulk::decompress(&compressed, len)
            .ok()
            .filter(|raw| raw.len() == len)
            .ok_or_else(|| IndexError::corrupt(&self.path, format!("{what}: does not decompress")))
    }

    /// Column `c`'s ids, a row each (0: absent).
    pub(crate) fn column(&self, c: usize) -> Result<Ids, IndexError> {
        let rows = self.header.rows as usize;
        let Some(col) = self.header.columns.get(c) else {
            return Ok(Ids::Absent(rows));
        };
        let what = format!("column {}", col.name);
        let raw = self.read_zstd(&col.section, rows * usize::from(col.width), &what)?;
        Ids::decode(col.width, rows, &raw)
            .ok_or_else(|| IndexError::corrupt(&self.path, format!("{what}: size")))
    }

    /// Each row's event time.
    pub(crate) fn times(&self) -> Result<Times, IndexError> {
        let h = &self.header;
        let rows = h.rows as usize;
        let raw = self.read_zstd(&h.times, rows * usize::from(h.time_width), "times")?;
        Times::decode(h.time_width, h.time_min, rows, &raw)
            .ok_or_else(|| IndexError::corrupt(&self.path, "times: size"))
    }

    /// Chunk `k`'s token filter.
    pub(crate) fn filter(&self, k: usize) -> Result<Bloom, IndexError> {
        let Some(chunk) = self.header.chunks.get(k) else {
            return Err(IndexError::corrupt(&self.path, format!("no chunk {k}")));
        };
        let bytes = self.read(&chunk.filter, "token filter")?;
        let words = bytes
            .chunks_exact(8)
            .map(|b| {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_le_bytes(w)
            })
            .collect();
        Bloom::from_words(words).ok_or_else(|| IndexError::corrupt(&self.path, "token filter size"))
    }

    /// Chunk `k`'s lines, for `app`.
    pub(crate) fn lines(&self, k: usize, app: &AppName) -> Result<ChunkLines, IndexError> {
        let Some(chunk) = self.header.chunks.get(k) else {
            return Err(IndexError::corrupt(&self.path, format!("no chunk {k}")));
        };
        let compressed = self.read(&chunk.lines, "lines")?;
        let raw = zstd::bulk::decompress(&compressed, chunk.raw_len as usize)
            .map_err(|e| IndexError::corrupt(&self.path, format!("lines of chunk {k}: {e}")))?;
        ChunkLines::parse(Bytes::from(raw), chunk.rows as usize, app.clone())
            .ok_or_else(|| IndexError::corrupt(&self.path, format!("lines of chunk {k}: damaged")))
    }
}
