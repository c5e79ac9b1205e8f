//! `paas index:rebuild`: an app's index made again from what it keeps — the lines of its
//! blocks (each readable chunk) — into a fresh directory that then takes the old one's place.
//! A block or chunk that cannot be read is reported (its lines are lost: the spool let them
//! go once they were in a block); the spool past the blocks is indexed as usual afterwards.

use std::path::{Path, PathBuf};

use logplex::AppName;
use serde::Serialize;

use super::block::{BlockBuilder, BlockFile};
use super::{AppIndex, Index, IndexError};

/// What a rebuild did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rebuilt {
    /// Lines read back and indexed.
    pub lines: u64,
    /// Blocks written.
    pub blocks: u64,
    /// What could not be read: a file and why (its lines are not in the new index).
    pub unreadable: Vec<String>,
}

/// Rebuilds `app_id`'s index (the indexer calls this between its turns, so nothing else
/// writes the app's index meanwhile).
pub(crate) fn rebuild(index: &Index, app_id: &str) -> Result<Rebuilt, IndexError> {
    crate::spool::check_app_id(app_id)?;
    let dir = index.inner.dir.join(app_id);
    let fresh = index.inner.dir.join(format!("{app_id}.rebuild"));
    remove_dir(&fresh)?;
    let config = index.config().clone();
    let new = AppIndex::open(&fresh, &config)?;
    let mut done = Rebuilt::default();
    let mut end = 0u64;
    let app = AppName::from(app_id);
    for path in block_files(&dir)? {
        let block = match BlockFile::open(&path) {
            Ok(b) => b,
            Err(e) => {
                done.unreadable.push(e.to_string());
                continue;
            }
        };
        let h = block.header().clone();
        let mut builder =
            BlockBuilder::new(config.block_rows.max(h.rows as usize), config.chunk_rows);
        {
            let mut dicts = new.dicts_mut();
            let mut room = config
                .max_dict_bytes
                .saturating_sub(dicts.iter().map(|d| d.memory()).sum());
            for k in 0..h.chunks.len() {
                match block.lines(k, &app) {
                    Ok(lines) => {
                        let mut i = 0;
                        while let Some(line) = lines.line(i) {
                            builder.push(&line, h.first, h.end, &mut dicts, &mut room);
                            done.lines += 1;
                            i += 1;
                        }
                    }
                    Err(e) => done.unreadable.push(e.to_string()),
                }
            }
        }
        end = end.max(h.end);
        if builder.rows() > 0 {
            let path = new.block_path(h.first);
            let mut dicts = new.dicts_mut();
            builder.write(&path, &mut dicts)?;
            done.blocks += 1;
        }
    }
    new.record_end(end, done.blocks as usize)?;
    drop(new);
    // The fresh directory takes the old one's place; queries that hold the old blocks open
    // finish on them.
    let old = index.inner.dir.join(format!("{app_id}.old"));
    remove_dir(&old)?;
    if let Some(app) = index.apps().remove(app_id) {
        let published = app.published_mut();
        for b in &published.blocks {
            index.cache().forget(b.id());
        }
    }
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(|e| IndexError::io(&dir, e))?;
    }
    std::fs::rename(&fresh, &dir).map_err(|e| IndexError::io(&fresh, e))?;
    remove_dir(&old)?;
    Ok(done)
}

/// The block files under `dir/blocks`, oldest first (none when there is no such directory).
fn block_files(dir: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let blocks = dir.join("blocks");
    let entries = match std::fs::read_dir(&blocks) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IndexError::io(&blocks, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| IndexError::io(&blocks, e))?.path();
        if path.extension().is_some_and(|e| e == "blk") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn remove_dir(dir: &Path) -> Result<(), IndexError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(IndexError::io(dir, e)),
    }
}
