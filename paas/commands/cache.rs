//! `paas cache` (the HTTP cache's counters) and `paas cache:purge [PATH]` (everything, one
//! path, or a prefix ending in `*`), through `GET`/`DELETE /apps/{app}/cache`.

use std::process::ExitCode;

use hyper::{Method, StatusCode};

use crate::commands::apps::call;
use crate::commands::client::{ApiArgs, AppArg};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
    /// Print the counters as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// A path (`/a?b`), or a prefix of paths ending in `*` (`/assets/*`); none: everything.
    path: Option<String>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let answer = call(
        &args.api,
        Method::GET,
        &format!("/apps/{app}/cache"),
        None,
        StatusCode::OK,
    )?;
    let cache = &answer["cache"];
    if args.json {
        println!("{}", serde_json::to_string_pretty(cache)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("=== {app} HTTP cache");
    for key in [
        "objects",
        "bytes",
        "hits",
        "misses",
        "passes",
        "stale",
        "revalidated",
        "coalesced",
        "evictions",
        "purged",
    ] {
        println!("{key:<12} {}", cache[key]);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let path = match &args.path {
        Some(p) => format!("/apps/{app}/cache?path={}", encode(p)),
        None => format!("/apps/{app}/cache"),
    };
    let answer = call(&args.api, Method::DELETE, &path, None, StatusCode::OK)?;
    let what = args.path.as_deref().unwrap_or("everything");
    println!(
        "Purged {what} from {app}'s cache: {} URLs",
        answer["purged"]
    );
    Ok(ExitCode::SUCCESS)
}

/// `value` as a query value: `%XX` for what is not unreserved or `/`, `*`.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'*' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_for_the_query() {
        assert_eq!(encode("/a?b=c&d"), "/a%3Fb%3Dc%26d");
        assert_eq!(encode("/assets/*"), "/assets/*");
    }
}
