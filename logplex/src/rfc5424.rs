//! RFC 5424 syslog messages: read what real senders send, write Logplex's forms.
//!
//! Read: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID`, then
//! - `SP -` or `SP [SD-ELEMENT]…` (structured data, e.g. logger's `[timeQuality …]`), then
//!   `SP MSG` or nothing: RFC 5424 as written, and log-shuttle's `- -`;
//! - or directly `SP MSG`, with no structured data: Logplex's own form
//!   (`<PRI>1 TS host APP PROC - MSG`). Text after MSGID that does not read as structured data
//!   is the message. (So a message that itself starts with `- ` or a well-formed `[id …]` after
//!   a Logplex-form header is read as structured data: the RFC reading wins.)
//!
//! A UTF-8 BOM before the message and one trailing newline are dropped; the message is kept as
//! bytes, valid UTF-8 or not. Nothing is copied: fields are slices of the frame.

use std::ops::Range;

use bytes::Bytes;

use crate::time::{TimeCache, TimeFormatCache, Timestamp};

/// One syslog message, its fields sharing the frame's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogMessage {
    /// 0..=23.
    pub facility: u8,
    /// 0 (emergency) ..= 7 (debug).
    pub severity: u8,
    /// `None` for the nil value `-`.
    pub timestamp: Option<Timestamp>,
    /// `None` for `-`.
    pub hostname: Option<Bytes>,
    /// `None` for `-`. Logplex's senders put the ingest token here.
    pub app_name: Option<Bytes>,
    /// `None` for `-`. The process (`web.1`, `router`).
    pub proc_id: Option<Bytes>,
    /// `None` for `-`.
    pub msg_id: Option<Bytes>,
    /// The structured data as written (`[id k="v"]…`), `None` for `-` or none.
    pub structured_data: Option<Bytes>,
    /// The message.
    pub msg: Bytes,
}

/// Why a frame is not a syslog message, and the byte offset where reading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed RFC 5424 message at byte {at}: {reason}")]
pub struct ParseError {
    /// What was wrong.
    pub reason: &'static str,
    /// Where, from the start of the frame.
    pub at: usize,
}

/// The longest a header field may be (RFC 5424 allows 255 for HOSTNAME, less for the others;
/// senders exceed those, so one generous bound for all).
const MAX_FIELD: usize = 255;

