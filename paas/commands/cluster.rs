//! `paas cluster`: the cluster a router belongs to (`GET /cluster`): its nodes with their
//! heartbeat and bus reader's lag, the stream, the drains' shared consumers and their lag,
//! and whether this node reaches NATS and PostgreSQL. `--json` prints the API's answer.

use std::fmt::Write as _;
use std::process::ExitCode;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::commands::apps::call;
use crate::commands::client::ApiArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let v = call(&args.api, Method::GET, "/cluster", None, StatusCode::OK)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "ok"
    } else {
        "DOWN"
    }
}

/// The report as text.
fn render(v: &Value) -> String {
    let mut out = String::new();
    let stream = &v["nats"]["stream"];
    let _ = writeln!(
        out,
        "this node: {}   nats: {}   postgresql: {}",
        v["node"].as_str().unwrap_or("?"),
        yes(&v["nats"]["connected"]),
        yes(&v["postgresql"]["healthy"]),
    );
    let _ = writeln!(
        out,
        "stream {}: {} messages, {} bytes, sequences {}..{}",
        stream["name"].as_str().unwrap_or("?"),
        stream["messages"],
        stream["bytes"],
        stream["first_sequence"],
        stream["last_sequence"],
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:<6} {:>10} {:>12}  api",
        "node", "alive", "heartbeat", "bus lag"
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<20} {:<6} {:>9.1}s {:>12}  {}",
            n["id"].as_str().unwrap_or("?"),
            if n["alive"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            n["heartbeat_age_seconds"].as_f64().unwrap_or(f64::NAN),
            n["status"]["consumers"]["bus-reader"]["lag_messages"],
            n["api_url"].as_str().unwrap_or(""),
        );
    }
    let consumers = v["consumers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !consumers.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<44} {:>10} {:>12} {:>12}",
            "shared consumer", "pending", "unacked", "redelivered"
        );
        for c in consumers {
            let _ = writeln!(
                out,
                "{:<44} {:>10} {:>12} {:>12}",
                c["name"].as_str().unwrap_or("?"),
                c["pending_messages"],
                c["ack_pending_messages"],
                c["redelivered_messages"],
            );
        }
    }
    out
}
