//! A Loki-compatible read API, so that Grafana's Loki data source reads paas: `GET
//! /loki/api/v1/query_range`, `/query`, `/labels`, `/label/{name}/values`, `/series`, and
//! `/tail` over WebSocket, answered in the Loki HTTP API's shapes. LogQL (a subset, see
//! `logql.rs`) is translated onto the query engine (`translate.rs`), never run by a second one.
//!
//! Keys: Grafana sends the API key as Basic auth's password or as a Bearer token. An app key
//! reads its own app (a selector without `app` means it); an operator key reads any app, one
//! a query, named in the selector. A malformed, oversized or hostile query is a 400 with the
//! reason as text (as Loki answers); a selector naming an app the key may not read, a 403.

mod eval;
mod logql;
mod tail;
mod translate;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use logplex::{Body, Caller, KeyScope, PathResource, Timestamp, api_full, api_json};
use serde_json::{Value, json};

use crate::service::{QueryService, params};
pub use eval::{Answer, At, EvalError, LogOptions, Stream};
pub use logql::{Expr, LogqlError};

/// The most lines a log query returns (Loki's `max_entries_limit_per_query`).
pub const MAX_LIMIT: usize = 5000;
/// The largest form body a POST may carry.
const MAX_FORM: usize = 64 * 1024;
/// Lines a log query returns when it does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// The Loki API, mounted at `/loki`.
#[derive(Clone, Debug)]
pub struct LokiApi(Arc<QueryService>, Arc<tail::TailSlots>);

impl LokiApi {
    /// The API over the query engine's `service`.
    pub fn new(service: Arc<QueryService>) -> Self {
        LokiApi(service, Arc::default())
    }
}

impl PathResource for LokiApi {
    fn handle(
        &self,
        req: Request<Incoming>,
        caller: Option<Caller>,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(self.clone().serve(req, caller, rest))
    }
}

/// A 400 (or other) with the message as text, as Loki answers errors.
fn text_error(status: StatusCode, message: &str) -> Response<Body> {
    api_full(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn bad(message: &str) -> Response<Body> {
    text_error(StatusCode::BAD_REQUEST, message)
}

fn unauthorized() -> Response<Body> {
    let mut r = text_error(
        StatusCode::UNAUTHORIZED,
        "an API key is needed: Basic auth with the key as password, or Authorization: Bearer KEY",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"paas\""),
    );
    r
}

fn eval_error(e: EvalError) -> Response<Body> {
    match e {
        EvalError::Invalid(m) => bad(&m),
        EvalError::Forbidden(m) => text_error(StatusCode::FORBIDDEN, &m),
        EvalError::Internal(m) => {
            tracing::error!(error = %m, "loki query");
            text_error(StatusCode::INTERNAL_SERVER_ERROR, &m)
        }
    }
}

fn success(data: Value) -> Response<Body> {
    api_json(
        StatusCode::OK,
        &json!({ "status": "success", "data": data }),
    )
}

/// Reads a Loki time: integer nanoseconds (seconds when 10 digits or fewer), float seconds,
/// or RFC 3339; in milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(if text.trim_start_matches('-').len() <= 10 {
            n.checked_mul(1000)?
        } else {
            n / 1_000_000
        });
    }
    if let Ok(f) = text.parse::<f64>() {
        return (f.is_finite() && f.abs() < 1e13).then(|| (f * 1000.0).round() as i64);
    }
    Timestamp::parse_rfc3339(text.as_bytes())
        .ok()
        .map(|t| t.as_micros().div_euclid(1000))
}

/// Reads a step: a duration (`15s`, `1m`) or float seconds; in milliseconds.
fn parse_step(text: &str) -> Option<i64> {
    if let Some(ms) = logql::prometheus_duration_ms(text.trim()) {
        return (ms > 0).then_some(ms);
    }
    let f = text.trim().parse::<f64>().ok()?;
    (f.is_finite() && f > 0.0 && f < 1e9).then(|| (f * 1000.0).round() as i64)
}

fn now_ms() -> i64 {
    Timestamp::now().as_micros().div_euclid(1000)
}

/// A parameter read with `read`, or `default` when absent; a 400 naming it when it does not
/// read.
fn param<T>(
    p: &std::collections::HashMap<String, String>,
    name: &str,
    read: impl Fn(&str) -> Option<T>,
    default: T,
) -> Result<T, EvalError> {
    match p.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => {
            read(v).ok_or_else(|| EvalError::Invalid(format!("invalid parameter {name}: {v:?}")))
        }
    }
}

