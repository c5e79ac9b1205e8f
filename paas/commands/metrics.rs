//! `paas metrics -a APP`: a live RED view of an app in the terminal, redrawn every second from
//! the router's extracted metrics (`GET /apps/{app}/metrics`): requests a second by status
//! class, error codes, p50/p95/p99 service time, memory per dyno. `--once` prints one view
//! (over one interval) and exits; `--json` prints it as JSON.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::{Method, StatusCode};
use query::{AppSnapshot, RedView};

use crate::commands::apps::call;
use crate::commands::client::{ApiArgs, AppArg, percent_encode};
use crate::commands::logplex::secs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    #[command(flatten)]
    api: ApiArgs,
    /// Print one view and exit.
    #[arg(long)]
    once: bool,
    /// Print the view as JSON (one object per interval).
    #[arg(long)]
    json: bool,
    /// Seconds between two snapshots (the window rates are over).
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = args.app.name()?;
    let interval = secs(args.interval, "interval")?.max(Duration::from_millis(10));
    let path = format!("/apps/{}/metrics", percent_encode(&app));
    let fetch = || -> anyhow::Result<AppSnapshot> {
        let v = call(&args.api, Method::GET, &path, None, StatusCode::OK)?;
        serde_json::from_value(v).context("the API's metrics snapshot")
    };
    let mut before = fetch()?;
    let mut at = Instant::now();
    loop {
        std::thread::sleep(interval);
        let after = fetch()?;
        let now = Instant::now();
        let view = RedView::between(&before, &after, now.duration_since(at).as_secs_f64());
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer(&mut out, &view)?;
            writeln!(out)?;
        } else {
            if !args.once {
                // Clear the screen and go home, as `top` does.
                write!(out, "\x1b[2J\x1b[H")?;
            }
            write!(out, "{}", render(&view))?;
        }
        out.flush()?;
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        (before, at) = (after, now);
    }
}

/// The view as text.
fn render(v: &RedView) -> String {
    let mut s = format!("=== {} (over {:.1}s)\n", v.app, v.window_seconds);
    let total: f64 = v.requests_per_second.values().sum();
    s.push_str(&format!("requests/s  {total:.1}"));
    for (class, rate) in &v.requests_per_second {
        s.push_str(&format!("  {class} {rate:.1}"));
    }
    s.push('\n');
    s.push_str("requests    ");
    for (class, n) in &v.requests_total {
        s.push_str(&format!(" {class} {n}"));
    }
    s.push('\n');
    if !v.error_codes.is_empty() {
        s.push_str("errors      ");
        for (code, n) in &v.error_codes {
            s.push_str(&format!(" {code} {n}"));
        }
        s.push('\n');
    }
    if !v.service_seconds.is_empty() {
        let over = if v.quantiles_over_window {
            "this interval"
        } else {
            "since start"
        };
        s.push_str("service     ");
        for (q, secs) in &v.service_seconds {
            s.push_str(&format!(" {q} {:.0}ms", secs * 1e3));
        }
        s.push_str(&format!("  ({over})\n"));
    }
    for (dyno, bytes) in &v.memory_bytes {
        s.push_str(&format!("memory       {dyno} {:.1}MB\n", bytes / 1e6));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_reads_as_a_few_lines() {
        let mut v = RedView {
            app: "shop".into(),
            window_seconds: 1.0,
            quantiles_over_window: true,
            ..RedView::default()
        };
        v.requests_per_second.insert("2xx".into(), 3.0);
        v.requests_per_second.insert("5xx".into(), 1.0);
        v.requests_total.insert("2xx".into(), 30);
        v.error_codes.insert("H12".into(), 2);
        v.service_seconds.insert("p50".into(), 0.012);
        v.memory_bytes.insert("web.1".into(), 21e6);
        assert_eq!(
            render(&v),
            "=== shop (over 1.0s)\nrequests/s  4.0  2xx 3.0  5xx 1.0\nrequests     2xx 30\n\
             errors       H12 2\nservice      p50 12ms  (this interval)\nmemory       web.1 21.0MB\n"
        );
    }
}
