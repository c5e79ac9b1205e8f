//! The incident console in the browser and the public status page, both served by the
//! router's API server: [`Dashboard`] at `/dashboard` (a page whose assets are embedded in the
//! binary; it asks for an API key and reads the same APIs as the CLI with it), and
//! [`StatusPage`] at `/status` and `/status.json` (components up or degraded, no key, nothing
//! of any app).
//!
//! ```
//! use dashboard::{Health, StatusPage};
//!
//! let page = StatusPage::new();
//! page.add("router", || Health::Up);
//! page.add("drains", || Health::Degraded);
//! let report = page.report();
//! assert_eq!(report.overall(), Health::Degraded);
//! assert_eq!(
//!     report.to_json()["components"][1],
//!     serde_json::json!({"name": "drains", "status": "degraded"})
//! );
//! ```

mod assets;
mod headers;
mod status;

pub use assets::{ASSETS, Asset, Dashboard};
pub use headers::{CONTENT_SECURITY_POLICY, secure};
pub use status::{Health, StatusPage, StatusReport};
