//! Ad-hoc questions asked of an app's logs: `status>=500 | count by path`. A query is a filter
//! (the `--where` grammar of `logfmt`, extended with the line's own attributes and full-text
//! terms) and a pipeline of stages (`count by`, percentiles, `timechart`, `sort`, `head`, …);
//! the executor runs it over the lines the router kept, read from the spool.
//!
//! Layout: `lang/` (the query language: parse, errors with a caret), `exec/` (stages,
//! aggregations with units, output as rows, tables and charts), `spool/` (every line an app
//! accepted, kept on disk in time order, a router-wide consumer; what queries scan).

mod spool;

pub use spool::{
    AppSpoolStats, FORMAT_VERSION as SPOOL_FORMAT_VERSION, Position, SYNC_INTERVAL, Scan, Spool,
    SpoolConfig, SpoolError, SpoolWriter, SpoolWriterConfig, SpoolWriterHandle, SpoolWriterStats,
};
