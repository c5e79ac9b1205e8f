//! The seam of a cluster's log bus (`LineBus`): where ingest hands the lines it accepted when
//! the router is one node of many (the `cluster` crate's JetStream stream). Without a bus,
//! ingest publishes straight into the app's channel, as it always has.
//!
//! With a bus, ingest checks the token and the app's rate budget as before, then awaits
//! `LineBus::publish`; the sender is acknowledged (the `POST /logs` 2xx, the next syslog read)
//! only once the bus has the lines durably. The lines reach this node's channels, and every
//! other node's, from the bus's reader, numbered by the bus (`Channel::publish_numbered`).
//!
//! A batch may carry a de-duplication id (`POST /logs`'s `Logplex-Frame-Id`): the bus then
//! stores a batch with an id it already has only once, whichever node the retry reached, and
//! says so (`Published::Duplicate`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::line::LogLine;

/// Why the bus did not take a batch: nothing of it was acknowledged to the sender.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the log bus did not take the batch: {0}")]
pub struct BusError(pub String);

/// What the bus did with a batch it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored (some or all of it new).
    Stored,
    /// Every part of it was stored before, under the same de-duplication id: nothing new.
    Duplicate,
}

/// What `LineBus::publish` returns.
pub type BusFuture<'a> = Pin<Box<dyn Future<Output = Result<Published, BusError>> + Send + 'a>>;

/// One app's lines for the bus.
#[derive(Debug)]
pub struct BusBatch {
    /// The app's id (the bus names the app by it).
    pub app_id: Arc<str>,
    /// The lines, in order.
    pub lines: Vec<LogLine>,
    /// The batch's de-duplication id, unique within the app (`Logplex-Frame-Id`), if any.
    pub dedup_id: Option<String>,
}

/// A cluster's log bus.
pub trait LineBus: Send + Sync + std::fmt::Debug {
    /// Publishes `batch`'s lines in order; resolves once the bus has them all durably (or
    /// says it has not: the sender is then refused or not acknowledged, and may retry with
    /// the same batch).
    fn publish<'a>(&'a self, batch: &'a BusBatch) -> BusFuture<'a>;
}
