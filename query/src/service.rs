//! The query API, served under `/apps/{app}/` through logplex's `AppResource` (the API has
//! checked the key and that the caller may see the app):
//! - `GET /apps/{app}/query?q=…&since=…&until=…&limit=…&format=ndjson|text`: the answer, as
//!   NDJSON (`application/x-ndjson`, the output contract) or as the text `paas query` prints;
//! - `POST /apps/{app}/import` `{"lines":[{"time","source","process","message"}…]}`: lines
//!   of the app's past, straight into its kept lines (not its tails or drains).
//!
//! Scanning and running a query are blocking work (file reads, the parser): they run on
//! tokio's blocking pool, never on the threads that serve ingest.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, LogLine, Router, Timestamp, api_error, api_full, read_body};
use serde::Deserialize;

use crate::exec::Executor;
use crate::index::{self, Index, SearchError};
use crate::peers::{Missing, PeerLines, QueryPeers};
use crate::peers::{PARTIAL_HEADER, partial_header};
use crate::window::Window;
use crate::{DEFAULT_CHART_WIDTH, Output, Query, Spool, write_human, write_ndjson};
use crate::{IndexError, IndexerHandle};

/// Limits of the query API.
#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    /// Lines a query returns at most (`limit` may ask for fewer).
    pub max_lines: usize,
    /// The largest import body.
    pub max_import_body: usize,
    /// In a cluster: the matching lines one node ships for a query at most (beyond, the
    /// answer is partial and says so).
    pub max_cluster_lines: usize,
    /// In a cluster: the bytes of one node's lines read at most.
    pub max_cluster_bytes: usize,
    /// In a cluster: how long another node has to answer.
    pub peer_timeout: std::time::Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_lines: 10_000,
            max_import_body: 8 << 20,
            max_cluster_lines: 100_000,
            max_cluster_bytes: 64 << 20,
            peer_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// What the query API shares.
#[derive(Debug)]
pub struct QueryService {
    router: Router,
    spool: Spool,
    index: Index,
    indexer: Arc<IndexerHandle>,
    config: ServiceConfig,
    /// The cluster's other nodes (`None`: a single router, whose lines are all here).
    peers: RwLock<Option<Arc<dyn QueryPeers>>>,
    /// In a cluster: answers that lacked some node's lines (said so, or refused).
    partial_answers: std::sync::atomic::AtomicU64,
}

/// `GET /apps/{app}/query`.
#[derive(Clone, Debug)]
pub struct QueryResource(Arc<QueryService>);

/// `POST /apps/{app}/import`.
#[derive(Clone, Debug)]
pub struct ImportResource(Arc<QueryService>);

/// `GET /apps/{app}/index` (what the app keeps, and the index's lag) and
/// `POST /apps/{app}/index/rebuild`.
#[derive(Clone, Debug)]
pub struct IndexResource(Arc<QueryService>);

