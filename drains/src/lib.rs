//! Drains: how an app's lines leave the router, to syslog (TCP, TLS, UDP) and HTTPS
//! receivers, each drain with its own bounded buffer and task, so that a dead or slow one
//! never slows ingest or another. Every line is delivered, or dropped and counted and told
//! in-stream (Heroku's L10; L14 for a certificate that does not verify).
//!
//! ```
//! use drains::DrainUrl;
//!
//! let url = DrainUrl::parse("syslog+tls://logs.example.com:6514", false).unwrap();
//! assert!(url.tls());
//! assert!(DrainUrl::parse("http://example.com", false).is_err(), "plain HTTP only to loopback");
//! ```

mod api;
mod backoff;
mod delivery;
mod dial;
mod durable;
mod feed;
mod health;
mod host;
mod https;
mod manager;
mod metrics;
mod policy;
mod shared;
mod store;
mod syslog;
mod tls;
mod url;

pub use backoff::Backoff;
pub use delivery::DeliveryConfig;
pub use dial::{ConnectError, DialError, Dialer, Resolver, SystemResolver};
pub use durable::{DurableError, DurableQueue, FORMAT_VERSION as DURABLE_FORMAT_VERSION};
pub use health::{Health, HealthReport};
pub use host::Host;
pub use https::USER_AGENT;
pub use manager::{DrainError, Drains, DrainsConfig, StartError};
pub use metrics::DrainMetrics;
pub use policy::{AddressPolicy, Cidr, CidrError, Refusal, Special};
pub use shared::{DrainChange, SharedBatch, SharedDelivery, SharedFeed, SharedFuture};
pub use store::{Drain, DrainStore, StoreError};
pub use tls::{CaError, client_config};
pub use url::{DrainUrl, Scheme, UrlError};
