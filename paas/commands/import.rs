//! `paas import -a APP FILE…`: index log files an app already has (`heroku logs` output,
//! RFC 5424 syslog, bare logfmt; `-` or none for standard input), each line with its own
//! time, so that `paas query --since …` and `timechart` see when it happened. Lines go to the
//! app's kept lines only (not to its tails or drains), in batches through
//! `POST /apps/{app}/import`; a progress line on a terminal, the final rate at the end.

use std::io::{BufRead, IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::commands::client::{ApiArgs, AppArg, Client, api_error};

/// Lines in one request at most.
const BATCH_LINES: usize = 5_000;
/// Bytes of messages in one request at most (the API takes up to 8 MiB a body).
const BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to read (`-` or none: standard input).
    files: Vec<std::path::PathBuf>,
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
}

/// Counts and the clock of one import.
struct Progress {
    lines: u64,
    bytes: u64,
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    fn sent(&mut self, lines: usize, bytes: usize) {
        self.lines += lines as u64;
        self.bytes += bytes as u64;
        if self.terminal && self.shown.elapsed().as_millis() >= 200 {
            self.shown = Instant::now();
            eprint!("\r{}", self.line());
            let _ = std::io::stderr().flush();
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        format!(
            "imported {} lines ({:.1} MB) in {secs:.1} s: {:.0} lines/s, {:.1} MB/s",
            self.lines,
            self.bytes as f64 / 1e6,
            self.lines as f64 / secs,
            self.bytes as f64 / 1e6 / secs
        )
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let client = args.api.client()?;
    let mut progress = Progress {
        lines: 0,
        bytes: 0,
        started: Instant::now(),
        shown: Instant::now(),
        terminal: std::io::stderr().is_terminal(),
    };
    let runtime = crate::commands::runtime()?;
    let stdin = [std::path::PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    for path in files {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let file =
                std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            Box::new(std::io::BufReader::with_capacity(1 << 20, file))
        };
        runtime.block_on(import(&client, &app, reader, &mut progress))?;
    }
    if progress.terminal {
        eprint!("\r");
    }
    eprintln!("{}", progress.line());
    Ok(ExitCode::SUCCESS)
}

async fn import(
    client: &Client,
    app: &str,
    mut reader: Box<dyn BufRead>,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let now = logplex::Timestamp::now();
    let (mut batch, mut bytes) = (Vec::with_capacity(BATCH_LINES), 0);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        let Some(line) = query::read_line(&String::from_utf8_lossy(&raw), now) else {
            continue;
        };
        bytes += line.message.len();
        batch.push(json!({
            "time": line.time.to_string(),
            "source": line.source,
            "process": line.process,
            "message": line.message,
        }));
        if batch.len() >= BATCH_LINES || bytes >= BATCH_BYTES {
            let n = batch.len();
            send(client, app, std::mem::take(&mut batch)).await?;
            progress.sent(n, bytes);
            bytes = 0;
        }
    }
    let n = batch.len();
    if n > 0 {
        send(client, app, batch).await?;
        progress.sent(n, bytes);
    }
    Ok(())
}

/// Sends one batch; a 429 (the key's write budget) is waited out and sent again.
async fn send(client: &Client, app: &str, lines: Vec<Value>) -> anyhow::Result<()> {
    let body = json!({ "lines": lines });
    loop {
        let response = client
            .call(
                Method::POST,
                &format!("/apps/{app}/import"),
                Some(body.clone()),
            )
            .await?;
        match response.status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => return Ok(()),
            StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            _ => return Err(api_error(&response)),
        }
    }
}
