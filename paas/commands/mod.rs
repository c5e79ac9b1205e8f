//! The subcommands, one module each.

mod logfmt;

use std::process::ExitCode;

/// Every `paas` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Read logfmt lines and print them as JSON or coloured for a terminal, optionally
    /// filtered (`--where 'status>=500 service>1s'`).
    Logfmt(logfmt::Args),
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Logfmt(args) => logfmt::run(args),
    }
}
