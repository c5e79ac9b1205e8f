//! The log router: the message model every part shares (`LogLine`), the codecs of the wire
//! formats (RFC 5424, RFC 6587, RFC 3339), per-app channels with history and tail sessions,
//! bounded fan-out to consumers with honest drop accounting, ingest over syslog TCP/TLS/UDP
//! and HTTP, and the Platform-API-shaped HTTP API. `Logplex` runs it all.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use logplex::{FrameDecoder, parse_syslog};
//!
//! let mut stream = BytesMut::from(&b"62 <190>1 2026-11-21T12:00:00.123456+00:00 host t.abc web.1 - hi\n"[..]);
//! let frame = FrameDecoder::default().decode(&mut stream).unwrap().unwrap();
//! let msg = parse_syslog(&frame).unwrap();
//! assert_eq!((&msg.proc_id.unwrap()[..], &msg.msg[..]), (&b"web.1"[..], &b"hi"[..]));
//! ```

mod accept;
mod api;
mod bus;
mod component;
mod filter;
mod framing;
mod history;
mod history_log;
mod ingest;
mod line;
mod lock;
mod notice;
mod persist;
mod platform;
mod printable;
mod registry;
mod rfc5424;
mod router;
mod server;
mod shared_consumers;
mod time;
mod tls;

pub use api::{
    ApiConfig, ApiState, AppResource, Body, ChannelBody, ClusterStatus, PathResource, Sessions,
    error as api_error, full as api_full, json as api_json, no_such_app, read_body, read_json,
    serve_api,
};
pub use bus::{BusBatch, BusError, BusFuture, LineBus, Published};
pub use component::{Component, StopFuture};
pub use filter::{LineFilter, PLATFORM_PROCESSES};
pub use framing::{DEFAULT_MAX_FRAME, FrameDecoder, FrameError, write_octet_counted};
pub use history::{DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LINES, History};
pub use history_log::{HistoryLogConfig, HistoryLogStats};
pub use ingest::{IngestStats, ListenerStats, StreamConfig, serve_stream, serve_udp};
pub use line::{APP_SOURCE, AppName, LogLine, PLATFORM_SOURCE};
pub use lock::{DataDirLock, LOCK_FILE, LockError};
pub use persist::{HistoryFileError, decode_history, encode_history};
pub use platform::{LOGPLEX_PROCESS, PlatformEvent, PlatformEvents};
pub use printable::printable;
pub use registry::{
    ApiKey, App, Caller, KeyOrigin, KeyRecord, KeyScope, NewKey, RESERVED_APP_PROCESSES,
    RESERVED_SOURCES, Registry, RegistryDiff, RegistryError, RegistryLimits, RegistryRecords,
    RegistryStore, Token, is_reserved_process, is_valid_app_name, token_digest,
};
pub use rfc5424::{
    Form, Header, ParseError, SyslogMessage, parse as parse_syslog, write as write_syslog,
    write_cached as write_syslog_cached,
};
pub use router::{
    AppIds, AppLifecycle, Batch, BatchOutcome, BusOutbox, CatchUp, Channel, ChannelConfig,
    ChannelStats, ConsumerFeed, ConsumerStats, DEFAULT_TAIL_BUFFER, EmitError, Emitter, FeedTake,
    HistoryStats, LineQueue, Loss, OUTBOX_CAPACITY, QueueCounts, RateBudget, Reject, RejectCounts,
    Resumed, Router, RouterConfig, SEQ_BLOCK, SeqFileError, Subscription, Taken, TokenTarget,
    TooManyTails,
};
pub use server::{Addresses, Logplex, LogplexConfig, StartError};
pub use shared_consumers::{SharedConsumerFeed, SharedConsumerFuture, SharedConsumers, SharedTake};
pub use time::{TimeFormatCache, Timestamp, TimestampError};
pub use tls::{TlsError, provider as tls_provider, server_config as tls_server_config};
