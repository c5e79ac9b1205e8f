//! `HistoryLog`: every app's history kept on disk as it happens, so that a SIGKILL, an OOM kill
//! or a power cut loses at most the last `sync_interval` (100 ms) of it, not everything since
//! the last clean stop.
//!
//! A router-wide consumer (`Router::subscribe_all("history", …)`) appends each line, as it is
//! accepted, to its app's history file (`history/ID.log`, the same versioned format a clean
//! stop writes whole: appending frames to it keeps it a valid file), writing at once and
//! fsyncing every file written to at most `sync_interval` apart. Ingest never waits for it:
//! when it falls behind its queue drops the oldest lines and counts them
//! (`logplex_lines_dropped_total{consumer="history"}`), and the clean stop's full save
//! still has them. A file is compacted to the app's last `history_lines` lines (written whole
//! to a temporary file, fsynced, renamed over it) once that many more have been appended, so
//! it holds at most about three times history. At start, `restore` reads each file (a torn
//! last frame is cut off) and keeps the last `history_lines`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::line::{AppName, LogLine};
use crate::notice::Notice;
use crate::persist::{encode_frame, history_dir, history_magic, history_path, read_history};
use crate::platform::PlatformEvent;
use crate::registry::App;
use crate::router::{AppIds, AppLifecycle, Router};

/// How the history log writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryLogConfig {
    /// Lines its queue holds before the oldest are dropped (and counted). Default 65,536.
    pub capacity: usize,
    /// The longest an accepted line waits to be on disk (written and fsynced): what a
    /// SIGKILL may lose. Default 100 ms.
    pub sync_interval: Duration,
    /// Lines written at most at once. Default 4,096.
    pub batch_lines: usize,
    /// History files kept open at once; past it the least recently written is closed
    /// (fsynced first). Default 256, so that a router of many apps holds few descriptors.
    pub max_open_files: usize,
    /// How long a take waits for more lines when fewer than `batch_lines` wait. Default
    /// 20 ms: well inside `sync_interval`, and a line a request costs one write a batch.
    pub linger: Duration,
}

impl Default for HistoryLogConfig {
    fn default() -> Self {
        HistoryLogConfig {
            capacity: 65_536,
            sync_interval: Duration::from_millis(100),
            batch_lines: 4096,
            max_open_files: 256,
            linger: Duration::from_millis(20),
        }
    }
}

/// What the history log did so far.
#[derive(Debug, Default)]
pub struct HistoryLogStats {
    /// Lines written.
    pub written: AtomicU64,
    /// Lines a write or fsync failed for (disk full, say): not on disk until the clean
    /// stop's save.
    pub failed: AtomicU64,
    /// Files compacted.
    pub compactions: AtomicU64,
    /// Writes, fsyncs and compactions that failed.
    pub failures: AtomicU64,
}

impl prometheus_client::collector::Collector for HistoryLogStats {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        for (name, help, value) in [
            (
                "logplex_history_lines_written",
                "History lines appended to disk.",
                &self.written,
            ),
            (
                "logplex_history_lines_not_written",
                "History lines a failed write (disk full, say) left off disk until the clean stop's save.",
                &self.failed,
            ),
            (
                "logplex_history_write_failures",
                "History writes, fsyncs and compactions that failed.",
                &self.failures,
            ),
        ] {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(family)?;
        }
        Ok(())
    }
}

/// The running history log.
#[derive(Debug)]
pub(crate) struct HistoryLog {
    task: JoinHandle<()>,
    stop: Arc<Notify>,
    stats: Arc<HistoryLogStats>,
}