impl LokiApi {
    async fn serve(
        self,
        req: Request<Incoming>,
        caller: Option<Caller>,
        rest: Vec<String>,
    ) -> Response<Body> {
        let Some(caller) = caller else {
            return unauthorized();
        };
        let allowed = match caller.scope {
            KeyScope::Operator => None,
            KeyScope::App(a) => Some(a),
        };
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        if rest == ["api", "v1", "tail"] && req.method() == Method::GET {
            let p = params(req.uri().query());
            return tail::upgrade(self.0.clone(), &self.1, req, &p, allowed);
        }
        // Parameters in the URL, or (POST, as Loki also takes them) a form body.
        let mut form = req.uri().query().unwrap_or("").to_owned();
        match *req.method() {
            Method::GET => {}
            Method::POST => match logplex::read_body(req, MAX_FORM).await {
                Ok(body) => {
                    form.push('&');
                    form.push_str(&String::from_utf8_lossy(&body));
                }
                Err(r) => return r,
            },
            _ => return text_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
        }
        let p = params(Some(&form));
        match rest.as_slice() {
            ["api", "v1", "query_range"] => self.query(&p, allowed, true).await,
            ["api", "v1", "query"] => self.query(&p, allowed, false).await,
            ["api", "v1", "labels"] => success(json!(translate::STREAM_LABELS)),
            ["api", "v1", "label", name, "values"] => self.label_values(name, &p, allowed).await,
            ["api", "v1", "series"] => {
                let matches = all_params(Some(&form), "match[]");
                self.series(matches, &p, allowed).await
            }
            ["api", "v1", "tail"] => bad("tail is a WebSocket: GET with Upgrade: websocket"),
            ["api", "v1", "status", "buildinfo"] => success(json!({
                "version": env!("CARGO_PKG_VERSION"), "revision": "", "branch": "",
                "goVersion": "", "buildUser": "", "buildDate": ""
            })),
            _ => text_error(StatusCode::NOT_FOUND, "no such Loki endpoint"),
        }
    }

    async fn query(
        &self,
        p: &std::collections::HashMap<String, String>,
        allowed: Option<String>,
        range: bool,
    ) -> Response<Body> {
        let Some(text) = p.get("query").filter(|q| !q.trim().is_empty()) else {
            return bad("the query parameter is missing");
        };
        let expr = match Expr::parse(text) {
            Ok(e) => e,
            Err(e) => return bad(&e.to_string()),
        };
        let (at, log) = match when(p, range) {
            Ok(w) => w,
            Err(e) => return eval_error(e),
        };
        let service = self.0.clone();
        let answered = tokio::task::spawn_blocking(move || {
            eval::evaluate(&service, &expr, allowed.as_deref(), at, log)
        })
        .await;
        match answered {
            Ok(Ok(answer)) => success(answer_json(&answer, at)),
            Ok(Err(e)) => eval_error(e),
            Err(e) => eval_error(EvalError::Internal(e.to_string())),
        }
    }

    async fn label_values(
        &self,
        name: &str,
        p: &std::collections::HashMap<String, String>,
        allowed: Option<String>,
    ) -> Response<Body> {
        let apps: Vec<String> = match &allowed {
            Some(a) => vec![a.clone()],
            None => self.0.app_names(),
        };
        match name {
            "app" => success(json!(apps)),
            "source" | "process" => {
                let selector = p.get("query").cloned().filter(|q| !q.trim().is_empty());
                let matches = match selector {
                    Some(q) => vec![q],
                    None => apps
                        .iter()
                        .take(100)
                        .map(|a| format!("{{app={}}}", translate::quote(a)))
                        .collect(),
                };
                match self.series_sets(matches, p, allowed).await {
                    Ok(sets) => {
                        let mut values: Vec<String> = sets
                            .into_iter()
                            .filter_map(|mut s| s.remove(name))
                            .collect();
                        values.sort();
                        values.dedup();
                        success(json!(values))
                    }
                    Err(e) => eval_error(e),
                }
            }
            _ => success(json!([])),
        }
    }

    async fn series(
        &self,
        matches: Vec<String>,
        p: &std::collections::HashMap<String, String>,
        allowed: Option<String>,
    ) -> Response<Body> {
        if matches.is_empty() {
            return bad("at least one match[] selector is needed");
        }
        match self.series_sets(matches, p, allowed).await {
            Ok(sets) => success(json!(sets)),
            Err(e) => eval_error(e),
        }
    }

