//! syslog drains: RFC 5424 frames in Logplex's exact form for syslog drains
//! (`<PRI>1 TS d.<token> SOURCE PROCESS - - MSG`, the drain token as HOSTNAME so that receivers
//! tell drains apart), RFC 6587 octet-counted over TCP and TLS, one datagram each over UDP.
//! A batch is held until a connection takes it whole (at-least-once: a write cut off midway is
//! sent again after reconnecting); meanwhile the buffer drops its oldest lines and counts them.

mod connection;
pub mod relp;

use logplex::{Form, Header, LogLine, write_syslog_cached};

use crate::backoff::Backoff;
use crate::delivery::Ctx;
use crate::feed::{Batch, Feed};
use connection::Connection;

thread_local! {
    /// The text of the last second written on this thread (drains write many lines a second).
    static TIME_TEXT: std::cell::RefCell<logplex::TimeFormatCache> = Default::default();
}

/// One message in the form syslog drains get.
pub fn encode(out: &mut Vec<u8>, line: &LogLine, token: &str) {
    let header = Header {
        facility: line.facility,
        severity: line.severity,
        timestamp: line.time,
        hostname: token.as_bytes(),
        app_name: &line.source,
        proc_id: &line.process,
    };
    TIME_TEXT.with_borrow_mut(|cache| {
        write_syslog_cached(out, &header, &line.message, Form::Syslog, cache);
    });
}

/// `encode` in the shape a `Feed` wants.
pub fn encode_line(line: &LogLine, token: &str, out: &mut Vec<u8>) {
    encode(out, line, token);
}

/// Delivers a syslog drain's lines until its feed ends (its buffer closed and empty, or the
/// router stops and the receiver cannot take what is left).
pub async fn run(mut ctx: Ctx, mut feed: Feed) {
    let mut backoff = Backoff::new(ctx.config.backoff_base, ctx.config.backoff_cap);
    let mut conn: Option<Connection> = None;
    let mut batch: Option<Batch> = None;
    loop {
        if batch.is_none() {
            match feed.next(&mut ctx).await {
                Some(b) if b.is_empty() => continue,
                Some(b) => batch = Some(b),
                None => break,
            }
        }
        let Some(b) = batch.as_ref() else { continue };
        if conn.is_none() {
            match Connection::open(&ctx).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let message = e.to_string();
                    if backoff.failures() == 0 {
                        // Told in the stream once a run of failures, as Logplex does.
                        if e.is_certificate() {
                            ctx.certificate_failure(&message);
                        } else if e.refusal().is_some() {
                            ctx.destination_refused(&message);
                        }
                    }
                    ctx.health.failed(message);
                    if ctx.is_stopping() {
                        break;
                    }
                    let delay = backoff.next_delay();
                    ctx.pause(delay).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.send(b, ctx.config.send_timeout).await {
            Ok(()) => {
                feed.done(&ctx, b, true).await;
                batch = None;
                backoff.reset();
            }
            Err(e) => {
                conn = None;
                ctx.health.failed(e);
                if ctx.is_stopping() {
                    break;
                }
                let delay = backoff.next_delay();
                ctx.pause(delay).await;
            }
        }
    }
    // Stopped with a batch that could not be sent: lost and counted (or kept on disk).
    if let Some(b) = batch {
        feed.abandon(&ctx, &b);
    }
    if let Some(c) = conn {
        c.close().await;
    }
    feed.finish().await;
}

/// An octet-counted frame (for a stream).
#[cfg(test)]
fn octet_counted(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 8);
    logplex::write_octet_counted(&mut out, frame);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logplex_syslog_form_with_the_drain_token_as_hostname() {
        let line = LogLine {
            received: logplex::Timestamp::from_micros(0),
            time: logplex::Timestamp::parse_rfc3339(b"2026-11-21T12:00:00.123456Z").unwrap(),
            app: logplex::AppName::from("shop"),
            source: bytes::Bytes::from_static(b"app"),
            process: bytes::Bytes::from_static(b"web.1"),
            facility: 23,
            severity: 6,
            message: bytes::Bytes::from_static(b"at=info status=200"),
            seq: 1,
        };
        let mut out = Vec::new();
        encode(&mut out, &line, "d.123");
        assert_eq!(
            String::from_utf8(octet_counted(&out)).unwrap(),
            "78 <190>1 2026-11-21T12:00:00.123456+00:00 d.123 app web.1 - - at=info status=200"
        );
    }
}
