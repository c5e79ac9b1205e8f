//! syslog drains: RFC 5424 frames in Logplex's exact form for syslog drains
//! (`<PRI>1 TS d.<token> SOURCE PROCESS - - MSG`, the drain token as HOSTNAME so that receivers
//! tell drains apart), RFC 6587 octet-counted over TCP and TLS, one datagram each over UDP.
//! A batch is held until a connection takes it whole (at-least-once: a write cut off midway is
//! sent again after reconnecting); meanwhile the buffer drops its oldest lines and counts them.

mod connection;

use logplex::{Form, Header, LogLine, write_octet_counted, write_syslog};

use crate::backoff::Backoff;
use crate::delivery::Ctx;
use crate::url::Scheme;
use connection::Connection;

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
    write_syslog(out, &header, &line.message, Form::Syslog);
}

/// Delivers a syslog drain's lines until its buffer is closed and empty (or the router stops
/// and the receiver cannot take what is left).
pub async fn run(mut ctx: Ctx) {
    let mut backoff = Backoff::new(ctx.config.backoff_base, ctx.config.backoff_cap);
    let mut conn: Option<Connection> = None;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut lines_in_batch = 0u64;
    let mut message = Vec::with_capacity(512);
    loop {
        if frames.is_empty() {
            let queue = ctx.subscription.queue().clone();
            let Some(taken) = queue
                .take_bounded(ctx.config.batch_lines, ctx.config.batch_bytes)
                .await
            else {
                break;
            };
            if let Some(loss) = taken.loss {
                let l10 = ctx.overflow(loss);
                message.clear();
                encode(&mut message, &l10, &ctx.drain.token);
                frames.push(message.clone());
            }
            for line in &taken.lines {
                message.clear();
                encode(&mut message, line, &ctx.drain.token);
                frames.push(message.clone());
            }
            lines_in_batch = taken.lines.len() as u64;
            ctx.health.in_flight(lines_in_batch);
            if frames.is_empty() {
                continue;
            }
        }
        if conn.is_none() {
            match Connection::open(&ctx).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if e.certificate && backoff.failures() == 0 {
                        ctx.certificate_failure(&e.message);
                    }
                    ctx.health.failed(e.message);
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
        match c
            .send(
                &frames,
                ctx.url.scheme == Scheme::SyslogUdp,
                ctx.config.send_timeout,
            )
            .await
        {
            Ok(()) => {
                ctx.health.delivered(lines_in_batch);
                ctx.health.in_flight(0);
                frames.clear();
                lines_in_batch = 0;
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
    // Stopped with a batch that could not be sent: it is lost, and counted.
    if lines_in_batch > 0 {
        ctx.health.in_flight(0);
        ctx.health.dropped(lines_in_batch);
    }
    if let Some(c) = conn {
        c.close().await;
    }
}

/// Writes an octet-counted frame (for a stream).
pub(crate) fn octet_counted(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 8);
    write_octet_counted(&mut out, frame);
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
