//! `paas query -a APP [--since 15m] [--until T] [--json] 'FILTER | STAGE …'`: ad-hoc questions
//! of an app's kept lines, answered by the router (`GET /apps/{app}/query`). Matching lines
//! print as `paas logs` prints them; aggregations as an aligned table; `timechart` as a bar
//! chart; `--json` gives one JSON object a line or a row (the API's NDJSON, as it is).

use std::io::Write as _;
use std::process::ExitCode;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};

use crate::commands::client::{ApiArgs, AppArg, Response, api_error, percent_encode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query: a filter (`status>=500 path=/api/*`, `source=router`, `"timeout"`) and
    /// stages (`| count by path`, `| p99(service) by path | sort -p99(service) | head 10`,
    /// `| timechart 1m count by code`).
    query: String,
    /// Only lines since then: a duration back from now (15m, 2h, 7d) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only lines before then: a duration back from now or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Lines returned at most (aggregations are not limited by it).
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON object a line or a row.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let client = args.api.client()?;
    let mut path = format!(
        "/apps/{app}/query?q={}&format={}",
        percent_encode(&args.query),
        if args.json { "ndjson" } else { "text" }
    );
    for (name, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            path.push_str(&format!("&{name}={}", percent_encode(v)));
        }
    }
    if let Some(limit) = args.limit {
        path.push_str(&format!("&limit={limit}"));
    }
    crate::commands::runtime()?.block_on(async move {
        let accept = if args.json {
            "application/x-ndjson"
        } else {
            "text/plain"
        };
        let response = client.send(Method::GET, &path, None, accept, true).await?;
        let status = response.status();
        // A cluster's answer that lacks some node's lines says which (the text has it too).
        let partial = response
            .headers()
            .get(query::PARTIAL_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            return Err(api_error(&Response { status, body }));
        }
        let mut out = std::io::stdout().lock();
        if out.write_all(&body).and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more to say.
        }
        if let (Some(partial), true) = (partial, args.json) {
            eprintln!("paas query: partial answer: lacks {partial}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
