//! The lines the router itself writes into an app's stream, as `paas[logplex]`, in Heroku's
//! exact words, so that people and their tools recognise them. Each is a [`PlatformEvent`]
//! (`event.rs`) and is written only through [`PlatformEvents::emit`] (`counts.rs`), which also
//! counts it for `/metrics`: no L-line can be written without being counted, so the stream and
//! `logplex_platform_events_total{app,code}` always agree (STYLE.md: typed telemetry).

mod counts;
mod event;

pub use counts::PlatformEvents;
pub use event::PlatformEvent;

/// The process the router's own lines come from: `paas[logplex]`.
pub const LOGPLEX_PROCESS: &[u8] = b"logplex";