impl HistoryLog {
    /// Subscribes to every app's lines and starts writing them (within a tokio runtime).
    pub(crate) fn start(router: &Router, data_dir: PathBuf, config: HistoryLogConfig) -> Self {
        let sub = router.subscribe_all("history", config.capacity);
        let stats = Arc::new(HistoryLogStats::default());
        let files = Arc::new(Mutex::new(Files {
            router: router.clone(),
            data_dir,
            keep_lines: router.config().history_lines.max(1),
            keep_bytes: router.config().history_bytes.max(1),
            open: HashMap::new(),
            max_open: config.max_open_files.max(1),
            clock: 0,
            stats: stats.clone(),
            notice: Notice::default(),
        }));
        router.on_app_deleted(Arc::new(Forget(files.clone())));
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(router.clone(), sub, files, config, stop.clone()));
        HistoryLog { task, stop, stats }
    }

    /// What it did so far.
    pub(crate) fn stats(&self) -> &Arc<HistoryLogStats> {
        &self.stats
    }

    /// Writes what waits in its queue, fsyncs, and ends, within `within`.
    pub(crate) async fn stop(mut self, within: Duration) {
        self.stop.notify_one();
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            self.task.abort();
            tracing::warn!(?within, "history log: did not stop in time");
        }
    }
}

async fn run(
    router: Router,
    sub: crate::router::Subscription,
    files: Arc<Mutex<Files>>,
    config: HistoryLogConfig,
    stop: Arc<Notify>,
) {
    let queue = sub.queue().clone();
    // A line waits at most `linger` to be written, then at most one sync tick to be fsynced:
    // together within `sync_interval`, the most a SIGKILL may lose.
    let linger = config.linger.min(config.sync_interval / 2);
    let tick = config
        .sync_interval
        .saturating_sub(linger)
        .max(Duration::from_millis(1));
    let mut sync = tokio::time::interval(tick);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ids = AppIds::new(router);
    loop {
        // Lines are taken after a short linger, so that a trickle (a router line a request)
        // is written a batch at a time rather than a line at a time. The take lives across
        // the loop's turns: a sync tick must not cancel it mid-linger.
        let take = queue.take_lingering(config.batch_lines, usize::MAX, linger);
        tokio::pin!(take);
        let taken = loop {
            tokio::select! {
                biased;
                () = stop.notified() => break None,
                taken = &mut take => break Some(taken),
                _ = sync.tick() => blocking(&files, Files::sync).await,
            }
        };
        match taken {
            Some(Some(taken)) => write(&files, &mut ids, taken.lines).await,
            Some(None) | None => break,
        }
    }
    loop {
        let taken = queue.try_take(config.batch_lines);
        if taken.lines.is_empty() {
            break;
        }
        write(&files, &mut ids, taken.lines).await;
    }
    blocking(&files, Files::sync).await;
    drop(sub);
}

/// Appends one take, app by app, off the async threads.
async fn write(files: &Arc<Mutex<Files>>, ids: &mut AppIds, lines: Vec<LogLine>) {
    let mut groups: Vec<(AppName, Vec<LogLine>)> = Vec::new();
    for line in lines {
        match groups.iter_mut().find(|(name, _)| *name == line.app) {
            Some((_, lines)) => lines.push(line),
            None => groups.push((line.app.clone(), vec![line])),
        }
    }
    // A line whose app is gone by now is not kept.
    let groups: Vec<(String, Vec<LogLine>)> = groups
        .into_iter()
        .filter_map(|(name, lines)| Some((ids.id(&name)?, lines)))
        .collect();
    blocking(files, move |f: &mut Files| {
        for (id, lines) in &groups {
            f.append(id, lines);
        }
    })
    .await;
}

async fn blocking(files: &Arc<Mutex<Files>>, f: impl FnOnce(&mut Files) + Send + 'static) {
    let files = files.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut files);
    })
    .await;
    if done.is_err() {
        tracing::error!("history log: a write panicked");
    }
}

/// The open history files.
#[derive(Debug)]
struct Files {
    router: Router,
    data_dir: PathBuf,
    keep_lines: usize,
    keep_bytes: usize,
    open: HashMap<String, AppFile>,
    /// The most files open at once.
    max_open: usize,
    /// Counts appends, to find the least recently written file.
    clock: u64,
    stats: Arc<HistoryLogStats>,
    notice: Notice,
}

#[derive(Debug)]
struct AppFile {
    file: File,
    /// Lines appended since it was opened or compacted.
    appended: usize,
    /// Its length.
    len: u64,
    dirty: bool,
    /// `Files::clock` at its last append.
    used: u64,
}

