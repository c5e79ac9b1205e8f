//! `tail-latency`: how long a line takes from the sender's socket to a live tail's reader.
//! A tail session (`lines: 0, tail: true`) is opened first; then lines go over syslog TCP at
//! a steady pace, each stamped `stamp=<unix micros> seq=<n>` when it is written; the reader
//! notes, for every line, the time it got the chunk holding it minus the stamp. Sender and
//! reader run on this machine, on one clock.

use std::io::Write as _;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::frames::{Rng, push_frame, router_message, unix_micros};
use crate::http::{self, Stream, Url};

/// Where, and how hard.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The router's API, `http://HOST:PORT`.
    #[arg(long)]
    api: String,
    /// An API key that may open log sessions for the app.
    #[arg(long)]
    key: String,
    /// The app to tail.
    #[arg(long)]
    app: String,
    /// An ingest token of that app.
    #[arg(long)]
    token: String,
    /// The router's syslog TCP listener, `HOST:PORT`.
    #[arg(long)]
    syslog: String,
    /// Lines per second.
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Microseconds between the sender's writes (each write carries the lines due by then).
    #[arg(long, default_value_t = 250)]
    tick_us: u64,
    /// Read the tail as NDJSON (`Accept: application/x-ndjson`) rather than plain text.
    #[arg(long)]
    ndjson: bool,
    /// Seconds to wait, after the last line is sent, for the tail to catch up.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
}

/// What the reader saw.
#[derive(Debug, Default)]
struct Seen {
    /// Receipt minus stamp, microseconds, one per stamped line.
    latencies: Vec<i64>,
    /// `seen[seq]`: whether line `seq` arrived.
    seen: Vec<bool>,
    /// Lines arrived more than once.
    duplicates: u64,
    /// Lines without a stamp (the router's own, such as L11).
    other: u64,
    /// Lines the tail's L11 lines say were dropped.
    l11_dropped: u64,
}

