//! The router-wide consumers (the index, metrics): every app's lines reach them, each app's
//! in `seq` order (offered under the app's channel lock), each in a bounded queue of its own.
//! A consumer starts live (`Router::subscribe_all`) or from a position
//! (`Router::subscribe_all_from`): each app's history after the `seq` it last had, then live
//! lines, with no gap or repeat at the boundary; a position older than history is a `Loss`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, RwLock};

use crate::filter::LineFilter;
use crate::line::{AppName, LogLine};
use crate::router::channel::{Channel, State, Subscriber};
use crate::router::queue::{LineQueue, Loss};
use crate::router::stats::ConsumerStats;

/// The router-wide consumers: every app's lines reach them.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    list: RwLock<Vec<Subscriber>>,
    next_id: AtomicU64,
}

impl Consumers {
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Subscriber>> {
        self.list.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Subscriber>> {
        self.list.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn subscribe(self: &Arc<Self>, name: &str, capacity: usize) -> Subscription {
        let queue = Arc::new(LineQueue::new(capacity));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write().push(Subscriber {
            id,
            kind: name.to_owned(),
            name: name.to_owned(),
            filter: LineFilter::default(),
            queue: queue.clone(),
        });
        Subscription {
            queue,
            detach: Detach::Global(self.clone(), id),
        }
    }

    pub(crate) fn stats(&self) -> Vec<ConsumerStats> {
        self.read().iter().map(Subscriber::stats).collect()
    }

    pub(crate) fn close_all(&self) {
        for sub in self.read().iter() {
            sub.queue.close();
        }
    }
}

#[derive(Debug)]
pub(crate) enum Detach {
    Channel(Arc<Channel>, u64),
    Global(Arc<Consumers>, u64),
}

/// A reader's place in a channel (or in every channel): its queue, and, when dropped, its
/// removal from the channel.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) queue: Arc<LineQueue>,
    pub(crate) detach: Detach,
}

impl Subscription {
    /// The queue its lines wait in.
    pub fn queue(&self) -> &Arc<LineQueue> {
        &self.queue
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        match &self.detach {
            Detach::Channel(channel, id) => channel.detach(*id),
            Detach::Global(consumers, id) => consumers.write().retain(|s| s.id != *id),
        }
    }
}

/// One app's lines a consumer starting from a position missed: what history still has after
/// that position, oldest first, and, when history no longer reaches back to it, the loss.
#[derive(Debug)]
pub struct CatchUp {
    /// The app.
    pub app: AppName,
    /// Lines after the position that history had let go before the consumer came back:
    /// `dropped` counts the `seq` numbers between the position and the oldest kept line
    /// (exact within one run; across a restart after a crash, numbers reserved but never used
    /// count too), `since` is at the latest when the oldest kept line was received.
    pub loss: Option<Loss>,
    /// History lines after the position, oldest first; live lines follow in the queue.
    pub lines: Vec<LogLine>,
}

/// A router-wide consumer started from a position: first each app's `CatchUp`, then what its
/// subscription's queue brings (every line after them, none twice).
#[derive(Debug)]
pub struct Resumed {
    /// Per app (by name), what it missed; apps with nothing to catch up are left out.
    pub catch_up: Vec<CatchUp>,
    /// Live lines from here on.
    pub subscription: Subscription,
}

/// Subscribes `name` to every channel in `channels` from the position `after` gives for each
/// app (the last `seq` the consumer has; 0: none). Every channel's lock is taken, in the order
/// given, before the consumer is attached, and held until it is: no line can be published
/// between an app's history snapshot and the attachment. Lock order: channels, then the
/// consumers' list (as `fan_out` takes them), so this cannot deadlock with a publisher.
pub(crate) fn resume(
    consumers: &Arc<Consumers>,
    channels: &[Arc<Channel>],
    name: &str,
    capacity: usize,
    after: &dyn Fn(&AppName) -> u64,
) -> Resumed {
    let guards: Vec<(&Arc<Channel>, MutexGuard<'_, State>)> =
        channels.iter().map(|c| (c, c.lock())).collect();
    let catch_up = guards
        .iter()
        .filter_map(|(c, st)| c.catch_up(st, after(c.app())))
        .collect();
    let subscription = consumers.subscribe(name, capacity);
    drop(guards);
    Resumed {
        catch_up,
        subscription,
    }
}
