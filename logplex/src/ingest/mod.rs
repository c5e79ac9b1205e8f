//! Ingest: lines arriving over syslog TCP, TLS and UDP (here) and HTTP `POST /logs` (in the
//! API), each frame checked for its token and turned into a `LogLine` of the token's app.
//! As in Logplex, a frame carries its token in the APP-NAME field
//! (`<190>1 TS host t.<uuid> web.1 - msg`), which becomes the token's name (the source).

mod listener_stats;
mod syslog;
mod udp;

use std::sync::Arc;

use bytes::Bytes;

pub use listener_stats::{IngestStats, ListenerStats};
pub use syslog::{StreamConfig, serve_stream};
pub use udp::serve_udp;

use crate::framing::FrameError;
use crate::line::LogLine;
use crate::rfc5424::{SyslogMessage, parse};
use crate::router::{Channel, Reject, Router, TokenTarget};
use crate::time::Timestamp;

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
}

impl FrameSink {
    pub(crate) fn new(router: Router) -> Self {
        FrameSink {
            router,
            cached: None,
            last: None,
            pending: Vec::with_capacity(256),
            pending_channel: None,
        }
    }

    fn resolve(&mut self, token: &Bytes) -> Option<TokenTarget> {
        let generation = self.router.generation();
        if let Some((t, g, target)) = &self.cached
            && t == token
            && *g == generation
        {
            return Some(target.clone());
        }
        let target = self.router.resolve_token(token)?;
        self.cached = Some((token.clone(), generation, target.clone()));
        Some(target)
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

    /// Reads one frame; a good one waits in the batch until `flush`.
    pub(crate) fn frame(&mut self, frame: &Bytes, received: Timestamp) {
        let msg = match parse(frame) {
            Ok(m) => m,
            Err(_) => return self.reject(Reject::Malformed),
        };
        let Some(target) = msg.app_name.as_ref().and_then(|t| self.resolve(t)) else {
            self.router.unattributed().add(Reject::UnknownToken, 1);
            self.router.ingest_stats().rejected(Reject::UnknownToken);
            return;
        };
        if std::str::from_utf8(&msg.msg).is_err() {
            self.router.ingest_stats().invalid_utf8(1);
        }
        let same = self
            .pending_channel
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &target.channel));
        if !same {
            self.flush();
            self.pending_channel = Some(target.channel.clone());
            self.last = Some(target.channel.clone());
        }
        self.pending.push(to_line(msg, &target, received));
    }

    /// Publishes the batch.
    pub(crate) fn flush(&mut self) {
        if let Some(channel) = self.pending_channel.take()
            && !self.pending.is_empty()
        {
            let lines = std::mem::replace(&mut self.pending, Vec::with_capacity(256));
            let now = lines.last().map_or_else(Timestamp::now, |l| l.received);
            channel.publish(lines, now);
        }
        self.pending.clear();
    }
}
