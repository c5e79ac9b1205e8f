//! `POST /logs`: batches of `application/logplex-1` (RFC 6587 octet-counted RFC 5424 frames),
//! as log-shuttle and Logplex-compatible shippers send them. A batch is accepted whole or not
//! at all, so that a sender's retry never duplicates or loses part of it:
//! - 401 bad or missing token; 404 when the Basic user names an app the token is not for;
//! - 415 another content type (the media type must be `application/logplex-1`, in any case,
//!   parameters allowed); 413 body or a frame over the limit; 400 a malformed frame, a
//!   frame naming another token, or a `Logplex-Msg-Count` that disagrees, with a body saying
//!   which and where; 408 a body not in full within the body timeout;
//! - 503 with `Retry-After` when over the app's rate budget, when the bodies being read at
//!   once would pass the in-flight budget, or when stopping (worth retrying);
//! - 204 when accepted, or when its `Logplex-Frame-Id` was accepted already (a retry). On a
//!   cluster node the log bus remembers frame ids (JetStream's duplicate window, two minutes
//!   by default), so a retry sent to another node is a duplicate too.
//!
//! Counters count what was read: a batch refused before its frames were read counts as one,
//! whatever its `Logplex-Msg-Count` says.

// A refusal carries its response; refusals are answered at once, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::io::Read as _;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::api::body::{BodyError, read_within};
use crate::api::response::{Body, error, full, unauthorized, unavailable};
use crate::api::{ApiState, auth};
use crate::bus::{BusBatch, Published};
use crate::framing::{FrameDecoder, FrameError};
use crate::ingest::to_line;
use crate::line::LogLine;
use crate::rfc5424::parse;
use crate::router::{BatchOutcome, Reject, Router, TokenTarget};
use crate::time::Timestamp;

/// A refused batch: the response, and what to count.
struct Refused {
    response: Response<Body>,
    reason: Reject,
    frames: u64,
}

fn refused(status: StatusCode, reason: Reject, frames: u64, message: String) -> Refused {
    let id = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "bad_request",
    };
    Refused {
        response: error(status, id, &message),
        reason,
        frames,
    }
}

/// `POST /logs`.
pub(crate) async fn post_logs(state: &ApiState, req: Request<Incoming>) -> Response<Body> {
    let router = &state.router;
    let stats = &router.ingest_stats().http;
    let _open = stats.open();
    if router.is_stopping() {
        return unavailable("The router is stopping; send to another node or retry.", 1);
    }
    let Some(target) = authenticate(router, req.headers()) else {
        router.unattributed().add(Reject::UnknownToken, 1);
        router.ingest_stats().rejected(Reject::UnknownToken);
        return unauthorized();
    };
    let target = match target {
        Ok(t) => t,
        Err(r) => return r,
    };
    match accept(state, &target, req).await {
        Ok(response) => response,
        Err(r) => {
            target.channel.reject(r.reason, r.frames);
            router.ingest_stats().rejected_n(r.reason, r.frames);
            r.response
        }
    }
}

/// The token's target; `Some(Err)` when the Basic user names another app.
fn authenticate(
    router: &Router,
    headers: &HeaderMap,
) -> Option<Result<TokenTarget, Response<Body>>> {
    let (user, token) = auth::credentials(headers)?;
    let target = router.resolve_token(token.as_bytes())?;
    match user.as_deref() {
        None | Some("") | Some("token") => Some(Ok(target)),
        Some(app) if app == target.channel.app().as_str() => Some(Ok(target)),
        Some(_) => Some(Err(super::response::no_such_app())),
    }
}

