//! The proxy: Vegur's semantics in front of the routing mesh, one router line a request.

pub mod body;
pub(crate) mod cached;
pub mod connection;
pub mod connector;
pub mod h1;
pub mod head;
pub mod headers;
pub mod line;
pub mod listener;
pub mod raw_head;
pub mod respond;
pub mod server;
pub mod stats;
pub mod target;
pub mod throttle;
pub mod upstream;
