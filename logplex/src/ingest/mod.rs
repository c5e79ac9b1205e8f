//! Ingest: lines arriving over syslog TCP, TLS and UDP (here) and HTTP `POST /logs` (in the
//! API), each frame checked for its token and turned into a `LogLine` of the token's app.
//! As in Logplex, a frame carries its token in the APP-NAME field
//! (`<190>1 TS host t.<uuid> web.1 - msg`), which becomes the token's name (the source).

mod listener_stats;
mod syslog;
mod udp;

use std::sync::Arc;

use bytes::{Buf, Bytes};

pub use listener_stats::{IngestStats, ListenerStats};
pub use syslog::{StreamConfig, serve_stream};
pub use udp::serve_udp;

use crate::framing::FrameError;
use crate::line::LogLine;
use crate::rfc5424::{SyslogMessage, parse_fields};
use crate::router::{Channel, Reject, Router, TokenTarget};
use crate::time::{TimeCache, Timestamp};

/// Whether a frame's HOSTNAME is a drain token (`d.` and a UUID): Logplex's drains write
/// their token there, so such a frame is some router's drain output coming back in.
pub(crate) fn is_drain_output(hostname: &[u8]) -> bool {
    let Some(uuid) = hostname.strip_prefix(b"d.") else {
        return false;
    };
    uuid.len() == 36
        && uuid.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A syslog message as a line of the token's app.
pub(crate) fn to_line(msg: SyslogMessage, target: &TokenTarget, received: Timestamp) -> LogLine {
    LogLine {
        received,
        time: msg.timestamp.unwrap_or(received),
        app: target.channel.app().clone(),
        source: target.source.clone(),
        process: msg.proc_id.unwrap_or_default(),
        facility: msg.facility,
        severity: msg.severity,
        message: msg.msg,
        seq: 0,
    }
}

/// Turns one stream's (or socket's) frames into lines and publishes them in batches, one
/// batch per app per read. Remembers the last token it resolved, so a connection that sends
/// one token (the usual case) looks it up once, until the registry changes.
#[derive(Debug)]
pub(crate) struct FrameSink {
    router: Router,
    cached: Option<(Bytes, u64, TokenTarget)>,
    /// The app of the last good frame: a bad frame on the same connection is charged to it.
    last: Option<Arc<Channel>>,
    pending: Vec<LogLine>,
    pending_channel: Option<Arc<Channel>>,
    /// The app id of the pending batch (the bus names apps by id).
    pending_app_id: Option<Arc<str>>,
    /// Batches admitted for the log bus, published by `settle` (a cluster node only).
    outbox: Vec<(Arc<str>, Vec<LogLine>)>,
    times: TimeCache,
}

impl FrameSink {
    pub(crate) fn new(router: Router) -> Self {
        FrameSink {
            router,
            cached: None,
            last: None,
            pending: Vec::with_capacity(256),
            pending_channel: None,
            pending_app_id: None,
            outbox: Vec::new(),
            times: TimeCache::default(),
        }
    }

    /// Looks the token up, unless it is the one looked up last (and the registry has not
    /// changed since); the target is then `self.cached`'s.
    fn resolve(&mut self, token: &[u8]) -> bool {
        let generation = self.router.generation();
        if let Some((t, g, _)) = &self.cached
            && t[..] == *token
            && *g == generation
        {
            return true;
        }
        match self.router.resolve_token(token) {
            Some(target) => {
                self.cached = Some((Bytes::copy_from_slice(token), generation, target));
                true
            }
            None => false,
        }
    }

    /// Whether a frame with a valid token has come through this sink (the connection is
    /// a real sender's).
    pub(crate) fn has_valid_frame(&self) -> bool {
        self.last.is_some()
    }

    /// Counts a rejection against the connection's app, or as unattributed.
    pub(crate) fn reject(&self, reason: Reject) {
        match &self.last {
            Some(channel) => channel.reject(reason, 1),
            None => self.router.unattributed().add(reason, 1),
        }
        self.router.ingest_stats().rejected(reason);
    }

    pub(crate) fn frame_error(&mut self, e: FrameError) {
        self.reject(Reject::from(e));
    }

    /// Reads one frame; a good one waits in the batch until `flush`. Only the process and
    /// the message become `Bytes` (slices of the frame, no copy).
    pub(crate) fn frame(&mut self, frame: Bytes, received: Timestamp) {
        let fields = match parse_fields(&frame, &mut self.times) {
            Ok(f) => f,
            Err(_) => return self.reject(Reject::Malformed),
        };
        if fields
            .hostname
            .clone()
            .is_some_and(|h| is_drain_output(&frame[h]))
        {
            return self.reject(Reject::DrainLoop);
        }
        let known = match fields.app_name.clone() {
            Some(token) => self.resolve(&frame[token]),
            None => false,
        };
        let Some((_, _, target)) = self.cached.as_ref().filter(|_| known) else {
            self.router.unattributed().add(Reject::UnknownToken, 1);
            self.router.ingest_stats().rejected(Reject::UnknownToken);
            return;
        };
        if let Some(p) = fields.proc_id.clone()
            && crate::registry::is_reserved_process(&target.source, &frame[p])
        {
            // Charged to the app whose token sent it.
            target.channel.reject(Reject::ReservedProcess, 1);
            self.router.ingest_stats().rejected(Reject::ReservedProcess);
            return;
        }
        let message = &frame[fields.msg.clone()];
        // Almost every message is ASCII, which is checked many bytes at a time.
        if !message.is_ascii() && std::str::from_utf8(message).is_err() {
            self.router.ingest_stats().invalid_utf8(1);
        }
        let same = self
            .pending_channel
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &target.channel));
        if !same {
            let channel = target.channel.clone();
            let app_id = target.app_id.clone();
            self.flush();
            self.pending_channel = Some(channel.clone());
            self.pending_app_id = Some(app_id);
            self.last = Some(channel);
        }
        let Some((_, _, target)) = self.cached.as_ref() else {
            return;
        };
        let process = fields.proc_id.map(|r| frame.slice(r)).unwrap_or_default();
        // The message is the frame itself, narrowed: no reference count to take.
        let mut message = frame;
        message.truncate(fields.msg.end);
        message.advance(fields.msg.start);
        self.pending.push(LogLine {
            received,
            time: fields.timestamp.unwrap_or(received),
            app: target.channel.app().clone(),
            source: target.source.clone(),
            process,
            facility: fields.facility,
            severity: fields.severity,
            message,
            seq: 0,
        });
    }

    /// Publishes the batch; on a cluster node, admits it and keeps it for `settle`.
    pub(crate) fn flush(&mut self) {
        let app_id = self.pending_app_id.take();
        if let Some(channel) = self.pending_channel.take()
            && !self.pending.is_empty()
        {
            let mut lines = std::mem::replace(&mut self.pending, Vec::with_capacity(256));
            let now = lines.last().map_or_else(Timestamp::now, |l| l.received);
            let to_bus = self.router.bus().is_some() || self.router.config().awaits_bus;
            match app_id.filter(|_| to_bus) {
                Some(app_id) => {
                    if channel.admit(&mut lines, now) > 0 {
                        self.outbox.push((app_id, lines));
                    }
                }
                None => {
                    channel.publish(lines, now);
                }
            }
        }
        self.pending.clear();
    }

    /// A cluster node: publishes the admitted batches to the log bus and waits until it has
    /// them all (nothing to do otherwise).
    pub(crate) async fn settle(&mut self) -> Result<(), crate::bus::BusError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let Some(bus) = self.router.bus() else {
            // A node that has not joined its cluster yet: nothing is acknowledged.
            let n = self.outbox.drain(..).map(|(_, l)| l.len() as u64).sum();
            self.router.ingest_stats().bus_refused(n);
            return Err(crate::bus::BusError(
                "this node has not joined its cluster yet".into(),
            ));
        };
        let mut result = Ok(());
        for (app_id, lines) in self.outbox.drain(..) {
            let n = lines.len() as u64;
            let batch = crate::bus::BusBatch {
                app_id,
                lines,
                dedup_id: None,
            };
            if let Err(e) = bus.publish(&batch).await {
                self.router.ingest_stats().bus_refused(n);
                result = Err(e);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_tokens_in_hostname_are_drain_output() {
        assert!(is_drain_output(b"d.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d"));
        for not in [
            &b"host"[..],
            b"d.",
            b"d.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0",
            b"d.0b7d2a4e_9c51-4f3e-8a2d-5e6f7a8b9c0d",
            b"t.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d",
            b"d.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0dx",
        ] {
            assert!(!is_drain_output(not), "{}", String::from_utf8_lossy(not));
        }
    }
}
