//! The proxy's own HTTP/1.1 forwarding path (issue 13), in place of hyper for HTTP/1.x
//! connections, plain and TLS (HTTP/2, by ALPN or its preface, is hyper's). Each proxy thread
//! runs its connections as local tasks with a pool of dyno connections of its own: a request
//! head is parsed in place in the connection's buffer (`request.rs`: Vegur's limits, the
//! refusals of request smuggling), rewritten for the dyno straight into an output buffer
//! (`forward.rs`), sent with the body's first bytes in one `writev` on a pooled connection
//! (`pool.rs`, `exchange.rs`), and the response head parsed and rewritten the same way
//! (`response.rs`) and forwarded with its body as it comes (`framing.rs`, `chunked.rs`), with
//! no task, channel or lock per request. The connection loop, its clocks and its refusals
//! are `conn.rs`.

pub(crate) mod cached;
pub mod chunked;
pub(crate) mod conn;
#[cfg(test)]
mod differential;
pub(crate) mod exchange;
pub(crate) mod forward;
pub(crate) mod framing;
pub(crate) mod io;
pub(crate) mod pool;
pub mod request;
pub mod response;
