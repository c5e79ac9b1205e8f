//! `send`: frames built once, written over one or more TCP connections as fast as the router
//! takes them (or paced), then, when given the API, a wait until the router has accepted them
//! all.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::frames::{Pool, unix_micros};
use crate::http::{self, Url};

/// What to send, and where.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The router's syslog TCP listener, `HOST:PORT`.
    #[arg(long)]
    addr: String,
    /// An ingest token (`t.<uuid>`); repeat it to spread the lines over several apps, one
    /// frame each in turn.
    #[arg(long, required = true)]
    token: Vec<String>,
    /// Frames to send in all.
    #[arg(long)]
    lines: u64,
    /// Lines per second, over all connections (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// TCP connections, each sending its share.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Distinct frames built before sending, sent round and round.
    #[arg(long, default_value_t = 4096)]
    pool: usize,
    /// The router's API (`http://HOST:PORT`): wait until the apps' `accepted` counters have
    /// grown by `--lines`, and report the rate from the first byte sent.
    #[arg(long, requires_all = ["key", "app"])]
    api: Option<String>,
    /// An API key for `--api`.
    #[arg(long)]
    key: Option<String>,
    /// An app whose `accepted` counter to watch; repeat it for every app the tokens feed.
    #[arg(long)]
    app: Vec<String>,
    /// Seconds to wait for the router to accept everything.
    #[arg(long, default_value_t = 120.0)]
    wait_timeout: f64,
    /// Add l2met metrics to every line (`measure#db.latency=…ms count#requests=1`), for the
    /// metric extraction bench.
    #[arg(long)]
    l2met: bool,
}

/// The apps' `accepted` counters, summed.
fn accepted(api: &Url, key: &str, apps: &[String]) -> anyhow::Result<u64> {
    let mut sum = 0;
    for app in apps {
        let stats = http::json(
            &api.with_path(&format!("/apps/{app}/stats")),
            "GET",
            Some(key),
            None,
            200,
        )?;
        sum += stats["accepted"]
            .as_u64()
            .with_context(|| format!("stats of {app}: no accepted count"))?;
    }
    Ok(sum)
}

/// Writes `count` frames from pool index `first` (going round), paced to `rate` lines/s if
/// given.
fn send_share(
    mut socket: TcpStream,
    pool: &Pool,
    first: u64,
    count: u64,
    rate: Option<f64>,
    start: &Barrier,
) -> anyhow::Result<()> {
    let first = (first % pool.len() as u64) as usize;
    start.wait();
    match rate {
        None => {
            for piece in pool.frames(first, count as usize) {
                socket.write_all(piece)?;
            }
        }
        Some(rate) => {
            let t0 = Instant::now();
            let mut sent = 0u64;
            while sent < count {
                let due = ((t0.elapsed().as_secs_f64() * rate) as u64).min(count);
                if due > sent {
                    for piece in pool.frames(first + sent as usize, (due - sent) as usize) {
                        socket.write_all(piece)?;
                    }
                    sent = due;
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    socket.flush()?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let connections = args.connections.max(1);
    let api = args.api.as_deref().map(Url::parse).transpose()?;
    let key = args.key.as_deref().unwrap_or("");
    let baseline = match &api {
        Some(api) => accepted(api, key, &args.app)?,
        None => 0,
    };
    let pool = Arc::new(Pool::new(
        &args.token,
        args.pool.max(1),
        unix_micros(),
        args.l2met,
    ));
    let frame_bytes = pool.bytes() as f64 / pool.len() as f64;

    let start = Arc::new(Barrier::new(connections + 1));
    let mut threads = Vec::with_capacity(connections);
    let mut first = 0u64;
    for c in 0..connections {
        let share = args.lines / connections as u64
            + u64::from((c as u64) < args.lines % connections as u64);
        let socket = TcpStream::connect(&args.addr)
            .with_context(|| format!("connecting to {}", args.addr))?;
        socket.set_nodelay(true)?;
        let rate = args
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| r * share as f64 / args.lines.max(1) as f64);
        let (pool, start) = (pool.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            send_share(socket, &pool, first, share, rate, &start)
        }));
        first += share;
    }
    start.wait();
    let t0 = Instant::now();
    let first_byte_unix_us = unix_micros();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??;
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let bytes = (args.lines as f64 * frame_bytes) as u64;
    println!(
        "send: {} frames ({:.1} MB, {:.0} B/frame) over {connections} connection(s) in {send_secs:.3} s: {:.0} lines/s written",
        args.lines,
        bytes as f64 / 1e6,
        frame_bytes,
        args.lines as f64 / send_secs
    );
    let mut result = format!(
        "result lines={} bytes={bytes} send_seconds={send_secs:.3} send_lines_per_sec={:.0} first_byte_unix_us={first_byte_unix_us}",
        args.lines,
        args.lines as f64 / send_secs
    );

    if let Some(api) = &api {
        let deadline = t0 + Duration::from_secs_f64(args.wait_timeout);
        let target = baseline + args.lines;
        let mut got = accepted(api, key, &args.app)?;
        while got < target {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} lines accepted after {} s (rejected lines show in /apps/APP/stats)",
                    got - baseline,
                    args.lines,
                    args.wait_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(2));
            got = accepted(api, key, &args.app)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "send: all {} lines accepted {secs:.3} s after the first byte: {:.0} lines/s",
            args.lines,
            args.lines as f64 / secs
        );
        result.push_str(&format!(
            " accepted_seconds={secs:.3} accepted_lines_per_sec={:.0}",
            args.lines as f64 / secs
        ));
    }
    println!("{result}");
    Ok(())
}
