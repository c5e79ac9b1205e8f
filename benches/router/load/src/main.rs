//! `logplex-load`: the load side of `benches/router/ingest.sh`.
//!
//! ```text
//! logplex-load send --addr HOST:PORT --token T --lines N [--rate R] [--connections C]
//!                   [--api URL --key K --app A]
//! logplex-load tail-latency --api URL --key K --app A --token T --syslog HOST:PORT
//!                   [--rate 100000] [--seconds 5] [--ndjson]
//! logplex-load sink [--listen 127.0.0.1:0] [--expect N] [--quiet-secs 10] [--ignore-pri P]
//! logplex-load corpus [--lines 10000000] [--paths 600000] [--minutes 60] [--out FILE]
//! ```
//!
//! `send` builds a pool of Heroku router-line frames (about 200 bytes each, RFC 6587 octet
//! counted) before it connects, then writes them as fast as the router reads them, or paced;
//! given the API it also waits for the apps' `accepted` counters and reports the rate from the
//! first byte sent to the last line accepted. `tail-latency` opens a tail session, sends
//! stamped lines at a steady pace and reports the percentiles of the time each took to reach
//! the tail's reader. `sink` is a syslog receiver that counts the frames a drain (or a relay)
//! delivers (`benches/drains/relay.sh`). All end with one `result key=value …` line for scripts.

mod corpus;
mod frames;
mod http;
mod latency;
mod send;
mod sink;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "logplex-load",
    about = "Load generator and tail-latency probe for the router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send N router-line frames over syslog TCP, as fast as possible or paced.
    Send(send::Args),
    /// Measure the time from a line's sending to its arrival on a live tail.
    TailLatency(latency::Args),
    /// Count the syslog frames that arrive over TCP (octet counted or newline framed).
    Sink(sink::Args),
    /// Write a file of Heroku-shaped log lines (as `heroku logs` prints them) for the query
    /// benchmark.
    Corpus(corpus::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Send(args) => send::run(args),
        Command::TailLatency(args) => latency::run(args),
        Command::Sink(args) => sink::run(args),
        Command::Corpus(args) => corpus::run(args),
    }
}
