//! Metric extraction: the standing numbers asked of the stream, as l2met and Heroku Metrics
//! did. A router-wide consumer ([`MetricsEngine`]) reads every accepted line and keeps, per
//! app, the router's RED series (requests by status class and H-code, service and connect
//! time, response bytes) and the l2met metrics any line carries (`count#`, `sample#`,
//! `measure#`, `unique#`), served on `/metrics` and as a JSON snapshot for `paas metrics`.
//!
//! Layout: `router.rs` (router lines into labels and numbers), `l2met.rs` (the four
//! conventions and the dyno runtime lines), `units.rs` (names and units as Prometheus wants
//! them), `histogram.rs` and `unique.rs` (the bounded sketches), `fxhash.rs` (the app maps' hash), `registry.rs` (the series
//! and their cardinality caps), `collector.rs` (the exposition), `snapshot.rs` (one app's
//! JSON and the live RED view), `consumer.rs` (the engine: subscription, task, lifecycle).

mod collector;
mod consumer;
mod fxhash;
mod histogram;
mod l2met;
mod registry;
mod resource;
mod router;
mod snapshot;
#[cfg(test)]
mod tests;
mod unique;
mod units;

pub use consumer::{Extractor, MetricsConfig, MetricsEngine};
pub use registry::MetricsLimits;
pub use resource::MetricsResource;
pub use snapshot::{AppSnapshot, Buckets, RedView, RequestCount};
