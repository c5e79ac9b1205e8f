//! Reading request bodies within bounds: a size limit, a deadline for the whole body (set per
//! request by `serve_api`, so a body that stalls is answered 408 and its memory returned), and
//! for `POST /logs` the byte budget every connection shares (503 when a body does not fit).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::api::limits::{BodyBudget, Refusal, Refusals};
use crate::api::response::{Body, error, unavailable};

/// When a request's body must have arrived in full; `serve_api` puts one in every request's
/// extensions.
#[derive(Clone, Debug)]
pub(crate) struct BodyDeadline {
    /// The instant.
    pub(crate) at: Instant,
    /// The timeout it came from, to tell the client.
    pub(crate) after: Duration,
    /// Where a late body is counted.
    pub(crate) refusals: Arc<Refusals>,
}

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over `limit` bytes.
    TooLarge { limit: usize },
    /// Not in full by the deadline.
    TimedOut { after: Duration },
    /// It did not fit in the in-flight budget of `budget` bytes.
    OverBudget { budget: usize },
    /// The connection failed or the framing was bad.
    Unreadable,
}

impl BodyError {
    /// The answer to the client, saying which limit.
    pub(crate) fn response(&self) -> Response<Body> {
        match *self {
            BodyError::TooLarge { limit } => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("The body is over the limit of {limit} bytes."),
            ),
            BodyError::TimedOut { after } => error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!(
                    "The request body did not arrive in full within {} s (--body-timeout).",
                    after.as_secs_f64()
                ),
            ),
            BodyError::OverBudget { budget } => unavailable(
                &format!(
                    "The router is reading as many request bodies as it may at once \
                     ({} MB, --inflight-body-mb); retry shortly.",
                    budget >> 20
                ),
                1,
            ),
            BodyError::Unreadable => error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.",
            ),
        }
    }
}

/// A body read in full, with the share of the in-flight budget it holds until dropped.
#[derive(Debug)]
pub(crate) struct ReadBody {
    pub(crate) bytes: Bytes,
    pub(crate) _budget: Option<OwnedSemaphorePermit>,
}

/// Reads a request body of at most `limit` bytes, by the request's deadline (if any).
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    read_within(req, limit, None)
        .await
        .map(|b| b.bytes)
        .map_err(|e| e.response())
}

/// Reads a request body of at most `limit` bytes, by the request's deadline (if any), taking
/// its bytes from `budget` as they arrive (all at once when the length is announced).
pub(crate) async fn read_within(
    req: Request<Incoming>,
    limit: usize,
    budget: Option<&BodyBudget>,
) -> Result<ReadBody, BodyError> {
    let deadline = req.extensions().get::<BodyDeadline>().cloned();
    // A body larger than the whole budget could never fit: it is too large, not early.
    let limit = budget.map_or(limit, |b| limit.min(b.bytes()));
    let mut body = req.into_body();
    let announced = body.size_hint().exact();
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut held = match (budget, announced) {
        (Some(b), Some(n)) => Some(take(b, n as usize)?),
        _ => None,
    };
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0) as usize);
    loop {
        let next = match &deadline {
            Some(d) => match tokio::time::timeout_at(d.at, body.frame()).await {
                Ok(next) => next,
                Err(_) => {
                    d.refusals.add(Refusal::BodyTimeout);
                    return Err(BodyError::TimedOut { after: d.after });
                }
            },
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if let (Some(b), None) = (budget, announced) {
            let permit = take(b, data.len())?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
        }
        buf.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: buf.freeze(),
        _budget: held,
    })
}

fn take(budget: &BodyBudget, n: usize) -> Result<OwnedSemaphorePermit, BodyError> {
    budget.try_take(n).ok_or(BodyError::OverBudget {
        budget: budget.bytes(),
    })
}