struct Reader<'f> {
    frame: &'f [u8],
    at: usize,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> ParseError {
        ParseError {
            reason,
            at: self.at,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.frame.get(self.at).copied()
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), ParseError> {
        if self.peek() != Some(b) {
            return Err(self.err(reason));
        }
        self.at += 1;
        Ok(())
    }

    fn digits(&mut self, max: usize, reason: &'static str) -> Result<u32, ParseError> {
        let start = self.at;
        let mut value = 0u32;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.at - start == max {
                return Err(self.err(reason));
            }
            value = value * 10 + u32::from(d - b'0');
            self.at += 1;
        }
        if self.at == start {
            return Err(self.err(reason));
        }
        Ok(value)
    }

    /// A header field: `-` or printable ASCII up to the next space. `None` for `-`. (One
    /// pass over a short slice: fields are a few dozen bytes, too short for `memchr` to pay.)
    fn field(&mut self, reason: &'static str) -> Result<Option<Range<usize>>, ParseError> {
        let start = self.at;
        let rest = &self.frame[start..];
        let window = &rest[..rest.len().min(MAX_FIELD + 1)];
        let mut len = 0;
        for &b in window {
            if b == b' ' {
                break;
            }
            if b.wrapping_sub(33) > 126 - 33 {
                self.at = start + len;
                return Err(self.err(reason));
            }
            len += 1;
        }
        if len > MAX_FIELD {
            self.at = start + MAX_FIELD;
            return Err(self.err(reason));
        }
        self.at = start + len;
        match &window[..len] {
            b"" => Err(self.err(reason)),
            b"-" => Ok(None),
            _ => Ok(Some(start..self.at)),
        }
    }

    /// `1*SD-ELEMENT`, where `SD-ELEMENT = "[" SD-ID *(SP PARAM-NAME "=" DQUOTE VALUE DQUOTE) "]"`
    /// and a value escapes `"`, `\` and `]` with `\`. Returns the end, or `None` when the text
    /// is not structured data.
    fn structured_data_end(&self) -> Option<usize> {
        let f = self.frame;
        let name_end = |mut i: usize| {
            let start = i;
            while i < f.len()
                && matches!(f[i], 33..=126)
                && !matches!(f[i], b'=' | b' ' | b']' | b'"')
            {
                i += 1;
            }
            (i > start && i - start <= 32).then_some(i)
        };
        let mut i = self.at;
        while f.get(i) == Some(&b'[') {
            i = name_end(i + 1)?;
            while f.get(i) == Some(&b' ') {
                i = name_end(i + 1)?;
                if f.get(i) != Some(&b'=') || f.get(i + 1) != Some(&b'"') {
                    return None;
                }
                i += 2;
                loop {
                    match f.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            if f.get(i) != Some(&b']') {
                return None;
            }
            i += 1;
        }
        (i > self.at).then_some(i)
    }
}

/// Reads one syslog message from a frame (the frame's bytes, without its octet count).
pub fn parse(frame: &Bytes) -> Result<SyslogMessage, ParseError> {
    let f = parse_fields(frame, &mut TimeCache::default())?;
    let slice = |r: Option<Range<usize>>| r.map(|r| frame.slice(r));
    Ok(SyslogMessage {
        facility: f.facility,
        severity: f.severity,
        timestamp: f.timestamp,
        hostname: slice(f.hostname),
        app_name: slice(f.app_name),
        proc_id: slice(f.proc_id),
        msg_id: slice(f.msg_id),
        structured_data: slice(f.structured_data),
        msg: frame.slice(f.msg),
    })
}

/// Where each field of a message lies in its frame: what `parse` reads, before any field is
/// made a `Bytes` (ingest makes only the two it keeps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) facility: u8,
    pub(crate) severity: u8,
    pub(crate) timestamp: Option<Timestamp>,
    pub(crate) hostname: Option<Range<usize>>,
    pub(crate) app_name: Option<Range<usize>>,
    pub(crate) proc_id: Option<Range<usize>>,
    pub(crate) msg_id: Option<Range<usize>>,
    pub(crate) structured_data: Option<Range<usize>>,
    pub(crate) msg: Range<usize>,
}

/// Reads the fields of one frame.
pub(crate) fn parse_fields(frame: &[u8], times: &mut TimeCache) -> Result<Fields, ParseError> {
    let mut r = Reader { frame, at: 0 };
    r.expect(b'<', "expected '<' and a priority")?;
    let pri = r.digits(3, "priority must be 1 to 3 digits")?;
    if pri > 191 {
        return Err(ParseError {
            reason: "priority over 191",
            at: 1,
        });
    }
    r.expect(b'>', "expected '>' after the priority")?;
    let version = r.digits(2, "version must be 1 or 2 digits")?;
    if version == 0 {
        return Err(r.err("version 0"));
    }
    r.expect(b' ', "expected a space after the version")?;
    let ts_start = r.at;
    let ts_field = r.field("timestamp")?;
    let timestamp = match ts_field {
        None => None,
        Some(ts) => Some(
            Timestamp::parse_rfc3339_cached(&frame[ts], times).map_err(|_| ParseError {
                reason: "timestamp is not RFC 3339",
                at: ts_start,
            })?,
        ),
    };
    r.expect(b' ', "expected a space after the timestamp")?;
    let hostname = r.field("hostname must be printable ASCII")?;
    r.expect(b' ', "expected a space after the hostname")?;
    let app_name = r.field("app name must be printable ASCII")?;
    r.expect(b' ', "expected a space after the app name")?;
    let proc_id = r.field("process id must be printable ASCII")?;
    r.expect(b' ', "expected a space after the process id")?;
    let msg_id = r.field("message id must be printable ASCII")?;
    let mut structured_data = None;
    if r.peek() == Some(b' ') {
        r.at += 1;
        let rest = &frame[r.at..];
        if rest == b"-" || rest.starts_with(b"- ") {
            r.at += 1;
        } else if let Some(end) = r
            .structured_data_end()
            .filter(|&e| matches!(frame.get(e), None | Some(b' ')))
        {
            structured_data = Some(r.at..end);
            r.at = end;
        } else {
            // Logplex's form: the message follows MSGID directly.
            r.at -= 1;
        }
        if r.peek() == Some(b' ') {
            r.at += 1;
        }
    } else if r.peek().is_some() {
        return Err(r.err("expected a space after the message id"));
    }
    let mut msg = &frame[r.at..];
    msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    msg = msg.strip_suffix(b"\r").unwrap_or(msg);
    let msg_start = msg.as_ptr() as usize - frame.as_ptr() as usize;
    Ok(Fields {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        msg: msg_start..msg_start + msg.len(),
    })
}

