//! Just enough HTTP/1.1 for an app that must misbehave at the socket level: a request head
//! read with `httparse`, a body by `Content-Length` or chunked, and response heads written by
//! hand, so a route can stop, stall or lie wherever it likes.

mod chunked;
mod conn;
mod request;
mod response;

pub(crate) use conn::Conn;
pub(crate) use request::{Request, Version};
pub(crate) use response::{Framing, Head, chunk, last_chunk};

/// The longest request head read (request line and headers).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most request headers read.
pub(crate) const MAX_HEADERS: usize = 100;
/// The largest request body read (it is held in memory).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// What happens to a connection after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Read the next request.
    KeepAlive,
    /// Close it.
    Close,
    /// It speaks WebSocket from now on.
    WebSocket,
}
