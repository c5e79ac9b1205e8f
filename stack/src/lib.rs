//! The platform stack that feeds the router: the dyno manager (the Procfile's processes, their
//! output, states, R-codes and runtime metrics), the routing mesh (which dyno takes a request,
//! and the H-codes when none can), the proxy (Vegur's HTTP semantics and one router line a
//! request) and the database adapter (a pooling PostgreSQL proxy, Heroku Postgres's lines),
//! each writing Heroku-format lines into logplex through an `Emitter`.
//!
//! ```
//! use stack::{Procfile, ProxyError, RouterLine};
//!
//! let procfile = Procfile::parse("web: ./server --port $PORT\nworker: ./worker\n").unwrap();
//! assert_eq!(procfile.command("web"), Some("./server --port $PORT"));
//!
//! let line = RouterLine::error(ProxyError::RequestTimeout, "GET", "/slow");
//! assert!(line.to_string().starts_with("at=error code=H12 desc=\"Request timeout\" method=GET path=\"/slow\""));
//! ```

pub mod cache;
mod database;
mod dyno;
mod errors;
mod memcached;
mod mesh;
mod proxy;
mod releases;

pub use database::api::DatabaseApi;
pub use database::auth::{AuthMethod, Login};
pub use database::metrics::Sample as DatabaseSample;
pub use database::pool::PoolConfig;
pub use database::stats::DatabaseStats;
pub use database::{Database, DatabaseConfig, PoolMode};
pub use dyno::api::{DynoApi, MAX_QUANTITY};
pub use dyno::errors::{DynoError, DynoErrors};
pub use dyno::manager::{AppSpec, DynoInfo, DynoManager, DynoState, ManagerConfig, ManagerError};
pub use dyno::metrics::{MemoryVerdict, RuntimeMetrics};
pub use dyno::output::{MAX_LINE, OutputCounts, pump};
pub use dyno::process::{DynoEvent, DynoExit, DynoLimits, DynoSpec, run as run_dyno};
pub use dyno::procfile::{ProcessType, Procfile, ProcfileError};
pub use errors::{ProxyError, Side};
pub use memcached::{
    MemcachedConfig, Stats as MemcachedStats, stats as memcached_stats,
    supervise as supervise_memcached,
};
pub use mesh::{Lease, MAX_IN_FLIGHT, Mesh};
pub use releases::addons::{Addon, AddonsApi};
pub use releases::api::{ConfigLimits, ReleasesApi, caller_email};
pub use releases::log::{
    ChangeError, RELEASE_ATTEMPTS, ReleaseFuture, ReleaseLog, find_release, make_release,
};
pub use releases::store::{ConfigVars, MAX_RELEASES, Release, ReleaseError, ReleaseStore};
/// The HTTP/1.1 pieces of the proxy's forwarding path: the request head parser, the response
/// head parser and rewriter, and the chunked body decoder (public for their fuzz targets,
/// `stack/fuzz/`).
pub mod h1 {
    pub use crate::proxy::h1::chunked::{
        ChunkedDecoder, ChunkedError, Decoded, MAX_SIZE_LINE, MAX_TRAILERS,
        encode as encode_chunked,
    };
    pub use crate::proxy::h1::request::{BodyLength, HeadError, Limit, RequestHead, parse};
    pub use crate::proxy::h1::response::{
        BadResponse, ClientFraming, ClientHead, Framing, ResponseHead, client_head,
        parse as parse_response,
    };
}
pub use proxy::headers::{Client, VIA};
pub use proxy::line::RouterLine;
pub use proxy::listener::bind as bind_proxy_listener;
pub use proxy::server::{Proxy, ProxyConfig};
pub use proxy::stats::{ListenerStats, ProxyStats, Refusal};
pub use proxy::target::HostError;
