//! Ad-hoc questions asked of an app's logs: `status>=500 | count by path`. A query is a filter
//! (the `--where` grammar of `logfmt`, extended with the line's own attributes and full-text
//! terms) and a pipeline of stages (`count by`, percentiles, `timechart`, `sort`, `head`, …);
//! the executor runs it over the lines the router kept, read from the spool.
//!
//! Layout: `lang/` (the query language: parse, errors with a caret), `exec/` (stages,
//! aggregations with units, output as rows, tables and charts), `spool/` (every line an app
//! accepted, kept on disk in arrival order, a router-wide consumer; what queries scan), `loki/`
//! (a Loki-compatible read API: LogQL translated onto this engine, for Grafana).
//!
//! ```
//! use logplex::{AppName, LogLine, Timestamp};
//!
//! let line = |process: &str, message: &str| LogLine {
//!     received: Timestamp::from_micros(0),
//!     time: Timestamp::from_micros(0),
//!     app: AppName::from("shop"),
//!     source: "paas".into(),
//!     process: process.to_owned().into(),
//!     facility: 1,
//!     severity: 6,
//!     message: message.to_owned().into(),
//!     seq: 0,
//! };
//! let lines = vec![
//!     line("router", "path=/a status=503 service=30001ms"),
//!     line("router", "path=/a status=500 service=12ms"),
//!     line("router", "path=/b status=200 service=1s"),
//! ];
//! let q = query::Query::parse("status>=500 | count, max(service) by path").unwrap();
//! let output = query::run(&q, lines, 1000).unwrap();
//! let mut json = Vec::new();
//! query::write_ndjson(&output, &mut json);
//! assert_eq!(json, b"{\"path\":\"/a\",\"count\":2,\"max(service)\":30001}\n");
//!
//! let e = query::Query::parse("status>=500 | cuont").unwrap_err();
//! assert!(e.to_string().ends_with("^ column 15: unknown stage \"cuont\"; the stages are count, count by K, top N K, sum(K), avg(K), min(K), max(K), pNN(K) (a comma list, optionally `by K`), timechart SPAN [AGGS] [by K], fields K,…, sort [-]COLUMN, head N"));
//! ```
//!
//! The spool keeps what a query reads:
//!
//! ```
//! use query::{Spool, SpoolConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! # let line = logplex::LogLine {
//! #     received: logplex::Timestamp::from_micros(1), time: logplex::Timestamp::from_micros(1),
//! #     app: logplex::AppName::from("shop"), source: "app".into(), process: "web.1".into(),
//! #     facility: 1, severity: 6, message: "at=info status=200".into(), seq: 1,
//! # };
//! let spool = Spool::open(dir.path().join("spool"), SpoolConfig::default())?;
//! spool.append("0b7e6f1c-2b4a-4c1e-9d3f-5a6b7c8d9e0f", &[line.clone()])?;
//! let kept: Vec<_> = spool
//!     .scan("0b7e6f1c-2b4a-4c1e-9d3f-5a6b7c8d9e0f", None, None)?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(kept, vec![line]);
//! # Ok::<(), query::SpoolError>(())
//! ```

mod engine;
mod exec;
mod import;
mod index;
mod lang;
mod loki;
mod metrics;
mod peers;
mod service;
mod spool;
mod window;

pub use engine::{EngineConfig, QueryEngine};
pub use exec::render::{DEFAULT_CHART_WIDTH, write_human, write_ndjson};
pub use exec::{
    Cell, Column, ColumnKind, DEFAULT_MAX_GROUPS, ExecError, Executor, Lines, Output, Table, run,
};
pub use import::{ImportedLine, read_line};
pub use index::{AppIndexStats, Index, IndexConfig, IndexError, Indexer, IndexerHandle, Rebuilt};
pub use lang::{MAX_LIST, MAX_QUERY_LEN, MAX_ROWS, MAX_STAGES, Query, QueryError};
pub use loki::{LogqlError, LokiApi};
pub use metrics::{
    AppSnapshot, Buckets, Extractor, MetricsConfig, MetricsEngine, MetricsLimits, MetricsResource,
    RedView, RequestCount,
};
pub use peers::{
    Missing, PARTIAL_HEADER, PEER_PATH, PeerLinesResource, PeersFuture, QueryPeer, QueryPeers,
    SECRET_HEADER,
};
pub use service::{ImportResource, IndexResource, QueryResource, QueryService, ServiceConfig};
pub use spool::{
    AppSpoolStats, FORMAT_VERSION as SPOOL_FORMAT_VERSION, Position, SYNC_INTERVAL, Scan, Spool,
    SpoolConfig, SpoolError, SpoolWriter, SpoolWriterConfig, SpoolWriterHandle, SpoolWriterStats,
};
pub use window::{Window, WindowError};
