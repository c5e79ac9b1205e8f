//! `paas apps`, `apps:create`, `apps:info`, `apps:destroy`, `apps:stats`.

use std::process::ExitCode;

use anyhow::bail;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::commands::client::{ApiArgs, AppArg, api_error};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The app's name: lowercase letters, digits and dashes, 3 to 30 characters.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    app: AppArg,
    /// The app's name again, to confirm.
    #[arg(long)]
    confirm: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs one API call and returns its JSON, or the API's error.
pub fn call(
    api: &ApiArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
    ok: StatusCode,
) -> anyhow::Result<Value> {
    let client = api.client()?;
    let response = crate::commands::runtime()?.block_on(client.call(method, path, body))?;
    if response.status != ok {
        return Err(api_error(&response));
    }
    Ok(serde_json::from_slice(&response.body)?)
}

/// A list from the API: printed as JSON and `None` with `--json`, else the items to show.
pub fn list_or_json(api: &ApiArgs, path: &str, json: bool) -> anyhow::Result<Option<Vec<Value>>> {
    let list = call(api, Method::GET, path, None, StatusCode::OK)?;
    if json {
        print_json(&list)?;
        return Ok(None);
    }
    Ok(Some(list.as_array().cloned().unwrap_or_default()))
}

fn print_json(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let apps = call(&args.api, Method::GET, "/apps", None, StatusCode::OK)?;
    if args.json {
        return print_json(&apps);
    }
    for app in apps.as_array().into_iter().flatten() {
        println!("{}", app["name"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let app = call(
        &args.api,
        Method::POST,
        "/apps",
        Some(json!({ "name": args.name })),
        StatusCode::CREATED,
    )?;
    if args.json {
        return print_json(&app);
    }
    println!("Created {}", app["name"].as_str().unwrap_or(""));
    println!(
        "Ingest token (source \"app\"): {}",
        app["ingest_token"]["token"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let name = args.app.name()?;
    print_json(&call(
        &args.api,
        Method::GET,
        &format!("/apps/{name}"),
        None,
        StatusCode::OK,
    )?)
}

/// The channel's counters, under `query` what the app keeps for `paas query` (its index, its
/// spool, and `lag_bytes`: lines accepted and not yet in an index block), and under `cache` the
/// HTTP cache's counters when `paas up` runs one.
pub fn stats(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let name = args.app.name()?;
    let mut stats = call(
        &args.api,
        Method::GET,
        &format!("/apps/{name}/stats"),
        None,
        StatusCode::OK,
    )?;
    let kept = call(
        &args.api,
        Method::GET,
        &format!("/apps/{name}/index"),
        None,
        StatusCode::OK,
    )?;
    // The HTTP cache's counters, where `paas up` runs one for the app.
    let cache = call(
        &args.api,
        Method::GET,
        &format!("/apps/{name}/cache"),
        None,
        StatusCode::OK,
    );
    if let Some(object) = stats.as_object_mut() {
        object.insert("query".to_owned(), kept);
        if let Ok(cache) = cache {
            object.insert("cache".to_owned(), cache["cache"].clone());
        }
    }
    print_json(&stats)
}

/// `paas index:rebuild -a APP`: the app's query index made again from the lines it keeps.
pub fn rebuild_index(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let name = args.app.name()?;
    let done = call(
        &args.api,
        Method::POST,
        &format!("/apps/{name}/index/rebuild"),
        None,
        StatusCode::OK,
    )?;
    let n = |k: &str| done.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!(
        "Rebuilt {name}'s index: {} lines in {} blocks",
        n("lines"),
        n("blocks")
    );
    let unreadable = done
        .get("unreadable")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for u in &unreadable {
        println!(
            "  unreadable, its lines lost: {}",
            u.as_str().unwrap_or_default()
        );
    }
    Ok(if unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn destroy(args: DestroyArgs) -> anyhow::Result<ExitCode> {
    let name = args.app.name()?;
    if args.confirm.as_deref() != Some(name.as_str()) {
        bail!("this deletes {name}, its tokens and its history: confirm with --confirm {name}");
    }
    call(
        &args.api,
        Method::DELETE,
        &format!("/apps/{name}"),
        None,
        StatusCode::OK,
    )?;
    println!("Destroyed {name}");
    Ok(ExitCode::SUCCESS)
}
