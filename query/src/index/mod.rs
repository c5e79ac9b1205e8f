//! The index: an app's kept lines as blocks of columns, so that a query reads a few MB of
//! small ids instead of parsing gigabytes of text.
//!
//! # Design (see docs/ARCHITECTURE.md for the alternatives measured)
//!
//! Lines reach the index from the spool (the router-wide consumer writes every accepted line
//! there first; ingest never waits for the index). The indexer reads each app's spool from the
//! position it has made durable, and cuts the lines in **blocks** of up to 65,536:
//! - a **column** per key of the router line and per attribute (`columns.rs`), each value an
//!   id into the app's **dictionary** of that column (`dict.rs`): a filter tests each distinct
//!   value once and then compares ids; `count by path` counts ids;
//! - the **lines** themselves, zstd-compressed in chunks of 4,096, which answer `paas query`'s
//!   lines and every key that is no column;
//! - a **token filter** per chunk (`bloom.rs`): the words of the messages and the pairs of the
//!   keys that are no column, so that a request id or a full-text word rules chunks out.
//!
//! A query (`search.rs`) answers from the blocks and then scans the spool past the last block
//! (lines not yet in a block: at most the last 30 s, or the indexer's lag): a line is
//! queryable as soon as the spool has it. Once a block is durable, the spool's segments it
//! covers are deleted: the spool is the index's write-ahead log, and the blocks (compressed
//! lines and all) are what is kept, under the same retention by age and bytes.
//!
//! # Layout
//!
//! ```text
//! DIR/<app-id>/dict/<column>                         dictionaries, append-only
//! DIR/<app-id>/blocks/<first spool position>.blk    blocks (format in block/mod.rs)
//! ```

mod aggregate;
mod bitmap;
mod block;
mod bloom;
mod cache;
mod columns;
mod dict;
mod filter;
mod indexer;
mod rebuild;
mod search;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use block::BlockFile;
use dict::Dict;

pub use indexer::{Indexer, IndexerHandle};
pub use rebuild::Rebuilt;
pub(crate) use search::{SearchError, answer};

/// How the index is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    /// Distinct values a column's dictionary keeps per app; past it, a block reads that
    /// column's values from its lines. Default 4,000,000.
    pub max_dict_values: usize,
    /// The memory an app's dictionaries take at most (their values stay in memory); past
    /// it, new values are read from the lines. Default 128 MiB (the benchmark's 600,000
    /// distinct paths take about 80).
    pub max_dict_bytes: u64,
    /// Blocks whose newest line was received longer ago are deleted. Default 7 days.
    pub max_age: Duration,
    /// The bytes an app's blocks take at most (oldest deleted first). Default 1 GiB.
    pub max_bytes_per_app: u64,
    /// A block is written when full, or when its first line waited this long. Default 30 s.
    pub flush_after: Duration,
    /// The memory decoded columns are cached in, over every app. Default 256 MiB.
    pub cache_bytes: usize,
    /// Dictionary values one query may test while it is planned (each term on a column tests
    /// every value of the column once); past it, terms are left to the lines, so a query of
    /// thousands of terms over 600,000 paths costs a scan, not hours. Default 20,000,000.
    pub max_value_tests: usize,
    /// Rows of a full block. Default 65,536.
    pub block_rows: usize,
    /// Rows of a compressed chunk (the unit a lookup decompresses). Default 4,096.
    pub chunk_rows: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            max_dict_values: 4_000_000,
            max_dict_bytes: 128 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes_per_app: 1 << 30,
            flush_after: Duration::from_secs(30),
            cache_bytes: 256 << 20,
            max_value_tests: 20_000_000,
            block_rows: block::BLOCK_ROWS,
            chunk_rows: block::CHUNK_ROWS,
        }
    }
}

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing a file of the index.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the index is damaged: `paas index:rebuild -a APP` rebuilds it.
    #[error("{path}: corrupt: {reason} (rebuild with `paas index:rebuild`)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The spool the index reads.
    #[error(transparent)]
    Spool(#[from] crate::SpoolError),
    /// The indexer has stopped.
    #[error("the indexer has stopped")]
    Stopped,
}

impl IndexError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What an app's index has made durable: its blocks, oldest first, and the spool position
/// the next block starts at.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) blocks: Vec<Arc<BlockFile>>,
    pub(crate) end: u64,
}

