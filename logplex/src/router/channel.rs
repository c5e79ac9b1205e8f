//! `Channel`: one app's stream. Lines published into it go, under one short lock, to its
//! history ring and to the queue of every subscriber whose filter keeps them (tail sessions,
//! drains), then, under the same lock, to the router-wide consumers (the index, metrics), so
//! each of them gets one app's lines in `seq` order. Nothing here waits for a reader: every
//! queue drops its oldest line when full and counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::filter::LineFilter;
use crate::history::History;
use crate::line::{AppName, LogLine};
use crate::platform::{PlatformEvent, PlatformEvents};
use crate::router::budget::RateBudget;
use crate::router::consumers::{CatchUp, Consumers, Detach, Subscription};
use crate::router::outbox::BusOutbox;
use crate::router::queue::{Batch, LineQueue, Loss};
use crate::router::seq::{SEQ_BLOCK, SeqFile};
use crate::router::stats::{ChannelStats, ConsumerStats, HistoryStats, Reject, RejectCounts};
use crate::time::Timestamp;

/// How many HTTP batch ids (`Logplex-Frame-Id`) a channel remembers to skip retries.
const RECENT_FRAMES: usize = 1024;

/// What became of an HTTP batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every line was accepted.
    Accepted(usize),
    /// A batch with this frame id was accepted before; nothing was published again.
    Duplicate,
    /// Over the app's rate budget: nothing was accepted.
    RateLimited,
    /// The app's channel is closed.
    Closed,
}

/// How often, at most, an app is told in its stream that it is over its rate budget.
const RATE_REPORT_INTERVAL_MICROS: i64 = 1_000_000;

/// What a channel is made with.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// Lines of history kept.
    pub history_lines: usize,
    /// Bytes of history kept.
    pub history_bytes: usize,
    /// Lines per second accepted (0: no limit).
    pub rate: u64,
    /// Tail sessions open at once.
    pub max_tails: usize,
}

/// A reader of lines: a tail session, a drain, or a router-wide consumer.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) id: u64,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) filter: LineFilter,
    pub(crate) queue: Arc<LineQueue>,
}

impl Subscriber {
    pub(crate) fn stats(&self) -> ConsumerStats {
        let c = self.queue.counts();
        ConsumerStats {
            kind: self.kind.clone(),
            name: self.name.clone(),
            accepted: c.accepted,
            delivered: c.taken,
            dropped: c.dropped,
            buffered: c.buffered,
        }
    }
}

/// Too many tail sessions are open for this app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this app already has {0} tail sessions open")]
pub struct TooManyTails(pub usize);

/// A channel's state, under its lock.
#[derive(Debug)]
pub(crate) struct State {
    history: History,
    subscribers: Vec<Subscriber>,
    budget: RateBudget,
    rate_loss: Option<Loss>,
    last_rate_report: i64,
    next_id: u64,
    /// The `seq` of the last line published.
    last_seq: u64,
    /// The highest `seq` recorded durably as usable (`u64::MAX` without a seq file).
    reserved: u64,
    closed: bool,
    recent_frames: std::collections::VecDeque<String>,
}

/// One app's stream.
#[derive(Debug)]
pub struct Channel {
    app: AppName,
    config: ChannelConfig,
    state: Mutex<State>,
    accepted: AtomicU64,
    rejected: RejectCounts,
    /// The router's own lines told in this stream, counted as they are made.
    events: PlatformEvents,
    /// On a cluster node: the outbox to the bus and the app's id there, where this app's
    /// in-process lines go (the stack's, and the router's own L12 and L-lines) so that every
    /// node's readers and the cluster's drains see them.
    bus_sink: std::sync::OnceLock<(Arc<BusOutbox>, Arc<str>)>,
    global: Arc<Consumers>,
    seq_file: Option<SeqFile>,
}

