//! `paas logs`: the flags of `heroku logs`. Makes a log session through the API
//! (`POST /apps/{app}/log-sessions`), then reads its URL as one JSON object per line and
//! prints each line as Heroku shows it, `TIME SOURCE[PROCESS]: MESSAGE`, coloured by process
//! on a terminal, or as JSON with the message's logfmt fields (`--json`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::commands::client::{ApiArgs, AppArg, api_error};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// Number of history lines to show (at most the router's history, 1500 by default).
    #[arg(short = 'n', long = "num", default_value_t = 100)]
    num: u32,
    /// Keep the session open and show lines as they arrive.
    #[arg(short = 't', long)]
    tail: bool,
    /// Only lines of this source (`app`, `paas`, a token's name); a platform process
    /// (`router`, `cache`, `logplex`) means the platform's lines from it, and `postgres` or
    /// `heroku-postgres` the database adapter's `app[…]` lines.
    #[arg(short = 's', long)]
    source: Option<String>,
    /// Only lines of this process, or of this type: `web` shows web.1, web.2, ….
    #[arg(
        short = 'd',
        long = "dyno",
        visible_alias = "dyno-name",
        alias = "ps",
        alias = "process-type",
        short_alias = 'p'
    )]
    dyno: Option<String>,
    /// Only lines whose message matches this logfmt filter, e.g. `status>=500`.
    #[arg(long = "where", value_name = "FILTER")]
    filter: Option<String>,
    /// One JSON object per line: time, source, process, message, and the message's logfmt
    /// fields.
    #[arg(long)]
    json: bool,
    /// Colour even when the output is not a terminal.
    #[arg(long)]
    force_colors: bool,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let client = args.api.client()?;
    let color = args.force_colors
        || std::env::var("FORCE_COLORS").is_ok_and(|v| v == "true" || v == "1")
        || (std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    crate::commands::runtime()?.block_on(async move {
        let body = json!({
            "lines": args.num,
            "tail": args.tail,
            "source": args.source,
            "dyno": args.dyno,
            "filter": args.filter,
        });
        let created = client
            .call(
                Method::POST,
                &format!("/apps/{app}/log-sessions"),
                Some(body),
            )
            .await?;
        if created.status != StatusCode::CREATED {
            return Err(api_error(&created));
        }
        let session: Value = serde_json::from_slice(&created.body)?;
        let url = session["logplex_url"]
            .as_str()
            .context("the API gave no logplex_url")?;
        let response = client
            .send(Method::GET, url, None, "application/x-ndjson", false)
            .await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            return Err(api_error(&crate::commands::client::Response {
                status,
                body,
            }));
        }
        let mut body = response.into_body();
        let mut pending = Vec::new();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    let written = if args.json {
                        write_json(&mut out, &v)
                    } else {
                        write_line(&mut out, &v, color)
                    };
                    if written.is_err() {
                        // The reader went away (a closed pipe): stop quietly.
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            if out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Colours the heroku CLI cycles through for processes.
const PALETTE: [&str; 6] = ["36", "33", "32", "35", "34", "91"];

fn process_color(source: &str, process: &str) -> &'static str {
    if source == "paas" {
        return "94";
    }
    let kind = process.split('.').next().unwrap_or(process);
    let hash = kind
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    PALETTE[hash as usize % PALETTE.len()]
}

fn write_line(out: &mut impl Write, v: &Value, color: bool) -> std::io::Result<()> {
    let s = |k: &str| logplex::printable(v[k].as_str().unwrap_or(""));
    let (time, source, process, message) = (s("time"), s("source"), s("process"), s("message"));
    let (time, source, process, message) = (&*time, &*source, &*process, &*message);
    let header = if process.is_empty() {
        source.to_owned()
    } else {
        format!("{source}[{process}]")
    };
    if color {
        let message_color = if message.contains("at=error") || message.starts_with("Error ") {
            "\x1b[31m"
        } else {
            ""
        };
        let reset = if message_color.is_empty() {
            ""
        } else {
            "\x1b[0m"
        };
        writeln!(
            out,
            "{time} \x1b[{}m{header}:\x1b[0m {message_color}{message}{reset}",
            process_color(source, process)
        )
    } else {
        writeln!(out, "{time} {header}: {message}")
    }
}

fn write_json(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    let message = v["message"].as_str().unwrap_or("");
    let mut fields = Map::new();
    for pair in logfmt::pairs(message.as_bytes()) {
        let key = String::from_utf8_lossy(pair.key).into_owned();
        let value = match pair.value {
            None => Value::Bool(true),
            Some(val) => Value::String(String::from_utf8_lossy(&val.unescaped()).into_owned()),
        };
        fields.insert(key, value);
    }
    let obj = json!({
        "time": v["time"],
        "source": v["source"],
        "process": v["process"],
        "message": message,
        "fields": fields,
    });
    writeln!(out, "{obj}")
}
