//! Saving and restoring history across a clean restart: one file per app under
//! `DATA_DIR/history/`, versioned. Format v1: the line `paas-history 1`, then one RFC 6587
//! octet-counted RFC 5424 frame per line, oldest first:
//! `<PRI>1 TIME - SOURCE PROCESS - [paas received="TIME" seq="N"] MESSAGE` (`seq`, the
//! line's place in the app's stream, is optional: files written before it have none).
//! A frozen fixture (`logplex/tests/fixtures/history-v1.log`) keeps the format from drifting.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::framing::write_octet_counted;
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
        encode_frame(line, &mut frame, &mut out);
    }
    out
}

/// The history file's first bytes (its format and version).
pub(crate) fn history_magic() -> &'static [u8] {
    MAGIC
}

/// Appends `line` to `out` as one octet-counted frame of a history file (`frame`: scratch).
pub(crate) fn encode_frame(line: &LogLine, frame: &mut Vec<u8>, out: &mut Vec<u8>) {
    {
        frame.clear();
        let pri = u32::from(line.facility.min(23)) * 8 + u32::from(line.severity.min(7));
        frame.extend_from_slice(format!("<{pri}>1 ").as_bytes());
        line.time.write_rfc3339(frame);
        frame.extend_from_slice(b" - ");
        field(frame, &line.source);
        frame.push(b' ');
        field(frame, &line.process);
        frame.extend_from_slice(b" - [paas received=\"");
        line.received.write_rfc3339(frame);
        if line.seq > 0 {
            frame.extend_from_slice(format!("\" seq=\"{}", line.seq).as_bytes());
        }
        frame.extend_from_slice(b"\"] ");
        frame.extend_from_slice(&line.message);
        write_octet_counted(out, frame);
    }
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

/// Reads an app's history file, all of it or an error.
pub fn decode_history(app: &AppName, bytes: Bytes) -> Result<Vec<LogLine>, HistoryFileError> {
    let read = read_history(app, bytes)?;
    match read.end {
        ReadEnd::Clean => Ok(read.lines),
        ReadEnd::Torn => Err(HistoryFileError::Damaged {
            index: read.lines.len(),
            reason: "the file ends inside a frame".into(),
        }),
        ReadEnd::Damaged { index, reason } => Err(HistoryFileError::Damaged { index, reason }),
    }
}

/// How reading a history file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// At the end, on a frame boundary.
    Clean,
    /// Inside the last frame: a write cut short (a crash while appending). Not damage.
    Torn,
    /// At a frame that does not read.
    Damaged {
        /// Which frame, from 0.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

/// What of a history file reads: the lines up to the end or the first damage.
#[derive(Debug)]
pub(crate) struct ReadHistory {
    pub(crate) lines: Vec<LogLine>,
    /// Where the last line that reads ends, in the file.
    pub(crate) valid_len: usize,
    pub(crate) end: ReadEnd,
}

/// Reads the frames of a history file (`len SP frame`, back to back) up to its end or the first
/// one that does not read. Only a file that is not a history file at all is an error.
pub(crate) fn read_history(app: &AppName, bytes: Bytes) -> Result<ReadHistory, HistoryFileError> {
    if !bytes.starts_with(MAGIC) {
        return Err(HistoryFileError::BadMagic);
    }
    let mut at = MAGIC.len();
    let mut lines = Vec::new();
    let end = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break ReadEnd::Clean;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let index = lines.len();
        if digits == rest.len() {
            break ReadEnd::Torn;
        }
        let len = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok());
        let (Some(len), b' ') = (len, rest[digits]) else {
            break ReadEnd::Damaged {
                index,
                reason: "bad octet count".into(),
            };
        };
        let start = at + digits + 1;
        if bytes.len() - start < len {
            break ReadEnd::Torn;
        }
        match line_from_frame(app, bytes.slice(start..start + len)) {
            Ok(line) => lines.push(line),
            Err(reason) => break ReadEnd::Damaged { index, reason },
        }
        at = start + len;
    };
    Ok(ReadHistory {
        lines,
        valid_len: at,
        end,
    })
}

/// One frame of a history file as a line.
fn line_from_frame(app: &AppName, frame: Bytes) -> Result<LogLine, String> {
    let msg = parse(&frame).map_err(|e| e.to_string())?;
    let time = msg.timestamp.ok_or("no timestamp")?;
    let sd = msg.structured_data.as_deref().unwrap_or_default();
    let received = param(sd, b"received=\"")
        .and_then(|v| Timestamp::parse_rfc3339(v).ok())
        .unwrap_or(time);
    let seq = param(sd, b"seq=\"")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    Ok(LogLine {
        received,
        time,
        app: app.clone(),
        source: msg.app_name.unwrap_or_default(),
        process: msg.proc_id.unwrap_or_default(),
        facility: msg.facility,
        severity: msg.severity,
        message: msg.msg,
        seq,
    })
}

/// The value of a structured-data parameter (`name="` given with its `="`). The element is
/// a few dozen bytes: a plain scan, where `memmem::find` would build a searcher a call (it
/// showed in profiles of history compaction).
fn param<'a>(sd: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = sd.windows(name.len()).position(|w| w == name)? + name.len();
    let len = memchr::memchr(b'"', &sd[start..])?;
    Some(&sd[start..start + len])
}