/// Which of Logplex's output forms to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `<PRI>1 TS HOST APP PROC - - MSG`: RFC 5424 with nil MSGID and STRUCTURED-DATA, as
    /// Logplex writes to syslog drains.
    Syslog,
    /// `<PRI>1 TS HOST APP PROC - MSG`: no STRUCTURED-DATA, as Logplex writes to HTTPS drains.
    LogplexHttp,
}

/// The header fields written for one message.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// 0..=23.
    pub facility: u8,
    /// 0..=7.
    pub severity: u8,
    /// The event time.
    pub timestamp: Timestamp,
    /// Written as is; `host` for HTTPS drains, the drain token for syslog drains.
    pub hostname: &'a [u8],
    /// The source (`app`, `paas`).
    pub app_name: &'a [u8],
    /// The process (`web.1`, `router`).
    pub proc_id: &'a [u8],
}

/// Appends one message in `form` (no framing, no newline). Empty or non-printable header
/// fields are written as `-` or with `_` for each byte outside printable ASCII.
pub fn write(out: &mut Vec<u8>, header: &Header<'_>, msg: &[u8], form: Form) {
    write_cached(out, header, msg, form, &mut TimeFormatCache::default());
}

/// `write`, with a cache of the timestamp's text for writers of many lines a second.
pub fn write_cached(
    out: &mut Vec<u8>,
    header: &Header<'_>,
    msg: &[u8],
    form: Form,
    cache: &mut TimeFormatCache,
) {
    let pri = u32::from(header.facility.min(23)) * 8 + u32::from(header.severity.min(7));
    out.push(b'<');
    crate::framing::write_decimal(out, pri as usize);
    out.extend_from_slice(b">1 ");
    header.timestamp.write_rfc3339_cached(out, cache);
    for field in [header.hostname, header.app_name, header.proc_id] {
        out.push(b' ');
        write_field(out, field);
    }
    out.extend_from_slice(match form {
        Form::Syslog => b" - - ",
        Form::LogplexHttp => b" - ",
    });
    out.extend_from_slice(msg);
}

