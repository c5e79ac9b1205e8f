//! The indexer: a thread that reads every app's spool from where its index stops, cuts the
//! lines into blocks, makes each durable, and then lets the spool delete what the blocks now
//! keep. Ingest never waits for it: the router's consumer only appends to the spool; a line
//! not yet in a block is answered from the spool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logplex::Timestamp;

use super::block::{BlockBuilder, BlockFile};
use super::rebuild::{Rebuilt, rebuild};
use super::{AppIndex, Index, IndexError};
use crate::spool::{Position, Spool};

/// Lines one app is given per turn before the next app's turn.
const TURN_LINES: usize = 65_536;
/// How long the indexer sleeps when no app had new lines.
const IDLE: Duration = Duration::from_millis(50);

/// What the indexer has done.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) lines: AtomicU64,
    pub(crate) blocks: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Spool bytes accepted and not yet in a block, over every app (as of the last turn).
    pub(crate) lag_bytes: AtomicU64,
    /// The same by app id.
    pub(crate) lag_by_app: Mutex<HashMap<String, u64>>,
}

/// Starts the indexer.
#[derive(Debug)]
pub struct Indexer;

/// The running indexer.
#[derive(Debug)]
pub struct IndexerHandle {
    stop: Arc<AtomicBool>,
    requests: Mutex<mpsc::Sender<Request>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// A rebuild asked of the indexer thread: the app, and where to answer.
type Request = (String, mpsc::Sender<Result<Rebuilt, IndexError>>);

/// An app's block being filled, and when its first line was read.
struct Pending {
    builder: BlockBuilder,
    since: Instant,
}

impl Indexer {
    /// Starts indexing `spool`'s apps into `index` on a thread of its own.
    pub fn start(index: Index, spool: Spool) -> IndexerHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (requests, inbox) = mpsc::channel();
        let thread = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("paas-indexer".into())
                .spawn(move || run(&index, &spool, &stop, &counters, &inbox))
                .map_err(|e| tracing::error!(error = %e, "index: no indexer thread"))
                .ok()
        };
        IndexerHandle {
            stop,
            requests: Mutex::new(requests),
            thread: Mutex::new(thread),
            counters,
        }
    }
}

impl IndexerHandle {
    /// Writes the blocks being filled and stops, within `within` (else leaves the thread to
    /// finish: the spool has every line it had not written).
    pub fn stop(&self, within: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = thread else { return };
        let deadline = Instant::now() + within;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("index: the indexer did not stop in time; its lines stay in the spool");
        }
    }

    /// Rebuilds an app's index from the lines its blocks keep (`paas index:rebuild`), on the
    /// indexer's thread between its turns; blocks the caller until done.
    pub fn rebuild(&self, app_id: &str) -> Result<Rebuilt, IndexError> {
        let (reply, answer) = mpsc::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((app_id.to_owned(), reply));
        let stopped = || IndexError::Stopped;
        sent.map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Lines written into blocks since start.
    pub fn lines(&self) -> u64 {
        self.counters.lines.load(Ordering::Relaxed)
    }

    /// Blocks written since start.
    pub fn blocks(&self) -> u64 {
        self.counters.blocks.load(Ordering::Relaxed)
    }

    /// Failed turns (logged).
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::Relaxed)
    }

    /// Spool bytes not yet in a block, over every app.
    pub fn lag_bytes(&self) -> u64 {
        self.counters.lag_bytes.load(Ordering::Relaxed)
    }

    /// Spool bytes of the app not yet in a block, as of the indexer's last turn (`None`
    /// before its first).
    pub fn app_lag_bytes(&self, app_id: &str) -> Option<u64> {
        self.counters
            .lag_by_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app_id)
            .copied()
    }
}

/// Indexes every app's new lines now, on this thread; with `flush`, writes the blocks being
/// filled too (else they are dropped, and their lines stay the spool's).
#[cfg(test)]
pub(crate) fn catch_up(index: &Index, spool: &Spool, flush: bool) -> Result<(), IndexError> {
    let counters = Counters::default();
    let mut pending = HashMap::new();
    for id in spool.app_ids()? {
        while turn(index, spool, &id, &mut pending, flush, &counters)?.0 {}
    }
    Ok(())
}