/// An app's history file: named by the app's id, so that an app made again under a deleted
/// one's name never reads the old app's lines.
pub(crate) fn history_path(data_dir: &Path, app_id: &str) -> PathBuf {
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

/// An app's history as read at start.
#[derive(Debug, Default)]
pub struct LoadedHistory {
    /// The lines that read, oldest first.
    pub lines: Vec<LogLine>,
    /// The file was damaged: what read is kept, and the file was moved aside.
    pub damaged: Option<DamagedHistory>,
}

/// A damaged history file, moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedHistory {
    /// Where it is now.
    pub moved_to: PathBuf,
    /// What was wrong.
    pub error: String,
}

/// Reads an app's history file; no file is no history. A file of an older version, named
/// by the app's name, is read when there is none by its id (and goes at the next save).
/// A damaged file does not stop the start: the lines before the damage are kept (written
/// back as the app's file) and the file is moved aside as `NAME.damaged-TIME`. A last frame
/// cut short (a crash while appending) is cut off. Only a file that cannot be read at all is
/// an error.
pub fn load_history(data_dir: &Path, app: &AppName, app_id: &str) -> Result<LoadedHistory, String> {
    for path in [
        history_path(data_dir, app_id),
        history_dir(data_dir).join(format!("{app}.log")),
    ] {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let len = bytes.len();
        let (read, error) = match read_history(app, bytes) {
            Ok(read) => {
                let error = match &read.end {
                    ReadEnd::Damaged { index, reason } => {
                        Some(format!("damaged history frame {index}: {reason}"))
                    }
                    _ => None,
                };
                (read, error)
            }
            Err(e) => (
                ReadHistory {
                    lines: Vec::new(),
                    valid_len: 0,
                    end: ReadEnd::Clean,
                },
                Some(e.to_string()),
            ),
        };
        let Some(error) = error else {
            if read.valid_len < len {
                // A torn append: cut it off so that the next append starts on a boundary.
                let cut = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(read.valid_len as u64).and_then(|()| f.sync_all()));
                cut.map_err(|e| format!("{}: {e}", path.display()))?;
            }
            return Ok(LoadedHistory {
                lines: read.lines,
                damaged: None,
            });
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let moved_to = path.with_file_name(format!("{name}.damaged-{}", Timestamp::now()));
        std::fs::rename(&path, &moved_to).map_err(|e| format!("{}: {e}", path.display()))?;
        save_history(data_dir, app_id, &read.lines)
            .map_err(|e| format!("{}: {e}", history_path(data_dir, app_id).display()))?;
        return Ok(LoadedHistory {
            lines: read.lines,
            damaged: Some(DamagedHistory { moved_to, error }),
        });
    }
    Ok(LoadedHistory::default())
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

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "paas-persist-{tag}-{}-{}",
            std::process::id(),
            Timestamp::now().as_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn five() -> Vec<LogLine> {
        (0..5)
            .map(|i| {
                let mut l = line(
                    "shop",
                    "app",
                    "web.1",
                    &format!("n={i}"),
                    1_795_262_400_000_000,
                );
                l.seq = i + 1;
                l
            })
            .collect()
    }

    /// Regression (issue 17): a damaged history file stopped the router from starting.
    #[test]
    fn a_damaged_file_keeps_what_reads_and_is_moved_aside() {
        let dir = temp_dir("damaged");
        let app = AppName::from("shop");
        let lines = five();
        save_history(&dir, "id1", &lines).unwrap();
        let path = history_path(&dir, "id1");
        let mut bytes = std::fs::read(&path).unwrap();
        // The third frame's octet count made garbage.
        let third = encode_history(&lines[..2]).len();
        bytes[third] = b'x';
        std::fs::write(&path, &bytes).unwrap();

        let loaded = load_history(&dir, &app, "id1").unwrap();
        assert_eq!(loaded.lines, lines[..2]);
        let damaged = loaded.damaged.unwrap();
        assert!(
            damaged.error.contains("damaged history frame 2"),
            "{damaged:?}"
        );
        let name = damaged
            .moved_to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("id1.log.damaged-"), "{name}");
        assert_eq!(std::fs::read(&damaged.moved_to).unwrap(), bytes);
        // The app's file now holds what was kept, and reads clean.
        let again = load_history(&dir, &app, "id1").unwrap();
        assert_eq!((again.lines, again.damaged), (lines[..2].to_vec(), None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn not_a_history_file_is_moved_aside_too() {
        let dir = temp_dir("magic");
        std::fs::create_dir_all(history_dir(&dir)).unwrap();
        std::fs::write(history_path(&dir, "id1"), b"something else").unwrap();
        let loaded = load_history(&dir, &AppName::from("shop"), "id1").unwrap();
        assert!(loaded.lines.is_empty());
        assert!(loaded.damaged.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_not_reported() {
        let dir = temp_dir("torn");
        let app = AppName::from("shop");
        let lines = five();
        save_history(&dir, "id1", &lines).unwrap();
        let path = history_path(&dir, "id1");
        let whole = std::fs::read(&path).unwrap();
        let four = encode_history(&lines[..4]).len();
        for cut in four + 1..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let loaded = load_history(&dir, &app, "id1").unwrap();
            assert_eq!(loaded.lines, lines[..4], "cut at {cut}");
            assert!(loaded.damaged.is_none(), "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, four);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
