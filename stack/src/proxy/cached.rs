//! The HTTP cache on hyper's path (HTTP/2, and HTTP/1.x under `--proxy-hyper`): a fresh entry
//! answers the request (a 304 when the client's copy is current), a storable answer is kept as
//! its body passes (`Keep`, fed by `ResponseBody`), what cannot be stored is passed, and unsafe
//! methods forget the URL. The same store and rules as the HTTP/1.1 path (`h1/cached.rs`);
//! revalidation, stale answers and coalescing are that path's only.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};

use crate::cache::store::{Found, Stored};
use crate::cache::{HttpCache, Outcome};
use crate::proxy::body::{Recorder, ResponseBody};
use crate::proxy::h1::cached::{Storing, not_modified, request_value, storing};
use crate::proxy::h1::conn::Request as CacheRequest;
use crate::proxy::headers::VIA;
use crate::proxy::upstream::Outbound;

/// A request the cache did not answer, on its way to a dyno.
#[derive(Debug)]
pub(crate) struct Pending {
    cache: Arc<HttpCache>,
    key: String,
    /// The request's head as text (for the cache's header lookups).
    head: Vec<u8>,
    request: CacheRequest,
    outcome: Outcome,
}

/// A dyno's answer being kept as its body passes.
#[derive(Debug)]
pub(crate) struct Keep {
    cache: Arc<HttpCache>,
    key: String,
    storing: Option<Storing>,
}

impl Keep {
    /// More of the body.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let max = self.cache.store().max_object();
        if let Some(s) = self.storing.as_mut() {
            if s.body.len() + data.len() > max {
                self.storing = None;
            } else {
                s.body.extend_from_slice(data);
            }
        }
    }

    /// The body ended: the answer is stored (if it still fits).
    pub(crate) fn finish(self) {
        match self.storing {
            Some(kept) => {
                self.cache.store().insert(&self.key, kept.into_stored());
            }
            None => self.cache.store().pass(&self.key),
        }
    }
}

/// What the cache makes of a request on hyper's path.
pub(crate) enum Looked {
    /// Answered from memory.
    Answer(Box<Response<ResponseBody>>),
    /// It goes to a dyno.
    Go(Option<Pending>),
}

/// Asks `cache` about `outbound` (its line is `rec`).
pub(crate) fn look(cache: &Arc<HttpCache>, outbound: &Outbound, rec: &mut Recorder) -> Looked {
    let started = std::time::Instant::now();
    let method = &outbound.parts.method;
    let host = outbound
        .parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let key = format!("{host}\n{}", outbound.path);
    let get = method == Method::GET;
    if !get && method != Method::HEAD {
        if matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            cache.store().invalidate(&key);
        }
        cache.store().stats().count(Outcome::Pass);
        rec.line_mut().cache = Some(Outcome::Pass.as_str());
        return Looked::Go(None);
    }
    let mut head = format!("{method} {} HTTP/1.1\r\n", outbound.path).into_bytes();
    for (name, value) in &outbound.parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let now = Instant::now();
    let outcome = match cache.store().lookup(&key, |n| request_value(&head, n)) {
        Found::Stored(stored) if stored.fresh(now) => {
            cache.store().stats().count(Outcome::Hit);
            let response = answer(&stored, &head, method == Method::HEAD, rec, started);
            return Looked::Answer(Box::new(response));
        }
        Found::Pass => Outcome::Pass,
        _ => Outcome::Miss,
    };
    let request = CacheRequest::bodiless(method == Method::HEAD);
    Looked::Go(Some(Pending {
        cache: cache.clone(),
        key,
        head,
        request,
        outcome,
    }))
}

/// The response of a fresh entry, its line written.
fn answer(
    stored: &Stored,
    head: &[u8],
    head_request: bool,
    rec: &mut Recorder,
    started: std::time::Instant,
) -> Response<ResponseBody> {
    let current = not_modified(head, stored);
    let age = stored.age(Instant::now());
    let body = if current || head_request {
        Bytes::new()
    } else {
        stored.body.clone()
    };
    let status = if current { 304 } else { stored.status };
    let mut res = Response::new(ResponseBody::full(body.clone()));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = res.headers_mut();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.insert(header::VIA, HeaderValue::from_static(VIA));
    if !current {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.body.len()));
    }
    rec.served_here(started);
    let line = rec.line_mut();
    line.cache = Some(Outcome::Hit.as_str());
    line.age = Some(age);
    rec.finish(status, body.len() as u64);
    res
}

impl Pending {
    /// The dyno answered with `response`'s head: what is kept of it, if anything, and the
    /// line's `cache=`.
    pub(crate) fn answered<B>(self, response: &Response<B>, rec: &mut Recorder) -> Option<Keep> {
        let Pending {
            cache,
            key,
            head,
            request,
            outcome,
        } = self;
        let fields: Vec<httparse::Header<'_>> = response
            .headers()
            .iter()
            .map(|(name, value)| httparse::Header {
                name: name.as_str(),
                value: value.as_bytes(),
            })
            .collect();
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let status = response.status();
        let kept = (outcome == Outcome::Miss && !request.head)
            .then(|| {
                storing(
                    &request,
                    &head,
                    status.as_u16(),
                    status.canonical_reason().unwrap_or(""),
                    &fields,
                    cache.store().max_object(),
                    declared,
                )
            })
            .flatten();
        let outcome = if kept.is_some() {
            Outcome::Miss
        } else {
            Outcome::Pass
        };
        cache.store().stats().count(outcome);
        rec.line_mut().cache = Some(outcome.as_str());
        match kept {
            Some(storing) => Some(Keep {
                cache,
                key,
                storing: Some(storing),
            }),
            None => {
                if request.get {
                    cache.store().pass(&key);
                }
                None
            }
        }
    }

    /// The request failed: the line says what the cache had decided.
    pub(crate) fn failed(self, rec: &mut Recorder) {
        self.cache.store().stats().count(self.outcome);
        rec.line_mut().cache = Some(self.outcome.as_str());
    }
}
