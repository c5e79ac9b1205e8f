//! `paas keys`, `keys:create`, `keys:revoke`, `keys:rotate`: API keys. With `-a APP` they act
//! on that app's keys (an app key may act on its own app's), without it on every key (the
//! operator's view; `keys:create` then makes an operator key). A key is shown once, when it is
//! made; afterwards only its id and last four characters.

use std::process::ExitCode;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::commands::apps::{call, list_or_json};
use crate::commands::client::ApiArgs;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this app's keys (default: every key, for the operator).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    app: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// A key that sees this app only (default: an operator key).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The key's id (from `paas keys`).
    id: String,
    /// The app the key belongs to, for an app key acting on its own app's keys.
    #[arg(short = 'a', long = "app", value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

fn base(app: Option<&str>) -> String {
    match app {
        Some(app) => format!("/apps/{app}/keys"),
        None => "/keys".to_owned(),
    }
}

fn describe(k: &Value) -> String {
    let s = |f: &str| k[f].as_str().unwrap_or("").to_owned();
    let scope = match k["app"]["name"].as_str() {
        Some(app) => format!("app:{app}"),
        None => s("scope"),
    };
    format!(
        "{}  {:<16}  {:<10}  …{}  {}",
        s("id"),
        scope,
        s("origin"),
        s("hint"),
        s("created_at")
    )
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let Some(keys) = list_or_json(&args.api, &base(args.app.as_deref()), args.json)? else {
        return Ok(ExitCode::SUCCESS);
    };
    for k in &keys {
        println!("{}", describe(k));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let path = base(args.app.as_deref());
    let k = call(&args.api, Method::POST, &path, None, StatusCode::CREATED)?;
    println!("{}", k["key"].as_str().unwrap_or(""));
    eprintln!("{}\n(the key is shown this once; keep it)", describe(&k));
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let path = format!("{}/{}", base(args.app.as_deref()), args.id);
    call(&args.api, Method::DELETE, &path, None, StatusCode::OK)?;
    println!("Revoked key {}", args.id);
    Ok(ExitCode::SUCCESS)
}

pub fn rotate(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let path = format!("{}/{}/actions/rotate", base(args.app.as_deref()), args.id);
    let k = call(&args.api, Method::POST, &path, None, StatusCode::CREATED)?;
    println!("{}", k["key"].as_str().unwrap_or(""));
    eprintln!(
        "{}\n(key {} no longer works; the new key is shown this once)",
        describe(&k),
        args.id
    );
    Ok(ExitCode::SUCCESS)
}
