//! `BusOutbox`: how the stack's in-process lines (`Emitter`: router lines, dyno output, the
//! platform's `api` lines) reach a cluster's log bus, so that every node's tails, history,
//! drains and consumers see them as they see ingested lines.
//!
//! An emitter never waits, and the bus acknowledges only after a round trip, so the outbox
//! sits between them: emitters push (app id, line) into a bounded queue; one task takes
//! everything waiting, publishes it to the bus grouped by app in arrival order, and waits
//! for the bus before taking more. Batches form by themselves under load (what arrives during
//! one round trip is the next batch), and no linger is added when idle.
//!
//! While the bus refuses (NATS away), the task retries the batch in hand, in order, with a
//! back-off; the queue meanwhile fills to its capacity, past which an emit is refused with
//! `EmitError::Full` and counted (`BusOutbox::refused`). Lines never skip the bus to a
//! local channel: that would put them in one node's history only, out of the stream's order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::bus::{BusBatch, LineBus};
use crate::line::LogLine;
use crate::router::Router;

/// Lines the outbox holds at most (about 64 MiB of 1 KiB lines).
pub const OUTBOX_CAPACITY: usize = 65_536;

/// The first wait after the bus refused a batch; it doubles up to `MAX_RETRY_AFTER`.
const RETRY_AFTER: Duration = Duration::from_millis(100);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The queue between emitters and the bus.
#[derive(Debug)]
pub struct BusOutbox {
    queue: Mutex<VecDeque<(Arc<str>, LogLine)>>,
    capacity: usize,
    ready: Notify,
    /// Lines pushed and not yet published (or given up): waiting or in the batch in hand.
    pending: AtomicUsize,
    /// Lines refused because the outbox was full.
    refused: AtomicU64,
}

