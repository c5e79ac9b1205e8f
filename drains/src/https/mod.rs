//! HTTPS drains: batches POSTed as `application/logplex-1` (octet-counted RFC 5424 frames in
//! Logplex's HTTPS form, HOSTNAME `host`), with `Logplex-Msg-Count`, `Logplex-Frame-Id`
//! (stable across retries of one batch), `Logplex-Drain-Token` and `User-Agent`; optionally
//! gzipped. 2xx: delivered. 429, 5xx, timeouts and connection failures: retried with jittered
//! exponential back-off, up to the configured attempts, then dropped and counted. Other 4xx:
//! the receiver refuses the batch; it is dropped and counted at once.

use std::io::Write as _;

use crate::backoff::Backoff;
use crate::delivery::Ctx;
use crate::dial::ConnectError;
use crate::feed::{Batch, Feed};
use crate::url::Scheme;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use logplex::{Form, Header, LogLine, write_syslog_cached};

/// The `User-Agent` of our requests.
pub const USER_AGENT: &str = concat!("paas-logplex/", env!("CARGO_PKG_VERSION"));

/// One batch's request body, built once and sent as many times as it takes.
#[derive(Debug)]
struct Body {
    bytes: Bytes,
    count: usize,
    frame_id: String,
    attempts: u32,
}

/// One line in the form HTTPS drains get (Logplex's: HOSTNAME `host`, no structured data).
pub fn encode_line(line: &LogLine, _token: &str, out: &mut Vec<u8>) {
    let header = Header {
        facility: line.facility,
        severity: line.severity,
        timestamp: line.time,
        hostname: b"host",
        app_name: &line.source,
        proc_id: &line.process,
    };
    TIME_TEXT.with_borrow_mut(|cache| {
        write_syslog_cached(out, &header, &line.message, Form::LogplexHttp, cache);
    });
}

thread_local! {
    /// The text of the last second written on this thread.
    static TIME_TEXT: std::cell::RefCell<logplex::TimeFormatCache> = Default::default();
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// Worth another try (429, 5xx, timeout, connection).
    Retry(String),
    /// The receiver refuses it (4xx but 429).
    Refused(String),
    /// The certificate did not verify.
    Certificate(String),
    /// The address policy refuses where the host leads now (retried: DNS may change).
    Blocked(String),
}

impl Outcome {
    /// Tells the app's stream, as Logplex would, what the first failure of a run was: L14
    /// for a certificate, a refused destination line for the address policy.
    fn tell(&self, ctx: &Ctx) {
        match self {
            Outcome::Certificate(e) => ctx.certificate_failure(e),
            Outcome::Blocked(e) => ctx.destination_refused(e),
            Outcome::Delivered | Outcome::Retry(_) | Outcome::Refused(_) => {}
        }
    }
}

/// Delivers an HTTPS (or loopback HTTP) drain's lines until its feed ends.
pub async fn run(mut ctx: Ctx, mut feed: Feed) {
    let mut backoff = Backoff::new(ctx.config.backoff_base, ctx.config.backoff_cap);
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut pending: Option<(Batch, Body)> = None;
    let gzip = ctx.config.gzip || ctx.url.gzip();
    loop {
        if pending.is_none() {
            let mut batch = match feed.next(&mut ctx).await {
                Some(b) if b.is_empty() => continue,
                Some(b) => b,
                None => break,
            };
            let framed = std::mem::take(&mut batch.framed);
            let body = if gzip { gzipped(&framed) } else { framed };
            let body = Body {
                bytes: Bytes::from(body),
                count: batch.count(),
                frame_id: uuid::Uuid::new_v4().simple().to_string(),
                attempts: 0,
            };
            pending = Some((batch, body));
        }
        let Some((batch, body)) = pending.as_mut() else {
            continue;
        };
        body.attempts += 1;
        let outcome = attempt(&ctx, &mut sender, body, gzip).await;
        let gave_up = body.attempts >= ctx.config.attempts || ctx.is_stopping();
        if backoff.failures() == 0 {
            outcome.tell(&ctx);
        }
        match outcome {
            Outcome::Delivered => {
                feed.done(&ctx, batch, true).await;
                backoff.reset();
                pending = None;
            }
            Outcome::Refused(e) => {
                ctx.health.failed(e);
                feed.done(&ctx, batch, false).await;
                pending = None;
            }
            Outcome::Retry(e) | Outcome::Certificate(e) | Outcome::Blocked(e) => {
                sender = None;
                if gave_up {
                    ctx.health
                        .failed(format!("{e} (gave up after {} attempts)", body.attempts));
                    if ctx.is_stopping() {
                        // Stopping: from memory it is lost and counted; on disk it stays (below).
                        break;
                    }
                    feed.done(&ctx, batch, false).await;
                    pending = None;
                } else {
                    ctx.health.failed(e);
                }
                // Also after giving a batch up, so that a receiver that keeps failing is not
                // hammered (with one attempt a batch, nothing else would pause).
                let delay = backoff.next_delay();
                ctx.pause(delay).await;
            }
        }
    }
    if let Some((batch, _)) = pending {
        feed.abandon(&ctx, &batch);
    }
    feed.finish().await;
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(body);
    gz.finish().unwrap_or_default()
}

