//! Where a drain's task gets its next batch: straight from its in-memory buffer, or, for a
//! durable drain, from its queue on disk, which a spooler task fills from the buffer as fast
//! as lines come. Either way a batch is its messages, encoded and octet-counted one after the
//! other in one buffer (written to a stream or an HTTPS body as it is, or one datagram per
//! message), the number of the app's lines among them, and, on disk, what to acknowledge once
//! delivered.

use std::sync::{Arc, Mutex};

use logplex::{LineQueue, LogLine, Timestamp};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::delivery::Ctx;
use crate::durable::{DurableError, DurableQueue};
use crate::health::Health;

/// The most L10 lines a durable drain is owed at once (one per loss while it cannot deliver).
const OWED_LINES: usize = 64;

/// Encodes one line for a kind of drain (`LINE`, drain token, out).
pub type Encode = fn(&LogLine, &str, &mut Vec<u8>);

/// One batch to deliver.
#[derive(Debug, Default)]
pub struct Batch {
    /// The messages, octet-counted, oldest first (the drain's own L10 first, when owed).
    pub framed: Vec<u8>,
    /// Where each message (without its count) lies in `framed`.
    pub spans: Vec<std::ops::Range<usize>>,
    /// The app's lines among them (the L10 is not one).
    pub lines: u64,
    /// On disk: acknowledge records before this sequence number once delivered.
    ack: Option<u64>,
}

impl Batch {
    pub(crate) fn push_frame(&mut self, message: &[u8]) {
        logplex::write_octet_counted(&mut self.framed, message);
        let end = self.framed.len();
        self.spans.push(end - message.len()..end);
    }

