//! What every drain's task shares: its drain, its queue, its health, the app's channel (for
//! L10, L14 and refused-destination lines), the limits, how to connect, and the stop signal.

use std::sync::Arc;
use std::time::Duration;

use logplex::{Channel, LogLine, Loss, PlatformEvent, Subscription};
use tokio::sync::watch;

use crate::dial::Dialer;
use crate::health::Health;
use crate::store::Drain;
use crate::url::DrainUrl;

/// Limits and timings of delivery.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Lines a drain's buffer holds before dropping the oldest (L10).
    pub buffer_lines: usize,
    /// Connecting (TCP and TLS handshake) may take this long.
    pub connect_timeout: Duration,
    /// One write, or one HTTP request, may take this long.
    pub send_timeout: Duration,
    /// Bytes in one HTTPS batch (about; a batch always holds at least one line).
    pub batch_bytes: usize,
    /// Lines in one batch at most.
    pub batch_lines: usize,
    /// How long an HTTPS batch waits to fill once it has a line.
    pub batch_wait: Duration,
    /// Attempts at one HTTPS batch (429, 5xx, timeouts) before it is dropped and counted.
    pub attempts: u32,
    /// The first retry delay; later ones double, with jitter.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_cap: Duration,
    /// Whether HTTPS batches are gzipped (also per drain with `?gzip=true`).
    pub gzip: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            buffer_lines: 1024,
            connect_timeout: Duration::from_secs(3),
            send_timeout: Duration::from_secs(5),
            batch_bytes: 100 * 1024,
            batch_lines: 1000,
            batch_wait: Duration::from_millis(50),
            attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
            gzip: false,
        }
    }
}

/// One drain's task's world.
#[derive(Debug)]
pub struct Ctx {
    pub drain: Drain,
    pub url: DrainUrl,
    /// The drain's buffer on this node (none when fed by a cluster's shared queue).
    pub subscription: Option<Subscription>,
    pub channel: Arc<Channel>,
    pub health: Arc<Health>,
    pub config: DeliveryConfig,
    pub tls: Arc<rustls::ClientConfig>,
    /// Connects under the address policy.
    pub dialer: Dialer,
    /// Turns true when the router stops: give up retrying what cannot be delivered.
    pub stopping: watch::Receiver<bool>,
}

impl Ctx {
    /// Reports a loss from the buffer: Heroku's L10 into the app's stream now, and the same
    /// line for the drain itself (returned), sent with the next batch that gets through.
    pub fn overflow(&self, loss: Loss) -> LogLine {
        let event = PlatformEvent::DrainOverflow {
            drain: self.drain.token.clone(),
            dropped: loss.dropped,
            since: loss.since,
        };
        self.channel.emit_for_drain(event, &self.drain.token)
    }

    /// Reports a certificate failure as Heroku's L14 in the app's stream.
    pub fn certificate_failure(&self, error: &str) {
        self.channel.emit(PlatformEvent::CertificateInvalid {
            error: error.to_owned(),
            uri: self.drain.url.clone(),
        });
    }

    /// Reports in the app's stream that the address policy refused where the drain leads.
    pub fn destination_refused(&self, error: &str) {
        self.channel.emit(PlatformEvent::DrainRefused {
            drain: self.drain.token.clone(),
            error: error.to_owned(),
            uri: self.drain.url.clone(),
        });
    }

    /// Whether the router is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Sleeps `delay`, or less when the router starts stopping.
    pub async fn pause(&mut self, delay: Duration) {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }
}
