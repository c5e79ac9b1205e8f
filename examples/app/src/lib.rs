//! The example app that `paas up` runs as dynos: a web process, a small HTTP/1.1 server of
//! its own whose endpoints misbehave on purpose at the socket level (slow, silent, stalled,
//! crashed, refusing) to provoke each of the router's H-codes, and a worker logging metrics.
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(example_app::serve(listener));
//!
//! let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").await?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\nServer: example-app\r\n"));
//! assert!(response.ends_with("\r\n\r\nok"));
//!
//! assert!(example_app::PROCFILE.starts_with("web: paas example-app web\n"));
//! # Ok(()) }
//! ```
//!
//! Every request is logged to stdout as one logfmt line with l2met metrics:
//!
//! ```text
//! at=info method=GET path=/ status=200 duration=3ms measure#app.response=3ms count#app.requests=1 sample#app.greeting_length=5
//! ```
//!
//! The endpoints, and the H-code each provokes behind the router, are in `README.md`.

mod error;
mod events;
mod http;
mod listener;
mod routes;
mod server;
mod websocket;
mod worker;

pub use server::{serve, web};
pub use worker::worker;

/// The example app's Procfile: what `paas up` runs.
pub const PROCFILE: &str = include_str!("../Procfile");
/// The example app's app.json (Heroku's shape: name, formation, config vars), embedded so
/// `paas up` needs no files.
pub const APP_JSON: &str = include_str!("../app.json");

#[cfg(test)]
mod tests {
    #[test]
    fn app_json_declares_the_formation_and_the_greeting() {
        let app: serde_json::Value = serde_json::from_str(super::APP_JSON).unwrap();
        assert_eq!(app["name"], "hello");
        assert_eq!(app["formation"]["web"]["quantity"], 2);
        assert_eq!(app["formation"]["worker"]["quantity"], 1);
        assert_eq!(app["env"]["GREETING"]["value"], "hello");
    }

    #[test]
    fn the_procfile_runs_this_crate_through_paas() {
        assert_eq!(
            super::PROCFILE,
            "web: paas example-app web\nworker: paas example-app worker\n"
        );
    }
}