/// One app's index.
#[derive(Debug)]
pub(crate) struct AppIndex {
    dir: PathBuf,
    /// One per column, in `columns::COLUMNS` order. Lock order: `published` before `dicts`.
    dicts: RwLock<Vec<Dict>>,
    published: RwLock<Published>,
}

impl AppIndex {
    fn open(dir: &Path, config: &IndexConfig) -> Result<AppIndex, IndexError> {
        let dicts_dir = dir.join("dict");
        let blocks_dir = dir.join("blocks");
        for d in [dir, &dicts_dir, &blocks_dir] {
            crate::spool::make_dir(d)?;
        }
        let dicts = columns::COLUMNS
            .iter()
            .map(|c| Dict::open(&dicts_dir.join(c.name), config.max_dict_values))
            .collect::<Result<Vec<_>, _>>()?;
        let mut blocks = Vec::new();
        let entries = std::fs::read_dir(&blocks_dir).map_err(|e| IndexError::io(&blocks_dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| IndexError::io(&blocks_dir, e))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("blk") => blocks.push(Arc::new(BlockFile::open(&path)?)),
                Some("tmp") => {
                    // A block a crash cut short: its lines are still in the spool.
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        blocks.sort_by_key(|b| b.header().first);
        let reach = blocks.last().map_or(0, |b| b.header().end);
        let (recorded, count) = read_end(&dir.join("end"))?;
        if blocks.len() < count {
            return Err(IndexError::corrupt(
                &blocks_dir,
                format!(
                    "blocks are missing: {count} were written, {} are found",
                    blocks.len()
                ),
            ));
        }
        let end = reach.max(recorded);
        Ok(AppIndex {
            dir: dir.to_owned(),
            dicts: RwLock::new(dicts),
            published: RwLock::new(Published { blocks, end }),
        })
    }

    pub(crate) fn published(&self) -> RwLockReadGuard<'_, Published> {
        self.published.read().unwrap_or_else(|p| p.into_inner())
    }

    fn published_mut(&self) -> RwLockWriteGuard<'_, Published> {
        self.published.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn dicts(&self) -> RwLockReadGuard<'_, Vec<Dict>> {
        self.dicts.read().unwrap_or_else(|p| p.into_inner())
    }

    fn dicts_mut(&self) -> RwLockWriteGuard<'_, Vec<Dict>> {
        self.dicts.write().unwrap_or_else(|p| p.into_inner())
    }

    fn block_path(&self, first: u64) -> PathBuf {
        self.dir.join("blocks").join(format!("{first:020}.blk"))
    }

    /// Records the spool position the index has reached and how many blocks it has (a later
    /// open resumes there, and says so when blocks are missing).
    fn record_end(&self, end: u64, blocks: usize) -> Result<(), IndexError> {
        block::write_atomically(&self.dir.join("end"), format!("{end} {blocks}").as_bytes())
    }

    /// Takes the oldest blocks out of `published`: those whose newest line was received
    /// before `max_age`, and while the blocks take more than `max_bytes_per_app` (the newest
    /// block is kept). Returns their files, for the caller to delete once the new count is
    /// recorded (so that a crash between leaves more blocks than recorded, never fewer).
    fn retain(
        &self,
        published: &mut Published,
        now: logplex::Timestamp,
        config: &IndexConfig,
        cache: &cache::ColumnCache,
    ) -> Vec<PathBuf> {
        let max_age = i64::try_from(config.max_age.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now.as_micros().saturating_sub(max_age);
        let mut total: u64 = published.blocks.iter().map(|b| b.bytes()).sum();
        let mut gone = Vec::new();
        while let Some(oldest) = published.blocks.first() {
            let old = oldest.header().received_max < cutoff;
            let big = total > config.max_bytes_per_app && published.blocks.len() > 1;
            if !old && !big {
                break;
            }
            total = total.saturating_sub(oldest.bytes());
            cache.forget(oldest.id());
            gone.push(oldest.path().to_owned());
            published.blocks.remove(0);
        }
        gone
    }

    /// What the app's index keeps.
    pub(crate) fn stats(&self) -> AppIndexStats {
        let published = self.published();
        let dict_bytes: u64 = self.dicts().iter().map(Dict::bytes).sum();
        AppIndexStats {
            blocks: published.blocks.len(),
            lines: published
                .blocks
                .iter()
                .map(|b| u64::from(b.header().rows))
                .sum(),
            bytes: published.blocks.iter().map(|b| b.bytes()).sum::<u64>() + dict_bytes,
            end: published.end,
        }
    }
}

