//! Ad-hoc questions asked of an app's logs: `status>=500 | count by path`. A query is a filter
//! (the `--where` grammar of `logfmt`, extended with the line's own attributes and full-text
//! terms) and a pipeline of stages (`count by`, percentiles, `timechart`, `sort`, `head`, …);
//! the executor runs it over the lines the router kept, read from the spool.
//!
//! Layout: `lang/` (the query language: parse, errors with a caret), `exec/` (stages,
//! aggregations with units, output as rows, tables and charts), `spool/` (every line an app
//! accepted, kept on disk in arrival order, a router-wide consumer; what queries scan).
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

mod spool;

pub use spool::{
    AppSpoolStats, FORMAT_VERSION as SPOOL_FORMAT_VERSION, Position, SYNC_INTERVAL, Scan, Spool,
    SpoolConfig, SpoolError, SpoolWriter, SpoolWriterConfig, SpoolWriterHandle, SpoolWriterStats,
};