async fn connect(ctx: &Ctx) -> Result<SendRequest<Full<Bytes>>, Outcome> {
    let (url, timeout) = (&ctx.url, ctx.config.connect_timeout);
    let failed = |e: ConnectError| {
        let message = e.to_string();
        match e {
            ConnectError::TlsName { .. } => Outcome::Refused(message),
            e if e.refusal().is_some() => Outcome::Blocked(message),
            e if e.is_certificate() => Outcome::Certificate(message),
            _ => Outcome::Retry(message),
        }
    };
    let handshake = |e: hyper::Error| Outcome::Retry(format!("HTTP with {}: {e}", url.authority()));
    if url.scheme == Scheme::Http {
        let tcp = ctx
            .dialer
            .tcp(url, timeout)
            .await
            .map_err(|e| failed(e.into()))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(handshake)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        return Ok(sender);
    }
    let tls = ctx
        .dialer
        .tls(url, ctx.tls.clone(), timeout)
        .await
        .map_err(failed)?;
    let _ = tls.get_ref().0.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(handshake)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn attempt(
    ctx: &Ctx,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    batch: &Body,
    gzip: bool,
) -> Outcome {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        match connect(ctx).await {
            Ok(s) => *sender = Some(s),
            Err(o) => return o,
        }
    }
    let Some(s) = sender.as_mut() else {
        return Outcome::Retry("no connection".into());
    };
    let mut request = Request::post(&ctx.url.path)
        .header(header::HOST, ctx.url.authority())
        .header(header::CONTENT_TYPE, "application/logplex-1")
        .header(header::USER_AGENT, USER_AGENT)
        .header("Logplex-Msg-Count", batch.count)
        .header("Logplex-Frame-Id", &batch.frame_id)
        .header("Logplex-Drain-Token", &ctx.drain.token);
    if gzip {
        request = request.header(header::CONTENT_ENCODING, "gzip");
    }
    let Ok(request) = request.body(Full::new(batch.bytes.clone())) else {
        return Outcome::Refused(format!("cannot build a request for {}", ctx.url));
    };
    let send = async {
        s.ready().await?;
        let response = s.send_request(request).await?;
        let status = response.status();
        // Read (and discard) the body so the connection can be reused.
        let _ = response.into_body().collect().await;
        Ok::<StatusCode, hyper::Error>(status)
    };
    match tokio::time::timeout(ctx.config.send_timeout, send).await {
        Ok(Ok(status)) if status.is_success() => Outcome::Delivered,
        Ok(Ok(status)) if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
            Outcome::Retry(format!("{} answered {status}", ctx.url))
        }
        Ok(Ok(status)) => Outcome::Refused(format!("{} answered {status}", ctx.url)),
        Ok(Err(e)) => {
            *sender = None;
            Outcome::Retry(format!("{}: {e}", ctx.url))
        }
        Err(_) => {
            *sender = None;
            Outcome::Retry(format!(
                "{}: no answer within {:?}",
                ctx.url, ctx.config.send_timeout
            ))
        }
    }
}
