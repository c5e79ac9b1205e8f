//! The router's log line, one a request, in exactly Heroku's shape:
//! `at=info method=GET path="/" host=… request_id=… fwd="…" dyno=web.1 connect=1ms
//! service=12ms status=200 bytes=512 protocol=https`, and on a failure
//! `at=error code=H12 desc="Request timeout" method=… path=… … dyno= connect= service= …`.

use std::fmt;
use std::time::Duration;

use crate::errors::ProxyError;

/// One request, as the router logs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterLine {
    /// The failure, if the request failed.
    pub error: Option<ProxyError>,
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The Host header.
    pub host: String,
    /// The request id (kept from the client when valid, or made).
    pub request_id: String,
    /// The client's address and the X-Forwarded-For chain.
    pub fwd: String,
    /// The dyno that served it (`web.1`), empty when none did.
    pub dyno: String,
    /// Time to connect to the dyno.
    pub connect: Option<Duration>,
    /// Time from the request reaching the dyno to the response's end.
    pub service: Option<Duration>,
    /// The status sent to the client.
    pub status: u16,
    /// Bytes of response body sent.
    pub bytes: u64,
    /// `http` or `https`.
    pub protocol: String,
    /// What the HTTP cache decided (`hit`, `miss`…), when the cache is on.
    pub cache: Option<&'static str>,
    /// The age of what the cache answered, in seconds.
    pub age: Option<u64>,
}

impl RouterLine {
    /// The line as text, in one allocation for most lines.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(256 + self.path.len() + self.fwd.len());
        let _ = write!(text, "{self}");
        text
    }

    /// A failed request's line: its status is the failure's.
    pub fn error(error: ProxyError, method: &str, path: &str) -> RouterLine {
        RouterLine {
            error: Some(error),
            method: method.to_owned(),
            path: path.to_owned(),
            status: error.status(),
            ..RouterLine::default()
        }
    }
}

/// Writes `s` in double quotes, escaping `"` and `\` (as logfmt reads them back), a newline as
/// `\n` and other control characters as `\uXXXX`. Runs of plain characters are written whole
/// (a character at a time through the formatter was most of the line's cost).
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        if !matches!(c, '"' | '\\') && !c.is_control() {
            continue;
        }
        f.write_str(&s[plain..i])?;
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => write!(f, "\\u{:04x}", c as u32)?,
        }
        plain = i + c.len_utf8();
    }
    f.write_str(&s[plain..])?;
    f.write_str("\"")
}

/// A bare value (no spaces or quotes: host, request id, dyno, method, protocol).
fn bare(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.bytes()
        .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
    {
        quoted(f, s)
    } else {
        f.write_str(s)
    }
}

fn millis(f: &mut fmt::Formatter<'_>, d: Option<Duration>) -> fmt::Result {
    match d {
        // As u64 (584 million years of milliseconds): u128 formatting is the slower.
        Some(d) => write!(f, "{}ms", u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => Ok(()),
    }
}

impl fmt::Display for RouterLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            None => f.write_str("at=info")?,
            Some(e) => {
                write!(f, "{} code={} desc=", e.prefix(), e.code())?;
                quoted(f, e.desc())?;
            }
        }
        f.write_str(" method=")?;
        bare(f, &self.method)?;
        f.write_str(" path=")?;
        quoted(f, &self.path)?;
        f.write_str(" host=")?;
        bare(f, &self.host)?;
        f.write_str(" request_id=")?;
        bare(f, &self.request_id)?;
        f.write_str(" fwd=")?;
        quoted(f, &self.fwd)?;
        f.write_str(" dyno=")?;
        bare(f, &self.dyno)?;
        f.write_str(" connect=")?;
        millis(f, self.connect)?;
        f.write_str(" service=")?;
        millis(f, self.service)?;
        write!(f, " status={} bytes={} protocol=", self.status, self.bytes)?;
        bare(f, &self.protocol)?;
        if let Some(cache) = self.cache {
            write!(f, " cache={cache}")?;
        }
        if let Some(age) = self.age {
            write!(f, " age={age}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_escape_quotes_backslashes_and_controls_only() {
        let line = RouterLine {
            path: "/a\"b\\c\nd\re\u{7f}é🦀/plain".into(),
            ..RouterLine::default()
        };
        let text = line.to_string();
        assert_eq!(line.to_text(), text);
        assert!(
            text.contains(r#"path="/a\"b\\c\nd\u000de\u007fé🦀/plain""#),
            "{text}"
        );
        let back = logfmt::pairs(text.as_bytes())
            .find(|p| p.key == b"path")
            .and_then(|p| p.value.map(|v| v.unescaped().into_owned()));
        // logfmt reads the value back as it was.
        assert_eq!(back.as_deref(), Some(line.path.as_bytes()));
    }

    #[test]
    fn a_served_request_reads_exactly_as_heroku_s() {
        let line = RouterLine {
            method: "GET".into(),
            path: "/".into(),
            host: "myapp.example".into(),
            request_id: "c4d5e6f7-0000-4000-8000-000000000001".into(),
            fwd: "17.17.17.17".into(),
            dyno: "web.1".into(),
            connect: Some(Duration::from_millis(1)),
            service: Some(Duration::from_micros(18_400)),
            status: 200,
            bytes: 13,
            protocol: "https".into(),
            error: None,
            cache: None,
            age: None,
        };
        assert_eq!(
            line.to_string(),
            "at=info method=GET path=\"/\" host=myapp.example request_id=c4d5e6f7-0000-4000-8000-000000000001 fwd=\"17.17.17.17\" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https"
        );
        // With the cache on, what it decided, and the age of what it answered.
        let hit = RouterLine {
            dyno: String::new(),
            cache: Some("hit"),
            age: Some(12),
            ..line
        };
        assert!(
            hit.to_string()
                .ends_with(" dyno= connect=1ms service=18ms status=200 bytes=13 protocol=https cache=hit age=12"),
            "{hit}"
        );
    }

    #[test]
    fn failures_carry_code_and_desc_and_empty_values() {
        let line = RouterLine {
            host: "myapp.example".into(),
            request_id: "abc".into(),
            fwd: "127.0.0.1".into(),
            protocol: "http".into(),
            ..RouterLine::error(ProxyError::NoWebDynos, "GET", "/a b?q=\"x\"")
        };
        assert_eq!(
            line.to_string(),
            "at=error code=H14 desc=\"No web processes running\" method=GET path=\"/a b?q=\\\"x\\\"\" host=myapp.example request_id=abc fwd=\"127.0.0.1\" dyno= connect= service= status=503 bytes=0 protocol=http"
        );
        let h27 = RouterLine::error(ProxyError::ClientInterrupted, "POST", "/upload");
        assert!(
            h27.to_string()
                .starts_with("sock=client at=warning code=H27 desc=\"Client Request Interrupted\"")
        );
    }

    #[test]
    fn every_line_is_logfmt_that_reads_back() {
        for e in ProxyError::ALL {
            let line = RouterLine::error(e, "GET", "/weird \\ \"path\"\n");
            let text = line.to_string();
            assert!(logfmt::validate(text.as_bytes()).is_ok(), "{text}");
            let pairs: Vec<_> = logfmt::pairs(text.as_bytes()).collect();
            let code = pairs
                .iter()
                .find(|p| p.key == b"code")
                .and_then(|p| p.value.as_ref())
                .map(|v| v.raw());
            assert_eq!(code, Some(e.code().as_bytes()));
        }
    }
}
