//! `paas ps`, `paas scale web=3 worker=1`, `paas restart [web.1|web]`: the dynos of an app that
//! `paas up` runs, through the Platform API's formation and dyno resources.

use std::process::ExitCode;

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::commands::apps::{call, list_or_json};
use crate::commands::client::{ApiArgs, AppArg, AppListArgs};

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// `TYPE=N` for each process type to change; none: show the formation.
    changes: Vec<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// A dyno (`web.1`) or a process type (`web`); none: every dyno.
    dyno: Option<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// A dyno (`web.1`) or a process type (`web`).
    dyno: String,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

/// `~ 3m ago` for a number of seconds, as heroku ps writes it.
fn ago(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `2026/11/22 06:32:27 +0000` from the API's RFC 3339 time, as heroku ps writes it.
fn since(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(date), Some(time)) => format!("{} {time} +0000", date.replace('-', "/")),
        _ => rfc3339.to_owned(),
    }
}

pub fn ps(args: AppListArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let Some(dynos) = list_or_json(&args.api, &format!("/apps/{app}/dynos"), args.json)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if dynos.is_empty() {
        println!("No dynos on {app}");
    }
    let mut kind = String::new();
    for d in &dynos {
        let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
        if s("type") != kind {
            kind = s("type");
            let n = dynos.iter().filter(|x| x["type"] == d["type"]).count();
            println!("=== {kind} ({}): {} ({n})", s("size"), s("command"));
        }
        let restarts = d["restarts"].as_u64().unwrap_or(0);
        println!(
            "{}: {} {} (~ {} ago){}",
            s("name"),
            s("state"),
            since(&s("updated_at")),
            ago(d["state_seconds"].as_u64().unwrap_or(0)),
            match restarts {
                0 => String::new(),
                1 => ", restarted once".to_owned(),
                n => format!(", restarted {n} times"),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let path = format!("/apps/{app}/formation");
    let formation = if args.changes.is_empty() {
        call(&args.api, Method::GET, &path, None, StatusCode::OK)?
    } else {
        let mut updates = Vec::new();
        for change in &args.changes {
            let (kind, n) = change
                .split_once('=')
                .or_else(|| change.split_once(':'))
                .with_context(|| format!("{change:?}: expected TYPE=N"))?;
            let Ok(quantity) = n.parse::<u64>() else {
                bail!("{change:?}: {n:?} is not a number of dynos");
            };
            updates.push(json!({ "type": kind, "quantity": quantity }));
        }
        call(
            &args.api,
            Method::PATCH,
            &path,
            Some(json!({ "updates": updates })),
            StatusCode::OK,
        )?
    };
    let shown: Vec<String> = formation
        .as_array()
        .into_iter()
        .flatten()
        .map(|f: &Value| {
            format!(
                "{}={}:{}",
                f["type"].as_str().unwrap_or_default(),
                f["quantity"],
                f["size"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if args.changes.is_empty() {
        println!("{}", shown.join(" "));
    } else {
        println!("Scaling dynos... done, now running {}", shown.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restart(args: RestartArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let path = match &args.dyno {
        Some(d) => format!("/apps/{app}/dynos/{d}"),
        None => format!("/apps/{app}/dynos"),
    };
    call(&args.api, Method::DELETE, &path, None, StatusCode::ACCEPTED)?;
    match &args.dyno {
        Some(d) => println!("Restarting {d} on {app}... done"),
        None => println!("Restarting dynos on {app}... done"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let which = crate::commands::client::percent_encode(&args.dyno);
    // As the heroku CLI: a name with a dot is a dyno, else a process type.
    let path = if args.dyno.contains('.') {
        format!("/apps/{app}/dynos/{which}/actions/stop")
    } else {
        format!("/apps/{app}/formations/{which}/actions/stop")
    };
    call(&args.api, Method::POST, &path, None, StatusCode::ACCEPTED)?;
    if args.dyno.contains('.') {
        println!("Stopping dyno {} on {app}... done", args.dyno);
    } else {
        println!("Stopping all {} dynos on {app}... done", args.dyno);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_read_as_heroku_ps_writes_them() {
        assert_eq!(
            since("2026-11-22T06:32:27.252509+00:00"),
            "2026/11/22 06:32:27 +0000"
        );
        assert_eq!(since("garbage"), "garbage");
        assert_eq!(
            [ago(5), ago(125), ago(7300), ago(200_000)],
            ["5s", "2m", "2h", "2d"]
        );
    }
}
