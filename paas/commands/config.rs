//! `paas config`, `config:get KEY`, `config:set K=V…`, `config:unset K…`, and `paas releases`,
//! `releases:info [vN]`, `releases:rollback [vN]`: an app's config vars and releases through
//! the Platform API, printed as the `heroku` CLI prints them. Each change is a release and
//! restarts the app's dynos one at a time.

use std::process::ExitCode;

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::commands::apps::call;
use crate::commands::client::{ApiArgs, AppArg, AppListArgs, percent_encode};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    list: AppListArgs,
    /// Print `KEY='value'` lines for a shell.
    #[arg(long, short = 's')]
    shell: bool,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The config var's name.
    key: String,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// `KEY=VALUE` for each var to set.
    #[arg(required = true)]
    pairs: Vec<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct UnsetArgs {
    /// The names of the vars to remove.
    #[arg(required = true)]
    keys: Vec<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// A release: `v4`, `4` or its id; none: the current one (for a rollback, the one
    /// before it).
    release: Option<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

fn vars_of(api: &ApiArgs, app: &str) -> anyhow::Result<Map<String, Value>> {
    let vars = call(
        api,
        Method::GET,
        &format!("/apps/{app}/config-vars"),
        None,
        StatusCode::OK,
    )?;
    Ok(vars.as_object().cloned().unwrap_or_default())
}

/// `KEY: value` lines with the values aligned, as `heroku config` prints them.
fn aligned(vars: &Map<String, Value>) -> Vec<String> {
    let width = vars.keys().map(|k| k.len() + 1).max().unwrap_or(0);
    vars.iter()
        .map(|(k, v)| {
            let key = format!("{k}:");
            format!("{key:<width$} {}", v.as_str().unwrap_or_default())
        })
        .collect()
}

/// `'value'` quoted for a POSIX shell.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let app = args.list.app.name()?;
    let vars = vars_of(&args.list.api, &app)?;
    if args.list.json {
        println!("{}", serde_json::to_string_pretty(&vars)?);
    } else if args.shell {
        for (k, v) in &vars {
            println!("{k}={}", shell_quote(v.as_str().unwrap_or_default()));
        }
    } else {
        println!("=== {app} Config Vars\n");
        for line in aligned(&vars) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let vars = vars_of(&args.api, &app)?;
    match vars.get(&args.key) {
        Some(v) => {
            println!("{}", v.as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        // As heroku config:get: an unset var prints an empty line.
        None => {
            println!();
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn patch(api: &ApiArgs, app: &str, body: Map<String, Value>) -> anyhow::Result<Value> {
    call(
        api,
        Method::PATCH,
        &format!("/apps/{app}/config-vars"),
        Some(Value::Object(body)),
        StatusCode::OK,
    )
}

/// The current release's version.
fn current_version(api: &ApiArgs, app: &str) -> anyhow::Result<u64> {
    let list = call(
        api,
        Method::GET,
        &format!("/apps/{app}/releases"),
        None,
        StatusCode::OK,
    )?;
    list.as_array()
        .and_then(|l| l.last())
        .and_then(|r| r["version"].as_u64())
        .context("the app has no release")
}

pub fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let mut body = Map::new();
    for pair in &args.pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("{pair:?}: expected KEY=VALUE");
        };
        body.insert(k.to_owned(), json!(v));
    }
    let names: Vec<&String> = body.keys().collect();
    let names = names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let vars = patch(&args.api, &app, body.clone())?;
    let version = current_version(&args.api, &app)?;
    println!("Setting {names} and restarting {app}... done, v{version}");
    let set: Map<String, Value> = vars
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| body.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for line in aligned(&set) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unset(args: UnsetArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let body: Map<String, Value> = args.keys.iter().map(|k| (k.clone(), Value::Null)).collect();
    patch(&args.api, &app, body)?;
    let version = current_version(&args.api, &app)?;
    println!(
        "Unsetting {} and restarting {app}... done, v{version}",
        args.keys.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `2026/11/22 06:32:27 +0000` from the API's RFC 3339 time.
fn when(r: &Value) -> String {
    let t = r["created_at"].as_str().unwrap_or_default();
    match (t.get(..10), t.get(11..19)) {
        (Some(date), Some(time)) => format!("{} {time} +0000", date.replace('-', "/")),
        _ => t.to_owned(),
    }
}

pub fn releases(args: AppListArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let list = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/releases"),
        None,
        StatusCode::OK,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list = list.as_array().cloned().unwrap_or_default();
    let current = list.last().and_then(|r| r["version"].as_u64()).unwrap_or(0);
    println!("=== {app} Releases - Current: v{current}\n");
    let width = list
        .iter()
        .map(|r| r["description"].as_str().unwrap_or_default().len())
        .max()
        .unwrap_or(0);
    for r in list.iter().rev() {
        println!(
            "v{:<4} {:<width$}  {}  {}",
            r["version"],
            r["description"].as_str().unwrap_or_default(),
            r["user"]["email"].as_str().unwrap_or_default(),
            when(r),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn release(api: &ApiArgs, app: &str, which: &str) -> anyhow::Result<Value> {
    call(
        api,
        Method::GET,
        &format!("/apps/{app}/releases/{}", percent_encode(which)),
        None,
        StatusCode::OK,
    )
}

pub fn info(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let which = match &args.release {
        Some(r) => r.clone(),
        None => current_version(&args.api, &app)?.to_string(),
    };
    let r = release(&args.api, &app, &which)?;
    let version = &r["version"];
    println!("=== Release v{version}");
    println!("Add-ons: ");
    println!(
        "By:      {}",
        r["user"]["email"].as_str().unwrap_or_default()
    );
    println!("Change:  {}", r["description"].as_str().unwrap_or_default());
    println!("When:    {}", when(&r));
    let vars = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/releases/{version}/config-vars"),
        None,
        StatusCode::OK,
    )?;
    println!("\n=== v{version} Config vars\n");
    for line in aligned(&vars.as_object().cloned().unwrap_or_default()) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let which = match &args.release {
        Some(r) => r.clone(),
        None => {
            let current = current_version(&args.api, &app)?;
            if current < 2 {
                bail!("{app} has no release before v{current} to roll back to");
            }
            (current - 1).to_string()
        }
    };
    let target = release(&args.api, &app, &which)?;
    let made = call(
        &args.api,
        Method::POST,
        &format!("/apps/{app}/releases"),
        Some(json!({ "release": target["id"] })),
        StatusCode::CREATED,
    )?;
    println!(
        "Rolling back {app} to v{}... done, v{}",
        target["version"], made["version"]
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_aligned_and_quoted_as_heroku_prints_them() {
        let vars = json!({"A": "1", "LONGER": "it's"});
        let vars = vars.as_object().cloned().unwrap();
        assert_eq!(aligned(&vars), ["A:      1", "LONGER: it's"]);
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
