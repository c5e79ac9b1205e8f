//! What the proxy's listeners count — connections accepted, open, refused at a cap, still
//! reading their first request head, cut off at the header timeout, closed idle, and accepts
//! that failed — and their Prometheus form (`paas_proxy_*`), which `paas up` registers on the
//! router's `/metrics`. The counters are also the caps: `ListenerStats::admit` takes a
//! connection's place under both, or refuses it. Each event that a user should hear of is
//! told here too, on standard error, at most once a minute with a count of the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::proxy::throttle::Throttled;

/// How often a repeated warning is told.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why a connection was closed as soon as it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener has its most connections open.
    MaxConnections,
    /// The listener has its most connections still reading their first request head.
    PendingHeads,
}

/// One listener's counters.
#[derive(Debug)]
pub struct ListenerStats {
    name: &'static str,
    accepted: AtomicU64,
    refused_max_connections: AtomicU64,
    refused_pending_heads: AtomicU64,
    accept_errors: AtomicU64,
    header_timeouts: AtomicU64,
    keepalive_timeouts: AtomicU64,
    malformed_heads: AtomicU64,
    open: AtomicU64,
    heads_pending: AtomicU64,
    accept_warning: Throttled,
    refusal_warning: Throttled,
    timeout_warning: Throttled,
}

/// A connection's place under its listener's caps, given back when dropped; its place among
/// the connections reading their first head is given back as soon as that head is read.
#[derive(Debug)]
pub struct ConnectionSlot {
    listener: Arc<ListenerStats>,
    pending_head: AtomicBool,
}

impl ListenerStats {
    fn new(name: &'static str) -> Self {
        ListenerStats {
            name,
            accepted: AtomicU64::new(0),
            refused_max_connections: AtomicU64::new(0),
            refused_pending_heads: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            keepalive_timeouts: AtomicU64::new(0),
            malformed_heads: AtomicU64::new(0),
            open: AtomicU64::new(0),
            heads_pending: AtomicU64::new(0),
            accept_warning: Throttled::new(WARN_EVERY),
            refusal_warning: Throttled::new(WARN_EVERY),
            timeout_warning: Throttled::new(WARN_EVERY),
        }
    }

    /// A place for a new connection, if the listener has fewer than `max_open` connections
    /// open and fewer than `max_pending` reading their first head; else the refusal, counted
    /// and told.
    pub fn admit(
        self: &Arc<Self>,
        max_open: usize,
        max_pending: usize,
    ) -> Result<ConnectionSlot, Refusal> {
        let refusal = if self.open.fetch_add(1, Ordering::SeqCst) >= max_open as u64 {
            self.open.fetch_sub(1, Ordering::SeqCst);
            Refusal::MaxConnections
        } else if self.heads_pending.fetch_add(1, Ordering::SeqCst) >= max_pending as u64 {
            self.heads_pending.fetch_sub(1, Ordering::SeqCst);
            self.open.fetch_sub(1, Ordering::SeqCst);
            Refusal::PendingHeads
        } else {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            return Ok(ConnectionSlot {
                listener: self.clone(),
                pending_head: AtomicBool::new(true),
            });
        };
        self.refused(refusal, max_open, max_pending);
        Err(refusal)
    }

    fn refused(&self, refusal: Refusal, max_open: usize, max_pending: usize) {
        let (counter, why) = match refusal {
            Refusal::MaxConnections => (
                &self.refused_max_connections,
                format!("{max_open} connections are open (--http-max-connections)"),
            ),
            Refusal::PendingHeads => (
                &self.refused_pending_heads,
                format!(
                    "{max_pending} connections have not sent their first request head \
                     (--http-max-pending-heads)"
                ),
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let name = self.name;
        self.refusal_warning.tell(|held| {
            tracing::warn!(
                "proxy ({name}): a new connection was closed at once: {why}{}",
                more(held)
            );
        });
    }

    /// An accept failed (out of file descriptors, say): counted and told.
    pub fn accept_failed(&self, error: &std::io::Error) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
        let name = self.name;
        self.accept_warning.tell(|held| {
            tracing::warn!(
                "proxy ({name}): accepting a connection failed: {error}; accepting backs off{}",
                more(held)
            );
        });
    }

    /// A connection's request head did not arrive within `timeout`: counted and told.
    pub fn header_timed_out(&self, timeout: Duration) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
        let name = self.name;
        self.timeout_warning.tell(|held| {
            tracing::warn!(
                "proxy ({name}): a connection was closed: its request head did not arrive \
                 within {timeout:?} (--http-header-timeout){}",
                more(held)
            );
        });
    }