impl Files {
    fn append(&mut self, id: &str, lines: &[LogLine]) {
        let mut out = Vec::with_capacity(lines.iter().map(|l| l.size() + 120).sum());
        let mut frame = Vec::with_capacity(256);
        // Where each frame ends in `out`, so that a short write keeps the whole frames it took.
        let mut ends = Vec::with_capacity(lines.len());
        for line in lines {
            encode_frame(line, &mut frame, &mut out);
            ends.push(out.len());
        }
        self.clock += 1;
        let clock = self.clock;
        let mut done = 0;
        let written = self.open_file(id).and_then(|f| {
            f.used = clock;
            f.dirty = true;
            while done < out.len() {
                // By hand, not `write_all`: a short write (a full disk) must say how far it got.
                #[allow(clippy::disallowed_methods)]
                let wrote = f.file.write(&out[done..]);
                match wrote {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        // The whole frames that reached the file.
        let kept = ends.partition_point(|&end| end <= done);
        let kept_bytes = if kept == 0 { 0 } else { ends[kept - 1] };
        if let Some(f) = self.open.get_mut(id) {
            f.len += kept_bytes as u64;
            f.appended += kept;
        }
        self.stats.written.fetch_add(kept as u64, Ordering::Relaxed);
        if let Err(e) = written {
            // Cut off the part of a frame that was written, so that the file stays whole
            // frames and the next append (when there is room again) starts on a boundary.
            if let Some(f) = self.open.remove(id) {
                let _ = f.file.set_len(f.len);
            }
            self.failed(id, (lines.len() - kept) as u64, &e);
            return;
        }
        let over = self
            .open
            .get(id)
            .is_some_and(|f| f.appended >= self.keep_lines || f.len > 3 * self.keep_bytes as u64);
        if over && let Err(e) = self.compact(id) {
            self.failed(id, 0, &e);
        }
    }

    /// Counts a failed write or fsync and tells it (at most every 10 s, with a count): in the
    /// log, and in the app's stream as a `paas[logplex]` line.
    fn failed(&mut self, id: &str, lines: u64, e: &std::io::Error) {
        self.stats.failed.fetch_add(lines, Ordering::Relaxed);
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(times) = self.notice.due() {
            tracing::error!(app = id, error = %e, times, "history log: writing history failed");
            if let Some(channel) = self.router.channel_by_id(id) {
                channel.emit(PlatformEvent::HistoryWriteFailed {
                    error: e.to_string(),
                    times,
                });
            }
        }
    }

    fn open_file(&mut self, id: &str) -> std::io::Result<&mut AppFile> {
        if !self.open.contains_key(id) && self.open.len() >= self.max_open {
            // Close the least recently written, its writes made durable first.
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.used)
                .map(|(k, _)| k.clone());
            if let Some(f) = oldest.and_then(|k| self.open.remove(&k))
                && f.dirty
            {
                f.file.sync_data()?;
            }
        }
        if !self.open.contains_key(id) {
            use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
            let dir = history_dir(&self.data_dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(history_path(&self.data_dir, id))?;
            let mut len = file.metadata()?.len();
            if len == 0 {
                file.write_all(history_magic())?;
                len = history_magic().len() as u64;
            }
            self.open.insert(
                id.to_owned(),
                AppFile {
                    file,
                    appended: 0,
                    len,
                    dirty: true,
                    used: self.clock,
                },
            );
        }
        self.open
            .get_mut(id)
            .ok_or_else(|| std::io::Error::other("history file not open"))
    }

    /// Rewrites an app's file with its last lines only.
    fn compact(&mut self, id: &str) -> std::io::Result<()> {
        let path = history_path(&self.data_dir, id);
        self.open.remove(id);
        let bytes = Bytes::from(std::fs::read(&path)?);
        let read = read_history(&AppName::from(id), bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut start = read.lines.len().saturating_sub(self.keep_lines);
        let mut bytes: usize = read.lines[start..].iter().map(LogLine::size).sum();
        while bytes > self.keep_bytes && start < read.lines.len() {
            bytes -= read.lines[start].size();
            start += 1;
        }
        crate::persist::save_history(&self.data_dir, id, &read.lines[start..])?;
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// fsyncs every file written to since the last sync.
    fn sync(&mut self) {
        let mut failed = Vec::new();
        for (id, f) in self.open.iter_mut().filter(|(_, f)| f.dirty) {
            match f.file.sync_data() {
                Ok(()) => f.dirty = false,
                Err(e) => failed.push((id.clone(), e)),
            }
        }
        for (id, e) in failed {
            self.failed(&id, 0, &e);
            self.open.remove(&id);
        }
    }
}

/// Closes a deleted app's file (the server deletes it).
#[derive(Debug)]
struct Forget(Arc<Mutex<Files>>);

impl AppLifecycle for Forget {
    fn app_deleted(&self, app: &App) {
        let mut files = self.0.lock().unwrap_or_else(|p| p.into_inner());
        files.open.remove(&app.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::router::RouterConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_line_reaches_its_file_which_stays_within_three_histories() {
        let dir = std::env::temp_dir().join(format!(
            "paas-history-log-{}-{}",
            std::process::id(),
            crate::time::Timestamp::now().as_micros()
        ));
        let config = RouterConfig {
            history_lines: 10,
            app_rate: 0,
            ..RouterConfig::default()
        };
        let router = Router::new(config, Registry::in_memory());
        router.create_app("shop").unwrap();
        let id = router.app("shop").unwrap().id;
        let log = HistoryLog::start(
            &router,
            dir.clone(),
            HistoryLogConfig {
                sync_interval: Duration::from_millis(10),
                ..HistoryLogConfig::default()
            },
        );
        let emitter = router.emitter("shop", "app").unwrap();
        let path = history_path(&dir, &id);
        let mut most = 0;
        for i in 0..100 {
            emitter
                .try_emit("web.1", Bytes::from(format!("n={i}")))
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while log.stats().written.load(Ordering::Relaxed) < i + 1 {
                assert!(std::time::Instant::now() < deadline, "line {i} not written");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let on_disk = std::fs::read(&path).unwrap();
            let read = read_history(&AppName::from("shop"), Bytes::from(on_disk)).unwrap();
            most = most.max(read.lines.len());
            // The newest line is in the file as soon as it is written.
            assert_eq!(
                read.lines.last().unwrap().message,
                format!("n={i}").as_bytes()
            );
        }
        assert!(most <= 30, "the file held {most} lines");
        assert!(log.stats().compactions.load(Ordering::Relaxed) >= 5);
        log.stop(Duration::from_secs(5)).await;
        assert_eq!(log_failed(&router), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_apps_hold_at_most_max_open_files_and_lose_nothing() {
        let dir = std::env::temp_dir().join(format!(
            "paas-history-open-{}-{}",
            std::process::id(),
            crate::time::Timestamp::now().as_micros()
        ));
        let router = Router::new(
            RouterConfig {
                app_rate: 0,
                ..RouterConfig::default()
            },
            Registry::in_memory(),
        );
        let log = HistoryLog::start(
            &router,
            dir.clone(),
            HistoryLogConfig {
                max_open_files: 4,
                ..HistoryLogConfig::default()
            },
        );
        for round in 0..3 {
            for a in 0..20 {
                let name = format!("app{a}");
                if round == 0 {
                    router.create_app(&name).unwrap();
                }
                let e = router.emitter(&name, "app").unwrap();
                e.try_emit("web.1", Bytes::from(format!("round={round}")))
                    .unwrap();
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.stats().written.load(Ordering::Relaxed) < 60 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.starts_with(&dir))
            .count();
        assert!(open <= 4, "{open} history files open");
        log.stop(Duration::from_secs(5)).await;
        for a in 0..20 {
            let id = router.app(&format!("app{a}")).unwrap().id;
            let bytes = std::fs::read(history_path(&dir, &id)).unwrap();
            let read = read_history(&AppName::from("x"), Bytes::from(bytes)).unwrap();
            let got: Vec<String> = read
                .lines
                .iter()
                .map(|l| String::from_utf8_lossy(&l.message).into_owned())
                .collect();
            assert_eq!(got, ["round=0", "round=1", "round=2"]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn log_failed(router: &Router) -> u64 {
        router
            .consumer_stats()
            .iter()
            .filter(|c| c.kind == "history")
            .map(|c| c.dropped)
            .sum()
    }
}
