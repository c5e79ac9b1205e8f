//! `GET /loki/api/v1/tail?query={…}&start=…&limit=…` over WebSocket, as Grafana's live
//! view uses it: the query's recent lines first, then each live line the selector and
//! filters keep, as `{"streams":[{"stream":{…},"values":[["ns","line"]]}]}` messages.
//! Lines the tail's bounded queue dropped are told in `dropped_entries`.
//!
//! The query is checked (parsed, planned against the key) before the upgrade, so a bad one is
//! an ordinary 400 or 403; an app has at most 100 tails open (429 past it). The live part subscribes to the app's channel like any tail
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
/// Tails one app may have open at once (as its log sessions), so that one tenant's key cannot
/// hold every connection of the API.
pub(super) const MAX_TAILS_PER_APP: usize = 100;

/// Open tails by app.
#[derive(Debug, Default)]
pub(super) struct TailSlots(std::sync::Mutex<HashMap<String, usize>>);

/// One open tail's place; given back when dropped.
#[derive(Debug)]
pub(super) struct TailSlot {
    slots: Arc<TailSlots>,
    app: String,
}

impl TailSlots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a tail of `app`, unless it has `max` open.
    pub(super) fn try_take(self: &Arc<Self>, app: &str, max: usize) -> Option<TailSlot> {
        let mut open = self.lock();
        let n = open.entry(app.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(TailSlot {
            slots: self.clone(),
            app: app.to_owned(),
        })
    }

    /// Tails open for `app`.
    #[cfg(test)]
    pub(super) fn open(&self, app: &str) -> usize {
        self.lock().get(app).copied().unwrap_or(0)
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(n) = open.get_mut(&self.app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.app);
            }
        }
    }
}

/// Checks the request and the query, then answers 101 and tails on the upgraded connection.
pub(super) fn upgrade(
    service: Arc<QueryService>,
    slots: &Arc<TailSlots>,
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
    let Some(slot) = slots.try_take(&plan.app, MAX_TAILS_PER_APP) else {
        return super::text_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("this app has {MAX_TAILS_PER_APP} tails open, its limit; close one"),
        );
    };
    // Subscribed before the history is read: no line is missed at the seam, and one in both
    // is sent once (by its `seq`).
    let subscription = channel.subscribe("tail", "loki", LineFilter::default(), TAIL_QUEUE);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let history = {
            let (service, plan) = (service.clone(), plan.clone());
            tokio::task::spawn_blocking(move || {
                eval::log_lines(
                    &service,
                    &plan,
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
    history: Vec<LogLine>,
    subscription: logplex::Subscription,
    plan: &Plan,
    filter: &Query,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The history's newest line: a live line up to it was in the history already (the queue
    // was attached before the history was read), and is not sent twice.
    let seen = history.iter().map(|l| l.seq).max().unwrap_or(0);
    // Oldest first, as Loki's tail sends them.
    let history = eval::group(&plan.app, history);
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
        let fresh = |l: &&LogLine| l.seq == 0 || l.seq > seen;
        for line in lines
            .iter()
            .filter(fresh)
            .filter(|l| keeps(plan, filter, l))
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_has_its_own_tail_places_given_back_when_a_tail_ends() {
        let slots = Arc::new(TailSlots::default());
        let a1 = slots.try_take("shop", 2);
        let a2 = slots.try_take("shop", 2);
        assert!(a1.is_some() && a2.is_some());
        assert!(slots.try_take("shop", 2).is_none());
        assert!(
            slots.try_take("bank", 2).is_some(),
            "another app is not held up"
        );
        drop(a1);
        assert_eq!(slots.open("shop"), 1);
        assert!(slots.try_take("shop", 2).is_some());
        drop(a2);
        assert_eq!(slots.open("bank"), 0);
    }
}
