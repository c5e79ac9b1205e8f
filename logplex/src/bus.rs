//! The seam of a cluster's log bus (`LineBus`): where ingest hands the lines it accepted when
//! the router is one node of many (the `cluster` crate's JetStream stream). Without a bus,
//! ingest publishes straight into the app's channel, as it always has.
//!
//! With a bus, ingest checks the token and the app's rate budget as before, then awaits
//! `LineBus::publish`; the sender is acknowledged (the `POST /logs` 2xx, the next syslog read)
//! only once the bus has the lines durably. The lines reach this node's channels, and every
//! other node's, from the bus's reader, numbered by the bus (`Channel::publish_numbered`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::line::LogLine;

/// Why the bus did not take a batch: nothing of it was acknowledged to the sender.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the log bus did not take the batch: {0}")]
pub struct BusError(pub String);

/// What `LineBus::publish` returns.
pub type BusFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'a>>;

/// A cluster's log bus.
pub trait LineBus: Send + Sync + std::fmt::Debug {
    /// Publishes `lines`, all of the app whose id is `app_id`, in order; resolves once the
    /// bus has them all durably (or says it has not: the sender is then refused or not
    /// acknowledged, and may retry).
    fn publish(&self, app_id: Arc<str>, lines: Vec<LogLine>) -> BusFuture<'_>;
}