    /// The label sets of the streams each selector matches in the window.
    async fn series_sets(
        &self,
        matches: Vec<String>,
        p: &std::collections::HashMap<String, String>,
        allowed: Option<String>,
    ) -> Result<Vec<BTreeMap<String, String>>, EvalError> {
        if matches.len() > logql::MAX_MATCHERS * 8 {
            return Err(EvalError::Invalid("too many match[] selectors".to_owned()));
        }
        let now = now_ms();
        let end = param(p, "end", parse_time, now)?;
        let start = param(p, "start", parse_time, end - 6 * 3_600_000)?;
        let mut logs = Vec::new();
        for m in &matches {
            match Expr::parse(m) {
                Ok(Expr::Log(l)) => logs.push(l),
                Ok(_) => {
                    return Err(EvalError::Invalid(
                        "match[] takes a stream selector {…}".to_owned(),
                    ));
                }
                Err(e) => return Err(EvalError::Invalid(e.to_string())),
            }
        }
        let service = self.0.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let mut sets = std::collections::BTreeSet::new();
            for log in &logs {
                let counts = eval::evaluate(
                    &service,
                    &Expr::Vector {
                        op: logql::VecOp::Sum,
                        by: Some(translate::STREAM_LABELS.map(str::to_owned).to_vec()),
                        inner: Box::new(Expr::Range {
                            func: logql::RangeFn::CountOverTime,
                            log: log.clone(),
                            range_ms: (end - start).max(1000),
                            by: None,
                        }),
                    },
                    allowed.as_deref(),
                    At::Instant { time: end },
                    LogOptions {
                        limit: 1,
                        forward: false,
                        since: start,
                        until: end,
                    },
                )?;
                if let Answer::Vector(series) = counts {
                    sets.extend(series.into_iter().map(|s| s.labels));
                }
            }
            Ok::<_, EvalError>(sets.into_iter().collect())
        })
        .await;
        answered.map_err(|e| EvalError::Internal(e.to_string()))?
    }
}

/// When a query is evaluated and, for a log query, which lines it returns: `start`, `end`,
/// `step` (a range query; the start aligned down to the step, as Loki does), or `time` (an
/// instant query); `limit` and `direction`.
fn when(
    p: &std::collections::HashMap<String, String>,
    range: bool,
) -> Result<(At, LogOptions), EvalError> {
    let invalid = |m: String| EvalError::Invalid(m);
    let limit = param(p, "limit", |v| v.parse::<usize>().ok(), DEFAULT_LIMIT)?;
    if limit > MAX_LIMIT {
        return Err(invalid(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {MAX_LIMIT})"
        )));
    }
    let forward = match p.get("direction").map(String::as_str) {
        None | Some("" | "backward" | "BACKWARD") => false,
        Some("forward" | "FORWARD") => true,
        Some(d) => {
            return Err(invalid(format!(
                "invalid direction {d:?}: forward or backward"
            )));
        }
    };
    let now = now_ms();
    if !range {
        let time = param(p, "time", parse_time, now)?;
        let log = LogOptions {
            limit,
            forward,
            since: time - 3_600_000,
            until: time.saturating_add(1),
        };
        return Ok((At::Instant { time }, log));
    }
    let end = param(p, "end", parse_time, now)?;
    let start = param(p, "start", parse_time, end - 3_600_000)?;
    if end < start {
        return Err(invalid(
            "the end timestamp must not be before the start time".to_owned(),
        ));
    }
    let default_step = ((end - start) / 250).max(1000) / 1000 * 1000;
    let step = param(p, "step", parse_step, default_step)?;
    let at = At::Range {
        start: start.div_euclid(step) * step,
        end,
        step,
    };
    let log = LogOptions {
        limit,
        forward,
        since: start,
        until: end.saturating_add(1),
    };
    Ok((at, log))
}

/// Every value of a repeated parameter (`match[]`).
fn all_params(query: Option<&str>, name: &str) -> Vec<String> {
    let encoded = name.replace('[', "%5B").replace(']', "%5D");
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name || k.eq_ignore_ascii_case(&encoded)).then(|| params(Some(&format!("v={v}"))))
        })
        .filter_map(|mut m| m.remove("v"))
        .collect()
}

/// A sample's value as Prometheus writes it.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// The `data` of a query's answer, in the Loki HTTP API's shape.
pub fn answer_json(answer: &Answer, at: At) -> Value {
    match answer {
        Answer::Streams(streams) => json!({
            "resultType": "streams",
            "result": streams.iter().map(stream_json).collect::<Vec<_>>(),
            "stats": {},
        }),
        Answer::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": s.labels,
                "values": s.points.iter().map(|(t, v)| json!([seconds(*t), value_text(*v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "stats": {},
        }),
        Answer::Vector(series) => {
            let time = match at {
                At::Instant { time } => time,
                At::Range { end, .. } => end,
            };
            json!({
                "resultType": "vector",
                "result": series.iter().filter_map(|s| {
                    let v = s.points.values().next_back()?;
                    Some(json!({ "metric": s.labels, "value": [seconds(time), value_text(*v)] }))
                }).collect::<Vec<_>>(),
                "stats": {},
            })
        }
    }
}

/// A stream in the Loki shape: `{"stream": {labels}, "values": [["ns", "line"], …]}`.
pub fn stream_json(s: &Stream) -> Value {
    json!({
        "stream": s.labels,
        "values": s.values.iter().map(|(ns, line)| json!([ns.to_string(), line])).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
