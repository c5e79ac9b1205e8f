//! `PlatformEvent`: one of the router's own L-codes, with the values its line tells. Its text
//! is Heroku's, word for word; only [`super::PlatformEvents::emit`] turns it into a line.

use bytes::Bytes;

use crate::line::{AppName, LogLine, PLATFORM_SOURCE};
use crate::time::Timestamp;

use super::LOGPLEX_PROCESS;

/// Facility local5 and severity warning, as Logplex stamps its error lines (`<172>`).
const FACILITY: u8 = 21;
const SEVERITY: u8 = 4;

/// Something the router tells an app's stream about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformEvent {
    /// L10: a drain's buffer overflowed and dropped its oldest lines.
    DrainOverflow {
        /// The drain's token (`d.…`).
        drain: String,
        /// Lines dropped.
        dropped: u64,
        /// When the first of them was received.
        since: Timestamp,
    },
    /// L11: a tail session's buffer overflowed (the session was too slow).
    TailOverflow {
        /// Lines dropped.
        dropped: u64,
        /// When the first of them was received.
        since: Timestamp,
    },
    /// L12: lines the app sent over its rate budget. (Heroku's L12 is log-shuttle's "messages
    /// dropped" before Logplex; this is the same loss, counted at the router's door.)
    RateLimited {
        /// Lines refused.
        dropped: u64,
        /// When the first of them was received.
        since: Timestamp,
    },
    /// L14: a drain's TLS certificate did not validate.
    CertificateInvalid {
        /// Why.
        error: String,
        /// The drain's URL.
        uri: String,
    },
    /// The address policy refused where a drain leads (an internal address, or a name
    /// resolving to one). Logplex has no code for this; the words say what happened.
    DrainRefused {
        /// The drain's token.
        drain: String,
        /// Why.
        error: String,
        /// The drain's URL.
        uri: String,
    },
    /// The app's history file was damaged at start: what read is kept, the file was moved
    /// aside. Logplex kept history in Redis and has no code for this; the words say it.
    HistoryDamaged {
        /// Lines kept (those before the damage).
        kept: u64,
        /// The name the damaged file was moved aside to.
        moved_to: String,
        /// What was wrong.
        error: String,
    },
    /// Writing the app's history to disk failed (the disk is full, say): lines stay in memory
    /// and are saved whole at a clean stop, but a crash meanwhile would lose them.
    HistoryWriteFailed {
        /// Why.
        error: String,
        /// Failures since the last time this was told.
        times: u64,
    },
}

impl PlatformEvent {
    /// Every code, in the order they are counted and exported.
    pub const CODES: [&'static str; 7] = [
        "L10",
        "L11",
        "L12",
        "L14",
        "refused",
        "history",
        "history-write",
    ];

