//! The column cache: decoded columns, times and token filters of blocks, shared by every query, bounded in
//! bytes (`IndexConfig::cache_bytes`); the least recently used go first. A warm query reads
//! no file and decompresses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::IndexError;
use super::block::{Ids, Times};
use super::bloom::Bloom;

/// What is cached: a column, or a block's times.
#[derive(Clone, Debug)]
enum Entry {
    Ids(Arc<Ids>),
    Times(Arc<Times>),
    Filter(Arc<Bloom>),
}

impl Entry {
    fn bytes(&self) -> usize {
        let data = match self {
            Entry::Ids(i) => i.bytes(),
            Entry::Times(t) => t.bytes(),
            Entry::Filter(f) => f.words().len() * 8,
        };
        data + 64
    }
}

/// Which column of which block (`TIMES` for its times, `FILTERS + k` for chunk k's token
/// filter).
type Key = (u64, u32);
const TIMES: u32 = u32::MAX;
const FILTERS: u32 = 1 << 16;

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, (Entry, u64)>,
    tick: u64,
    bytes: usize,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ColumnCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl ColumnCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        ColumnCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: Key) -> Option<Entry> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(&key).map(|(e, t)| {
            *t = tick;
            e.clone()
        })
    }

    fn put(&self, key: Key, entry: Entry) {
        let size = entry.bytes();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((old, _)) = inner.map.insert(key, (entry, tick)) {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some((e, _)) = inner.map.remove(&oldest) {
                inner.bytes -= e.bytes();
            }
        }
    }

    /// Column `c` of block `block`, loaded by `load` when not cached.
    pub(crate) fn ids(
        &self,
        block: u64,
        c: usize,
        load: impl FnOnce() -> Result<Ids, IndexError>,
    ) -> Result<Arc<Ids>, IndexError> {
        let key = (
            block,
            u32::try_from(c).unwrap_or(FILTERS - 1).min(FILTERS - 1),
        );
        if let Some(Entry::Ids(ids)) = self.get(key) {
            return Ok(ids);
        }
        let ids = Arc::new(load()?);
        self.put(key, Entry::Ids(ids.clone()));
        Ok(ids)
    }

    /// Block `block`'s times, loaded by `load` when not cached.
    pub(crate) fn times(
        &self,
        block: u64,
        load: impl FnOnce() -> Result<Times, IndexError>,
    ) -> Result<Arc<Times>, IndexError> {
        if let Some(Entry::Times(t)) = self.get((block, TIMES)) {
            return Ok(t);
        }
        let t = Arc::new(load()?);
        self.put((block, TIMES), Entry::Times(t.clone()));
        Ok(t)
    }

    /// Chunk `k`'s token filter of block `block`, loaded by `load` when not cached.
    pub(crate) fn filter(
        &self,
        block: u64,
        k: usize,
        load: impl FnOnce() -> Result<Bloom, IndexError>,
    ) -> Result<Arc<Bloom>, IndexError> {
        let key = (
            block,
            FILTERS.saturating_add(u32::try_from(k).unwrap_or(u32::MAX - 1)),
        );
        if let Some(Entry::Filter(f)) = self.get(key) {
            return Ok(f);
        }
        let f = Arc::new(load()?);
        self.put(key, Entry::Filter(f.clone()));
        Ok(f)
    }

    /// Forgets a block (deleted by retention).
    pub(crate) fn forget(&self, block: u64) {
        let mut inner = self.lock();
        let keys: Vec<Key> = inner.map.keys().filter(|k| k.0 == block).copied().collect();
        for k in keys {
            if let Some((e, _)) = inner.map.remove(&k) {
                inner.bytes -= e.bytes();
            }
        }
    }

    /// Bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first() {
        let cache = ColumnCache::new(3 * (100 + 64));
        let load = |n: usize| move || Ok(Ids::U8(vec![0; n]));
        for b in 0..3 {
            cache.ids(b, 0, load(100)).unwrap();
        }
        assert_eq!(cache.bytes(), 3 * 164);
        cache.ids(0, 0, || panic!("cached")).unwrap();
        cache.ids(3, 0, load(100)).unwrap();
        // Block 1 was the least recently used.
        cache.ids(0, 0, || panic!("kept")).unwrap();
        assert!(cache.ids(1, 0, load(100)).is_ok());
        cache.forget(1);
        assert!(cache.bytes() <= 3 * 164);
        // Too big to keep at all: loaded, not cached.
        cache.ids(9, 0, load(10_000)).unwrap();
        assert!(cache.bytes() <= 3 * 164);
    }
}
