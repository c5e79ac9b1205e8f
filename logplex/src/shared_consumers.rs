//! The seam of a cluster's shared router-wide consumers (`SharedConsumers`): where the
//! consumers that are not drains (metric extraction, the query spool) read from when the
//! router is one node of many. Each such consumer is then one work queue across the cluster
//! (the `cluster` crate's JetStream durable pull consumer of that name, over every app's
//! subject): each batch goes to one node's consumer, which acknowledges it once done with
//! its lines; a batch a node took and never acknowledged (it died) goes to another node after
//! the ack wait. At least once: a batch delivered again says how many of its lines were.
//!
//! Without a cluster nothing of this is used: `Router::consumer_feed` hands out the local
//! subscription (`Router::subscribe_all`), as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::line::LogLine;

/// What a shared feed's calls return.
pub type SharedConsumerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One batch of a shared feed, to be acknowledged (`SharedConsumerFeed::ack`) once its lines
/// are counted or written.
#[derive(Debug, Default)]
pub struct SharedTake {
    /// The lines, each app's in the bus's order (a redelivered batch may come later than
    /// lines after it).
    pub lines: Vec<LogLine>,
    /// How many of `lines` were delivered before (to this node or another): possible repeats.
    pub redelivered: u64,
    /// What to acknowledge the batch with.
    pub ack: u64,
}

/// One consumer's side of its shared feed on this node.
pub trait SharedConsumerFeed: Send + Sync + std::fmt::Debug {
    /// The next batch of at most about `max_lines` lines: waits until one comes.
    fn next(&self, max_lines: usize) -> SharedConsumerFuture<'_, SharedTake>;

    /// Acknowledges batch `ack`: it will not be delivered again.
    fn ack(&self, ack: u64) -> SharedConsumerFuture<'_, ()>;
}

/// A cluster's shared router-wide consumers.
pub trait SharedConsumers: Send + Sync + std::fmt::Debug {
    /// The feed of the consumer called `name` (the same name on every node: one work queue).
    fn feed(&self, name: &str) -> Arc<dyn SharedConsumerFeed>;
}
