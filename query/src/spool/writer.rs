//! `SpoolWriter`: the router-wide consumer that appends every app's lines to the spool. It
//! reads its own feed (`Router::consumer_feed("spool")`), so ingest never waits for it. Alone,
//! that is its own `Subscription`: when it falls behind, its queue drops the oldest lines and
//! counts them ([`SpoolWriterStats::dropped`]). In a cluster it is this node's share of the
//! cluster's lines (the shared consumer `spool`): each line is written on one node, and a
//! batch is acknowledged once appended; a batch delivered again (its node died before
//! acknowledging) is appended again and counted ([`SpoolWriterStats::redelivered`]). It syncs every [`SYNC_INTERVAL`], applies retention every
//! minute, and removes a deleted app's spool at once (the spool is an `AppLifecycle`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logplex::{
    App, AppIds, AppLifecycle, AppName, ConsumerFeed, FeedTake, LogLine, Router, Timestamp,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{SYNC_INTERVAL, Spool, SpoolError};

/// How long the writer lets lines gather once some wait (fewer than a batch): lines that
/// come one at a time (a router line a request) are then written a batch at a time, not a
/// system call and a thread switch each.
const LINGER: Duration = Duration::from_millis(20);

/// How the writer reads the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolWriterConfig {
    /// Lines its queue holds before the oldest are dropped. Default 65,536.
    pub capacity: usize,
    /// Lines appended at most at once. Default 4,096.
    pub batch_lines: usize,
    /// Bytes of lines appended at most at once. Default 4 MiB.
    pub batch_bytes: usize,
    /// How often retention runs. Default 1 minute.
    pub retention_every: Duration,
}

impl Default for SpoolWriterConfig {
    fn default() -> Self {
        SpoolWriterConfig {
            capacity: 65_536,
            batch_lines: 4096,
            batch_bytes: 4 << 20,
            retention_every: Duration::from_secs(60),
        }
    }
}

/// What the writer did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolWriterStats {
    /// Lines appended to the spool.
    pub appended: u64,
    /// Lines whose app was gone by the time they were written (not kept).
    pub orphaned: u64,
    /// Lines not kept because the spool failed to write them.
    pub failed: u64,
    /// Lines its queue dropped because it was behind (ingest did not wait).
    pub dropped: u64,
    /// Lines waiting in its queue now: its lag.
    pub buffered: u64,
    /// In a cluster: lines delivered again (a node died before acknowledging them), appended
    /// again (possibly twice in the cluster's spools; a query uses them once).
    pub redelivered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    appended: AtomicU64,
    orphaned: AtomicU64,
    failed: AtomicU64,
    redelivered: AtomicU64,
}

/// Starts the writer (see the module documentation).
#[derive(Debug)]
pub struct SpoolWriter;

impl SpoolWriter {
    /// Subscribes to every app's lines and appends them to `spool` in a task of its own
    /// (call from within a tokio runtime). The spool is also told of deleted apps.
    pub fn start(router: &Router, spool: Spool, config: SpoolWriterConfig) -> SpoolWriterHandle {
        let feed = Arc::new(router.consumer_feed("spool", config.capacity));
        router.on_app_deleted(Arc::new(spool.clone()));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(Notify::new());
        let run = Run {
            feed: feed.clone(),
            ids: AppIds::new(router.clone()),
            spool,
            config,
            counters: counters.clone(),
            unsynced: false,
        };
        SpoolWriterHandle {
            task: tokio::spawn(run.run(stop.clone())),
            stop,
            feed,
            counters,
        }
    }
}

/// The running writer: its stats, and a stop within a bound.
#[derive(Debug)]
pub struct SpoolWriterHandle {
    task: JoinHandle<Result<(), SpoolError>>,
    stop: Arc<Notify>,
    feed: Arc<ConsumerFeed>,
    counters: Arc<Counters>,
}

impl SpoolWriterHandle {
    /// What it did so far, with its queue's drops and lag.
    pub fn stats(&self) -> SpoolWriterStats {
        let q = self.feed.counts();
        SpoolWriterStats {
            appended: self.counters.appended.load(Ordering::Relaxed),
            orphaned: self.counters.orphaned.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: q.dropped,
            buffered: q.buffered,
            redelivered: self.counters.redelivered.load(Ordering::Relaxed),
        }
    }

