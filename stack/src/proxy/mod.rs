//! The HTTP proxy in front of the dynos, with Heroku's (Vegur's) semantics (in progress).

pub mod errors;
pub mod line;
