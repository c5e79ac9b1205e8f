//! The last step of a request: the client's response. A dyno's, with Vegur's response headers
//! (and the affinity cookie), its body streamed under the idle window; a protocol switch
//! (WebSocket) spliced both ways; or the proxy's own answer to a failure, with the line
//! written: `failure` is the one place a `ProxyError` becomes a response.

use http::{HeaderValue, Response, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::errors::ProxyError;
use crate::proxy::body::{Recorder, ResponseBody};
use crate::proxy::cached::Keep;
use crate::proxy::head::Affinity;
use crate::proxy::headers;
use crate::proxy::upstream::Inbound;

/// The client's response to the dyno's `inbound`, its body watched for `idle` at most.
/// `client_upgrade`: the client's side of a protocol switch it asked for.
pub(crate) fn dyno_response(
    inbound: Inbound,
    rec: Recorder,
    client_upgrade: Option<OnUpgrade>,
    affinity: &Affinity,
    idle: std::time::Duration,
    keep: Option<Keep>,
) -> Response<ResponseBody> {
    let Inbound {
        mut response,
        lease,
    } = inbound;
    let mut rec = rec;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let dyno_upgrade = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        headers::forward_response(&mut parts.headers, true);
        rec.finish(101, 0);
        drop(lease);
        tokio::spawn(async move {
            if let (Ok(client), Ok(dyno)) = tokio::join!(client_upgrade, dyno_upgrade) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(dyno),
                )
                .await;
            }
        });
        return Response::from_parts(parts, ResponseBody::full(bytes::Bytes::new()));
    }
    let (mut parts, body) = response.into_parts();
    headers::forward_response(&mut parts.headers, false);
    if let Affinity::On(named) = affinity
        && named.as_deref() != Some(lease.dyno.as_str())
    {
        parts
            .headers
            .append(header::SET_COOKIE, headers::affinity_cookie(&lease.dyno));
    }
    let status = parts.status.as_u16();
    Response::from_parts(
        parts,
        ResponseBody::dyno(body, idle, status, rec, lease, keep),
    )
}

/// The answer to a request refused before any dyno saw it: over HTTP/1 the connection is
/// closed after it (what follows a bad head, or a CONNECT's tunnel bytes, is not read as a
/// request); a 405 says which methods the router forwards.
pub(crate) fn refused(
    rec: &mut Recorder,
    error: ProxyError,
    version: Version,
) -> Response<ResponseBody> {
    let mut res = failure(rec, error);
    let h = res.headers_mut();
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if error == ProxyError::MethodNotAllowed {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
        );
    }
    res
}

/// The client's answer to a failed request, with its line written.
pub(crate) fn failure(rec: &mut Recorder, error: ProxyError) -> Response<ResponseBody> {
    rec.fail(error, 0);
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = format!(
        "Application error: {} ({})\nrequest id {}\n",
        error.desc(),
        error.code(),
        rec.line_mut().request_id
    );
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::VIA, HeaderValue::from_static(headers::VIA));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    res
}