impl BusOutbox {
    fn new(capacity: usize) -> Self {
        BusOutbox {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            pending: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Queues `line` of the app whose id is `app_id` for the bus; the line back when the
    /// outbox is full (counted: `refused`).
    #[allow(clippy::result_large_err)] // the line comes back by value, as `EmitError`'s
    pub(crate) fn push(&self, app_id: Arc<str>, line: LogLine) -> Result<(), LogLine> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= self.capacity {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(line);
        }
        let was_empty = queue.is_empty();
        queue.push_back((app_id, line));
        self.pending.fetch_add(1, Ordering::Relaxed);
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Lines waiting for the bus.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no line waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines refused so far because the outbox was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Lines not yet published: waiting, or in the batch the task holds.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Waits, up to `within`, until every line pushed so far was published (or given up):
    /// a stopping node's last lines (its dynos' "Stopping all processes") reach the bus.
    /// Whether it got there.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Everything waiting, grouped by app, each app's lines in order.
    fn take(&self) -> Vec<BusBatch> {
        let taken = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let mut batches: Vec<BusBatch> = Vec::new();
        for (app_id, line) in taken {
            match batches.iter_mut().find(|b| b.app_id == app_id) {
                Some(batch) => batch.lines.push(line),
                None => batches.push(BusBatch {
                    app_id,
                    lines: vec![line],
                    dedup_id: None,
                }),
            }
        }
        batches
    }
}

/// Starts `router`'s outbox to `bus` (within a tokio runtime): the task runs until the
/// router stops and its outbox is empty.
pub(crate) fn start(router: &Router, bus: Arc<dyn LineBus>, capacity: usize) -> Arc<BusOutbox> {
    let outbox = Arc::new(BusOutbox::new(capacity));
    tokio::spawn(run(router.clone(), bus, outbox.clone()));
    outbox
}

async fn run(router: Router, bus: Arc<dyn LineBus>, outbox: Arc<BusOutbox>) {
    loop {
        let batches = outbox.take();
        if batches.is_empty() {
            if router.is_stopping() {
                return;
            }
            // Woken by a push into the empty queue, or now and then to see the router stop.
            let _ = tokio::time::timeout(Duration::from_secs(1), outbox.ready.notified()).await;
            continue;
        }
        for batch in batches {
            let n = batch.lines.len();
            publish(&router, bus.as_ref(), batch).await;
            outbox.pending.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// Publishes `batch`, retrying while the bus refuses; given up only when the router stops
/// (its lines then counted as refused).
async fn publish(router: &Router, bus: &dyn LineBus, batch: BusBatch) {
    let mut wait = RETRY_AFTER;
    loop {
        match bus.publish(&batch).await {
            Ok(_) => return,
            Err(e) if router.is_stopping() => {
                tracing::warn!(error = %e, lines = batch.lines.len(), "the outbox's last lines were not taken by the bus");
                router.ingest_stats().bus_refused(batch.lines.len() as u64);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "the bus refused the outbox's lines");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_AFTER);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::bus::{BusError, BusFuture, Published};
    use crate::registry::Registry;
    use crate::router::{EmitError, RouterConfig};

    /// A bus that keeps what it took, or refuses while `refuse` is set.
    #[derive(Debug, Default)]
    struct Kept {
        batches: Mutex<Vec<(String, Vec<String>)>>,
        refuse: AtomicBool,
    }

    impl LineBus for Kept {
        fn publish<'a>(&'a self, batch: &'a BusBatch) -> BusFuture<'a> {
            Box::pin(async move {
                if self.refuse.load(Ordering::SeqCst) {
                    return Err(BusError("away".into()));
                }
                let messages = batch
                    .lines
                    .iter()
                    .map(|l| String::from_utf8_lossy(&l.message).into_owned())
                    .collect();
                self.batches
                    .lock()
                    .unwrap()
                    .push((batch.app_id.to_string(), messages));
                Ok(Published::Stored)
            })
        }
    }

    impl Kept {
        fn messages(&self) -> Vec<String> {
            let batches = self.batches.lock().unwrap();
            batches.iter().flat_map(|(_, m)| m.clone()).collect()
        }
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {what}");
    }

    #[tokio::test]
    async fn an_emitter_on_a_cluster_node_writes_through_the_bus_in_order() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        let (shop, _) = router.create_app("shop").unwrap();
        router.create_app("blog").unwrap();
        let bus = Arc::new(Kept::default());
        router.set_bus(bus.clone(), OUTBOX_CAPACITY);
        let web = router.emitter("shop", "app").unwrap();
        let blog = router.emitter("blog", "app").unwrap();
        for i in 0..100 {
            web.try_emit("web.1", format!("n={i}")).unwrap();
            blog.try_emit("web.1", format!("blog n={i}")).unwrap();
        }
        eventually("the bus has all 200", || bus.messages().len() == 200).await;
        let shop_lines: Vec<String> = bus
            .batches
            .lock()
            .unwrap()
            .iter()
            .filter(|(app, _)| *app == shop.id)
            .flat_map(|(_, m)| m.clone())
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("n={i}")).collect();
        assert_eq!(shop_lines, want);
        // Nothing went straight into the node's own channel: it comes back from the bus.
        assert_eq!(router.channel("shop").unwrap().last_seq(), 0);
    }

    #[tokio::test]
    async fn a_refusing_bus_is_retried_in_order_and_a_full_outbox_refuses_counted() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let bus = Arc::new(Kept::default());
        bus.refuse.store(true, Ordering::SeqCst);
        // A small outbox, installed by hand to see it fill.
        let outbox = start(&router, bus.clone(), 10);
        let emitter = {
            let channel = router.channel("shop").unwrap();
            let id: Arc<str> = Arc::from(router.registry().app("shop").unwrap().id.as_str());
            channel.set_bus_sink(outbox.clone(), id);
            crate::router::Emitter::new(channel, "app")
        };
        let mut refused = 0;
        for i in 0..30 {
            match emitter.try_emit("web.1", format!("n={i}")) {
                Ok(()) => {}
                Err(EmitError::Full(line)) => {
                    assert!(line.message.starts_with(b"n="));
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The task holds one batch in retry; the outbox holds up to 10 more.
        assert!(refused >= 10, "refused {refused}");
        assert_eq!(outbox.refused(), refused);
        bus.refuse.store(false, Ordering::SeqCst);
        let kept = 30 - refused as usize;
        eventually("the bus took the rest", || bus.messages().len() == kept).await;
        let got = bus.messages();
        let mut sorted = got.clone();
        sorted.sort_by_key(|m| m[2..].parse::<u32>().unwrap());
        assert_eq!(got, sorted, "in order across the retries");
        assert!(outbox.flush(Duration::from_secs(5)).await);
        assert!(outbox.is_empty());
    }
}
