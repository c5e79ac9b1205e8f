//! The proxy: Vegur's semantics in front of the routing mesh, one router line a request.

pub mod body;
pub mod connector;
pub mod errors;
pub mod headers;
pub mod line;
pub mod server;
