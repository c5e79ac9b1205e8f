//! The lines one node ships another for a query: JSON, `{"lines":[…],"omitted":N}`, each
//! line with its times in microseconds and its `seq`.

use bytes::Bytes;
use logplex::{AppName, LogLine, Timestamp};
use serde::{Deserialize, Serialize};

/// One line on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireLine {
    received: i64,
    time: i64,
    source: String,
    process: String,
    facility: u8,
    severity: u8,
    message: String,
    seq: u64,
}

/// A node's matching lines, and how many more matched than it shipped.
#[derive(Debug, Default)]
pub(crate) struct PeerLines {
    pub(crate) lines: Vec<LogLine>,
    pub(crate) omitted: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    lines: Vec<WireLine>,
    omitted: u64,
}

/// The body a node answers with.
pub(crate) fn encode(lines: &[LogLine], omitted: u64) -> Vec<u8> {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let wire = Wire {
        lines: lines
            .iter()
            .map(|l| WireLine {
                received: l.received.as_micros(),
                time: l.time.as_micros(),
                source: text(&l.source),
                process: text(&l.process),
                facility: l.facility,
                severity: l.severity,
                message: text(&l.message),
                seq: l.seq,
            })
            .collect(),
        omitted,
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// A node's answer, its lines of `app`.
pub(crate) fn decode(body: &[u8], app: &AppName) -> Result<PeerLines, serde_json::Error> {
    let wire: Wire = serde_json::from_slice(body)?;
    Ok(PeerLines {
        lines: wire
            .lines
            .into_iter()
            .map(|l| LogLine {
                received: Timestamp::from_micros(l.received),
                time: Timestamp::from_micros(l.time),
                app: app.clone(),
                source: Bytes::from(l.source),
                process: Bytes::from(l.process),
                facility: l.facility,
                severity: l.severity,
                message: Bytes::from(l.message),
                seq: l.seq,
            })
            .collect(),
        omitted: wire.omitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_as_they_went() {
        let app = AppName::from("shop");
        let line = LogLine {
            received: Timestamp::from_micros(2),
            time: Timestamp::from_micros(1),
            app: app.clone(),
            source: Bytes::from_static(b"app"),
            process: Bytes::from_static(b"web.1"),
            facility: 1,
            severity: 6,
            message: Bytes::from_static(b"status=200 \"quoted\""),
            seq: 42,
        };
        let got = decode(&encode(std::slice::from_ref(&line), 3), &app).unwrap();
        assert_eq!(got.lines, [line]);
        assert_eq!(got.omitted, 3);
        assert!(decode(b"{", &app).is_err());
    }
}