async fn accept(
    state: &ApiState,
    target: &TokenTarget,
    req: Request<Incoming>,
) -> Result<Response<Body>, Refused> {
    let headers = req.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_logplex_1(content_type) {
        return Err(Refused {
            response: error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/logplex-1.",
            ),
            reason: Reject::Malformed,
            frames: 1,
        });
    }
    let expected = match headers
        .get("logplex-msg-count")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
    {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                Reject::CountMismatch,
                1,
                "Logplex-Msg-Count is not a number.".into(),
            ));
        }
    };
    let budget = Some(&state.limits.body_budget);
    let read = read_within(req, state.config.max_body, budget)
        .await
        .map_err(body_refused)?;
    let body = read.bytes;
    state
        .router
        .ingest_stats()
        .http
        .bytes
        .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        gunzip(&body, state.config.max_decompressed)?
    } else {
        body
    };
    let received = Timestamp::now();
    let lines = decode(&body, target, state.config.max_frame, received)?;
    if let Some(expected) = expected
        && expected != lines.len() as u64
    {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            Reject::CountMismatch,
            lines.len().max(1) as u64,
            format!(
                "Message count mismatch: Logplex-Msg-Count is {expected}, the body has {} messages.",
                lines.len()
            ),
        ));
    }
    let invalid = lines
        .iter()
        .filter(|l| std::str::from_utf8(&l.message).is_err())
        .count();
    state.router.ingest_stats().invalid_utf8(invalid as u64);
    let frame_id = headers
        .get("logplex-frame-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = lines.len();
    if state.router.awaiting_bus() {
        return Ok(unavailable(
            "This node is joining its cluster; nothing was accepted. Retry, or send to another node.",
            1,
        ));
    }
    let outcome = match state.router.bus() {
        None => target
            .channel
            .publish_batch(lines, frame_id.as_deref(), received),
        // A cluster node: the batch is acknowledged only once the log bus has it; a frame id
        // the bus already has (a retry, on this node or another) is a duplicate there.
        Some(bus) => match target.channel.admit_batch(n, received) {
            BatchOutcome::Accepted(n) => {
                let batch = BusBatch {
                    app_id: target.app_id.clone(),
                    lines,
                    dedup_id: frame_id
                        .as_deref()
                        .filter(|id| dedups(id))
                        .map(str::to_owned),
                };
                match bus.publish(&batch).await {
                    Ok(Published::Stored) => {
                        target.channel.count_accepted(n);
                        BatchOutcome::Accepted(n)
                    }
                    Ok(Published::Duplicate) => BatchOutcome::Duplicate,
                    Err(e) => {
                        tracing::warn!(error = %e, "POST /logs");
                        state.router.ingest_stats().bus_refused(n as u64);
                        return Ok(unavailable(
                            "The log bus did not take the batch; nothing of it was accepted. Retry.",
                            1,
                        ));
                    }
                }
            }
            other => other,
        },
    };
    match outcome {
        BatchOutcome::Accepted(_) | BatchOutcome::Duplicate => {
            let mut r = full(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
            if let Some(id) = frame_id.and_then(|id| id.parse().ok()) {
                r.headers_mut().insert("logplex-frame-id", id);
            }
            Ok(r)
        }
        BatchOutcome::RateLimited => Ok(unavailable(
            &format!(
                "This app is over its rate budget; the {n} messages were not accepted. Retry later."
            ),
            1,
        )),
        BatchOutcome::Closed => Ok(unavailable("This app's channel is closed.", 1)),
    }
}

/// Whether a `Logplex-Frame-Id` serves as the bus's de-duplication id: at most
/// `MAX_DEDUP_ID` bytes without spaces (Logplex's are 32 hex digits). Another is passed on
/// unchecked, as a sender without a frame id is.
fn dedups(frame_id: &str) -> bool {
    !frame_id.is_empty()
        && frame_id.len() <= MAX_DEDUP_ID
        && frame_id.bytes().all(|b| b.is_ascii_graphic())
}

/// The longest `Logplex-Frame-Id` de-duplicated in a cluster.
const MAX_DEDUP_ID: usize = 128;

/// A body that could not be read, as the app's rejection: one batch, its frames unknown.
/// A body over the in-flight budget is not the app's doing (the budget is every app's): it
/// is counted in the API's refusals only.
fn body_refused(e: BodyError) -> Refused {
    let (reason, frames) = match e {
        BodyError::TooLarge { .. } => (Reject::BodyTooLarge, 1),
        BodyError::TimedOut { .. } => (Reject::Truncated, 1),
        BodyError::OverBudget { .. } => (Reject::RateLimited, 0),
        BodyError::Unreadable => (Reject::Malformed, 1),
    };
    Refused {
        response: e.response(),
        reason,
        frames,
    }
}

/// Whether a `Content-Type` is `application/logplex-1` (RFC 9110: the media type is
/// case-insensitive, and parameters may follow a `;`).
fn is_logplex_1(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/logplex-1")
}

/// The body decompressed (a body that is not, or is too large, counts as one batch).
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, Refused> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::GzDecoder::new(body);
    match decoder.take(limit as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BodyTooLarge,
            1,
            format!("The body is over the limit of {limit} bytes once decompressed."),
        )),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(refused(
            StatusCode::BAD_REQUEST,
            Reject::Malformed,
            1,
            format!("Malformed gzip body: {e}."),
        )),
    }
}

