//! The dyno manager: processes from the Procfile, each run with its output and life written
//! into the router, restarted when they crash, scaled and restarted on request.

pub mod api;
pub mod errors;
pub mod manager;
pub mod metrics;
pub mod output;
pub mod process;
pub mod procfile;
pub mod procfs;
