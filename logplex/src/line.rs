//! `LogLine`: one line as every part of the router sees it, from ingest to fan-out, and how
//! people read it (`2026-11-21T12:00:00.123456+00:00 app[web.1]: msg`).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::time::{TimeFormatCache, Timestamp};

/// An app's name: the channel its lines go to. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(Arc<str>);

impl AppName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AppName {
    fn from(name: &str) -> Self {
        AppName(Arc::from(name))
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The source of platform lines: `paas[router]`, `paas[web.1]`, `paas[logplex]`.
pub const PLATFORM_SOURCE: &[u8] = b"paas";

/// The source of a dyno's own output: `app[web.1]`.
pub const APP_SOURCE: &[u8] = b"app";

/// One log line. Its byte fields share the buffers they were read into (or the history's own
/// storage); cloning it copies no bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the router accepted it.
    pub received: Timestamp,
    /// When it happened, as its sender says (the received time when the sender gave none).
    pub time: Timestamp,
    /// The app (channel) it belongs to.
    pub app: AppName,
    /// `app` (a dyno's output), `paas` (the platform), or an ingest token's name.
    pub source: Bytes,
    /// The process: `web.1`, `router`, `worker.2`; may be empty.
    pub process: Bytes,
    /// Syslog facility, 0..=23.
    pub facility: u8,
    /// Syslog severity, 0..=7.
    pub severity: u8,
    /// The message, as bytes (not necessarily UTF-8).
    pub message: Bytes,
    /// Its place in its app's stream: numbered from 1 by the channel as it is published
    /// (0 before). Readers resume after it (`Last-Event-ID`).
    pub seq: u64,
}

impl LogLine {
    /// Appends the line as people read it: `TIME SOURCE[PROCESS]: MESSAGE` (no newline).
    pub fn write_display(&self, out: &mut Vec<u8>) {
        self.write_display_cached(out, &mut TimeFormatCache::default());
    }

    /// `write_display`, reusing the timestamp's text within a second (for streams of lines).
    pub fn write_display_cached(&self, out: &mut Vec<u8>, cache: &mut TimeFormatCache) {
        self.time.write_rfc3339_cached(out, cache);
        out.push(b' ');
        out.extend_from_slice(&self.source);
        if !self.process.is_empty() {
            out.push(b'[');
            out.extend_from_slice(&self.process);
            out.push(b']');
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(&self.message);
    }

    /// The bytes this line keeps alive in its own fields.
    pub fn size(&self) -> usize {
        self.source.len() + self.process.len() + self.message.len()
    }

    /// The same line with its byte fields copied into one buffer of their own, so that it no
    /// longer keeps alive the (larger) buffer it was read into.
    pub fn compacted(&self) -> LogLine {
        let mut own = Vec::with_capacity(self.size());
        own.extend_from_slice(&self.source);
        own.extend_from_slice(&self.process);
        own.extend_from_slice(&self.message);
        let own = Bytes::from(own);
        let (s, p) = (self.source.len(), self.process.len());
        LogLine {
            source: own.slice(..s),
            process: own.slice(s..s + p),
            message: own.slice(s + p..),
            app: self.app.clone(),
            ..*self
        }
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(64 + self.size());
        self.write_display(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A line for tests: `source[process]: message` at `micros`.
    pub(crate) fn line(
        app: &str,
        source: &str,
        process: &str,
        message: &str,
        micros: i64,
    ) -> LogLine {
        LogLine {
            received: Timestamp::from_micros(micros),
            time: Timestamp::from_micros(micros),
            app: AppName::from(app),
            source: Bytes::copy_from_slice(source.as_bytes()),
            process: Bytes::copy_from_slice(process.as_bytes()),
            facility: 1,
            severity: 6,
            message: Bytes::copy_from_slice(message.as_bytes()),
            seq: 0,
        }
    }

    #[test]
    fn displayed_as_heroku_does() {
        let l = line(
            "shop",
            "app",
            "web.1",
            "at=info msg=hi",
            1_795_262_400_123_456,
        );
        assert_eq!(
            l.to_string(),
            "2026-11-21T12:00:00.123456+00:00 app[web.1]: at=info msg=hi"
        );
        let l = line("shop", "paas", "router", "at=info status=200", 0);
        assert_eq!(
            l.to_string(),
            "1970-01-01T00:00:00.000000+00:00 paas[router]: at=info status=200"
        );
        assert_eq!(
            line("shop", "deploys", "", "done", 0).to_string(),
            "1970-01-01T00:00:00.000000+00:00 deploys: done"
        );
    }

    #[test]
    fn compacting_keeps_the_line_and_drops_the_big_buffer() {
        let big = Bytes::from(vec![b'x'; 1 << 16]);
        let l = LogLine {
            message: big.slice(10..20),
            ..line("a", "app", "web.1", "", 5)
        };
        let c = l.compacted();
        assert_eq!(c, l);
        drop(l);
        // `big` is now the only owner of its buffer again: the compacted line does not hold it.
        assert!(big.is_unique());
    }
}