/// The spool position an app's index last recorded reaching, and its blocks then (zeros when
/// never).
fn read_end(path: &Path) -> Result<(u64, usize), IndexError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(IndexError::io(path, e)),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(end)), Some(Ok(blocks)), None) => {
            Ok((end, usize::try_from(blocks).unwrap_or(usize::MAX)))
        }
        _ => Err(IndexError::corrupt(path, "not a position and a count")),
    }
}

/// What an app's index keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppIndexStats {
    /// Block files.
    pub blocks: usize,
    /// Lines in them.
    pub lines: u64,
    /// Bytes on disk (blocks and dictionaries).
    pub bytes: u64,
    /// The spool position indexed through.
    pub end: u64,
}

/// The index of every app, under one directory.
#[derive(Clone, Debug)]
pub struct Index {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: IndexConfig,
    apps: Mutex<HashMap<String, Arc<AppIndex>>>,
    cache: cache::ColumnCache,
    /// Lines written into blocks since start.
    indexed: AtomicU64,
    /// Bytes of block files written since start.
    written_bytes: AtomicU64,
    /// Values dictionaries refused (full, or past `max_dict_bytes`): read from the lines.
    dict_refusals: AtomicU64,
    /// Queries whose planning passed `max_value_tests`: terms read from the lines.
    plans_over_budget: AtomicU64,
}

impl Index {
    /// The index under `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>, config: IndexConfig) -> Result<Index, IndexError> {
        let dir = dir.as_ref().to_owned();
        crate::spool::make_dir(&dir)?;
        let cache_bytes = config.cache_bytes;
        Ok(Index {
            inner: Arc::new(Inner {
                dir,
                config,
                apps: Mutex::new(HashMap::new()),
                cache: cache::ColumnCache::new(cache_bytes),
                indexed: AtomicU64::new(0),
                written_bytes: AtomicU64::new(0),
                dict_refusals: AtomicU64::new(0),
                plans_over_budget: AtomicU64::new(0),
            }),
        })
    }

    fn apps(&self) -> MutexGuard<'_, HashMap<String, Arc<AppIndex>>> {
        self.inner.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app's index, opened on first use.
    pub(crate) fn app(&self, app_id: &str) -> Result<Arc<AppIndex>, IndexError> {
        crate::spool::check_app_id(app_id)?;
        let mut apps = self.apps();
        if let Some(app) = apps.get(app_id) {
            return Ok(app.clone());
        }
        let app = Arc::new(AppIndex::open(
            &self.inner.dir.join(app_id),
            &self.inner.config,
        )?);
        apps.insert(app_id.to_owned(), app.clone());
        Ok(app)
    }

    /// What the app's index keeps.
    pub fn app_stats(&self, app_id: &str) -> Result<AppIndexStats, IndexError> {
        Ok(self.app(app_id)?.stats())
    }

    /// Deletes the app's index (its blocks and dictionaries), as for a rebuild or a deleted
    /// app.
    pub fn remove_app(&self, app_id: &str) -> Result<(), IndexError> {
        crate::spool::check_app_id(app_id)?;
        let removed = self.apps().remove(app_id);
        if let Some(app) = &removed {
            // Wait out queries reading it.
            let published = app.published_mut();
            for b in &published.blocks {
                self.inner.cache.forget(b.id());
            }
        }
        let dir = self.inner.dir.join(app_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IndexError::io(&dir, e)),
        }
    }

    pub(crate) fn cache(&self) -> &cache::ColumnCache {
        &self.inner.cache
    }

    /// Bytes of decoded columns in the cache.
    pub fn cache_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    pub(crate) fn config(&self) -> &IndexConfig {
        &self.inner.config
    }

    /// Lines written into blocks since start.
    pub fn indexed_lines(&self) -> u64 {
        self.inner.indexed.load(Ordering::Relaxed)
    }

    /// Bytes of block files written since start.
    pub fn written_bytes(&self) -> u64 {
        self.inner.written_bytes.load(Ordering::Relaxed)
    }

    /// Values dictionaries refused since start (full, or past `--query-dict-mb`).
    pub fn dict_refusals(&self) -> u64 {
        self.inner.dict_refusals.load(Ordering::Relaxed)
    }

    /// Queries whose planning passed `--query-max-value-tests` since start.
    pub fn plans_over_budget(&self) -> u64 {
        self.inner.plans_over_budget.load(Ordering::Relaxed)
    }
}