fn write_field(out: &mut Vec<u8>, field: &[u8]) {
    if field.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(
        field
            .iter()
            .take(MAX_FIELD)
            .map(|&b| if (33..=126).contains(&b) { b } else { b'_' }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<SyslogMessage, ParseError> {
        parse(&Bytes::copy_from_slice(s))
    }

    fn text(b: &Option<Bytes>) -> Option<&str> {
        b.as_ref().map(|b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn logplex_form_without_structured_data() {
        let m = p(b"<190>1 2026-11-21T12:00:00.123456+00:00 host t.0a1b app.web - hello world")
            .unwrap();
        assert_eq!((m.facility, m.severity), (23, 6));
        assert_eq!(
            m.timestamp.unwrap().to_string(),
            "2026-11-21T12:00:00.123456+00:00"
        );
        assert_eq!(
            (text(&m.hostname), text(&m.app_name), text(&m.proc_id)),
            (Some("host"), Some("t.0a1b"), Some("app.web"))
        );
        assert_eq!(m.msg_id, None);
        assert_eq!(m.structured_data, None);
        assert_eq!(&m.msg[..], b"hello world");
    }

    #[test]
    fn heroku_drain_lines() {
        let m = p(b"<158>1 2015-04-02T11:52:34.520012+00:00 host heroku router - at=info method=GET path=\"/\"").unwrap();
        assert_eq!(
            (text(&m.app_name), text(&m.proc_id)),
            (Some("heroku"), Some("router"))
        );
        assert_eq!(&m.msg[..], b"at=info method=GET path=\"/\"");
    }

    #[test]
    fn rfc5424_and_log_shuttle_with_nil_structured_data() {
        let m = p(b"<190>1 2026-11-21T12:00:00Z shuttle t.token shuttle - - a line\n").unwrap();
        assert_eq!(m.structured_data, None);
        assert_eq!(&m.msg[..], b"a line");
        let m = p(b"<13>1 - - - - - -").unwrap();
        assert_eq!(
            (m.timestamp, m.hostname.clone(), m.msg.len()),
            (None, None, 0)
        );
        let m = p(b"<13>1 - - - - -").unwrap();
        assert!(m.msg.is_empty());
    }

    #[test]
    fn logger_structured_data() {
        let m = p(b"<13>1 2026-11-22T01:00:00.123456+00:00 box root 1234 - [timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"12345\"] hello").unwrap();
        assert_eq!(
            text(&m.structured_data),
            Some("[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"12345\"]")
        );
        assert_eq!(&m.msg[..], b"hello");
        let m = p(b"<13>1 - h a p id [a x=\"q\\\"]\"][b] \xEF\xBB\xBFmsg").unwrap();
        assert_eq!(text(&m.structured_data), Some("[a x=\"q\\\"]\"][b]"));
        assert_eq!(text(&m.msg_id), Some("id"));
        assert_eq!(&m.msg[..], b"msg");
    }

    #[test]
    fn text_that_is_not_structured_data_is_the_message() {
        let m = p(b"<13>1 - h a p - [unclosed bracket").unwrap();
        assert_eq!(m.structured_data, None);
        assert_eq!(&m.msg[..], b"[unclosed bracket");
        let m = p(b"<13>1 - h a p - [x]y").unwrap();
        assert_eq!(&m.msg[..], b"[x]y");
    }

    #[test]
    fn invalid_utf8_in_the_message_is_kept() {
        let m = p(b"<13>1 - h a p - \xff\xfe bytes").unwrap();
        assert_eq!(&m.msg[..], b"\xff\xfe bytes");
    }

    #[test]
    fn malformed_headers_say_where() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"", "expected '<' and a priority", 0),
            (b"13>1 - - - - -", "expected '<' and a priority", 0),
            (b"<192>1 - - - - -", "priority over 191", 1),
            (b"<1234>1 - - - - -", "priority must be 1 to 3 digits", 4),
            (b"<13>0 - - - - -", "version 0", 5),
            (b"<13>1 2026-11-21 h a p -", "timestamp is not RFC 3339", 6),
            (
                b"<13>1 - h\x01st a p -",
                "hostname must be printable ASCII",
                9,
            ),
            (
                b"<13>1 - h a p",
                "expected a space after the process id",
                13,
            ),
            (b"<13>1 - h  p -", "app name must be printable ASCII", 10),
        ];
        for &(frame, reason, at) in cases {
            assert_eq!(
                p(frame),
                Err(ParseError { reason, at }),
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn written_forms_read_back() {
        let header = Header {
            facility: 21,
            severity: 6,
            timestamp: Timestamp::from_micros(1_795_262_400_123_456),
            hostname: b"d.5e7a",
            app_name: b"app",
            proc_id: b"web.1",
        };
        let mut out = Vec::new();
        write(&mut out, &header, b"at=info msg=hi", Form::Syslog);
        assert_eq!(
            out,
            b"<174>1 2026-11-21T12:00:00.123456+00:00 d.5e7a app web.1 - - at=info msg=hi"
        );
        let back = p(&out).unwrap();
        assert_eq!(
            (&back.msg[..], back.timestamp, back.facility),
            (&b"at=info msg=hi"[..], Some(header.timestamp), 21)
        );
        out.clear();
        write(
            &mut out,
            &Header {
                hostname: b"host",
                proc_id: b"",
                ..header
            },
            b"x",
            Form::LogplexHttp,
        );
        assert_eq!(
            out,
            b"<174>1 2026-11-21T12:00:00.123456+00:00 host app - - x"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = p(&frame);
        }

        #[test]
        fn a_written_message_reads_back(msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), sev in 0u8..8) {
            let header = Header { facility: 1, severity: sev, timestamp: Timestamp::from_micros(0), hostname: b"h", app_name: b"app", proc_id: b"web.1" };
            let mut out = Vec::new();
            write(&mut out, &header, &msg, Form::Syslog);
            let back = p(&out).unwrap();
            let mut want: &[u8] = &msg;
            want = want.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(want);
            want = want.strip_suffix(b"\n").unwrap_or(want);
            want = want.strip_suffix(b"\r").unwrap_or(want);
            proptest::prop_assert_eq!(&back.msg[..], want);
            proptest::prop_assert_eq!(back.severity, sev);
        }
    }
}
