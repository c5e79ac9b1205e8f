//! `GET /loki/api/v1/tail?query={…}&start=…&limit=…` over WebSocket, as Grafana's live
//! view uses it: the query's recent lines first, then each live line the selector and
//! filters keep, as `{"streams":[{"stream":{…},"values":[["ns","line"]]}]}` messages.
//! Lines the tail's bounded queue dropped are told in `dropped_entries`.
//!
//! The query is checked (parsed, planned against the key) before the upgrade, so a bad one is
//! an ordinary 400 or 403. The live part subscribes to the app's channel like any tail
//! session; the filter is the query engine's own, applied to each line with its attributes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use logplex::{Body, LineFilter, LogLine, Taken, api_full};
use serde_json::json;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::eval::{self, LogOptions, Stream};
use super::logql::Expr;
use super::translate::{self, Plan};
use super::{DEFAULT_LIMIT, MAX_LIMIT, bad, eval_error, parse_time, stream_json};
use crate::Query;
use crate::exec::extract::LineAttributes;
use crate::service::QueryService;

/// Lines a tail's queue holds; past it the oldest are dropped and counted.
const TAIL_QUEUE: usize = 4096;
/// Lines sent in one message at most.
const CHUNK: usize = 512;
/// How long one tail stays open.
const TAIL_MAX: Duration = Duration::from_secs(3600);

/// Checks the request and the query, then answers 101 and tails on the upgraded connection.
pub(super) fn upgrade(
    service: Arc<QueryService>,
    mut req: Request<Incoming>,
    p: &HashMap<String, String>,
    allowed: Option<String>,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return bad("tail is a WebSocket: connect with Upgrade: websocket");
    };
    if !upgrade {
        return bad("tail is a WebSocket: connect with Upgrade: websocket");
    }
    let Some(text) = p.get("query").filter(|q| !q.trim().is_empty()) else {
        return bad("the query parameter is missing");
    };
    let log = match Expr::parse(text) {
        Ok(Expr::Log(l)) => l,
        Ok(_) => return bad("tail takes a log query, not a metric query"),
        Err(e) => return bad(&e.to_string()),
    };
    let plan = match translate::plan(&log, allowed.as_deref()) {
        Ok(p) => p,
        Err(e) => return eval_error(e.into()),
    };
    let filter = match Query::parse(&plan.filter) {
        Ok(q) => q,
        Err(e) => return bad(&format!("the query does not translate: {e}")),
    };
    let Some(channel) = service.router().channel(&plan.app) else {
        return bad(&format!("there is no app named {:?}", plan.app));
    };
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if l <= MAX_LIMIT => l,
        Some(_) => return bad(&format!("limit must be a number up to {MAX_LIMIT}")),
    };
    let now = super::now_ms();
    let start = match p.get("start").map(|s| parse_time(s)) {
        None => now - 3_600_000,
        Some(Some(t)) => t,
        Some(None) => return bad("invalid parameter start"),
    };
    // Subscribed before the history is read: a line may come twice at the seam, never be
    // missed.
    let subscription = channel.subscribe("tail", "loki", LineFilter::default(), TAIL_QUEUE);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let history = {
            let service = service.clone();
            tokio::task::spawn_blocking(move || {
                eval::streams(
                    &service,
                    &log,
                    allowed.as_deref(),
                    LogOptions {
                        limit,
                        forward: false,
                        since: start,
                        until: super::now_ms() + 1,
                    },
                )
            })
            .await
        };
        let history = match history {
            Ok(Ok(h)) => h,
            _ => Vec::new(),
        };
        tail(ws, history, subscription, &plan, &filter).await;
    });
    let mut r = api_full(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    r.headers_mut().remove(header::CONTENT_TYPE);
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

/// Whether `line` passes the query's filter and regular expressions.
fn keeps(plan: &Plan, filter: &Query, line: &LogLine) -> bool {
    filter
        .filter
        .as_ref()
        .is_none_or(|p| p.matches_line(&line.message, &LineAttributes(line)))
        && plan.passes(&String::from_utf8_lossy(&line.message))
}

async fn tail<S>(
    mut ws: WebSocketStream<S>,
    mut history: Vec<Stream>,
    subscription: logplex::Subscription,
    plan: &Plan,
    filter: &Query,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Oldest first, as Loki's tail sends them.
    for s in &mut history {
        s.values.reverse();
    }
    if !history.is_empty() {
        let message = json!({
            "streams": history.iter().map(stream_json).collect::<Vec<_>>(),
        });
        if ws.send(Message::text(message.to_string())).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + TAIL_MAX;
    loop {
        let taken = tokio::select! {
            t = subscription.queue().take(CHUNK) => t,
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = ws.close(None).await;
                return;
            }
        };
        let Some(Taken { loss, lines }) = taken else {
            let _ = ws.close(None).await;
            return;
        };
        let mut streams: std::collections::BTreeMap<(Vec<u8>, Vec<u8>), Stream> =
            std::collections::BTreeMap::new();
        for line in lines.iter().filter(|l| keeps(plan, filter, l)) {
            let key = (line.source.to_vec(), line.process.to_vec());
            streams
                .entry(key)
                .or_insert_with(|| Stream {
                    labels: eval::stream_labels(&plan.app, line),
                    values: Vec::new(),
                })
                .values
                .push((
                    line.time.as_micros().saturating_mul(1000),
                    String::from_utf8_lossy(&line.message).into_owned(),
                ));
        }
        if streams.is_empty() && loss.is_none() {
            continue;
        }
        let dropped = loss.map(|l| {
            json!([{ "labels": { "app": plan.app }, "timestamp": (l.since.as_micros().saturating_mul(1000)).to_string() }])
        });
        let message = json!({
            "streams": streams.values().map(stream_json).collect::<Vec<_>>(),
            "dropped_entries": dropped,
        });
        if ws.send(Message::text(message.to_string())).await.is_err() {
            return;
        }
    }
}