impl Channel {
    /// A channel; with a `seq_file`, its `seq` stays monotonic across restarts (see
    /// `router/seq.rs`).
    pub(crate) fn new(
        app: AppName,
        config: ChannelConfig,
        global: Arc<Consumers>,
        seq_file: Option<SeqFile>,
    ) -> Self {
        let state = State {
            history: History::new(config.history_lines, config.history_bytes),
            subscribers: Vec::new(),
            budget: RateBudget::new(config.rate),
            rate_loss: None,
            last_rate_report: i64::MIN,
            next_id: 0,
            last_seq: 0,
            reserved: if seq_file.is_some() { 0 } else { u64::MAX },
            closed: false,
            recent_frames: std::collections::VecDeque::new(),
        };
        Channel {
            app,
            config,
            state: Mutex::new(state),
            accepted: AtomicU64::new(0),
            rejected: RejectCounts::default(),
            events: PlatformEvents::default(),
            bus_sink: std::sync::OnceLock::new(),
            global,
            seq_file,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below completes before anything that could panic, so a poisoned lock
        // still guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app this channel belongs to.
    pub fn app(&self) -> &AppName {
        &self.app
    }

    /// Publishes lines the app sent: those within its rate budget go to history and every
    /// subscriber; the rest are rejected as `rate_limited`, counted, and told in the stream (at
    /// most once a second). Returns how many were accepted. Never waits for a reader.
    pub fn publish(&self, mut lines: Vec<LogLine>, now: Timestamp) -> usize {
        let offered = lines.len();
        let mut st = self.lock();
        if st.closed {
            drop(st);
            self.rejected.add(Reject::Closed, offered as u64);
            return 0;
        }
        let admitted = st.budget.admit(offered, now);
        if admitted < offered {
            lines.truncate(admitted);
            let excess = (offered - admitted) as u64;
            self.rejected.add(Reject::RateLimited, excess);
            match &mut st.rate_loss {
                Some(loss) => loss.dropped += excess,
                None => {
                    st.rate_loss = Some(Loss {
                        dropped: excess,
                        since: now,
                    })
                }
            }
        }
        if let Some(report) = self.rate_report(&mut st, now) {
            lines.insert(0, report);
        }
        self.fan_out(st, lines);
        self.accepted.fetch_add(admitted as u64, Ordering::Relaxed);
        admitted
    }

    /// Publishes an HTTP batch whole or not at all: refused whole when over the rate budget
    /// (the sender should retry), skipped when `frame_id` repeats a batch already accepted
    /// (a retry whose first try got through).
    pub fn publish_batch(
        &self,
        mut lines: Vec<LogLine>,
        frame_id: Option<&str>,
        now: Timestamp,
    ) -> BatchOutcome {
        let n = lines.len();
        let mut st = self.lock();
        if let Some(refused) = self.take_whole(&mut st, n, frame_id, now) {
            return refused;
        }
        if let Some(report) = self.rate_report(&mut st, now) {
            lines.insert(0, report);
        }
        self.fan_out(st, lines);
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
        BatchOutcome::Accepted(n)
    }

    /// A cluster node's ingest: admits `lines` within the app's rate budget as `publish`
    /// does (the excess refused, counted and told), but publishes nothing: what is kept goes
    /// to the log bus, and comes back through `publish_numbered`. Returns how many are kept
    /// (the first ones).
    pub fn admit(&self, lines: &mut Vec<LogLine>, now: Timestamp) -> usize {
        let offered = lines.len();
        let mut st = self.lock();
        if st.closed {
            drop(st);
            self.rejected.add(Reject::Closed, offered as u64);
            lines.clear();
            return 0;
        }
        let admitted = st.budget.admit(offered, now);
        if admitted < offered {
            lines.truncate(admitted);
            self.note_rate_loss(&mut st, (offered - admitted) as u64, now);
        }
        match self.rate_report(&mut st, now) {
            Some(report) => self.tell(st, report),
            None => drop(st),
        }
        self.accepted.fetch_add(admitted as u64, Ordering::Relaxed);
        admitted
    }

    /// Changes the app's rate budget to `per_second` lines (0: no limit) from now on: a
    /// cluster node's share of the app's budget (`Router::set_rate_share`).
    pub fn set_rate(&self, per_second: u64) {
        self.lock().budget.set_rate(per_second);
    }

    /// A cluster node's `POST /logs`: `publish_batch`'s decision for a batch of `n` lines
    /// (whole or not at all), without publishing: an `Accepted` batch goes to the log bus,
    /// which de-duplicates its frame id cluster-wide (a frame id remembered here would answer
    /// a retry after a failed publish as a duplicate, and lose it). Counted as accepted only
    /// once the bus stored it (`count_accepted`).
    pub fn admit_batch(&self, n: usize, now: Timestamp) -> BatchOutcome {
        let mut st = self.lock();
        if let Some(refused) = self.take_whole(&mut st, n, None, now) {
            return refused;
        }
        match self.rate_report(&mut st, now) {
            Some(report) => self.tell(st, report),
            None => drop(st),
        }
        BatchOutcome::Accepted(n)
    }

    /// Counts `n` lines of an admitted batch as accepted: the log bus stored them.
    pub fn count_accepted(&self, n: usize) {
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Whether a batch of `n` lines is taken whole (`publish_batch`, `admit_batch`): `None`
    /// when it is (its frame id now remembered), else the refusal, counted.
    fn take_whole(
        &self,
        st: &mut State,
        n: usize,
        frame_id: Option<&str>,
        now: Timestamp,
    ) -> Option<BatchOutcome> {
        if st.closed {
            self.rejected.add(Reject::Closed, n as u64);
            return Some(BatchOutcome::Closed);
        }
        if let Some(id) = frame_id
            && st.recent_frames.iter().any(|f| f == id)
        {
            return Some(BatchOutcome::Duplicate);
        }
        if !st.budget.admit_all(n, now) {
            self.note_rate_loss(st, n as u64, now);
            return Some(BatchOutcome::RateLimited);
        }
        if let Some(id) = frame_id {
            if st.recent_frames.len() >= RECENT_FRAMES {
                st.recent_frames.pop_front();
            }
            st.recent_frames.push_back(id.to_owned());
        }
        None
    }

    fn note_rate_loss(&self, st: &mut State, excess: u64, now: Timestamp) {
        self.rejected.add(Reject::RateLimited, excess);
        match &mut st.rate_loss {
            Some(loss) => loss.dropped += excess,
            None => {
                st.rate_loss = Some(Loss {
                    dropped: excess,
                    since: now,
                })
            }
        }
    }

    /// A cluster node's bus reader: publishes lines the bus has numbered (`seq` set from the
    /// stream's sequence, increasing) to history and every reader, as `publish` does, with
    /// no rate budget (ingest applied it) and no seq file (the stream is the numbering). A
    /// line at or below the last `seq` published here is a repeat and skipped. Returns how
    /// many were published.
    pub fn publish_numbered(&self, mut lines: Vec<LogLine>) -> usize {
        let st = self.lock();
        if st.closed {
            return 0;
        }
        lines.retain(|l| l.seq > st.last_seq);
        let n = lines.len();
        self.deliver(st, lines, None);
        n
    }

    /// The router's own lines told for this app so far, by code (for `/metrics`).
    pub fn platform_events(&self) -> &PlatformEvents {
        &self.events
    }

    /// Makes this channel's in-process lines go through `outbox` to the bus as app `app_id`
    /// (a cluster node; set once).
    pub(crate) fn set_bus_sink(&self, outbox: Arc<BusOutbox>, app_id: Arc<str>) {
        let _ = self.bus_sink.set((outbox, app_id));
    }

    /// Where this app's in-process lines go on a cluster node: the outbox and the app's id.
    pub(crate) fn bus_sink(&self) -> Option<&(Arc<BusOutbox>, Arc<str>)> {
        self.bus_sink.get()
    }

    /// Tells a platform line: into the stream here, or on a cluster node to the bus (a full
    /// outbox refuses it, counted there).
    fn tell(&self, st: MutexGuard<'_, State>, line: LogLine) {
        match self.bus_sink() {
            Some((outbox, app_id)) => {
                drop(st);
                let _ = outbox.push(app_id.clone(), line);
            }
            None => self.fan_out(st, vec![line]),
        }
    }

    /// Tells `event` in the app's stream (history and every reader), counted: never rate
    /// limited. Nothing is told, nor counted, once the channel is closed.
    pub fn emit(&self, event: PlatformEvent) {
        self.emit_except(event, None);
    }

    /// Tells a drain's own L10 in the app's stream but not to that drain (`drain`, its
    /// token): the line is returned for the drain to send with its next batch, not through
    /// its buffer again. One event, one count, though two readers see it.
    pub fn emit_for_drain(&self, event: PlatformEvent, drain: &str) -> LogLine {
        let st = self.lock();
        let line = self.events.emit(&self.app, &event, Timestamp::now());
        if !st.closed {
            self.fan_out_except(st, vec![line.clone()], Some(drain));
        }
        line
    }

    /// Counts `event` and returns its line for the one reader it concerns (a tail session's
    /// own L11), without publishing it in the stream.
    pub fn emit_to_reader(&self, event: PlatformEvent) -> LogLine {
        self.events.emit(&self.app, &event, Timestamp::now())
    }

    fn emit_except(&self, event: PlatformEvent, except: Option<&str>) {
        let st = self.lock();
        if st.closed {
            return;
        }
        let line = self.events.emit(&self.app, &event, Timestamp::now());
        match except {
            None => self.tell(st, line),
            Some(_) => self.fan_out_except(st, vec![line], except),
        }
    }

    /// Tells the stream about rate-limited lines not yet reported, if a report is due.
    pub(crate) fn tick(&self, now: Timestamp) {
        let mut st = self.lock();
        if let Some(report) = self.rate_report(&mut st, now) {
            self.tell(st, report);
        }
    }

    fn rate_report(&self, st: &mut State, now: Timestamp) -> Option<LogLine> {
        let due =
            now.as_micros().saturating_sub(st.last_rate_report) >= RATE_REPORT_INTERVAL_MICROS;
        if !due {
            return None;
        }
        let loss = st.rate_loss.take()?;
        st.last_rate_report = now.as_micros();
        let event = PlatformEvent::RateLimited {
            dropped: loss.dropped,
            since: loss.since,
        };
        Some(self.events.emit(&self.app, &event, now))
    }

    /// History, then every subscriber, then the router-wide consumers. The batch is shared
    /// (one reference count per reader), and made only when someone reads.
    fn fan_out(&self, st: MutexGuard<'_, State>, lines: Vec<LogLine>) {
        self.fan_out_except(st, lines, None);
    }

    fn fan_out_except(
        &self,
        mut st: MutexGuard<'_, State>,
        mut lines: Vec<LogLine>,
        except: Option<&str>,
    ) {
        if lines.is_empty() {
            return;
        }
        let n = lines.len() as u64;
        if st.last_seq.saturating_add(n) > st.reserved {
            self.reserve(&mut st, n);
        }
        for line in &mut lines {
            st.last_seq += 1;
            line.seq = st.last_seq;
        }
        self.deliver(st, lines, except);
    }

    /// History, then every subscriber but `except`, then the router-wide consumers, for
    /// lines numbered already.
    fn deliver(&self, mut st: MutexGuard<'_, State>, lines: Vec<LogLine>, except: Option<&str>) {
        let Some(last) = lines.last() else {
            return;
        };
        st.last_seq = st.last_seq.max(last.seq);
        for line in &lines {
            st.history.push(line);
        }
        // The router-wide consumers are offered the batch under the channel's lock (one read
        // lock and one reference count each, per batch), so that two publishers to this app
        // cannot cross on the way: each consumer sees the app's lines in `seq` order.
        let global = self.global.read();
        if st.subscribers.is_empty() && global.is_empty() {
            return;
        }
        let batch: Batch = Arc::from(lines);
        for sub in st
            .subscribers
            .iter()
            .filter(|s| Some(s.name.as_str()) != except)
        {
            sub.queue.push_batch(&batch, &sub.filter);
        }
        for sub in global.iter() {
            sub.queue.push_batch(&batch, &sub.filter);
        }
    }

    /// What a router-wide consumer that last had `after` missed of this app (under the lock
    /// `st` is taken from); `None` when nothing.
    pub(crate) fn catch_up(&self, st: &State, after: u64) -> Option<CatchUp> {
        let lines = st.history.after(after, &LineFilter::default());
        let floor = st.history.floor();
        let loss = (after < floor).then(|| Loss {
            dropped: floor - after,
            since: st.history.oldest_received().unwrap_or_else(Timestamp::now),
        });
        if lines.is_empty() && loss.is_none() {
            return None;
        }
        Some(CatchUp {
            app: self.app.clone(),
            loss,
            lines,
        })
    }

    /// Records durably, before they are used, the next `SEQ_BLOCK` numbers (at least `n`):
    /// once per block, under the lock. A failed write is logged and numbering goes on (ingest
    /// is not refused); a crash before the next good write could then reuse numbers.
    fn reserve(&self, st: &mut State, n: u64) {
        let upto = st.last_seq.saturating_add(n.max(SEQ_BLOCK));
        if let Some(file) = &self.seq_file
            && let Err(e) = file.write(upto)
        {
            tracing::error!(app = %self.app, error = %e, "reserving seq numbers");
        }
        st.reserved = upto;
    }

    /// Records the exact last `seq` (at a clean stop, once the channel is closed), so that
    /// the next start numbers on without a jump.
    pub(crate) fn save_seq(&self) -> std::io::Result<()> {
        let mut st = self.lock();
        let Some(file) = &self.seq_file else {
            return Ok(());
        };
        file.write(st.last_seq)?;
        st.reserved = st.last_seq;
        Ok(())
    }

    /// The `seq` of the last line published.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// Counts lines refused before they reached the channel.
    pub fn reject(&self, reason: Reject, n: u64) {
        self.rejected.add(reason, n);
    }

    /// The last `n` history lines `filter` keeps, oldest first.
    pub fn history(&self, n: usize, filter: &LineFilter) -> Vec<LogLine> {
        self.lock().history.last(n, filter)
    }

    /// The history lines after `seq` that `filter` keeps, oldest first.
    pub fn history_after(&self, seq: u64, filter: &LineFilter) -> Vec<LogLine> {
        self.lock().history.after(seq, filter)
    }

    /// Opens a tail: the last `n` history lines `filter` keeps (or, resuming, every history
    /// line after `after`) and a subscription for the lines after them, taken under one lock
    /// so that none is missed or seen twice.
    pub fn tail(
        self: &Arc<Self>,
        n: usize,
        after: Option<u64>,
        filter: LineFilter,
        capacity: usize,
    ) -> Result<(Vec<LogLine>, Subscription), TooManyTails> {
        let mut st = self.lock();
        let open = st.subscribers.iter().filter(|s| s.kind == "tail").count();
        if open >= self.config.max_tails {
            return Err(TooManyTails(open));
        }
        let history = match after {
            Some(seq) => st.history.after(seq, &filter),
            None => st.history.last(n, &filter),
        };
        let sub = self.subscribe_locked(&mut st, "tail", None, filter, capacity);
        Ok((history, sub))
    }

    /// Adds a reader of this app's lines (a drain): its own bounded queue, named `name`.
    pub fn subscribe(
        self: &Arc<Self>,
        kind: &str,
        name: &str,
        filter: LineFilter,
        capacity: usize,
    ) -> Subscription {
        let mut st = self.lock();
        self.subscribe_locked(&mut st, kind, Some(name), filter, capacity)
    }

    fn subscribe_locked(
        self: &Arc<Self>,
        st: &mut State,
        kind: &str,
        name: Option<&str>,
        filter: LineFilter,
        capacity: usize,
    ) -> Subscription {
        let id = st.next_id;
        st.next_id += 1;
        let queue = Arc::new(LineQueue::new(capacity));
        if st.closed {
            queue.close();
        }
        st.subscribers.push(Subscriber {
            id,
            kind: kind.to_owned(),
            name: name.map_or_else(|| format!("{kind}.{id}"), str::to_owned),
            filter,
            queue: queue.clone(),
        });
        Subscription {
            queue,
            detach: Detach::Channel(self.clone(), id),
        }
    }

    /// Removes the subscriber `id` (its `Subscription` was dropped).
    pub(crate) fn detach(&self, id: u64) {
        self.lock().subscribers.retain(|s| s.id != id);
    }

    /// Stops the channel: it accepts nothing more, and every reader gets what waits, then
    /// the end of its stream.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for sub in &st.subscribers {
            sub.queue.close();
        }
    }

    /// Whether the channel was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Restores the history saved at the last clean stop and the highest `seq` the app may
    /// have used (its seq file): saved lines keep their numbers (so a reader resumes across a
    /// restart), lines from files that had none are numbered on, and the next line is
    /// numbered after both. Lines before the first restored one count as let go.
    pub(crate) fn restore(&self, lines: &[LogLine], used: u64) {
        let mut st = self.lock();
        if let Some(first) = lines.first().filter(|l| l.seq > 0) {
            st.history.raise_floor(first.seq - 1);
        }
        for line in lines {
            st.last_seq = if line.seq > st.last_seq {
                line.seq
            } else {
                st.last_seq + 1
            };
            let line = LogLine {
                seq: st.last_seq,
                ..line.clone()
            };
            st.history.push(&line);
        }
        st.last_seq = st.last_seq.max(used);
        if self.seq_file.is_some() {
            // Nothing reserved in this run yet: the first line writes a block.
            st.reserved = st.last_seq;
        }
    }

    /// Every history line, oldest first (when saving it at shutdown).
    pub(crate) fn all_history(&self) -> Vec<LogLine> {
        let st = self.lock();
        st.history.last(st.history.len(), &LineFilter::default())
    }

    /// Lines accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Rejections so far, by reason.
    pub fn rejected(&self) -> &RejectCounts {
        &self.rejected
    }

    /// What `GET /apps/{app}/stats` shows.
    pub fn stats(&self) -> ChannelStats {
        let st = self.lock();
        let consumers: Vec<ConsumerStats> = st.subscribers.iter().map(Subscriber::stats).collect();
        let history = HistoryStats {
            lines: st.history.len(),
            bytes: st.history.bytes(),
            evicted: st.history.evicted(),
        };
        drop(st);
        let dropped: u64 = consumers.iter().map(|c| c.dropped).sum();
        ChannelStats {
            app: self.app.to_string(),
            accepted: self.accepted(),
            rejected: self.rejected.snapshot().into_iter().collect(),
            dropped: [("overflow", dropped)].into_iter().collect(),
            buffered: consumers.iter().map(|c| c.buffered).sum(),
            tails: consumers.iter().filter(|c| c.kind == "tail").count(),
            history,
            consumers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::tests::line;

    fn channel(rate: u64, max_tails: usize) -> Arc<Channel> {
        Arc::new(Channel::new(
            AppName::from("shop"),
            ChannelConfig {
                history_lines: 5,
                history_bytes: 1 << 20,
                rate,
                max_tails,
            },
            Arc::new(Consumers::default()),
            None,
        ))
    }

    fn msgs(lines: &[LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.message).into_owned())
            .collect()
    }

    fn batch(range: std::ops::Range<i64>) -> Vec<LogLine> {
        range
            .map(|i| line("shop", "app", "web.1", &format!("n={i}"), i))
            .collect()
    }

    #[test]
    fn a_tail_sees_history_then_live_lines_without_gap_or_repeat() {
        let c = channel(0, 2);
        c.publish(batch(0..3), Timestamp::from_micros(0));
        let (history, sub) = c.tail(2, None, LineFilter::default(), 10).unwrap();
        assert_eq!(msgs(&history), ["n=1", "n=2"]);
        c.publish(batch(3..5), Timestamp::from_micros(0));
        assert_eq!(msgs(&sub.queue().try_take(10).lines), ["n=3", "n=4"]);
        assert_eq!(c.stats().tails, 1);
        drop(sub);
        assert_eq!(
            c.stats().tails,
            0,
            "a dropped subscription leaves the channel"
        );
    }

    #[test]
    fn lines_numbered_by_a_bus_keep_their_seq_and_repeats_are_skipped() {
        let shop = channel(0, 10);
        let tail = shop.subscribe("tail", "t.1", LineFilter::default(), 100);
        let numbered = |seqs: &[u64]| -> Vec<LogLine> {
            seqs.iter()
                .map(|&s| {
                    let mut l = crate::line::tests::line("shop", "app", "web.1", "x", s as i64);
                    l.seq = s;
                    l
                })
                .collect()
        };
        assert_eq!(shop.publish_numbered(numbered(&[4096, 4097])), 2);
        assert_eq!(
            shop.publish_numbered(numbered(&[4097, 8192])),
            1,
            "4097 again"
        );
        let seqs: Vec<u64> = shop
            .history(10, &LineFilter::default())
            .iter()
            .map(|l| l.seq)
            .collect();
        assert_eq!(seqs, [4096, 4097, 8192]);
        assert_eq!(shop.last_seq(), 8192);
        assert_eq!(tail.queue().try_take(10).lines.len(), 3);
        // Admission for the bus applies the budget and publishes none of the lines itself:
        // only the refusal is told here, as L12.
        let limited = channel(2, 10);
        let mut lines = batch(0..5);
        assert_eq!(limited.admit(&mut lines, Timestamp::now()), 2);
        assert_eq!(lines.len(), 2);
        let told = limited.history(10, &LineFilter::default());
        assert_eq!(told.len(), 1);
        assert!(told[0].message.starts_with(b"Error L12"), "{told:?}");
    }

    #[test]
    fn a_batch_for_the_bus_is_decided_as_publish_batch_decides_and_counted_once() {
        let now = Timestamp::now();
        let (bus, direct) = (channel(3, 10), channel(3, 10));
        assert_eq!(bus.admit_batch(2, now), BatchOutcome::Accepted(2));
        assert_eq!(
            direct.publish_batch(batch(0..2), Some("f1"), now),
            BatchOutcome::Accepted(2)
        );
        for c in [&bus, &direct] {
            assert_eq!(c.rejected().get(Reject::RateLimited), 0);
        }
        // Not counted as accepted until the bus has stored it.
        assert_eq!(bus.accepted(), 0);
        bus.count_accepted(2);
        assert_eq!(bus.accepted(), direct.accepted());
        assert_eq!(bus.admit_batch(5, now), BatchOutcome::RateLimited);
        assert_eq!(
            direct.publish_batch(batch(0..5), Some("f2"), now),
            BatchOutcome::RateLimited
        );
        // Refused whole and counted once (the bus's path had counted it twice).
        assert_eq!(bus.rejected().get(Reject::RateLimited), 5);
        assert_eq!(direct.rejected().get(Reject::RateLimited), 5);
    }

    #[test]
    fn tails_per_app_are_capped() {
        let c = channel(0, 1);
        let _first = c.tail(0, None, LineFilter::default(), 10).unwrap();
        assert_eq!(
            c.tail(0, None, LineFilter::default(), 10).unwrap_err(),
            TooManyTails(1)
        );
    }

    #[test]
    fn over_the_rate_lines_are_refused_counted_and_told_in_stream() {
        let c = channel(10, 1);
        let (_, sub) = c.tail(0, None, LineFilter::default(), 100).unwrap();
        assert_eq!(c.publish(batch(0..25), Timestamp::from_micros(0)), 10);
        assert_eq!(c.rejected().get(Reject::RateLimited), 15);
        let first = msgs(&sub.queue().try_take(100).lines);
        assert_eq!(first.len(), 11, "the report, then the lines admitted");
        assert_eq!(
            first[0],
            "Error L12 (app rate limit exceeded): 15 messages dropped since 1970-01-01T00:00:00.000000+00:00."
        );
        // 100 ms refill one line's worth; the other 4 wait to be reported, at most once a
        // second.
        assert_eq!(c.publish(batch(25..30), Timestamp::from_micros(100_000)), 1);
        c.tick(Timestamp::from_micros(500_000));
        assert_eq!(msgs(&sub.queue().try_take(100).lines), ["n=25"]);
        c.tick(Timestamp::from_micros(1_000_000));
        assert_eq!(
            msgs(&sub.queue().try_take(100).lines),
            [
                "Error L12 (app rate limit exceeded): 4 messages dropped since 1970-01-01T00:00:00.100000+00:00."
            ]
        );
        assert_eq!(c.accepted(), 11);
    }

    #[test]
    fn a_slow_subscriber_never_holds_back_another() {
        let c = channel(0, 2);
        let (_, slow) = c.tail(0, None, LineFilter::default(), 2).unwrap();
        let (_, fast) = c.tail(0, None, LineFilter::default(), 100).unwrap();
        c.publish(batch(0..50), Timestamp::from_micros(0));
        assert_eq!(fast.queue().try_take(100).lines.len(), 50);
        let s = slow.queue().try_take(100);
        assert_eq!((s.lines.len(), s.loss.map(|l| l.dropped)), (2, Some(48)));
        let stats = c.stats();
        assert_eq!(stats.dropped["overflow"], 48);
        assert_eq!(stats.accepted, 50);
    }

    #[test]
    fn a_closed_channel_refuses_and_ends_its_readers() {
        let c = channel(0, 2);
        let (_, sub) = c.tail(0, None, LineFilter::default(), 10).unwrap();
        c.close();
        assert_eq!(c.publish(batch(0..3), Timestamp::from_micros(0)), 0);
        assert_eq!(c.rejected().get(Reject::Closed), 3);
        assert!(sub.queue().is_closed());
    }
}
