//! RED from router lines: `at=info method=GET path="/" … dyno=web.1 connect=1ms service=12ms
//! status=200 bytes=512 protocol=http` (with `code=H12` on errors), written in-process by the
//! proxy (`paas[router]`) or received from another router (`heroku[router]`). Only what makes
//! a bounded label is read: the status class, the H-code, the dyno's process type; never the
//! path, host or request id (the query engine answers those).

use logplex::LogLine;

/// What one router line says.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RouterSample<'a> {
    /// `2xx`…`5xx`, or `other` for a missing or odd status.
    pub status_class: &'static str,
    /// `H12`, …; empty when the line has none, `other` when it is not an H-code's shape.
    pub code: &'a str,
    /// `web` of `dyno=web.1`; empty when no dyno was reached, `other` when odd.
    pub process_type: &'a str,
    /// `service=` in seconds, when given and sane.
    pub service: Option<f64>,
    /// `connect=` in seconds, when given and sane.
    pub connect: Option<f64>,
    /// `bytes=` of the response, when given.
    pub bytes: Option<u64>,
}

/// Whether `line` is a router line (by its source and process, not its text): process
/// `router` of the platform source (`paas`, `logplex::PLATFORM_SOURCE`) or Heroku's
/// (`heroku`), which only the platform may write as (`logplex::RESERVED_SOURCES`). Array
/// patterns, so that no memcmp runs for every line.
pub(crate) fn is_router_line(line: &LogLine) -> bool {
    matches!(&line.process[..], [b'r', b'o', b'u', b't', b'e', b'r'])
        && matches!(
            &line.source[..],
            [b'p', b'a', b'a', b's'] | [b'h', b'e', b'r', b'o', b'k', b'u']
        )
}

/// Reads a router line's message. One pass over its pairs; the first of a repeated key wins.
pub(crate) fn parse(message: &[u8]) -> RouterSample<'_> {
    let mut s = RouterSample {
        status_class: "other",
        ..RouterSample::default()
    };
    let (mut status, mut code, mut dyno, mut service, mut connect, mut bytes) =
        (false, false, false, false, false, false);
    logfmt::for_each_pair(message, |pair| {
        let Some(value) = pair.value else { return };
        let raw = value.raw();
        // Array patterns compare bytes in place (a slice `match` on byte strings would call
        // memcmp for every arm): this closure runs for every pair of every router line.
        match pair.key {
            [b's', b't', b'a', b't', b'u', b's'] if !std::mem::replace(&mut status, true) => {
                s.status_class = status_class(raw);
            }
            [b'c', b'o', b'd', b'e'] if !std::mem::replace(&mut code, true) => {
                s.code = error_code(raw);
            }
            [b'd', b'y', b'n', b'o'] if !std::mem::replace(&mut dyno, true) => {
                s.process_type = process_type(raw);
            }
            [b's', b'e', b'r', b'v', b'i', b'c', b'e']
                if !std::mem::replace(&mut service, true) =>
            {
                s.service = seconds(raw);
            }
            [b'c', b'o', b'n', b'n', b'e', b'c', b't']
                if !std::mem::replace(&mut connect, true) =>
            {
                s.connect = seconds(raw);
            }
            [b'b', b'y', b't', b'e', b's'] if !std::mem::replace(&mut bytes, true) => {
                s.bytes = integer(raw);
            }
            _ => {}
        }
    });
    s
}

