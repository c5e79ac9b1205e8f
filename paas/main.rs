//! `paas`: the one binary. Today it has one command, `paas logfmt`; `paas up`, `paas logs`,
//! `paas drains`, `paas query`, `paas ps` and `paas scale` arrive with the router and stack.

mod commands;

use std::process::ExitCode;

use clap::Parser;

/// A Logplex-style log router with the platform stack that feeds it.
#[derive(Debug, Parser)]
#[command(name = "paas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("paas: {err:#}");
            ExitCode::FAILURE
        }
    }
}
