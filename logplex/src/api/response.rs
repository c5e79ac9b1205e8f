//! Responses: the body type every handler returns, JSON and Platform-API-shaped errors
//! (`{"id": "not_found", "message": "Couldn't find that app."}`), and the streaming body of
//! log sessions.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use tokio::sync::mpsc;

/// Every response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// A response with a fixed body.
pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(http_body_util::Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => full(status, "application/json", body),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &e.to_string(),
        ),
    }
}

/// A Platform API error: `{"id": ID, "message": MESSAGE}`.
pub fn error(status: StatusCode, id: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "id": id, "message": message });
    full(status, "application/json", body.to_string())
}

/// 404 for an app that does not exist or that the caller may not see (the same answer, so
/// that no caller learns of another tenant's apps).
pub fn no_such_app() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Couldn't find that app.",
    )
}

/// 401 for missing or wrong credentials.
pub fn unauthorized() -> Response<Body> {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Invalid credentials provided.",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"paas\""),
    );
    r
}

/// 503 with `Retry-After`: a condition worth retrying.
pub fn unavailable(message: &str, retry_after_secs: u64) -> Response<Body> {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// 429 with `Retry-After`: the caller is over a budget of its own.
pub fn too_many(message: &str, retry_after_secs: u64) -> Response<Body> {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit", message);
    if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A body fed chunk by chunk from a task; it ends when the task drops its sender. When the
/// client goes away the body is dropped, and the task sees its sender closed.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it (`depth` chunks may wait).
    pub fn new(depth: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
