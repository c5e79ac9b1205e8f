//! Log sessions, as the Platform API has them: `POST /apps/{app}/log-sessions` with
//! `{dyno, lines, source, tail}` (and our `filter`, a logfmt predicate) returns a
//! `logplex_url` that carries its own secret; `GET` on it streams the history, then, with
//! `tail`, live lines. The stream is Server-Sent Events when the client asks for
//! `text/event-stream`, one JSON object per line for `application/x-ndjson`, and plain
//! chunked text otherwise (Heroku's older clients).
//!
//! An app has at most `max_sessions_per_app` sessions not yet expired (429 past it), a filter
//! is at most `max_filter_bytes` long (422), and the `logplex_url` is built from the configured
//! public URL or the address the client connected to, never from the request's `Host`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::conn::LocalAddr;
use crate::api::limits::Refusal;
use crate::api::response::{Body, ChannelBody, error, json, no_such_app};
use crate::api::{ApiState, read_json};
use crate::filter::LineFilter;
use crate::line::LogLine;
use crate::platform::PlatformEvent;
use crate::router::{Channel, Subscription, Taken};
use crate::time::{TimeFormatCache, Timestamp};

/// Lines sent in one chunk of the stream at most.
const CHUNK_LINES: usize = 512;

#[derive(Clone, Debug)]
struct Session {
    /// The app's id, not its name: a session outlives nothing of a deleted app, even when
    /// another app takes the name.
    app_id: String,
    lines: usize,
    tail: bool,
    source: Option<String>,
    dyno: Option<String>,
    filter: Option<String>,
    created: Instant,
}

/// Log sessions not yet expired.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<SessionTable>);

#[derive(Debug, Default)]
struct SessionTable {
    by_id: HashMap<String, Session>,
    /// Sessions of each app (those with any).
    per_app: HashMap<String, usize>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionTable> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets sessions older than `ttl`.
    pub fn expire(&self, ttl: Duration) {
        let table = &mut *self.lock();
        let per_app = &mut table.per_app;
        table.by_id.retain(|_, s| {
            let keep = s.created.elapsed() < ttl;
            if !keep && let Some(n) = per_app.get_mut(&s.app_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_app.remove(&s.app_id);
                }
            }
            keep
        });
    }

    /// Sessions not yet expired, of every app.
    pub fn pending(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Keeps `session` as `id`, unless its app has `max` already.
    fn try_insert(&self, id: String, session: Session, max: usize) -> bool {
        let table = &mut *self.lock();
        let n = table.per_app.entry(session.app_id.clone()).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        table.by_id.insert(id, session);
        true
    }

    fn get(&self, id: &str, ttl: Duration) -> Option<Session> {
        self.lock()
            .by_id
            .get(id)
            .filter(|s| s.created.elapsed() < ttl)
            .cloned()
    }
}

/// `lines` may be a number or a string of one (Logplex's `"num": "100"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lines {
    N(u64),
    S(String),
}

#[derive(Deserialize)]
struct CreateSession {
    dyno: Option<String>,
    lines: Option<Lines>,
    source: Option<String>,
    tail: Option<bool>,
    filter: Option<String>,
}

fn invalid(message: &str) -> Response<Body> {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
}

fn filter_of(s: &Session) -> Result<LineFilter, String> {
    let mut f = LineFilter::default();
    if let Some(source) = s.source.as_deref().filter(|v| !v.is_empty()) {
        f = f.source(source);
    }
    if let Some(dyno) = s.dyno.as_deref().filter(|v| !v.is_empty()) {
        f = f.dyno(dyno);
    }
    if let Some(p) = s.filter.as_deref().filter(|v| !v.trim().is_empty()) {
        f = f.predicate(
            p.parse()
                .map_err(|e: logfmt::PredicateError| e.to_string())?,
        );
    }
    Ok(f)
}

