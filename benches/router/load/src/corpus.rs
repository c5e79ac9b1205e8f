//! `logplex-load corpus`: a file of Heroku-shaped log lines as `heroku logs` prints them, for
//! the query benchmark (`benches/query/query.sh`): router lines (about 85 %) whose paths are
//! spread over `--paths` distinct values (600,000 by default), with statuses, H-codes, service
//! times and sizes that vary, and app lines (words for full-text search), spread evenly over
//! `--minutes` of time. The same seed gives the same file.

use std::io::Write as _;

use crate::frames::{Rng, write_rfc3339};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lines to write.
    #[arg(long, default_value_t = 10_000_000)]
    lines: u64,
    /// Distinct paths of the router lines.
    #[arg(long, default_value_t = 600_000)]
    paths: u64,
    /// Minutes of time the lines span, ending now.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// The generator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write (default: standard output).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

const WORDS: &[&str] = &[
    "checkout", "payment", "session", "cache", "miss", "retry", "timeout", "worker", "queue",
    "enqueued", "finished", "user", "signup", "email", "sent", "render", "template", "slow",
];

fn router_line(out: &mut Vec<u8>, rng: &mut Rng, i: u64, paths: u64) {
    let path = match rng.below(50) {
        0 => "/healthz".to_owned(),
        _ => format!("/api/items/{}", rng.below(paths.max(1))),
    };
    let (status, code) = match rng.below(100) {
        0 => ("503", " code=H12 desc=\"Request timeout\""),
        1 => (
            "503",
            " code=H13 desc=\"Connection closed without response\"",
        ),
        2..=4 => ("500", ""),
        5..=9 => ("404", ""),
        _ => ("200", ""),
    };
    let service = if code.contains("H12") {
        30_000
    } else {
        1 + rng.below(20) * rng.below(120)
    };
    let _ = write!(
        out,
        "heroku[router]: at={}{code} method=GET path=\"{path}\" host=shop.example.com \
         request_id={:016x}{i:08x} fwd=\"10.0.{}.{}\" dyno=web.{} connect={}ms service={service}ms \
         status={status} bytes={} protocol=https",
        if code.is_empty() { "info" } else { "error" },
        rng.below(u64::MAX),
        rng.below(256),
        rng.below(256),
        1 + rng.below(8),
        rng.below(5),
        100 + rng.below(50_000),
    );
}

fn app_line(out: &mut Vec<u8>, rng: &mut Rng) {
    let _ = write!(
        out,
        "app[web.{}]: at=info msg=\"{} {} {}\" user={} duration={}ms",
        1 + rng.below(8),
        WORDS[rng.below(WORDS.len() as u64) as usize],
        WORDS[rng.below(WORDS.len() as u64) as usize],
        WORDS[rng.below(WORDS.len() as u64) as usize],
        rng.below(100_000),
        rng.below(2_000),
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut rng = Rng::new(args.seed);
    let end = crate::frames::unix_micros();
    let span = i64::try_from(args.minutes.max(1) * 60_000_000).unwrap_or(i64::MAX);
    let start = end - span;
    let step = span / i64::try_from(args.lines.max(1)).unwrap_or(1);
    let mut writer: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path)?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        )),
    };
    let mut line = Vec::with_capacity(512);
    for i in 0..args.lines {
        line.clear();
        write_rfc3339(&mut line, start + step * i64::try_from(i).unwrap_or(0));
        line.push(b' ');
        if rng.below(100) < 85 {
            router_line(&mut line, &mut rng, i, args.paths);
        } else {
            app_line(&mut line, &mut rng);
        }
        line.push(b'\n');
        writer.write_all(&line)?;
    }
    writer.flush()?;
    Ok(())
}
