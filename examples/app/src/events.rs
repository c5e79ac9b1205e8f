//! The app's own telemetry, typed: one struct per event, each writing its logfmt line (with
//! its l2met metrics) in one place. Lines go to stdout, which the platform reads line by line.

use std::io::{self, Write as _};
use std::time::Duration;

/// Something the app logs: one logfmt line, without its newline.
pub(crate) trait Event {
    fn encode(&self, line: &mut Vec<u8>);
}

/// Writes `event` to stdout as one line and flushes it. The line goes out in one locked
/// write, so lines from concurrent connections never interleave.
pub(crate) fn emit(event: &impl Event) -> io::Result<()> {
    let mut line = Vec::with_capacity(160);
    event.encode(&mut line);
    line.push(b'\n');
    let mut stdout = io::stdout().lock();
    stdout.write_all(&line)?;
    stdout.flush()
}

/// Writes a `key=value` pair whose key is one of ours, so always valid.
fn pair(line: &mut Vec<u8>, key: &str, value: impl AsRef<[u8]>) {
    logfmt::Encoder::new(line).pair_lossy(key.as_bytes(), Some(value.as_ref()));
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// The web process is listening.
#[derive(Debug)]
pub(crate) struct Listening {
    pub(crate) port: u16,
}

impl Event for Listening {
    fn encode(&self, line: &mut Vec<u8>) {
        logfmt::Encoder::new(line).pair_lossy(b"listening", None);
        pair(line, "port", self.port.to_string());
    }
}

/// SIGTERM: the web process finishes what is in flight and exits.
#[derive(Debug)]
pub(crate) struct Stopping {
    pub(crate) in_flight: usize,
}

impl Event for Stopping {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "info");
        pair(
            line,
            "msg",
            "SIGTERM: finishing requests in flight, then exiting",
        );
        pair(line, "in_flight", self.in_flight.to_string());
    }
}

/// A request was answered (or, on purpose, not).
#[derive(Debug)]
pub(crate) struct RequestServed<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// `None` when no response was written.
    pub(crate) status: Option<u16>,
    pub(crate) duration: Duration,
    /// A route's own sample metric, as `sample#app.<name>=<value>`.
    pub(crate) sample: Option<(&'static str, u64)>,
    /// Why the response could not be finished.
    pub(crate) error: Option<&'a io::Error>,
}

impl Event for RequestServed<'_> {
    fn encode(&self, line: &mut Vec<u8>) {
        let at = if self.status.is_some() && self.error.is_none() {
            "info"
        } else {
            "warn"
        };
        pair(line, "at", at);
        pair(line, "method", self.method);
        pair(line, "path", self.path);
        match self.status {
            Some(status) => pair(line, "status", status.to_string()),
            None => pair(line, "status", "none"),
        }
        let duration = millis(self.duration);
        pair(line, "duration", &duration);
        pair(line, "measure#app.response", &duration);
        pair(line, "count#app.requests", "1");
        if let Some((name, value)) = self.sample {
            pair(line, &format!("sample#app.{name}"), value.to_string());
        }
        if let Some(error) = self.error {
            pair(line, "error", error.to_string());
        }
    }
}

/// A request could not be read.
#[derive(Debug)]
pub(crate) struct RequestRejected<'a> {
    pub(crate) error: &'a crate::error::RequestError,
}

impl Event for RequestRejected<'_> {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "warn");
        pair(line, "msg", "request not read");
        match self.error.status() {
            Some(status) => pair(line, "status", status.to_string()),
            None => pair(line, "status", "none"),
        }
        pair(line, "error", self.error.to_string());
        pair(line, "count#app.bad_requests", "1");
    }
}

/// A WebSocket session ended.
#[derive(Debug)]
pub(crate) struct WebSocketClosed<'a> {
    pub(crate) messages: u64,
    pub(crate) duration: Duration,
    pub(crate) error: Option<&'a str>,
}

impl Event for WebSocketClosed<'_> {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(
            line,
            "at",
            if self.error.is_none() { "info" } else { "warn" },
        );
        pair(line, "msg", "websocket closed");
        pair(line, "duration", millis(self.duration));
        pair(
            line,
            "count#app.websocket_messages",
            self.messages.to_string(),
        );
        if let Some(error) = self.error {
            pair(line, "error", error);
        }
    }
}

/// Accepting a connection failed (the listener keeps going).
#[derive(Debug)]
pub(crate) struct AcceptFailed<'a> {
    pub(crate) error: &'a io::Error,
}

impl Event for AcceptFailed<'_> {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "error");
        pair(line, "msg", "accept failed");
        pair(line, "error", self.error.to_string());
    }
}

/// `/crash` is about to exit the process.
#[derive(Debug)]
pub(crate) struct Crashing;

impl Event for Crashing {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "error");
        pair(line, "msg", "crashing on purpose");
    }
}

/// The worker started.
#[derive(Debug)]
pub(crate) struct WorkerStarted {
    pub(crate) interval: Duration,
}

impl Event for WorkerStarted {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "info");
        pair(line, "msg", "worker started");
        pair(line, "interval", millis(self.interval));
    }
}

/// The worker did a round of (pretend) work.
#[derive(Debug)]
pub(crate) struct WorkerTick {
    pub(crate) queue: u64,
}

impl Event for WorkerTick {
    fn encode(&self, line: &mut Vec<u8>) {
        pair(line, "at", "info");
        pair(line, "msg", "worker tick");
        pair(line, "count#worker.ticks", "1");
        pair(line, "sample#worker.queue", self.queue.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &impl Event) -> String {
        let mut line = Vec::new();
        event.encode(&mut line);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn listening() {
        assert_eq!(line(&Listening { port: 5000 }), "listening port=5000");
    }

    #[test]
    fn a_request_served() {
        let served = RequestServed {
            method: "GET",
            path: "/",
            status: Some(200),
            duration: Duration::from_micros(3_400),
            sample: Some(("greeting_length", 5)),
            error: None,
        };
        assert_eq!(
            line(&served),
            "at=info method=GET path=/ status=200 duration=3ms measure#app.response=3ms \
             count#app.requests=1 sample#app.greeting_length=5"
        );
    }

    #[test]
    fn a_request_left_without_response_and_a_quoted_path() {
        let served = RequestServed {
            method: "GET",
            path: "/close?a=b c",
            status: None,
            duration: Duration::ZERO,
            sample: None,
            error: None,
        };
        assert_eq!(
            line(&served),
            "at=warn method=GET path=\"/close?a=b c\" status=none duration=0ms \
             measure#app.response=0ms count#app.requests=1"
        );
    }

    #[test]
    fn a_request_rejected() {
        let error = crate::error::RequestError::HeadTooLarge;
        assert_eq!(
            line(&RequestRejected { error: &error }),
            "at=warn msg=\"request not read\" status=400 error=\"request head over 65536 bytes\" \
             count#app.bad_requests=1"
        );
    }

    #[test]
    fn crashing() {
        assert_eq!(line(&Crashing), "at=error msg=\"crashing on purpose\"");
    }

    #[test]
    fn worker_lines() {
        assert_eq!(
            line(&WorkerStarted {
                interval: Duration::from_secs(5)
            }),
            "at=info msg=\"worker started\" interval=5000ms"
        );
        assert_eq!(
            line(&WorkerTick { queue: 7 }),
            "at=info msg=\"worker tick\" count#worker.ticks=1 sample#worker.queue=7"
        );
    }
}
