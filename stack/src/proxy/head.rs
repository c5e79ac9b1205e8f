//! The first step of a request: its head, read as Vegur reads it. Which host it is for, the
//! refusals answered here without a dyno (`CONNECT`, a head past Vegur's limits, a bad host or
//! `Expect`, a body length two parsers could read differently), Vegur's request headers, and
//! the request's router line begun. What passes goes on as an [`Outbound`] to the upstream
//! step. A head hyper refused itself gets its line here too (`malformed_line`).

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Request, Version, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use logplex::Emitter;

use crate::errors::ProxyError;
use crate::proxy::body::Recorder;
use crate::proxy::headers::{self, Client};
use crate::proxy::line::RouterLine;
use crate::proxy::raw_head::RawHead;
use crate::proxy::target;
use crate::proxy::upstream::Outbound;

/// A request's head, read: its line begun, and either the request to send on or why it is
/// refused.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request's router line, written exactly once.
    pub recorder: Recorder,
    /// The client's HTTP version (a refusal over HTTP/1 closes the connection).
    pub version: Version,
    /// The request to send on, or the refusal.
    pub admitted: Result<Admitted, ProxyError>,
}

/// A request that passed head handling.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The request as the dyno will see it.
    pub outbound: Outbound,
    /// The client's side of a protocol switch it asked for (WebSocket).
    pub client_upgrade: Option<OnUpgrade>,
    /// Session affinity, for the response's cookie.
    pub affinity: Affinity,
}

/// Session affinity for one request.
#[derive(Debug)]
pub(crate) enum Affinity {
    /// Off: no cookie is read or set.
    Off,
    /// On: the dyno the client's cookie names, if it names one; the response names the dyno
    /// that served when that is another.
    On(Option<String>),
}

/// Marks a request whose head had both `Content-Length` and `Transfer-Encoding` (hyper keeps
/// only the latter): refused as Vegur and nginx refuse it, since a parser in front or behind
/// may have read the other length (request smuggling).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AmbiguousLength;

impl Affinity {
    /// The dyno the client's cookie names, when affinity is on.
    pub(crate) fn named(&self) -> Option<&str> {
        match self {
            Affinity::On(named) => named.as_deref(),
            Affinity::Off => None,
        }
    }
}

/// Reads `req`'s head from `client`; its line goes into `emitter` when written. `affinity`:
/// whether session affinity is on (then the client's cookie names its dyno).
pub(crate) fn read(
    mut req: Request<Incoming>,
    client: Client,
    emitter: &Emitter,
    affinity: bool,
) -> Head {
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let upgrade = headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // CONNECT's target is an authority, with no path.
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
    let target = target::request_host(parts.version, &parts.uri, &parts.headers);
    let host = match &target {
        Ok(host) => host.clone(),
        Err(_) => target::raw_host(&parts.uri, &parts.headers),
    };
    let refusal = refusal(&parts, &path, target.is_ok());
    let (request_id, fwd) = headers::forward_request(&mut parts.headers, client, start_ms, upgrade);
    let line = RouterLine {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        host: host.clone(),
        request_id,
        fwd,
        protocol: if client.tls { "https" } else { "http" }.to_owned(),
        ..RouterLine::default()
    };
    let recorder = Recorder::new(line, emitter.clone());
    let version = parts.version;
    if let Some(error) = refusal {
        return Head {
            recorder,
            version,
            admitted: Err(error),
        };
    }
    // The dyno sees the host the request is for (the target's authority, when it has one).
    if !host.is_empty()
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(header::HOST, v);
    }
    parts.version = Version::HTTP_11;
    let affinity = if affinity {
        Affinity::On(headers::affinity(&parts.headers))
    } else {
        Affinity::Off
    };
    let prefer = affinity.named().map(str::to_owned);
    Head {
        recorder,
        version,
        admitted: Ok(Admitted {
            outbound: Outbound {
                parts,
                path,
                body,
                affinity: prefer,
            },
            client_upgrade,
            affinity,
        }),
    }
}

/// Why a request is answered here without a dyno, if it is: `CONNECT` (405), a head past
/// Vegur's limits (H25), a bad host or an `Expect` other than `100-continue` (H26).
fn refusal(parts: &http::request::Parts, path: &str, host_ok: bool) -> Option<ProxyError> {
    let expect = parts
        .headers
        .get(header::EXPECT)
        .map(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if parts.method == Method::CONNECT {
        Some(ProxyError::MethodNotAllowed)
    } else if parts.extensions.get::<AmbiguousLength>().is_some() {
        Some(ProxyError::RequestError)
    } else if headers::check_limits(path, parts.method.as_str(), &parts.headers).is_some() {
        Some(ProxyError::HttpRestriction)
    } else if !host_ok || expect == Some(false) {
        Some(ProxyError::RequestError)
    } else {
        None
    }
}

/// The router line of a head refused before it could be read (answered and closed, before any
/// handler saw it): `error` (H26 for a malformed head, H25 past a limit), with what a lenient
/// scan of the head's first bytes finds.
pub(crate) fn malformed_line(raw: &RawHead<'_>, client: Client, error: ProxyError) -> RouterLine {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let request_id = match raw.request_id {
        Some(id) if headers::valid_request_id(id) => text(id),
        _ => headers::new_request_id(),
    };
    RouterLine {
        method: text(raw.method),
        path: text(raw.target),
        host: raw.host.map(text).unwrap_or_default(),
        request_id,
        fwd: client.ip.to_string(),
        protocol: if client.tls { "https" } else { "http" }.to_owned(),
        ..RouterLine::error(error, "", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_head_s_line_names_what_it_can() {
        let client = Client {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            tls: false,
            port: 80,
        };
        let raw = RawHead::scan(
            b"POST /x HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: aaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
        let line = malformed_line(&raw, client, ProxyError::RequestError).to_string();
        assert_eq!(
            line,
            "at=error code=H26 desc=\"Request Error\" method=POST path=\"/x\" host=a.test \
             request_id=aaaaaaaaaaaaaaaaaaaaaaaa fwd=\"10.0.0.1\" dyno= connect= service= \
             status=400 bytes=0 protocol=http"
        );
        // A request id Vegur would not keep is replaced.
        let raw = RawHead::scan(b"GET / HTTP/1.1\r\nX-Request-Id: short\r\n");
        let line = malformed_line(&raw, client, ProxyError::RequestError);
        assert_ne!(line.request_id, "short");
        assert_eq!(line.request_id.len(), 36);
    }
}
