//! The seam of a cluster's shared delivery (`SharedDelivery`, the `cluster` crate's): when a
//! router is one node of many, every node runs every drain, and each drain's lines come not
//! from the app's channel on this node but from one queue all nodes share (a JetStream
//! durable pull consumer), so that each line is delivered once across the cluster. A batch
//! is acknowledged once delivered (or refused for good, and counted); a node that dies with
//! a batch in hand leaves it unacknowledged, and another node's task takes it after the ack
//! wait: at least once, the repeats counted as `redelivered`.
//!
//! The drains themselves are kept by the cluster too: `commit` runs before a drain is added
//! or removed here, and `Drains::sync` applies what another node did.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::store::Drain;

/// A future of the seam.
pub type SharedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Lines taken from the shared queue, not yet acknowledged: the lines (oldest first), how
/// many of them were delivered before to some node (possible repeats: a node died with them,
/// or their acknowledgement was lost), and the id to acknowledge them by. The same batch as
/// the router-wide consumers' shared feed takes.
pub type SharedBatch = logplex::SharedTake;

/// One drain's shared queue.
pub trait SharedFeed: Send + Sync + std::fmt::Debug {
    /// The next lines (about `max_lines`), waiting for them; `None` once the feed is closed.
    fn next(&self, max_lines: usize) -> SharedFuture<'_, Option<SharedBatch>>;
    /// The batch `ack` is done with (delivered, or refused for good and counted).
    fn ack(&self, ack: u64) -> SharedFuture<'_, ()>;
}

/// A change to the cluster's drains.
#[derive(Clone, Copy, Debug)]
pub enum DrainChange<'a> {
    /// A drain added.
    Added(&'a Drain),
    /// A drain removed.
    Removed(&'a Drain),
}

/// A cluster's shared delivery.
pub trait SharedDelivery: Send + Sync + std::fmt::Debug {
    /// Makes a change durable for every node, before it is made here (bounded in time; an
    /// error changes nothing: the API's 503).
    fn commit(&self, change: DrainChange<'_>) -> Result<(), String>;
    /// The shared queue of `drain`.
    fn feed(&self, drain: &Drain) -> Arc<dyn SharedFeed>;
    /// `drain` is gone for good (on every node): its shared queue may go.
    fn forget(&self, drain: &Drain);
}
