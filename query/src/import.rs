//! Reading the log files users already have, for `paas import`: each line becomes a line of
//! the app with its own time, so that `--since` and `timechart` see when it happened.
//!
//! Three shapes are recognised, line by line (a file may mix them):
//! - `heroku logs` / `paas logs` output: `2026-11-21T12:00:00.123456+00:00 app[web.1]: msg`;
//! - RFC 5424 syslog, with or without an octet count: `[83 ]<190>1 TS host app web.1 - msg`
//!   (the APP-NAME is the source, as Logplex's drains write it);
//! - a bare logfmt line, stamped from its `time=`, `ts=` or `at=` key when that holds an
//!   RFC 3339 time, else with the import's own time (source `app`, no process).

use bytes::Bytes;
use logplex::Timestamp;

/// A line read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedLine {
    /// When it happened.
    pub time: Timestamp,
    /// Its source (`app`, `heroku`, `paas`, a token's name).
    pub source: String,
    /// Its process (`web.1`, `router`), empty when the file gave none.
    pub process: String,
    /// The message.
    pub message: String,
}

/// The longest source and process names kept (longer ones read as a bare line).
const MAX_NAME: usize = 128;

/// Reads one line of a file (without its newline); `None` for a blank line.
pub fn read_line(line: &str, now: Timestamp) -> Option<ImportedLine> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return None;
    }
    Some(
        heroku_line(line)
            .or_else(|| syslog_line(line))
            .unwrap_or_else(|| bare_line(line, now)),
    )
}

/// `TIME source[process]: message` (or `TIME source: message`).
fn heroku_line(line: &str) -> Option<ImportedLine> {
    let (time, rest) = line.split_once(' ')?;
    let time = Timestamp::parse_rfc3339(time.as_bytes()).ok()?;
    let (header, message) = rest.split_once(": ").or_else(|| {
        let header = rest.strip_suffix(':')?;
        Some((header, ""))
    })?;
    let (source, process) = match header.strip_suffix(']') {
        Some(h) => h.split_once('[')?,
        None => (header, ""),
    };
    if !is_name(source) || !(process.is_empty() || is_name(process)) {
        return None;
    }
    Some(ImportedLine {
        time,
        source: source.to_owned(),
        process: process.to_owned(),
        message: message.to_owned(),
    })
}

/// An RFC 5424 message, octet-counted or not; the APP-NAME is the source.
fn syslog_line(line: &str) -> Option<ImportedLine> {
    let frame = match line.split_once(' ') {
        Some((count, rest)) if count.bytes().all(|b| b.is_ascii_digit()) && !count.is_empty() => {
            rest
        }
        _ => line,
    };
    if !frame.starts_with('<') {
        return None;
    }
    let msg = logplex::parse_syslog(&Bytes::copy_from_slice(frame.as_bytes())).ok()?;
    let text = |b: Option<Bytes>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
    let source = match text(msg.app_name) {
        s if s.is_empty() => "app".to_owned(),
        s => s,
    };
    Some(ImportedLine {
        time: msg.timestamp?,
        source,
        process: text(msg.proc_id),
        message: String::from_utf8_lossy(&msg.msg).into_owned(),
    })
}

/// A bare logfmt line: its own time key if it has one, else `now`.
fn bare_line(line: &str, now: Timestamp) -> ImportedLine {
    let time = logfmt::pairs(line.as_bytes())
        .filter(|p| matches!(p.key, b"time" | b"ts" | b"at" | b"timestamp"))
        .find_map(|p| Timestamp::parse_rfc3339(&p.value?.unescaped()).ok())
        .unwrap_or(now);
    ImportedLine {
        time,
        source: "app".to_owned(),
        process: String::new(),
        message: line.to_owned(),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_graphic() && b != b'[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    fn read(line: &str) -> ImportedLine {
        read_line(line, at("2026-12-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn heroku_logs_output() {
        let l = read("2026-11-21T12:00:00.123456+00:00 heroku[router]: at=info status=200 path=/");
        assert_eq!(l.time, at("2026-11-21T12:00:00.123456Z"));
        assert_eq!(
            (l.source.as_str(), l.process.as_str()),
            ("heroku", "router")
        );
        assert_eq!(l.message, "at=info status=200 path=/");
        let l = read("2026-11-21T12:00:01+00:00 app[web.1]: said: hello");
        assert_eq!(
            (l.process.as_str(), l.message.as_str()),
            ("web.1", "said: hello")
        );
        let l = read("2026-11-21T12:00:01Z deploys: released v42");
        assert_eq!((l.source.as_str(), l.process.as_str()), ("deploys", ""));
    }

    #[test]
    fn syslog_with_and_without_octet_counts() {
        let body = "<190>1 2026-11-21T12:00:00.5Z d.abc app web.3 - at=info n=1";
        for line in [body.to_owned(), format!("{} {body}", body.len())] {
            let l = read(&line);
            assert_eq!(l.time, at("2026-11-21T12:00:00.5Z"));
            assert_eq!((l.source.as_str(), l.process.as_str()), ("app", "web.3"));
            assert_eq!(l.message, "at=info n=1");
        }
    }

    #[test]
    fn bare_logfmt_takes_its_own_time_or_the_import_s() {
        let l = read("time=2026-11-20T08:00:00Z level=info msg=\"started\"");
        assert_eq!(l.time, at("2026-11-20T08:00:00Z"));
        assert_eq!((l.source.as_str(), l.process.as_str()), ("app", ""));
        let l = read("at=info method=GET path=/ status=200");
        assert_eq!(l.time, at("2026-12-01T00:00:00Z"), "at=info is no time");
        assert_eq!(l.message, "at=info method=GET path=/ status=200");
    }

    #[test]
    fn odd_lines_are_kept_as_bare_lines_and_blank_ones_skipped() {
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(read_line("   \r\n", now), None);
        for odd in [
            "2026-11-21T12:00:00Z",
            "2026-11-21T12:00:00Z x[y: z",
            "<999>1 nonsense",
            "12 <190>1",
            "not a time app[web.1]: msg",
            "\u{fffd}\u{0}",
        ] {
            let l = read_line(odd, now).unwrap();
            assert_eq!((l.time, l.message.as_str()), (now, odd), "{odd:?}");
        }
    }
}
