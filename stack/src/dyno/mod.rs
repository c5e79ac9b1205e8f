//! The dyno manager: processes from the Procfile, their states and R-codes (in progress).

pub mod output;
pub mod process;
pub mod procfile;