    /// Stops it: what waits in its queue is appended, then everything is fsynced, all within
    /// `within` (else the task is cancelled and [`SpoolError::StopTimeout`] returned).
    pub async fn stop(mut self, within: Duration) -> Result<(), SpoolError> {
        self.stop.notify_one();
        match tokio::time::timeout(within, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SpoolError::Internal("the spool writer's task panicked")),
            Err(_) => {
                self.task.abort();
                Err(SpoolError::StopTimeout(within))
            }
        }
    }
}

impl AppLifecycle for Spool {
    fn app_deleted(&self, app: &App) {
        if let Err(e) = self.remove_app(&app.id) {
            tracing::warn!(app = %app.id, error = %e, "spool: could not remove a deleted app's lines");
        }
    }
}

struct Run {
    feed: Arc<ConsumerFeed>,
    ids: AppIds,
    spool: Spool,
    config: SpoolWriterConfig,
    counters: Arc<Counters>,
    unsynced: bool,
}

impl Run {
    async fn run(mut self, stop: Arc<Notify>) -> Result<(), SpoolError> {
        let mut sync = tokio::time::interval(SYNC_INTERVAL);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retention = tokio::time::interval(self.config.retention_every);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let feed = self.feed.clone();
        let (lines, bytes) = (self.config.batch_lines, self.config.batch_bytes);
        loop {
            tokio::select! {
                biased;
                () = stop.notified() => break,
                taken = feed.next(lines, bytes, LINGER) => match taken {
                    Some(taken) => {
                        let taken = self.write(taken).await;
                        feed.done(&taken).await;
                    }
                    None => break,
                },
                _ = sync.tick() => self.sync().await,
                _ = retention.tick() => self.retain().await,
            }
        }
        while let Some(taken) = feed.try_next(lines, bytes) {
            self.write(taken).await;
        }
        let spool = self.spool.clone();
        blocking(move || spool.sync()).await
    }

    /// Appends one take, app by app; gives it back, its lines gone, to be acknowledged.
    async fn write(&mut self, mut taken: FeedTake) -> FeedTake {
        if let Some(loss) = taken.loss {
            tracing::warn!(
                dropped = loss.dropped,
                "spool: the writer fell behind; lines dropped"
            );
        }
        if taken.redelivered > 0 {
            self.counters
                .redelivered
                .fetch_add(taken.redelivered, Ordering::Relaxed);
            tracing::warn!(
                lines = taken.redelivered,
                "spool: lines delivered again by the cluster (a node died before acknowledging \
                 them) appended again"
            );
        }
        let mut groups: Vec<(AppName, Vec<LogLine>)> = Vec::new();
        for line in std::mem::take(&mut taken.lines) {
            match groups.iter_mut().find(|(name, _)| *name == line.app) {
                Some((_, lines)) => lines.push(line),
                None => groups.push((line.app.clone(), vec![line])),
            }
        }
        let groups: Vec<(Option<String>, Vec<LogLine>)> = groups
            .into_iter()
            .map(|(name, lines)| (self.ids.id(&name), lines))
            .collect();
        let (spool, counters) = (self.spool.clone(), self.counters.clone());
        let _ = blocking(move || {
            append_groups(&spool, &counters, groups);
            Ok(())
        })
        .await;
        self.unsynced = true;
        taken
    }

    async fn sync(&mut self) {
        if !std::mem::take(&mut self.unsynced) {
            return;
        }
        let spool = self.spool.clone();
        if let Err(e) = blocking(move || spool.sync()).await {
            tracing::warn!(error = %e, "spool: sync failed");
        }
    }

    async fn retain(&mut self) {
        let spool = self.spool.clone();
        if let Err(e) = blocking(move || spool.enforce_retention(Timestamp::now())).await {
            tracing::warn!(error = %e, "spool: retention failed");
        }
    }
}

fn append_groups(spool: &Spool, counters: &Counters, groups: Vec<(Option<String>, Vec<LogLine>)>) {
    for (id, lines) in groups {
        let n = lines.len() as u64;
        let Some(id) = id else {
            counters.orphaned.fetch_add(n, Ordering::Relaxed);
            continue;
        };
        match spool.append(&id, &lines) {
            Ok(()) => counters.appended.fetch_add(n, Ordering::Relaxed),
            Err(SpoolError::Removed(_)) => counters.orphaned.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(app = %id, error = %e, "spool: lines not kept");
                counters.failed.fetch_add(n, Ordering::Relaxed)
            }
        };
    }
}

/// Runs file I/O off the async threads.
async fn blocking(
    f: impl FnOnce() -> Result<(), SpoolError> + Send + 'static,
) -> Result<(), SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(SpoolError::Internal("a spool task panicked")))
}