/// `POST /apps/{app}/log-sessions`.
pub(crate) async fn create(
    state: &Arc<ApiState>,
    app: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(app_id) = state.router.app(app).map(|a| a.id) else {
        return no_such_app();
    };
    let base = base_url(state, &req);
    let body: CreateSession = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let max = state.router.config().history_lines;
    let lines = match body.lines {
        None => 100,
        Some(Lines::N(n)) => n,
        Some(Lines::S(s)) => match s.trim().parse() {
            Ok(n) => n,
            Err(_) => return invalid("lines must be a number."),
        },
    };
    let max_filter = state.config.max_filter_bytes;
    if let Some(filter) = body.filter.as_deref()
        && filter.len() > max_filter
    {
        state.limits.refusals.add(Refusal::FilterTooLong);
        return invalid(&format!(
            "filter is {} bytes; the limit is {max_filter} bytes (--max-filter-bytes).",
            filter.len()
        ));
    }
    let session = Session {
        app_id,
        lines: (lines as usize).min(max),
        tail: body.tail.unwrap_or(false),
        source: body.source,
        dyno: body.dyno,
        filter: body.filter,
        created: Instant::now(),
    };
    if let Err(e) = filter_of(&session) {
        return invalid(&format!("filter is not a logfmt predicate: {e}"));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let max = state.config.max_sessions_per_app;
    if !state.sessions.try_insert(id.clone(), session, max) {
        state.limits.refusals.add(Refusal::SessionsPerApp);
        return too_many_sessions(max, state.config.session_ttl);
    }
    let now = Timestamp::now();
    json(
        StatusCode::CREATED,
        &json!({
            "id": id,
            "logplex_url": format!("{base}/log-sessions/{id}"),
            "created_at": now,
            "updated_at": now,
        }),
    )
}

/// Where clients reach the API: the configured public URL, else the address this client
/// connected to (the listener's own; never the request's `Host`, which the client chooses).
fn base_url(state: &ApiState, req: &Request<Incoming>) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = if state.tls { "https" } else { "http" };
    match req.extensions().get::<LocalAddr>() {
        Some(LocalAddr(addr)) => format!("{scheme}://{addr}"),
        None => format!("{scheme}://localhost"),
    }
}

/// 429 for an app with as many sessions as it may have.
fn too_many_sessions(max: usize, ttl: Duration) -> Response<Body> {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit",
        &format!(
            "This app has {max} log sessions that have not expired, its limit \
             (--max-sessions-per-app); a session expires {} s after it was made.",
            ttl.as_secs_f64()
        ),
    );
    if let Ok(v) = header::HeaderValue::from_str(&ttl.as_secs().max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// How the stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    EventStream,
    NdJson,
}