    /// A request head was refused (400, H26) as malformed or with a body length two parsers
    /// could read differently: counted (its router line tells the rest).
    pub fn malformed_head(&self) {
        self.malformed_heads.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed after its keep-alive timeout without a request (normal: only
    /// counted).
    pub fn keepalive_timed_out(&self) {
        self.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

/// `; N more since the last warning`, when some were held back.
fn more(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!("; {held} more since the last warning")
    }
}

impl ConnectionSlot {
    /// The connection has read its first request head.
    pub fn first_head_read(&self) {
        if self.pending_head.swap(false, Ordering::SeqCst) {
            self.listener.heads_pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The listener's counters.
    pub fn listener(&self) -> &ListenerStats {
        &self.listener
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.first_head_read();
        self.listener.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The proxy's counters: its plain HTTP listener's and its TLS listener's.
#[derive(Debug)]
pub struct ProxyStats {
    http: Arc<ListenerStats>,
    https: Arc<ListenerStats>,
}

impl Default for ProxyStats {
    fn default() -> Self {
        ProxyStats {
            http: Arc::new(ListenerStats::new("http")),
            https: Arc::new(ListenerStats::new("https")),
        }
    }
}

impl ProxyStats {
    /// The counters of the TLS listener, or of the plain one.
    pub fn listener(&self, tls: bool) -> &Arc<ListenerStats> {
        if tls { &self.https } else { &self.http }
    }
}

type Series = (Vec<(&'static str, &'static str)>, u64);

fn family(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, kind): (&str, &str, MetricType),
    series: &[Series],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in series {
        let at = family.encode_family(labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(*v as i64).encode(at)?,
            _ => ConstCounter::new(*v).encode(at)?,
        }
    }
    Ok(())
}

impl Collector for ProxyStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let listeners = [&self.http, &self.https];
        let per = |f: fn(&ListenerStats) -> &AtomicU64| -> Vec<Series> {
            listeners
                .iter()
                .map(|l| (vec![("listener", l.name)], f(l).load(Ordering::Relaxed)))
                .collect()
        };
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        let simple = [
            (
                (
                    "paas_proxy_connections_accepted",
                    "Client connections accepted.",
                    counter,
                ),
                per(|l| &l.accepted),
            ),
            (
                (
                    "paas_proxy_connections_open",
                    "Client connections open.",
                    gauge,
                ),
                per(|l| &l.open),
            ),
            (
                (
                    "paas_proxy_heads_pending",
                    "Client connections that have not yet sent their first request head.",
                    gauge,
                ),
                per(|l| &l.heads_pending),
            ),
            (
                (
                    "paas_proxy_header_timeouts",
                    "Connections closed because a request head (or the TLS handshake) did not \
                     arrive within the header timeout.",
                    counter,
                ),
                per(|l| &l.header_timeouts),
            ),
            (
                (
                    "paas_proxy_keepalive_timeouts",
                    "Connections closed after the keep-alive timeout without a request.",
                    counter,
                ),
                per(|l| &l.keepalive_timeouts),
            ),
            (
                (
                    "paas_proxy_malformed_heads",
                    "Request heads refused with 400 (H26) as malformed or ambiguous: bad syntax, \
                     a folded line, a bare CR, differing Content-Lengths, Content-Length with \
                     Transfer-Encoding.",
                    counter,
                ),
                per(|l| &l.malformed_heads),
            ),
            (
                (
                    "paas_proxy_accept_errors",
                    "Accepts that failed (e.g. out of file descriptors); accepting backs off.",
                    counter,
                ),
                per(|l| &l.accept_errors),
            ),
        ];
        for (descriptor, series) in &simple {
            family(&mut encoder, *descriptor, series)?;
        }
        let refused: Vec<Series> = listeners
            .iter()
            .flat_map(|l| {
                [
                    ("max_connections", &l.refused_max_connections),
                    ("pending_heads", &l.refused_pending_heads),
                ]
                .map(|(reason, n)| {
                    (
                        vec![("listener", l.name), ("reason", reason)],
                        n.load(Ordering::Relaxed),
                    )
                })
            })
            .collect();
        family(
            &mut encoder,
            (
                "paas_proxy_connections_refused",
                "Connections closed as soon as they were accepted, by listener and the cap \
                 that was full.",
                counter,
            ),
            &refused,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(stats: ProxyStats) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(stats));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn the_caps_refuse_count_and_give_places_back() {
        let stats = ProxyStats::default();
        let http = stats.listener(false).clone();
        let a = http.admit(2, 1).unwrap();
        assert_eq!(http.admit(2, 1).unwrap_err(), Refusal::PendingHeads);
        a.first_head_read();
        let b = http.admit(2, 1).unwrap();
        assert_eq!(http.admit(2, 1).unwrap_err(), Refusal::MaxConnections);
        drop((a, b));
        let _c = http.admit(2, 1).unwrap();
        let text = render(stats);
        for series in [
            "paas_proxy_connections_accepted_total{listener=\"http\"} 3",
            "paas_proxy_connections_open{listener=\"http\"} 1",
            "paas_proxy_heads_pending{listener=\"http\"} 1",
            "paas_proxy_connections_refused_total{listener=\"http\",reason=\"max_connections\"} 1",
            "paas_proxy_connections_refused_total{listener=\"http\",reason=\"pending_heads\"} 1",
            "paas_proxy_connections_open{listener=\"https\"} 0",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
    }
}
