//! Saving and restoring history across a clean restart: one file per app under
//! `DATA_DIR/history/`, versioned. Format v1: the line `paas-history 1`, then one RFC 6587
//! octet-counted RFC 5424 frame per line, oldest first:
//! `<PRI>1 TIME - SOURCE PROCESS - [paas received="TIME" seq="N"] MESSAGE` (`seq`, the
//! line's place in the app's stream, is optional: files written before it have none).
//! A frozen fixture (`logplex/tests/fixtures/history-v1.log`) keeps the format from drifting.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::framing::{FrameDecoder, write_octet_counted};
use crate::line::{AppName, LogLine};
use crate::rfc5424::parse;
use crate::time::Timestamp;

const MAGIC: &[u8] = b"paas-history 1\n";

/// The history directory under a data directory.
pub fn history_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

/// The bytes of an app's history file.
pub fn encode_history(lines: &[LogLine]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(MAGIC.len() + lines.iter().map(|l| l.size() + 120).sum::<usize>());
    out.extend_from_slice(MAGIC);
    let mut frame = Vec::with_capacity(256);
    for line in lines {
        frame.clear();
        let pri = u32::from(line.facility.min(23)) * 8 + u32::from(line.severity.min(7));
        frame.extend_from_slice(format!("<{pri}>1 ").as_bytes());
        line.time.write_rfc3339(&mut frame);
        frame.extend_from_slice(b" - ");
        field(&mut frame, &line.source);
        frame.push(b' ');
        field(&mut frame, &line.process);
        frame.extend_from_slice(b" - [paas received=\"");
        line.received.write_rfc3339(&mut frame);
        if line.seq > 0 {
            frame.extend_from_slice(format!("\" seq=\"{}", line.seq).as_bytes());
        }
        frame.extend_from_slice(b"\"] ");
        frame.extend_from_slice(&line.message);
        write_octet_counted(&mut out, &frame);
    }
    out
}

fn field(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        out.push(b'-');
    } else {
        out.extend(
            value
                .iter()
                .map(|&b| if (33..=126).contains(&b) { b } else { b'_' }),
        );
    }
}

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryFileError {
    /// Not a history file of a version this build reads.
    #[error("not a paas history file (version 1)")]
    BadMagic,
    /// A frame inside it is damaged.
    #[error("damaged history frame {index}: {reason}")]
    Damaged {
        /// Which frame, from 0.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

/// Reads an app's history file.
pub fn decode_history(app: &AppName, bytes: Bytes) -> Result<Vec<LogLine>, HistoryFileError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or(HistoryFileError::BadMagic)?;
    let mut buf = BytesMut::from(body);
    let mut decoder = FrameDecoder::new(usize::MAX / 2);
    let mut lines = Vec::new();
    let damaged = |index: usize, reason: String| HistoryFileError::Damaged { index, reason };
    while let Some(frame) = decoder.decode_eof(&mut buf) {
        let index = lines.len();
        let frame = frame.map_err(|e| damaged(index, e.to_string()))?;
        let msg = parse(&frame).map_err(|e| damaged(index, e.to_string()))?;
        let time = msg
            .timestamp
            .ok_or_else(|| damaged(index, "no timestamp".into()))?;
        let sd = msg.structured_data.as_deref().unwrap_or_default();
        let received = param(sd, b"received=\"")
            .and_then(|v| Timestamp::parse_rfc3339(v).ok())
            .unwrap_or(time);
        let seq = param(sd, b"seq=\"")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        lines.push(LogLine {
            received,
            time,
            app: app.clone(),
            source: msg.app_name.unwrap_or_default(),
            process: msg.proc_id.unwrap_or_default(),
            facility: msg.facility,
            severity: msg.severity,
            message: msg.msg,
            seq,
        });
    }
    Ok(lines)
}

/// The value of a structured-data parameter (`name="` given with its `="`).
fn param<'a>(sd: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(sd, name)? + name.len();
    let len = memchr::memchr(b'"', &sd[start..])?;
    Some(&sd[start..start + len])
}

/// An app's history file: named by the app's id, so that an app made again under a deleted
/// one's name never reads the old app's lines.
fn history_path(data_dir: &Path, app_id: &str) -> PathBuf {
    history_dir(data_dir).join(format!("{app_id}.log"))
}

/// Writes an app's history file atomically: only its owner may read it (0600, in a 0700
/// directory), as tenants' lines are private to them.
pub fn save_history(data_dir: &Path, app_id: &str, lines: &[LogLine]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let dir = history_dir(data_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(".{app_id}.log.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&encode_history(lines))?;
    file.sync_all()?;
    std::fs::rename(&tmp, history_path(data_dir, app_id))
}

/// Reads an app's history file; no file is no history. A file of an older version, named
/// by the app's name, is read when there is none by its id (and goes at the next save).
pub fn load_history(data_dir: &Path, app: &AppName, app_id: &str) -> Result<Vec<LogLine>, String> {
    for path in [
        history_path(data_dir, app_id),
        history_dir(data_dir).join(format!("{app}.log")),
    ] {
        match std::fs::read(&path) {
            Ok(bytes) => {
                return decode_history(app, Bytes::from(bytes))
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(Vec::new())
}

/// Removes a history file by its name without `.log`: an app's id (when the app is deleted),
/// or an older version's app name.
pub fn remove_history(data_dir: &Path, stem: &str) {
    let _ = std::fs::remove_file(history_dir(data_dir).join(format!("{stem}.log")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::tests::line;

    #[test]
    fn round_trip_keeps_every_field() {
        let mut odd = line("shop", "paas", "", "", 7);
        odd.message = Bytes::from_static(b"raw \xff\xfe bytes\nand a newline");
        odd.received = Timestamp::from_micros(9);
        odd.seq = 42;
        let lines = vec![
            line("shop", "app", "web.1", "at=info n=1", 1_795_262_400_123_456),
            odd,
        ];
        let app = AppName::from("shop");
        let back = decode_history(&app, Bytes::from(encode_history(&lines))).unwrap();
        assert_eq!(back, lines);
    }

    #[test]
    fn frozen_v1_fixture_still_reads() {
        let bytes = include_bytes!("../tests/fixtures/history-v1.log");
        let app = AppName::from("shop");
        let lines = decode_history(&app, Bytes::from_static(bytes)).unwrap();
        let shown: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            [
                "2026-11-21T12:00:00.123456+00:00 app[web.1]: at=info method=GET path=/ status=200",
                "2026-11-21T12:00:01.000000+00:00 paas[router]: at=info method=GET path=\"/\" host=shop.example request_id=abc fwd=\"127.0.0.1\" dyno=web.1 connect=1ms service=12ms status=200 bytes=512 protocol=http",
                "2026-11-21T12:00:02.500000+00:00 deploys: done",
            ]
        );
        assert_eq!(
            lines[0].received,
            Timestamp::from_micros(1_795_262_400_223_456)
        );
        assert_eq!((lines[1].facility, lines[1].severity), (19, 6));
        // Encoding today gives the same bytes: the format has not drifted.
        assert_eq!(encode_history(&lines), bytes);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let app = AppName::from("shop");
        assert!(matches!(
            decode_history(&app, Bytes::from_static(b"something else")),
            Err(HistoryFileError::BadMagic)
        ));
        assert!(
            decode_history(&app, Bytes::from_static(b"paas-history 1\n99 <14>1 short")).is_err()
        );
        assert!(decode_history(&app, Bytes::from_static(b"paas-history 1\n5 hello")).is_err());
    }
}