    /// How many messages it holds.
    pub fn count(&self) -> usize {
        self.spans.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A durable drain's disk queue, shared by its spooler and its delivery.
#[derive(Debug)]
pub struct Spool {
    pub queue: Mutex<DurableQueue>,
    /// Records were pushed, or the spooler finished.
    pub ready: Notify,
    /// The spooler has moved everything the buffer will ever hold to disk.
    pub finished: std::sync::atomic::AtomicBool,
    /// L10 lines already told in the app's stream and not yet to the drain itself (they
    /// travel with its next batch): kept as made, so the stream is not told a second time
    /// and each loss is counted once. At most `OWED_LINES`; past that the drain misses its
    /// copy of the newest (the stream and the metric still have them).
    pub owed: Mutex<Vec<LogLine>>,
}

impl Spool {
    fn lock(&self) -> std::sync::MutexGuard<'_, DurableQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An L10 told in the stream, for the drain's next batch.
    pub(crate) fn owe(&self, line: LogLine) {
        let mut owed = self.owed.lock().unwrap_or_else(|p| p.into_inner());
        if owed.len() < OWED_LINES {
            owed.push(line);
        }
    }
}

/// The source of a drain's batches.
#[derive(Debug)]
pub enum Feed {
    /// The in-memory buffer, and how long to wait for a batch to fill once it has a line.
    Memory(Encode, std::time::Duration),
    /// The disk queue.
    Durable(Encode, Arc<Spool>),
    /// A cluster's shared queue (see `shared.rs`).
    Shared(Encode, Arc<dyn crate::shared::SharedFeed>),
}

impl Feed {
    /// The next batch; `None` when there will be no more (the buffer closed and is empty, or,
    /// on disk, the router stops: what is on disk stays for the next start).
    pub async fn next(&mut self, ctx: &mut Ctx) -> Option<Batch> {
        match self {
            Feed::Memory(encode, linger) => {
                let queue = ctx.subscription.as_ref()?.queue().clone();
                let (max_lines, max_bytes) = (ctx.config.batch_lines, ctx.config.batch_bytes);
                let mut taken = queue.take_bounded(max_lines, max_bytes).await?;
                let bytes = |lines: &[LogLine]| lines.iter().map(LogLine::size).sum::<usize>();
                if !linger.is_zero()
                    && taken.lines.len() < max_lines
                    && bytes(&taken.lines) < max_bytes
                {
                    // Let the batch fill a little (HTTPS: fewer, larger requests).
                    tokio::time::sleep(*linger).await;
                    let room = max_lines - taken.lines.len();
                    let more = queue.try_take_bounded(room, max_bytes - bytes(&taken.lines));
                    if let Some(loss) = more.loss {
                        match &mut taken.loss {
                            Some(l) => l.dropped += loss.dropped,
                            None => taken.loss = Some(loss),
                        }
                    }
                    taken.lines.extend(more.lines);
                }
                let mut batch = Batch {
                    framed: Vec::with_capacity(bytes(&taken.lines) + taken.lines.len() * 96),
                    ..Batch::default()
                };
                let mut scratch = Vec::with_capacity(512);
                if let Some(loss) = taken.loss {
                    encode_into(*encode, &ctx.overflow(loss), &ctx.drain.token, &mut scratch);
                    batch.push_frame(&scratch);
                }
                for line in &taken.lines {
                    encode_into(*encode, line, &ctx.drain.token, &mut scratch);
                    batch.push_frame(&scratch);
                }
                batch.lines = taken.lines.len() as u64;
                ctx.health.in_flight(batch.lines);
                Some(batch)
            }
            Feed::Shared(encode, shared) => {
                let mut stopping = ctx.stopping.clone();
                let taken = tokio::select! {
                    t = shared.next(ctx.config.batch_lines) => t?,
                    _ = stopping.wait_for(|s| *s) => return None,
                };
                let mut batch = Batch {
                    ack: Some(taken.ack),
                    ..Batch::default()
                };
                let mut scratch = Vec::with_capacity(512);
                for line in &taken.lines {
                    encode_into(*encode, line, &ctx.drain.token, &mut scratch);
                    batch.push_frame(&scratch);
                }
                batch.lines = taken.lines.len() as u64;
                ctx.health.redelivered(taken.redelivered);
                ctx.health.in_flight(batch.lines);
                Some(batch)
            }
            Feed::Durable(encode, spool) => loop {
                let ready = spool.ready.notified();
                let peeked = tokio::task::block_in_place(|| {
                    spool
                        .lock()
                        .peek(ctx.config.batch_lines, ctx.config.batch_bytes)
                });
                match peeked {
                    Ok((first, records)) if !records.is_empty() => {
                        let mut batch = Batch::default();
                        let owed = std::mem::take(
                            &mut *spool.owed.lock().unwrap_or_else(|p| p.into_inner()),
                        );
                        let mut scratch = Vec::with_capacity(256);
                        for l10 in &owed {
                            encode_into(*encode, l10, &ctx.drain.token, &mut scratch);
                            batch.push_frame(&scratch);
                        }
                        batch.lines = records.len() as u64;
                        batch.ack = Some(first + batch.lines);
                        for r in &records {
                            batch.push_frame(r);
                        }
                        return Some(batch);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        ctx.health.failed(format!("durable queue: {e}"));
                        return None;
                    }
                }
                if ctx.is_stopping() || spool.finished.load(std::sync::atomic::Ordering::Acquire) {
                    return None;
                }
                let mut stopping = ctx.stopping.clone();
                tokio::select! {
                    _ = ready => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
            },
        }
    }

    /// The batch got through (`sent`) or was refused for good: either way it is done. Only an
    /// HTTPS receiver acknowledges what it got (a 2xx): its lines are also delivered.
    pub async fn done(&mut self, ctx: &Ctx, batch: &Batch, sent: bool) {
        if sent {
            let acknowledged = ctx.url.scheme.acknowledges();
            ctx.health.sent(batch.lines, acknowledged);
        } else {
            ctx.health.dropped(batch.lines);
        }
        ctx.health.in_flight(0);
        if let (Feed::Shared(_, shared), Some(ack)) = (&*self, batch.ack) {
            shared.ack(ack).await;
            return;
        }
        if let (Feed::Durable(_, spool), Some(upto)) = (self, batch.ack) {
            let acked = tokio::task::block_in_place(|| spool.lock().ack(upto));
            if let Err(e) = acked {
                ctx.health.failed(format!("durable queue: {e}"));
            }
            ctx.health.spooled(spool_len(spool));
        }
    }

    /// Before the task ends: a durable drain waits (a few seconds at most) for its spooler to
    /// put on disk what the closed buffer still held, so that a clean stop loses nothing.
    pub async fn finish(&self) {
        let Feed::Durable(_, spool) = self else {
            return;
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let ready = spool.ready.notified();
            if spool.finished.load(std::sync::atomic::Ordering::Acquire)
                || tokio::time::timeout_at(deadline, ready).await.is_err()
            {
                return;
            }
        }
    }

    /// The task ends with `batch` undelivered: from memory it is lost (and counted); on disk
    /// it stays for the next start; from a shared queue, unacknowledged, another node takes
    /// it after the ack wait.
    pub fn abandon(&mut self, ctx: &Ctx, batch: &Batch) {
        ctx.health.in_flight(0);
        if matches!(self, Feed::Memory(..)) {
            ctx.health.dropped(batch.lines);
        }
    }
}

fn spool_len(spool: &Spool) -> u64 {
    spool.lock().len()
}

fn encode_into(encode: Encode, line: &LogLine, token: &str, out: &mut Vec<u8>) {
    out.clear();
    encode(line, token, out);
}

/// Moves a durable drain's lines from its in-memory buffer to disk until the buffer closes,
/// syncing at most `SYNC_INTERVAL` after a write. A buffer overflow (the disk could not keep
/// up) or the disk budget dropping old records is told as L10, in the app's stream now and to
/// the drain with its next batch.
#[allow(clippy::too_many_arguments)]
pub async fn spool(
    queue: Arc<LineQueue>,
    spool: Arc<Spool>,
    encode: Encode,
    token: String,
    channel: Arc<logplex::Channel>,
    health: Arc<Health>,
    batch_lines: usize,
) {
    let tell = |dropped: u64, since: Timestamp| {
        let event = logplex::PlatformEvent::DrainOverflow {
            drain: token.clone(),
            dropped,
            since,
        };
        spool.owe(channel.emit_for_drain(event, &token));
    };
    let mut tick = tokio::time::interval(crate::durable::SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The fsync in flight: it runs on a blocking thread while lines keep going to disk, so
    // that a slow fsync (the disk busy writing back) does not fill the buffer in front.
    let mut syncing: Option<JoinHandle<Result<(), DurableError>>> = None;
    loop {
        let taken = tokio::select! {
            t = queue.take(batch_lines) => t,
            _ = tick.tick(), if syncing.is_none() => {
                // The guard must be gone before `finish_sync` locks again.
                let begun = spool.lock().begin_sync();
                match begun {
                    Ok(Some(pending)) => {
                        syncing = Some(tokio::task::spawn_blocking(move || pending.run()));
                    }
                    Ok(None) => finish_sync(&spool, &health, Ok(())),
                    Err(e) => health.failed(format!("durable queue: {e}")),
                }
                continue;
            }
            done = in_flight(&mut syncing) => {
                syncing = None;
                finish_sync(&spool, &health, done);
                continue;
            }
        };
        let Some(taken) = taken else { break };
        if let Some(loss) = taken.loss {
            tell(loss.dropped, loss.since);
        }
        let mut all = Vec::with_capacity(taken.lines.iter().map(|l| l.size() + 96).sum());
        let mut ends = Vec::with_capacity(taken.lines.len());
        for line in &taken.lines {
            encode(line, &token, &mut all);
            ends.push(all.len());
        }
        let refs: Vec<&[u8]> = ends
            .iter()
            .scan(0, |start, &end| {
                let r = &all[*start..end];
                *start = end;
                Some(r)
            })
            .collect();
        let pushed = tokio::task::block_in_place(|| spool.lock().push(&refs));
        match pushed {
            Ok(0) => {}
            Ok(dropped) => {
                health.dropped(dropped);
                tell(dropped, Timestamp::now());
            }
            Err(e) => {
                // The disk refused: these lines are lost, and counted.
                health.dropped(taken.lines.len() as u64);
                health.failed(format!("durable queue: {e}"));
            }
        }
        health.spooled(spool_len(&spool));
        spool.ready.notify_one();
    }
    if syncing.is_some() {
        let done = in_flight(&mut syncing).await;
        finish_sync(&spool, &health, done);
    }
    let _ = tokio::task::block_in_place(|| spool.lock().sync());
    spool
        .finished
        .store(true, std::sync::atomic::Ordering::Release);
    spool.ready.notify_one();
}

/// The fsync in flight, when there is one; else never.
async fn in_flight(
    syncing: &mut Option<JoinHandle<Result<(), DurableError>>>,
) -> Result<(), DurableError> {
    match syncing {
        Some(handle) => match handle.await {
            Ok(done) => done,
            Err(e) => Err(DurableError::Io {
                path: std::path::PathBuf::new(),
                source: std::io::Error::other(format!("the fsync's thread: {e}")),
            }),
        },
        None => std::future::pending().await,
    }
}

/// Completes a sync (the acknowledged position persisted); a failure is the drain's last error
/// (its data waits for the next sync).
fn finish_sync(spool: &Spool, health: &Health, fsynced: Result<(), DurableError>) {
    let done = tokio::task::block_in_place(|| spool.lock().finish_sync(fsynced));
    if let Err(e) = done {
        health.failed(format!("durable queue: {e}"));
    }
}