fn run(
    index: &Index,
    spool: &Spool,
    stop: &AtomicBool,
    counters: &Counters,
    inbox: &mpsc::Receiver<Request>,
) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut failing: HashMap<String, Instant> = HashMap::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while let Ok((id, reply)) = inbox.try_recv() {
            // The block being filled is dropped: its lines are still in the spool.
            pending.remove(&id);
            failing.remove(&id);
            let _ = reply.send(rebuild(index, &id));
        }
        let ids = match spool.app_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "index: listing the spool's apps");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
        };
        let mut busy = false;
        let mut lag = 0u64;
        for id in &ids {
            if failing
                .get(id)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
            {
                continue;
            }
            match turn(index, spool, id, &mut pending, stopping, counters) {
                Ok((read, behind)) => {
                    busy |= read;
                    lag += behind;
                    counters
                        .lag_by_app
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone(), behind);
                    failing.remove(id);
                }
                Err(e) => {
                    tracing::error!(app_id = %id, error = %e, "index: indexing the app");
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    pending.remove(id);
                    failing.insert(id.clone(), Instant::now());
                }
            }
        }
        pending.retain(|id, _| ids.contains(id));
        counters
            .lag_by_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| ids.contains(id));
        counters.lag_bytes.store(lag, Ordering::Relaxed);
        if stopping {
            return;
        }
        if !busy {
            std::thread::sleep(IDLE);
        }
    }
}

/// One app's turn: reads up to `TURN_LINES` new lines, writes the block when it is full or
/// old enough (or when stopping). Returns whether it read any, and the spool bytes left.
fn turn(
    index: &Index,
    spool: &Spool,
    id: &str,
    pending: &mut HashMap<String, Pending>,
    stopping: bool,
    counters: &Counters,
) -> Result<(bool, u64), IndexError> {
    let app = index.app(id)?;
    let from = match pending.get(id).and_then(|p| p.builder.span()) {
        Some((_, end)) => end,
        None => app.published().end,
    };
    let mut scan = spool.scan_from(id, Position(from))?;
    let mut read = 0usize;
    {
        let mut dicts = app.dicts_mut();
        let budget = index.config().max_dict_bytes;
        let mut room = budget.saturating_sub(dicts.iter().map(|d| d.memory()).sum());
        while read < TURN_LINES {
            let at = scan.position().0;
            let Some(line) = scan.next().transpose()? else {
                break;
            };
            let end = scan.position().0;
            let p = pending.entry(id.to_owned()).or_insert_with(|| Pending {
                builder: BlockBuilder::new(index.config().block_rows, index.config().chunk_rows),
                since: Instant::now(),
            });
            p.builder.push(&line, at, end, &mut dicts, &mut room);
            read += 1;
            if p.builder.is_full() {
                drop(dicts);
                if let Some(p) = pending.remove(id) {
                    publish(index, spool, id, &app, p.builder, counters)?;
                }
                dicts = app.dicts_mut();
            }
        }
    }
    let due = pending.get(id).is_some_and(|p| {
        p.builder.rows() > 0 && (stopping || p.since.elapsed() >= index.config().flush_after)
    });
    if due && let Some(p) = pending.remove(id) {
        publish(index, spool, id, &app, p.builder, counters)?;
    }
    // Behind: the bytes of lines in no block. Once the scan reached the spool's end, that is
    // the block being filled; else everything past the last block (seals and segment headers
    // included, a few bytes).
    let behind = if read < TURN_LINES {
        pending
            .get(id)
            .and_then(|p| p.builder.span())
            .map_or(0, |(first, end)| end.saturating_sub(first))
    } else {
        let spool_end = spool.app_stats(id)?.end;
        spool_end.saturating_sub(app.published().end)
    };
    Ok((read > 0, behind))
}

/// Makes `builder`'s block durable, adds it to what queries read, releases the spool's
/// segments it covers, and applies retention.
fn publish(
    index: &Index,
    spool: &Spool,
    id: &str,
    app: &AppIndex,
    builder: BlockBuilder,
    counters: &Counters,
) -> Result<(), IndexError> {
    let Some((first, _)) = builder.span() else {
        return Ok(());
    };
    let rows = builder.rows() as u64;
    let refused = builder.refused();
    let path = app.block_path(first);
    let header = {
        let mut dicts = app.dicts_mut();
        builder.write(&path, &mut dicts)?
    };
    let block = Arc::new(BlockFile::open(&path)?);
    let bytes = block.bytes();
    {
        let mut published = app.published_mut();
        published.blocks.push(block);
        published.end = header.end;
        let gone = app.retain(
            &mut published,
            Timestamp::now(),
            index.config(),
            index.cache(),
        );
        app.record_end(header.end, published.blocks.len())?;
        for path in gone {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(IndexError::io(&path, e)),
            }
        }
    }
    spool.release_through(id, Position(header.end))?;
    counters.lines.fetch_add(rows, Ordering::Relaxed);
    counters.blocks.fetch_add(1, Ordering::Relaxed);
    index.inner.indexed.fetch_add(rows, Ordering::Relaxed);
    index
        .inner
        .dict_refusals
        .fetch_add(refused, Ordering::Relaxed);
    index
        .inner
        .written_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}
