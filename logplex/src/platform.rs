//! The lines the router itself writes into an app's stream, as `paas[logplex]`, in Heroku's
//! exact words, so that people and their tools recognise them.

use bytes::Bytes;

use crate::line::{AppName, LogLine, PLATFORM_SOURCE};
use crate::time::Timestamp;

/// The process the router's own lines come from: `paas[logplex]`.
pub const LOGPLEX_PROCESS: &[u8] = b"logplex";

/// Facility local5 and severity warning, as Logplex stamps its error lines (`<172>`).
const FACILITY: u8 = 21;
const SEVERITY: u8 = 4;

fn platform_line(app: &AppName, now: Timestamp, message: String) -> LogLine {
    LogLine {
        received: now,
        time: now,
        app: app.clone(),
        source: Bytes::from_static(PLATFORM_SOURCE),
        process: Bytes::from_static(LOGPLEX_PROCESS),
        facility: FACILITY,
        severity: SEVERITY,
        message: Bytes::from(message),
        seq: 0,
    }
}

/// `Error L10 (output buffer overflow): drain 'd.…' dropped N messages since T.`
pub fn drain_overflow(
    app: &AppName,
    drain: &str,
    dropped: u64,
    since: Timestamp,
    now: Timestamp,
) -> LogLine {
    let message = format!(
        "Error L10 (output buffer overflow): drain '{drain}' dropped {dropped} messages since {since}."
    );
    platform_line(app, now, message)
}

/// `Error L11 (Tail buffer overflow) -> This tail session dropped N messages since T.`
pub fn tail_overflow(app: &AppName, dropped: u64, since: Timestamp, now: Timestamp) -> LogLine {
    let message = format!(
        "Error L11 (Tail buffer overflow) -> This tail session dropped {dropped} messages since {since}."
    );
    platform_line(app, now, message)
}

/// `Error L12 (app rate limit exceeded): N messages dropped since T.`: lines an app sent over
/// its rate budget. (Heroku's L12 is log-shuttle's "messages dropped" before Logplex; this is
/// the same loss, counted at the router's door.)
pub fn rate_limited(app: &AppName, dropped: u64, since: Timestamp, now: Timestamp) -> LogLine {
    let message =
        format!("Error L12 (app rate limit exceeded): {dropped} messages dropped since {since}.");
    platform_line(app, now, message)
}

/// `Error L14 (certificate validation): error="…" uri="…"`, both values always quoted as
/// Heroku writes them.
pub fn certificate_error(app: &AppName, error: &str, uri: &str, now: Timestamp) -> LogLine {
    let message = format!(
        "Error L14 (certificate validation): error=\"{}\" uri=\"{}\"",
        quoted(error),
        quoted(uri)
    );
    platform_line(app, now, message)
}

/// `Error (drain destination refused): drain 'd.…' error="…" uri="…"`: the router's address
/// policy refused where a drain leads (an internal address, or a name resolving to one).
/// Logplex has no code for this; the words say what happened.
pub fn drain_refused(
    app: &AppName,
    drain: &str,
    error: &str,
    uri: &str,
    now: Timestamp,
) -> LogLine {
    let message = format!(
        "Error (drain destination refused): drain '{drain}' error=\"{}\" uri=\"{}\"",
        quoted(error),
        quoted(uri)
    );
    platform_line(app, now, message)
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    #[test]
    fn heroku_words_exactly() {
        let app = AppName::from("shop");
        let now = t("2026-11-21T12:00:05Z");
        let since = t("2026-11-21T12:00:00Z");
        assert_eq!(
            tail_overflow(&app, 12, since, now).to_string(),
            "2026-11-21T12:00:05.000000+00:00 paas[logplex]: Error L11 (Tail buffer overflow) -> This tail session dropped 12 messages since 2026-11-21T12:00:00.000000+00:00."
        );
        assert_eq!(
            String::from_utf8_lossy(&drain_overflow(&app, "d.5e7a", 3, since, now).message),
            "Error L10 (output buffer overflow): drain 'd.5e7a' dropped 3 messages since 2026-11-21T12:00:00.000000+00:00."
        );
        assert_eq!(
            String::from_utf8_lossy(
                &certificate_error(
                    &app,
                    "bad certificate",
                    "syslog+tls://logs.example.com:6514",
                    now
                )
                .message
            ),
            "Error L14 (certificate validation): error=\"bad certificate\" uri=\"syslog+tls://logs.example.com:6514\""
        );
        assert_eq!(
            String::from_utf8_lossy(
                &drain_refused(
                    &app,
                    "d.5e7a",
                    "10.0.0.1 is \"private\"",
                    "syslog://10.0.0.1",
                    now
                )
                .message
            ),
            "Error (drain destination refused): drain 'd.5e7a' error=\"10.0.0.1 is \\\"private\\\"\" uri=\"syslog://10.0.0.1\""
        );
        let l = tail_overflow(&app, 1, since, now);
        assert_eq!((l.facility, l.severity), (21, 4), "<172>, as Logplex");
    }
}
