//! Config vars and releases: each change to an app's config vars (or a rollback) is a new
//! numbered release, kept in the data directory (or, in a cluster, PostgreSQL, behind
//! `log::ReleaseLog`), and restarts the app's dynos with it.

pub mod addons;
pub mod api;
pub mod log;
pub mod store;