impl QueryService {
    /// The API over `index` and `spool` (the lines not yet in the index), whose apps are
    /// `router`'s; `indexer` rebuilds.
    pub fn new(
        router: Router,
        spool: Spool,
        index: Index,
        indexer: Arc<IndexerHandle>,
        config: ServiceConfig,
    ) -> Arc<Self> {
        Arc::new(QueryService {
            router,
            spool,
            index,
            indexer,
            config,
            peers: RwLock::new(None),
            partial_answers: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Makes queries answer for the whole cluster: each node holds its share of the lines
    /// (see `peers`), gathered from `peers` for every query.
    pub fn set_peers(&self, peers: Arc<dyn QueryPeers>) {
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = Some(peers);
    }

    /// The cluster's other nodes, when this is a node of one.
    pub(crate) fn peers(&self) -> Option<Arc<dyn QueryPeers>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// In a cluster: the answers so far that lacked some node's lines (a node not alive, not
    /// answering in time, or past `max_cluster_lines`/`max_cluster_bytes`).
    pub fn partial_answers(&self) -> u64 {
        self.partial_answers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The API's limits.
    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The resources to register: `("query", …)`, `("import", …)` and `("index", …)`.
    pub fn resources(self: &Arc<Self>) -> [(&'static str, Arc<dyn AppResource>); 3] {
        [
            ("query", Arc::new(QueryResource(self.clone()))),
            ("import", Arc::new(ImportResource(self.clone()))),
            ("index", Arc::new(IndexResource(self.clone()))),
        ]
    }

    /// What the app keeps for queries: its index, its spool, and the spool bytes not yet in
    /// a block (the index's lag).
    pub fn kept(&self, app_id: &str) -> Result<serde_json::Value, IndexError> {
        let index = self.index.app_stats(app_id)?;
        let spool = self.spool.app_stats(app_id)?;
        let time = |t: Option<Timestamp>| {
            t.map(|t| {
                let mut out = Vec::new();
                t.write_rfc3339(&mut out);
                String::from_utf8_lossy(&out).into_owned()
            })
        };
        Ok(serde_json::json!({
            "index_lines": index.lines,
            "index_blocks": index.blocks,
            "index_bytes": index.bytes,
            "spool_lines": spool.lines,
            "spool_bytes": spool.bytes,
            "lag_bytes": self
                .indexer
                .app_lag_bytes(app_id)
                .unwrap_or_else(|| spool.end.saturating_sub(index.end)),
            "spool_oldest": time(spool.oldest),
            "spool_newest": time(spool.newest),
        }))
    }

    /// The router whose apps the API answers for.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// Every app's name.
    pub(crate) fn app_names(&self) -> Vec<String> {
        self.router.apps().into_iter().map(|a| a.name).collect()
    }

    pub(crate) fn app_id(&self, app: &str) -> Option<String> {
        self.router.app(app).map(|a| a.id)
    }

    /// Runs `query` over the app's kept lines in `window`: alone, this router's; in a
    /// cluster, every node's (gathered from the others, waiting on them: call from a
    /// blocking thread of the runtime). An answer that would lack some node's lines is an
    /// error naming them (`SearchError::Partial`), never silently incomplete; the query API
    /// answers partially instead, saying so (`answer_cluster`).
    pub(crate) fn answer(
        &self,
        app_id: &str,
        app: &str,
        query: &Query,
        window: Window,
        limit: usize,
    ) -> Result<Output, SearchError> {
        let Some(peers) = self.peers() else {
            return self.answer_local(app_id, app, query, window, limit);
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| SearchError::Partial(format!("the other nodes cannot be asked: {e}")))?;
        let ask = self.ask(app, query.filter_text(), window);
        let gathered = handle.block_on(crate::peers::gather(peers.as_ref(), &ask));
        let (output, missing) = self.answer_cluster(app_id, app, query, window, limit, gathered)?;
        if !missing.is_empty() {
            return Err(SearchError::Partial(partial_header(&missing)));
        }
        Ok(output)
    }

    /// What a query asks every other node.
    pub(crate) fn ask<'a>(
        &self,
        app: &'a str,
        q: &'a str,
        window: Window,
    ) -> crate::peers::Ask<'a> {
        crate::peers::Ask {
            app,
            q,
            window,
            cap: self.config.max_cluster_lines,
            max_bytes: self.config.max_cluster_bytes,
            timeout: self.config.peer_timeout,
        }
    }

    /// Runs `query` over this node's kept lines of the app in `window`.
    fn answer_local(
        &self,
        app_id: &str,
        app: &str,
        query: &Query,
        window: Window,
        limit: usize,
    ) -> Result<Output, SearchError> {
        let app = logplex::AppName::from(app);
        index::answer(&self.index, &self.spool, app_id, &app, query, window, limit)
    }

    /// The app's kept lines `query`'s filter matches in `window`: the newest `limit`, oldest
    /// first, with how many more matched.
    pub(crate) fn matching_lines(
        &self,
        app_id: &str,
        app: &str,
        query: &Query,
        window: Window,
        limit: usize,
    ) -> Result<PeerLines, SearchError> {
        match self.answer_local(app_id, app, &query.filter_only(), window, limit)? {
            Output::Lines(found) => Ok(PeerLines {
                lines: found.lines,
                omitted: found.omitted,
            }),
            Output::Table(_) => Ok(PeerLines::default()),
        }
    }

    /// Runs `query` over the cluster's lines: this node's matching lines and `gathered`'s
    /// (the other nodes', with those missing), once each (by `seq`), in the bus's order.
    /// Returns the answer and the nodes whose lines it lacks (this node too, when it has
    /// more matching lines than it may use).
    pub(crate) fn answer_cluster(
        &self,
        app_id: &str,
        app: &str,
        query: &Query,
        window: Window,
        limit: usize,
        gathered: (Vec<PeerLines>, Vec<Missing>),
    ) -> Result<(Output, Vec<Missing>), SearchError> {
        let (gathered, mut missing) = gathered;
        let cap = self.config.max_cluster_lines;
        let own = self.matching_lines(app_id, app, query, window, cap)?;
        if own.omitted > 0 {
            let node = self
                .peers()
                .map_or_else(|| "this node".to_owned(), |p| p.this_node().to_owned());
            missing.push(Missing {
                node,
                why: format!(
                    "more than {cap} lines matched here ({} left out): narrow the query",
                    own.omitted
                ),
            });
        }
        let mut lines: Vec<LogLine> = own.lines;
        for peer in gathered {
            lines.extend(peer.lines);
        }
        // The bus numbers an app's lines in one order for the whole cluster; imported lines
        // (seq 0) come by time. A line kept on two nodes (delivered again) is used once.
        lines.sort_by_key(|l| (l.seq, l.time));
        lines.dedup_by(|a, b| a.seq != 0 && a.seq == b.seq);
        let mut exec = Executor::new(query, limit);
        for line in lines {
            if exec.is_done() {
                break;
            }
            exec.push(line);
        }
        if !missing.is_empty() {
            self.partial_answers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((exec.finish()?, missing))
    }
}

fn invalid(message: &str) -> Response<Body> {
    api_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
}

fn not_found() -> Response<Body> {
    api_error(StatusCode::NOT_FOUND, "not_found", "No such resource.")
}

fn internal(e: impl std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %e, "query");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        &format!("The query could not be answered: {e}."),
    )
}

/// A query string's parameters, `+` and `%XX` decoded (the last of a repeated name wins).
pub(crate) fn params(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if hex(b.get(i + 1)).is_some() && hex(b.get(i + 2)).is_some() => {
                let (h, l) = (
                    hex(b.get(i + 1)).unwrap_or(0),
                    hex(b.get(i + 2)).unwrap_or(0),
                );
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl QueryResource {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        if req.method() != Method::GET || !rest.is_empty() {
            return not_found();
        }
        let p = params(req.uri().query());
        let text = p.get("q").map_or("", String::as_str);
        let query = match Query::parse(text) {
            Ok(q) => q,
            Err(e) => return invalid(&format!("The query does not read:\n{e}")),
        };
        let window = match Window::parse(
            p.get("since").map(String::as_str),
            p.get("until").map(String::as_str),
            Timestamp::now(),
        ) {
            Ok(w) => w,
            Err(e) => return invalid(&format!("{e}.")),
        };
        let max = self.0.config.max_lines;
        let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
            None => max,
            Some(Ok(n)) => n.min(max),
            Some(Err(_)) => return invalid("limit must be a number."),
        };
        let text_format = match p.get("format").map(String::as_str) {
            None | Some("ndjson") => false,
            Some("text") => true,
            Some(other) => return invalid(&format!("format {other:?}: use ndjson or text.")),
        };
        let Some(app_id) = self.0.app_id(&app) else {
            return not_found();
        };
        let service = self.0.clone();
        let gathered = match service.peers() {
            Some(peers) => {
                let ask = service.ask(&app, query.filter_text(), window);
                Some(crate::peers::gather(peers.as_ref(), &ask).await)
            }
            None => None,
        };
        let answered = tokio::task::spawn_blocking(move || {
            let (output, missing) = match gathered {
                None => (
                    service.answer_local(&app_id, &app, &query, window, limit)?,
                    Vec::new(),
                ),
                Some(gathered) => {
                    service.answer_cluster(&app_id, &app, &query, window, limit, gathered)?
                }
            };
            let mut body = Vec::new();
            if text_format {
                write_human(&output, DEFAULT_CHART_WIDTH, &mut body);
                if !missing.is_empty() {
                    body.extend_from_slice(
                        format!("partial: lacks {}\n", partial_header(&missing)).as_bytes(),
                    );
                }
            } else {
                write_ndjson(&output, &mut body);
            }
            Ok::<_, SearchError>((body, missing))
        })
        .await;
        match answered {
            Ok(Ok((body, missing))) => {
                let content_type = if text_format {
                    "text/plain; charset=utf-8"
                } else {
                    "application/x-ndjson"
                };
                let mut response = api_full(StatusCode::OK, content_type, body);
                if !missing.is_empty()
                    && let Ok(value) = http::HeaderValue::from_str(&partial_header(&missing))
                {
                    response.headers_mut().insert(PARTIAL_HEADER, value);
                }
                response
            }
            Ok(Err(SearchError::Exec(e))) => invalid(&format!("{e}.")),
            Ok(Err(e)) => internal(e),
            Err(e) => internal(e),
        }
    }
}

#[derive(Deserialize)]
struct ImportBody {
    lines: Vec<ImportLine>,
}

#[derive(Deserialize)]
struct ImportLine {
    time: String,
    source: String,
    #[serde(default)]
    process: String,
    message: String,
}

/// The longest source or process an imported line may name.
const MAX_NAME: usize = 128;

impl ImportResource {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        if req.method() != Method::POST || !rest.is_empty() {
            return not_found();
        }
        let Some(app_id) = self.0.app_id(&app) else {
            return not_found();
        };
        let body = match read_body(req, self.0.config.max_import_body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let parsed: ImportBody = match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return invalid(&format!("The body is not the JSON expected: {e}.")),
        };
        let received = Timestamp::now();
        let mut lines = Vec::with_capacity(parsed.lines.len());
        for (i, l) in parsed.lines.into_iter().enumerate() {
            let Ok(time) = Timestamp::parse_rfc3339(l.time.as_bytes()) else {
                return invalid(&format!(
                    "Line {i}: time {:?} is not an RFC 3339 time.",
                    l.time
                ));
            };
            if l.source.is_empty() || l.source.len() > MAX_NAME || l.process.len() > MAX_NAME {
                return invalid(&format!(
                    "Line {i}: source and process are 1 to {MAX_NAME} characters."
                ));
            }
            lines.push(LogLine {
                received,
                time,
                app: logplex::AppName::from(app.as_str()),
                source: Bytes::from(l.source),
                process: Bytes::from(l.process),
                facility: 1,
                severity: 6,
                message: Bytes::from(l.message),
                seq: 0,
            });
        }
        let n = lines.len();
        let spool = self.0.spool.clone();
        match tokio::task::spawn_blocking(move || spool.append(&app_id, &lines)).await {
            Ok(Ok(())) => logplex::api_json(StatusCode::OK, &serde_json::json!({ "imported": n })),
            Ok(Err(e)) => internal(e),
            Err(e) => internal(e),
        }
    }
}

/// Each resource serves a request with its own `serve`.
macro_rules! served_by_serve {
    ($($resource:ty),*) => {$(
        impl AppResource for $resource {
            fn handle(
                &self,
                req: Request<Incoming>,
                app: String,
                rest: Vec<String>,
            ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
                Box::pin(self.clone().serve(req, app, rest))
            }
        }
    )*};
}

served_by_serve!(QueryResource, ImportResource, IndexResource);

impl IndexResource {
    async fn serve(self, req: Request<Incoming>, app: String, rest: Vec<String>) -> Response<Body> {
        let Some(app_id) = self.0.app_id(&app) else {
            return not_found();
        };
        let service = self.0.clone();
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        match (req.method(), rest.as_slice()) {
            (&Method::GET, []) => {
                match tokio::task::spawn_blocking(move || service.kept(&app_id)).await {
                    Ok(Ok(v)) => logplex::api_json(StatusCode::OK, &v),
                    Ok(Err(e)) => internal(e),
                    Err(e) => internal(e),
                }
            }
            (&Method::POST, ["rebuild"]) => {
                let indexer = service.indexer.clone();
                match tokio::task::spawn_blocking(move || indexer.rebuild(&app_id)).await {
                    Ok(Ok(done)) => logplex::api_json(StatusCode::OK, &done),
                    Ok(Err(e)) => internal(e),
                    Err(e) => internal(e),
                }
            }
            _ => not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let p = params(Some(
            "q=status%3E%3D500+%7C+count+by+path&since=15m&x&q2=%zz",
        ));
        assert_eq!(p["q"], "status>=500 | count by path");
        assert_eq!(p["since"], "15m");
        assert_eq!(p["x"], "");
        assert_eq!(p["q2"], "%zz");
        assert!(params(None).is_empty());
    }
}