    /// Its code: `L10`, `L11`, `L12`, `L14`, or `refused` and `history` (no L-code of
    /// Logplex's).
    pub fn code(&self) -> &'static str {
        Self::CODES[self.index()]
    }

    pub(super) fn index(&self) -> usize {
        match self {
            PlatformEvent::DrainOverflow { .. } => 0,
            PlatformEvent::TailOverflow { .. } => 1,
            PlatformEvent::RateLimited { .. } => 2,
            PlatformEvent::CertificateInvalid { .. } => 3,
            PlatformEvent::DrainRefused { .. } => 4,
            PlatformEvent::HistoryDamaged { .. } => 5,
            PlatformEvent::HistoryWriteFailed { .. } => 6,
        }
    }

    /// The lines it tells were lost (0 for events that lose none).
    pub fn dropped(&self) -> u64 {
        match self {
            PlatformEvent::DrainOverflow { dropped, .. }
            | PlatformEvent::TailOverflow { dropped, .. }
            | PlatformEvent::RateLimited { dropped, .. } => *dropped,
            PlatformEvent::CertificateInvalid { .. }
            | PlatformEvent::DrainRefused { .. }
            | PlatformEvent::HistoryDamaged { .. }
            | PlatformEvent::HistoryWriteFailed { .. } => 0,
        }
    }

    /// Its message, in Heroku's words; values after `error=`/`uri=` are always quoted.
    pub(super) fn message(&self) -> String {
        match self {
            PlatformEvent::DrainOverflow {
                drain,
                dropped,
                since,
            } => format!(
                "Error L10 (output buffer overflow): drain '{drain}' dropped {dropped} messages since {since}."
            ),
            PlatformEvent::TailOverflow { dropped, since } => format!(
                "Error L11 (Tail buffer overflow) -> This tail session dropped {dropped} messages since {since}."
            ),
            PlatformEvent::RateLimited { dropped, since } => format!(
                "Error L12 (app rate limit exceeded): {dropped} messages dropped since {since}."
            ),
            PlatformEvent::CertificateInvalid { error, uri } => format!(
                "Error L14 (certificate validation): error=\"{}\" uri=\"{}\"",
                quoted(error),
                quoted(uri)
            ),
            PlatformEvent::DrainRefused { drain, error, uri } => format!(
                "Error (drain destination refused): drain '{drain}' error=\"{}\" uri=\"{}\"",
                quoted(error),
                quoted(uri)
            ),
            PlatformEvent::HistoryDamaged {
                kept,
                moved_to,
                error,
            } => format!(
                "Error (history file damaged): kept the {kept} lines before the damage; the file was moved aside to '{moved_to}' error=\"{}\"",
                quoted(error)
            ),
            PlatformEvent::HistoryWriteFailed { error, times } => format!(
                "Error (history not written to disk): {times} failures; history is kept in memory and saved at a clean stop, a crash would lose it error=\"{}\"",
                quoted(error)
            ),
        }
    }

    /// Its line in `app`'s stream, as `paas[logplex]` at `now`. Private to the module: the
    /// only caller is the emit that counts it.
    pub(super) fn line(&self, app: &AppName, now: Timestamp) -> LogLine {
        LogLine {
            received: now,
            time: now,
            app: app.clone(),
            source: Bytes::from_static(PLATFORM_SOURCE),
            process: Bytes::from_static(LOGPLEX_PROCESS),
            facility: FACILITY,
            severity: SEVERITY,
            message: Bytes::from(self.message()),
            seq: 0,
        }
    }
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
        let tail = PlatformEvent::TailOverflow { dropped: 12, since };
        assert_eq!(
            tail.line(&app, now).to_string(),
            "2026-11-21T12:00:05.000000+00:00 paas[logplex]: Error L11 (Tail buffer overflow) -> This tail session dropped 12 messages since 2026-11-21T12:00:00.000000+00:00."
        );
        let drain = PlatformEvent::DrainOverflow {
            drain: "d.5e7a".into(),
            dropped: 3,
            since,
        };
        assert_eq!(
            drain.message(),
            "Error L10 (output buffer overflow): drain 'd.5e7a' dropped 3 messages since 2026-11-21T12:00:00.000000+00:00."
        );
        let rate = PlatformEvent::RateLimited { dropped: 7, since };
        assert_eq!(
            rate.message(),
            "Error L12 (app rate limit exceeded): 7 messages dropped since 2026-11-21T12:00:00.000000+00:00."
        );
        let cert = PlatformEvent::CertificateInvalid {
            error: "bad certificate".into(),
            uri: "syslog+tls://logs.example.com:6514".into(),
        };
        assert_eq!(
            cert.message(),
            "Error L14 (certificate validation): error=\"bad certificate\" uri=\"syslog+tls://logs.example.com:6514\""
        );
        let refused = PlatformEvent::DrainRefused {
            drain: "d.5e7a".into(),
            error: "10.0.0.1 is \"private\"".into(),
            uri: "syslog://10.0.0.1".into(),
        };
        assert_eq!(
            refused.message(),
            "Error (drain destination refused): drain 'd.5e7a' error=\"10.0.0.1 is \\\"private\\\"\" uri=\"syslog://10.0.0.1\""
        );
        let l = tail.line(&app, now);
        assert_eq!((l.facility, l.severity), (21, 4), "<172>, as Logplex");
    }

    #[test]
    fn codes_and_drops() {
        let since = Timestamp::default();
        let events = [
            PlatformEvent::DrainOverflow {
                drain: "d.1".into(),
                dropped: 3,
                since,
            },
            PlatformEvent::TailOverflow { dropped: 4, since },
            PlatformEvent::RateLimited { dropped: 5, since },
            PlatformEvent::CertificateInvalid {
                error: String::new(),
                uri: String::new(),
            },
            PlatformEvent::DrainRefused {
                drain: String::new(),
                error: String::new(),
                uri: String::new(),
            },
            PlatformEvent::HistoryDamaged {
                kept: 2,
                moved_to: "a.log.damaged-t".into(),
                error: "damaged history frame 2: bad octet count".into(),
            },
            PlatformEvent::HistoryWriteFailed {
                error: "File too large (os error 27)".into(),
                times: 1,
            },
        ];
        assert_eq!(
            events[5].message(),
            "Error (history file damaged): kept the 2 lines before the damage; the file was moved aside to 'a.log.damaged-t' error=\"damaged history frame 2: bad octet count\""
        );
        let codes: Vec<_> = events.iter().map(PlatformEvent::code).collect();
        assert_eq!(codes, PlatformEvent::CODES);
        let drops: Vec<_> = events.iter().map(PlatformEvent::dropped).collect();
        assert_eq!(drops, [3, 4, 5, 0, 0, 0, 0]);
    }
}
