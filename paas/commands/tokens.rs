//! `paas tokens`, `tokens:create`, `tokens:rotate`, `tokens:revoke`.

use std::process::ExitCode;

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::commands::apps::call;
use crate::commands::client::{ApiArgs, AppArg};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The source its lines carry (`app`, `deploys`, …).
    name: String,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token (`t.…`).
    token: String,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let tokens = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/tokens"),
        None,
        StatusCode::OK,
    )?;
    for t in tokens.as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}",
            t["token"].as_str().unwrap_or(""),
            t["name"].as_str().unwrap_or(""),
            t["created_at"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let t = call(
        &args.api,
        Method::POST,
        &format!("/apps/{app}/tokens"),
        Some(json!({ "name": args.name })),
        StatusCode::CREATED,
    )?;
    println!("{}", t["token"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

pub fn rotate(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let path = format!("/apps/{app}/tokens/{}/actions/rotate", args.token);
    let t = call(&args.api, Method::POST, &path, None, StatusCode::CREATED)?;
    println!("{}", t["token"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    call(
        &args.api,
        Method::DELETE,
        &format!("/apps/{app}/tokens/{}", args.token),
        None,
        StatusCode::OK,
    )?;
    println!("Revoked {}", args.token);
    Ok(ExitCode::SUCCESS)
}