/// `GET /log-sessions/{id}`.
pub(crate) fn stream(state: &Arc<ApiState>, id: &str, headers: &HeaderMap) -> Response<Body> {
    let session = state.sessions.get(id, state.config.session_ttl);
    let Some(session) = session else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Log session not found or expired.",
        );
    };
    let Some(channel) = state.router.channel_by_id(&session.app_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Log session not found or expired.",
        );
    };
    let Ok(filter) = filter_of(&session) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Log session not found or expired.",
        );
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if accept.contains("text/event-stream") {
        Format::EventStream
    } else if accept.contains("application/x-ndjson") || accept.contains("application/json") {
        Format::NdJson
    } else {
        Format::Text
    };
    // An EventSource reconnecting says where it was: resume right after that line.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (history, subscription) = if session.tail {
        match channel.tail(
            session.lines,
            resume,
            filter,
            state.router.config().tail_buffer,
        ) {
            Ok((h, s)) => (h, Some(s)),
            Err(e) => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit",
                    &format!("Too many tail sessions: {e}; close one or retry later."),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return r;
            }
        }
    } else if let Some(seq) = resume {
        (channel.history_after(seq, &filter), None)
    } else {
        (channel.history(session.lines, &filter), None)
    };
    let (tx, body) = ChannelBody::new(8);
    let writer = StreamWriter {
        format,
        tx,
        time: TimeFormatCache::default(),
    };
    let config = (state.config.keepalive, state.config.tail_max);
    tokio::spawn(writer.run(history, subscription, channel, config));
    let content_type = match format {
        Format::Text => "text/plain; charset=utf-8",
        Format::EventStream => "text/event-stream",
        Format::NdJson => "application/x-ndjson",
    };
    let mut r = Response::new(http_body_util::BodyExt::boxed(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    r
}

/// How long an EventSource waits before reconnecting (SSE `retry:`), in milliseconds.
const RETRY_MS: u32 = 1000;

struct StreamWriter {
    format: Format,
    tx: mpsc::Sender<Bytes>,
    time: TimeFormatCache,
}

impl StreamWriter {
    async fn run(
        mut self,
        history: Vec<LogLine>,
        subscription: Option<Subscription>,
        channel: Arc<Channel>,
        (keepalive, tail_max): (Duration, Duration),
    ) {
        if self.format == Format::EventStream {
            let retry = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
            if self.tx.send(retry).await.is_err() {
                return;
            }
        }
        for chunk in history.chunks(CHUNK_LINES) {
            if !self.send_lines(chunk).await {
                return;
            }
        }
        let Some(sub) = subscription else {
            return;
        };
        let deadline = tokio::time::Instant::now() + tail_max;
        loop {
            let taken = tokio::select! {
                t = sub.queue().take(CHUNK_LINES) => t,
                _ = tokio::time::sleep(keepalive) => {
                    if !self.keepalive().await {
                        return;
                    }
                    continue;
                }
                _ = self.tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
            };
            let Some(Taken { loss, mut lines }) = taken else {
                return;
            };
            if let Some(loss) = loss {
                let event = PlatformEvent::TailOverflow {
                    dropped: loss.dropped,
                    since: loss.since,
                };
                lines.insert(0, channel.emit_to_reader(event));
            }
            if !self.send_lines(&lines).await {
                return;
            }
        }
    }

    async fn keepalive(&mut self) -> bool {
        let chunk: &'static [u8] = match self.format {
            Format::EventStream => b": keep-alive\n\n",
            // Plain text and NDJSON have no comment syntax; the client's going is seen when
            // the next lines are written.
            Format::Text | Format::NdJson => return !self.tx.is_closed(),
        };
        self.tx.send(Bytes::from_static(chunk)).await.is_ok()
    }

    async fn send_lines(&mut self, lines: &[LogLine]) -> bool {
        if lines.is_empty() {
            return true;
        }
        let mut out = Vec::with_capacity(lines.iter().map(|l| l.size() + 64).sum());
        let mut shown = Vec::with_capacity(256);
        for line in lines {
            match self.format {
                Format::Text => {
                    line.write_display_cached(&mut out, &mut self.time);
                    out.push(b'\n');
                }
                Format::EventStream => {
                    shown.clear();
                    line.write_display_cached(&mut shown, &mut self.time);
                    // The line's place in the app's stream, to resume from; the router's own
                    // notices (an L11 made here) have none, and leave the last id as it is.
                    if line.seq > 0 {
                        out.extend_from_slice(b"id: ");
                        crate::framing::write_decimal(&mut out, line.seq as usize);
                        out.push(b'\n');
                    }
                    for part in shown.split(|&b| b == b'\n') {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(part.strip_suffix(b"\r").unwrap_or(part));
                        out.push(b'\n');
                    }
                    out.push(b'\n');
                }
                Format::NdJson => {
                    let v = json!({
                        "seq": line.seq,
                        "time": line.time,
                        "received": line.received,
                        "source": String::from_utf8_lossy(&line.source),
                        "process": String::from_utf8_lossy(&line.process),
                        "facility": line.facility,
                        "severity": line.severity,
                        "message": String::from_utf8_lossy(&line.message),
                    });
                    out.extend_from_slice(v.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
        }
        self.tx.send(Bytes::from(out)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(app: &str) -> Session {
        Session {
            app_id: app.to_owned(),
            lines: 100,
            tail: false,
            source: None,
            dyno: None,
            filter: None,
            created: Instant::now(),
        }
    }

    #[test]
    fn each_app_has_its_own_cap_and_expired_sessions_give_their_place_back() {
        let sessions = Sessions::default();
        assert!(sessions.try_insert("a1".into(), session("shop"), 2));
        assert!(sessions.try_insert("a2".into(), session("shop"), 2));
        assert!(!sessions.try_insert("a3".into(), session("shop"), 2));
        assert!(sessions.try_insert("b1".into(), session("blog"), 2));
        assert_eq!(sessions.pending(), 3);
        sessions.expire(Duration::ZERO);
        assert_eq!(sessions.pending(), 0);
        assert!(sessions.lock().per_app.is_empty(), "no app is remembered");
        assert!(sessions.try_insert("a4".into(), session("shop"), 2));
    }
}