/// Every frame of the body as a line of the token's app, or why not.
fn decode(
    body: &Bytes,
    target: &TokenTarget,
    max_frame: usize,
    received: Timestamp,
) -> Result<Vec<LogLine>, Refused> {
    let mut buf = BytesMut::from(&body[..]);
    let mut decoder = FrameDecoder::new(max_frame);
    let mut lines = Vec::new();
    while let Some(frame) = decoder.decode_eof(&mut buf) {
        let index = lines.len();
        let frame = match frame {
            Ok(f) => f,
            Err(e @ FrameError::TooLarge { .. }) => {
                return Err(refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Reject::TooLarge,
                    index as u64 + 1,
                    format!("Frame {index}: {e}."),
                ));
            }
            Err(e) => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    Reject::from(e),
                    index as u64 + 1,
                    format!("Malformed log messages: frame {index}: {e}."),
                ));
            }
        };
        let msg = parse(&frame).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                Reject::Malformed,
                index as u64 + 1,
                format!("Malformed log messages: frame {index}: {e}."),
            )
        })?;
        if msg
            .hostname
            .as_deref()
            .is_some_and(crate::ingest::is_drain_output)
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                Reject::DrainLoop,
                index as u64 + 1,
                format!(
                    "Frame {index} is a drain's output (its HOSTNAME is a drain token): a router does not ingest drain output again."
                ),
            ));
        }
        if let Some(named) = &msg.app_name
            && named.starts_with(b"t.")
            && !token_is(named, target)
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                Reject::UnknownToken,
                index as u64 + 1,
                format!("Frame {index} names a different token than the request's credentials."),
            ));
        }
        if msg
            .proc_id
            .as_deref()
            .is_some_and(|p| crate::registry::is_reserved_process(&target.source, p))
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                Reject::ReservedProcess,
                index as u64 + 1,
                format!(
                    "Frame {index} writes as a process only the platform writes as under the source app (postgres, heroku-postgres)."
                ),
            ));
        }
        lines.push(to_line(msg, target, received));
    }
    Ok(lines)
}

fn token_is(named: &[u8], target: &TokenTarget) -> bool {
    target.token.as_bytes() == named
}

#[cfg(test)]
mod tests {
    use super::is_logplex_1;

    #[test]
    fn the_media_type_is_matched_exactly() {
        for ok in [
            "application/logplex-1",
            "Application/Logplex-1",
            "application/logplex-1; charset=utf-8",
            " application/logplex-1 ;x=y",
        ] {
            assert!(is_logplex_1(ok), "{ok}");
        }
        for bad in [
            "application/logplex-1evil",
            "application/logplex-10",
            "application/logplex-1 evil",
            "application/logplex",
            "text/plain",
            "",
        ] {
            assert!(!is_logplex_1(bad), "{bad}");
        }
    }
}