/// A decimal of at most 18 digits (so it cannot overflow), nothing else.
fn integer(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 18 {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn status_class(raw: &[u8]) -> &'static str {
    match raw {
        [d @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .get(usize::from(d - b'1'))
            .copied()
            .unwrap_or("other"),
        _ => "other",
    }
}

/// `H12` as is (a capital letter and two or three digits); anything else is `other`.
fn error_code(raw: &[u8]) -> &str {
    let ok = matches!(raw, [b'A'..=b'Z', rest @ ..] if (2..=3).contains(&rest.len())
        && rest.iter().all(u8::is_ascii_digit));
    match std::str::from_utf8(raw) {
        Ok(code) if ok => code,
        _ if raw.is_empty() => "",
        _ => "other",
    }
}

/// `web` of `web.1` (a Procfile name: lowercase letters, digits, `_`, `-`, at most 30).
fn process_type(raw: &[u8]) -> &str {
    let name = raw.split(|&b| b == b'.').next().unwrap_or(raw);
    let ok = !name.is_empty()
        && name.len() <= 30
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    match std::str::from_utf8(name) {
        Ok(t) if ok => t,
        _ if raw.is_empty() => "",
        _ => "other",
    }
}

/// `12ms` in seconds; the router writes whole milliseconds (read here without going through
/// text and float parsing), other routers may write any duration.
fn seconds(raw: &[u8]) -> Option<f64> {
    if let Some(ms) = raw.strip_suffix(b"ms").and_then(integer) {
        return Some(ms as f64 / 1e3);
    }
    let v = match logfmt::parse_quantity(raw)? {
        logfmt::Quantity::Duration(s) => s,
        // A bare number is milliseconds, as in Heroku's router lines of old.
        logfmt::Quantity::Number(ms) => ms / 1e3,
        _ => return None,
    };
    super::units::check(v).ok().filter(|v| *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_request() {
        let s = parse(
            br#"at=info method=GET path="/" host=shop.example request_id=abc fwd="1.2.3.4" dyno=web.1 connect=1ms service=12ms status=200 bytes=512 protocol=http"#,
        );
        assert_eq!(
            s,
            RouterSample {
                status_class: "2xx",
                code: "",
                process_type: "web",
                service: Some(0.012),
                connect: Some(0.001),
                bytes: Some(512),
            }
        );
    }

    #[test]
    fn an_error_with_its_code_and_no_dyno() {
        let s = parse(
            br#"at=error code=H14 desc="No web dynos running" method=GET path="/" host=h request_id=r fwd="f" dyno= connect= service= status=503 bytes=0 protocol=http"#,
        );
        assert_eq!((s.status_class, s.code, s.process_type), ("5xx", "H14", ""));
        assert_eq!((s.service, s.connect, s.bytes), (None, None, Some(0)));
    }

    #[test]
    fn odd_values_become_other_never_a_free_label() {
        let s = parse(b"status=99999 code=/etc/passwd dyno=WEB.1 service=abc connect=-5ms");
        assert_eq!(
            (s.status_class, s.code, s.process_type),
            ("other", "other", "other")
        );
        assert_eq!((s.service, s.connect), (None, None));
        let s = parse(b"status=600 dyno=\xff.1 service=1e400ms");
        assert_eq!(
            (s.status_class, s.process_type, s.service),
            ("other", "other", None)
        );
        let s = parse(b"status=503 service=30000");
        assert_eq!((s.status_class, s.service), ("5xx", Some(30.0)));
        let s = parse(b"service=1.5s connect=250us bytes=99999999999999999999999 status=200");
        assert_eq!(
            (s.service, s.connect, s.bytes),
            (Some(1.5), Some(0.00025), None)
        );
        let s = parse(b"service=ms connect=-1ms bytes=-1");
        assert_eq!((s.service, s.connect, s.bytes), (None, None, None));
    }

    #[test]
    fn the_first_of_a_repeated_key_wins() {
        let s = parse(b"status=200 status=500 code=H12 code=H13");
        assert_eq!((s.status_class, s.code), ("2xx", "H12"));
    }

    #[test]
    fn router_lines_are_told_by_source_and_process() {
        assert_eq!(logplex::PLATFORM_SOURCE, b"paas");
        assert!(logplex::RESERVED_SOURCES.contains(&"heroku"));
        let line = |source: &'static str, process: &'static str| LogLine {
            received: logplex::Timestamp::from_micros(0),
            time: logplex::Timestamp::from_micros(0),
            app: logplex::AppName::from("shop"),
            source: source.into(),
            process: process.into(),
            facility: 1,
            severity: 6,
            message: "status=200".into(),
            seq: 0,
        };
        assert!(is_router_line(&line("paas", "router")));
        assert!(is_router_line(&line("heroku", "router")));
        assert!(!is_router_line(&line("app", "router")));
        assert!(!is_router_line(&line("paas", "web.1")));
    }
}
