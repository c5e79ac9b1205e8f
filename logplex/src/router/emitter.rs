//! `Emitter`: how the stack's layers (proxy, mesh, dyno manager) write lines into an app's
//! stream in-process: bound to an app and a source when made, no token, no serialization, and
//! never a wait (the proxy does not wait for logging).

// A refused line comes back by value, as tokio's `TrySendError<T>` does, so the caller may
// count or retry it without a copy.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use bytes::Bytes;

use crate::line::LogLine;
use crate::router::channel::Channel;
use crate::time::Timestamp;

/// Facility local7 and severity info: `<190>`, as Heroku's app lines.
const DEFAULT_FACILITY: u8 = 23;
const DEFAULT_SEVERITY: u8 = 6;

/// Why a line was not emitted; the line comes back so the caller may count or retry it.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The app is over its rate budget (the drop is counted as `rate_limited`).
    #[error("the app is over its rate budget")]
    Full(LogLine),
    /// The app was deleted or the router is stopping.
    #[error("the app's channel is closed")]
    Closed(LogLine),
}

/// A cheap, cloneable handle that writes lines as one app and source.
#[derive(Clone, Debug)]
pub struct Emitter {
    channel: Arc<Channel>,
    source: Bytes,
    facility: u8,
    severity: u8,
}

impl Emitter {
    pub(crate) fn new(channel: Arc<Channel>, source: &str) -> Self {
        Emitter {
            channel,
            source: Bytes::copy_from_slice(source.as_bytes()),
            facility: DEFAULT_FACILITY,
            severity: DEFAULT_SEVERITY,
        }
    }

    /// The same emitter with another syslog facility and severity (e.g. the router's lines are
    /// local3.info, `<158>`, as Heroku's).
    pub fn with_priority(mut self, facility: u8, severity: u8) -> Self {
        self.facility = facility.min(23);
        self.severity = severity.min(7);
        self
    }

    /// The line this emitter would write for `process` and `message`, stamped now.
    pub fn line(&self, process: &str, message: impl Into<Bytes>) -> LogLine {
        let now = Timestamp::now();
        LogLine {
            received: now,
            time: now,
            app: self.channel.app().clone(),
            source: self.source.clone(),
            process: Bytes::copy_from_slice(process.as_bytes()),
            facility: self.facility,
            severity: self.severity,
            message: message.into(),
            seq: 0,
        }
    }

    /// Writes `message` from `process` (`web.1`, `router`). Never waits.
    pub fn try_emit(&self, process: &str, message: impl Into<Bytes>) -> Result<(), EmitError> {
        self.try_emit_line(self.line(process, message))
    }

    /// Writes a line made by the caller. Its app is this emitter's, whatever it says.
    pub fn try_emit_line(&self, mut line: LogLine) -> Result<(), EmitError> {
        line.app = self.channel.app().clone();
        let now = line.received;
        let closed = self.channel.is_closed();
        if closed {
            self.channel.reject(crate::router::stats::Reject::Closed, 1);
            return Err(EmitError::Closed(line));
        }
        // A cluster node: admitted by the budget here, published to the bus, and back into
        // every node's channel (this one's too) from the bus's reader.
        if let Some((outbox, app_id)) = self.channel.bus_sink() {
            let keep = line.clone();
            if self.channel.admit(&mut vec![line], now) == 0 {
                return Err(EmitError::Full(keep));
            }
            return outbox.push(app_id.clone(), keep).map_err(EmitError::Full);
        }
        let keep = line.clone();
        match self.channel.publish(vec![line], now) {
            1 => Ok(()),
            _ if self.channel.is_closed() => Err(EmitError::Closed(keep)),
            _ => Err(EmitError::Full(keep)),
        }
    }
}