/// The decimal number after `key` in `line`.
fn field(line: &[u8], key: &[u8]) -> Option<i64> {
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Reads the tail until it ends (or its socket is shut), counting lines into `received`.
fn read_tail(mut stream: Stream, expected: usize, received: &AtomicU64) -> Seen {
    let mut seen = Seen {
        latencies: Vec::with_capacity(expected),
        seen: vec![false; expected],
        ..Seen::default()
    };
    let (mut chunk, mut carry) = (Vec::with_capacity(256 * 1024), Vec::new());
    while stream.next(&mut chunk) {
        let now = unix_micros();
        carry.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = carry[start..].iter().position(|&b| b == b'\n') {
            let line = &carry[start..start + nl];
            start += nl + 1;
            match (field(line, b"stamp="), field(line, b" seq=")) {
                (Some(stamp), Some(seq)) => {
                    let seq = seq as usize;
                    if seq < seen.seen.len() && !seen.seen[seq] {
                        seen.seen[seq] = true;
                        seen.latencies.push(now - stamp);
                        received.fetch_add(1, Ordering::Relaxed);
                    } else {
                        seen.duplicates += 1;
                    }
                }
                _ if line.iter().all(u8::is_ascii_whitespace) => {}
                _ => {
                    seen.other += 1;
                    if let Some(n) = field(
                        line,
                        b"Error L11 (Tail buffer overflow) -> This tail session dropped ",
                    ) {
                        seen.l11_dropped += n as u64;
                    }
                }
            }
        }
        carry.drain(..start);
    }
    seen
}

/// Sends `total` lines at `rate` lines/s, each stamped when written. Returns how many.
fn send_paced(args: &Args, total: u64) -> anyhow::Result<u64> {
    let mut socket = TcpStream::connect(&args.syslog)
        .with_context(|| format!("connecting to {}", args.syslog))?;
    socket.set_nodelay(true)?;
    let mut rng = Rng::new(7);
    let (mut out, mut msg, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    let tick = Duration::from_micros(args.tick_us.max(1));
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((t0.elapsed().as_secs_f64() * args.rate) as u64).min(total);
        if due > sent {
            out.clear();
            let stamp = unix_micros();
            for seq in sent..due {
                msg.clear();
                write!(msg, "stamp={stamp} seq={seq} ")?;
                router_message(&mut msg, &mut rng);
                push_frame(&mut out, &mut scratch, &args.token, "web.1", stamp, &msg);
            }
            socket.write_all(&out)?;
            sent = due;
        }
        std::thread::sleep(tick);
    }
    Ok(sent)
}

/// The `q` quantile of sorted `v`, in milliseconds.
fn quantile_ms(v: &[i64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let api = Url::parse(&args.api)?;
    let total = (args.rate * args.seconds).round() as u64;
    if total == 0 {
        bail!("--rate × --seconds is no lines");
    }
    let session = http::json(
        &api.with_path(&format!("/apps/{}/log-sessions", args.app)),
        "POST",
        Some(&args.key),
        Some(&serde_json::json!({ "lines": 0, "tail": true })),
        201,
    )?;
    let url = session["logplex_url"]
        .as_str()
        .context("the log session has no logplex_url")?;
    let accept = if args.ndjson {
        "application/x-ndjson"
    } else {
        "text/plain"
    };
    // The tail's subscription exists once the response's headers are in.
    let stream = Stream::get(&Url::parse(url)?, accept)?;
    let socket = stream.socket.try_clone()?;
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = received.clone();
        std::thread::spawn(move || read_tail(stream, total as usize, &received))
    };

    let t0 = Instant::now();
    let sent = send_paced(&args, total)?;
    let send_secs = t0.elapsed().as_secs_f64();
    // Wait for the tail to catch up, or to stop making progress for `--drain` seconds.
    let (mut last, mut since) = (received.load(Ordering::Relaxed), Instant::now());
    while last < sent && since.elapsed().as_secs_f64() < args.drain {
        std::thread::sleep(Duration::from_millis(5));
        let now = received.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    // The tail's counters leave the app's stats with the tail: read them while it is open.
    let stats = http::json(
        &api.with_path(&format!("/apps/{}/stats", args.app)),
        "GET",
        Some(&args.key),
        None,
        200,
    )?;
    let tail_dropped: u64 = stats["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["kind"] == "tail")
        .filter_map(|c| c["dropped"].as_u64())
        .sum();
    let _ = socket.shutdown(Shutdown::Both);
    let mut seen = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the tail reader panicked"))?;

    seen.latencies.sort_unstable();
    let v = &seen.latencies;
    let count = v.len() as u64;
    let missing = sent - count;
    let (p50, p99, p999) = (
        quantile_ms(v, 0.50),
        quantile_ms(v, 0.99),
        quantile_ms(v, 0.999),
    );
    let max = v.last().map_or(f64::NAN, |m| *m as f64 / 1000.0);
    println!(
        "tail-latency: sent {sent} lines in {send_secs:.3} s ({:.0} lines/s, target {:.0}), {} format",
        sent as f64 / send_secs,
        args.rate,
        if args.ndjson { "ndjson" } else { "text" }
    );
    println!(
        "tail-latency: received {count}, missing {missing}, duplicates {}, unstamped lines {}; tail drops: {tail_dropped} in the router's stats, {} told by L11",
        seen.duplicates, seen.other, seen.l11_dropped
    );
    println!("tail-latency: p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms, max {max:.3} ms");
    println!(
        "result sent={sent} count={count} missing={missing} tail_dropped={tail_dropped} p50_ms={p50:.3} p99_ms={p99:.3} p999_ms={p999:.3} max_ms={max:.3}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_quantiles() {
        let line =
            b"2026-11-21T12:00:00.000000+00:00 app[web.1]: stamp=1795262400000123 seq=42 at=info";
        assert_eq!(field(line, b"stamp="), Some(1_795_262_400_000_123));
        assert_eq!(field(line, b" seq="), Some(42));
        assert_eq!(field(line, b"nope="), None);
        let v: Vec<i64> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 500.0);
        assert_eq!(quantile_ms(&v, 0.99), 990.0);
        assert_eq!(quantile_ms(&v, 0.999), 999.0);
        assert_eq!(quantile_ms(&v, 1.0), 1000.0);
    }
}
