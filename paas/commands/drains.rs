//! `paas drains`, `drains:add URL`, `drains:remove URL|TOKEN`: an app's drains and, first
//! thing to check when logs don't arrive, how each is delivering.

use std::process::ExitCode;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::commands::apps::{call, list_or_json};
use crate::commands::client::{ApiArgs, AppArg, AppListArgs, percent_encode};

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The drain URL.
    url: String,
    /// Buffer on disk: survives the receiver being down and the router restarting,
    /// delivers at least once, drops nothing until the disk budget is full.
    #[arg(long)]
    durable: bool,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The drain's URL, token (`d.…`) or id.
    drain: String,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

fn describe(d: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = format!("{}  {}", s(&d["url"]), s(&d["token"]));
    let h = &d["delivery"];
    if h.is_object() {
        // Syslog has no acknowledgement: what it sent is all that is known.
        let delivered = if s(&d["url"]).starts_with("http") {
            format!("  delivered {}", h["delivered"])
        } else {
            "  (syslog: no acknowledgement)".to_owned()
        };
        out.push_str(&format!(
            "\n    sent {}{delivered}  dropped {}  buffered {}{}",
            h["sent"],
            h["dropped"],
            h["buffered"],
            if h["degraded"] == true {
                "  DEGRADED"
            } else {
                ""
            }
        ));
        out.push_str(&format!("\n    last success {}", s(&h["last_success_at"])));
        if !h["last_error"].is_null() {
            out.push_str(&format!(
                "\n    last error {} at {}",
                s(&h["last_error"]),
                s(&h["last_error_at"])
            ));
        }
    }
    out
}

pub fn list(args: AppListArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let Some(list) = list_or_json(&args.api, &format!("/apps/{app}/log-drains"), args.json)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if list.is_empty() {
        println!("{app} has no drains.");
    }
    for d in &list {
        println!("{}", describe(d));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let d = call(
        &args.api,
        Method::POST,
        &format!("/apps/{app}/log-drains"),
        Some(json!({ "url": args.url, "durable": args.durable })),
        StatusCode::CREATED,
    )?;
    println!(
        "Successfully added drain {}",
        d["url"].as_str().unwrap_or("")
    );
    println!("Drain token: {}", d["token"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

pub fn remove(args: RemoveArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let path = format!("/apps/{app}/log-drains/{}", percent_encode(&args.drain));
    let d = call(&args.api, Method::DELETE, &path, None, StatusCode::OK)?;
    println!(
        "Successfully removed drain {}",
        d["url"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}
