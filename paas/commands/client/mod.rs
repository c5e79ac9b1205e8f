//! How CLI commands reach the router's API: its URL and key come from `--api-url`/`--api-key`,
//! else `PAAS_API_URL`/`PAAS_API_KEY`, else the credentials file `paas logplex` writes in the
//! data directory, else the local default (`http://127.0.0.1:8601`). One HTTP/1.1 connection
//! per request (over TLS for `https://`, trusting `PAAS_API_CA` when given).

mod http;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use http::{Client, Response};

/// The API's default URL: the local router on Logplex's port.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8601";

/// What the credentials file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub api_url: String,
    pub api_key: String,
    /// The app `paas up` runs: local commands act on it when no app is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// The file local clients read the API's URL and key from.
pub fn credentials_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("credentials.json")
}

/// The default data directory: `PAAS_DATA_DIR`, else `$XDG_DATA_HOME/paas`, else
/// `~/.local/share/paas`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PAAS_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("paas");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/paas")
}

/// Where the API is and how to reach it: flags every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The router's API (default: PAAS_API_URL, the credentials file, then http://127.0.0.1:8601).
    #[arg(long, global = true, value_name = "URL")]
    api_url: Option<String>,
    /// The API key (default: PAAS_API_KEY, then the credentials file).
    #[arg(long, global = true, value_name = "KEY")]
    api_key: Option<String>,
}

impl ApiArgs {
    /// A client for the API these flags and the environment point at.
    pub fn client(&self) -> anyhow::Result<Client> {
        let file = std::fs::read(credentials_path(&default_data_dir()))
            .ok()
            .and_then(|b| serde_json::from_slice::<Credentials>(&b).ok());
        let url = self
            .api_url
            .clone()
            .or_else(|| std::env::var("PAAS_API_URL").ok().filter(|s| !s.is_empty()))
            .or_else(|| file.as_ref().map(|f| f.api_url.clone()))
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let key = self
            .api_key
            .clone()
            .or_else(|| std::env::var("PAAS_API_KEY").ok().filter(|s| !s.is_empty()))
            .or_else(|| file.map(|f| f.api_key));
        let Some(key) = key else {
            bail!("no API key: set PAAS_API_KEY (printed when `paas logplex` first started)");
        };
        let ca = std::env::var_os("PAAS_API_CA").map(PathBuf::from);
        Client::new(&url, key, ca.as_deref()).with_context(|| format!("API URL {url}"))
    }
}

/// The app a command acts on: `-a APP`, else `PAAS_APP`, else the app `paas up` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArg {
    /// The app (default: PAAS_APP, then the app `paas up` runs).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    app: Option<String>,
}

impl AppArg {
    pub fn name(&self) -> anyhow::Result<String> {
        self.app
            .clone()
            .or_else(|| std::env::var("PAAS_APP").ok().filter(|s| !s.is_empty()))
            .or_else(|| {
                std::fs::read(credentials_path(&default_data_dir()))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Credentials>(&b).ok())
                    .and_then(|c| c.app)
            })
            .context("no app given: use -a APP or set PAAS_APP")
    }
}

/// The flags of a command that lists something of an app: the app, the API, `--json`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppListArgs {
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// A path segment or query value with everything but unreserved characters escaped.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Turns an API error response into a readable error: its `message`, and the status.
pub fn api_error(response: &Response) -> anyhow::Error {
    let message = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&response.body).trim().to_owned());
    anyhow::anyhow!("{message} (HTTP {})", response.status.as_u16())
}
