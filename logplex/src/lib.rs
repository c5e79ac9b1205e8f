//! The log router's core: the message model every part shares, and the codecs of the wire
//! formats lines arrive and leave in (RFC 5424 messages, RFC 6587 framing, RFC 3339 time).
//! Ingest listeners, channels, tails and the API build on these (issue 3, in progress: the
//! codecs, `LogLine`, line filters, the history ring, tail buffers, the router's own in-stream
//! lines and the registry of apps, tokens and keys exist so far).
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

mod filter;
mod framing;
mod history;
mod line;
mod platform;
mod registry;
mod rfc5424;
mod tail;
mod time;

pub use filter::{LineFilter, PLATFORM_PROCESSES};
pub use framing::{DEFAULT_MAX_FRAME, FrameDecoder, FrameError, write_octet_counted};
pub use history::{DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LINES, History};
pub use line::{APP_SOURCE, AppName, LogLine, PLATFORM_SOURCE};
pub use platform::{LOGPLEX_PROCESS, certificate_error, drain_overflow, tail_overflow};
pub use registry::{ApiKey, App, KeyScope, Registry, RegistryError, Token, is_valid_app_name};
pub use rfc5424::{
    Form, Header, ParseError, SyslogMessage, parse as parse_syslog, write as write_syslog,
};
pub use tail::{DEFAULT_TAIL_BUFFER, TailBuffer};
pub use time::{Timestamp, TimestampError};
