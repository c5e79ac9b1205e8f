//! The platform stack that feeds the router: the proxy, the routing mesh and the dyno
//! manager, each writing Heroku-format lines into logplex. In progress (issue 5): so far the
//! Procfile, a dyno's output read into the router, and the router's log line with the one
//! mapping of every proxy failure to its status, H-code and description.
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

mod dyno;
mod mesh;
mod proxy;

pub use dyno::output::{MAX_LINE, OutputCounts, pump};
pub use dyno::process::{DynoExit, DynoSpec, run as run_dyno};
pub use dyno::procfile::{ProcessType, Procfile, ProcfileError};
pub use mesh::{Lease, MAX_IN_FLIGHT, Mesh};
pub use proxy::errors::{ProxyError, Side};
pub use proxy::line::RouterLine;
